"""fetch_document against httpx.MockTransport servers that misbehave in every way we know of."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

import httpx
import pytest

from node.activitypub import fetch
from node.activitypub.fetch import (
    AS2_ACCEPT,
    BadContentType,
    BadStatus,
    FetchedDocument,
    FetchError,
    ForbiddenAddress,
    IdMismatch,
    InvalidJson,
    TooLarge,
    TooManyRedirects,
    Unreachable,
    UnsupportedUrl,
    fetch_document,
    is_as2_content_type,
    parse_media_type,
)
from node.activitypub.transport import ForbiddenAddressError

AS2 = "application/activity+json"
LD_AS2 = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'

Handler = Callable[[httpx.Request], Any]


class _Remote:
    """A MockTransport 'internet': routes by URL (without fragment), logs every request."""

    def __init__(self, routes: dict[str, Any] | None = None) -> None:
        self.routes: dict[str, Any] = routes or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = self.routes.get(str(request.url.copy_with(fragment=None)))
        if route is None:
            return httpx.Response(404)
        if callable(route):
            result: httpx.Response = route(request)
            return result
        return _as2(route)

    @property
    def urls(self) -> list[str]:
        return [str(request.url) for request in self.requests]

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self), **kwargs)


def _as2(document: Any, *, content_type: str = AS2, status: int = 200) -> httpx.Response:
    return httpx.Response(status, headers={"Content-Type": content_type}, json=document)


def _redirect(location: str, status: int = 302) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, headers={"Location": location})


def _body(body: bytes, content_type: str = AS2) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(200, headers={"Content-Type": content_type}, content=body)


NOTE = "https://remote.example/notes/1"


# --- the happy path ---------------------------------------------------------------------------


async def test_fetch_document__returns_the_object() -> None:
    remote = _Remote({NOTE: {"id": NOTE, "type": "Note", "content": "hi"}})
    async with remote.client() as client:
        fetched = await fetch_document(client, NOTE)
    assert fetched == FetchedDocument(
        url=NOTE, document={"id": NOTE, "type": "Note", "content": "hi"}, content_type=AS2
    )
    assert fetched.id == NOTE
    [request] = remote.requests
    assert request.method == "GET"
    assert request.headers["Accept"] == AS2_ACCEPT


def test_as2_accept_asks_for_both_media_types() -> None:
    assert AS2_ACCEPT == (
        'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
    )


async def test_fetch_document__key_id_with_fragment_is_not_refetched() -> None:
    actor = "https://remote.example/users/alice"
    remote = _Remote({actor: {"id": actor, "type": "Person"}})
    async with remote.client() as client:
        fetched = await fetch_document(client, actor + "#main-key")
    assert fetched.id == actor
    assert len(remote.requests) == 1


async def test_fetch_document__auth_signs_every_request() -> None:
    class Signing(httpx.Auth):
        def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, Any, None]:
            request.headers["Signature"] = f"signed {request.url.host}"
            yield request

    start = "https://a.example/@alice"
    served = "https://b.example/u/alice"
    canonical = "https://b.example/users/alice"
    remote = _Remote(
        {start: _redirect(served), served: {"id": canonical}, canonical: {"id": canonical}}
    )
    async with remote.client() as client:
        await fetch_document(client, start, auth=Signing())
    assert remote.urls == [start, served, canonical]
    assert [r.headers["Signature"] for r in remote.requests] == [
        "signed a.example",
        "signed b.example",
        "signed b.example",
    ]


async def test_fetch_document__without_auth_uses_the_clients() -> None:
    remote = _Remote({NOTE: {"id": NOTE}})
    async with remote.client(auth=("user", "pw")) as client:
        await fetch_document(client, NOTE)
    assert remote.requests[0].headers["Authorization"].startswith("Basic ")


# --- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://remote.example/notes/1",
        "ftp://remote.example/notes/1",
        "https://user:pw@remote.example/notes/1",
        "https://remote.example\\@evil.example/",
        "notes/1",
        "https://2130706433:99999/",
    ],
)
async def test_fetch_document__unsupported_url(url: str) -> None:
    remote = _Remote()
    async with remote.client() as client:
        with pytest.raises(UnsupportedUrl):
            await fetch_document(client, url)
    assert remote.requests == []


async def test_fetch_document__http_only_when_allowed() -> None:
    url = "http://127.0.0.1:8000/notes/1"
    remote = _Remote({url: {"id": url}})
    async with remote.client() as client:
        fetched = await fetch_document(client, url, allow_http=True)
    assert fetched.id == url


# --- content types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        AS2,
        "application/activity+json; charset=utf-8",
        "Application/Activity+JSON",
        LD_AS2,
        'application/ld+json;profile="https://www.w3.org/ns/activitystreams"',
        'application/ld+json; charset=utf-8; profile="https://www.w3.org/ns/activitystreams"',
        'APPLICATION/LD+JSON; PROFILE="https://www.w3.org/ns/activitystreams"',
        'application/ld+json; profile="https://example.org/ext https://www.w3.org/ns/activitystreams"',
        "application/ld+json; profile=https://www.w3.org/ns/activitystreams",
        'application/ld+json; note="a;b=c"; profile="https://www.w3.org/ns/activitystreams"',
    ],
)
async def test_fetch_document__accepted_content_types(content_type: str) -> None:
    remote = _Remote({NOTE: lambda request: _as2({"id": NOTE}, content_type=content_type)})
    async with remote.client() as client:
        fetched = await fetch_document(client, NOTE)
    assert fetched.content_type == content_type


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/ld+json",
        'application/ld+json; profile="https://www.w3.org/ns/activitystreams-evil"',
        'application/ld+json; note="profile=https://www.w3.org/ns/activitystreams"',
        'application/ld+json; profile="https://www.w3.org/ns/activitystreams',
        "application/activity+jsonx",
        "text/html; charset=utf-8",
        'text/plain; x="application/activity+json"',
        "",
    ],
)
async def test_fetch_document__refused_content_types(content_type: str) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        response = _as2({"id": NOTE}, content_type=content_type)
        if not content_type:
            del response.headers["Content-Type"]
        return response

    remote = _Remote({NOTE: respond})
    async with remote.client() as client:
        with pytest.raises(BadContentType) as caught:
            await fetch_document(client, NOTE)
    assert caught.value.content_type == content_type
    assert NOTE in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/activity+json", ("application/activity+json", {})),
        (" Text/HTML ; Charset = UTF-8 ", ("text/html", {"charset": "UTF-8"})),
        ('a/b; x="1;2"; y=3', ("a/b", {"x": "1;2", "y": "3"})),
        ('a/b; x="say \\"hi\\""', ("a/b", {"x": 'say "hi"'})),
        ("a/b; novalue; y=1", ("a/b", {"y": "1"})),
        ("a/b; X=1; x=2", ("a/b", {"x": "1"})),
        ('a/b; y=1; x="unterminated; z=2', ("a/b", {"y": "1"})),
        ("", ("", {})),
    ],
)
def test_parse_media_type(value: str, expected: tuple[str, dict[str, str]]) -> None:
    assert parse_media_type(value) == expected


def test_is_as2_content_type() -> None:
    assert is_as2_content_type(LD_AS2)
    assert not is_as2_content_type("application/ld+json")


# --- sizes ------------------------------------------------------------------------------------


async def test_fetch_document__chunked_body_past_the_limit_is_cut_off() -> None:
    produced = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal produced
        yield b'{"id": "' + NOTE.encode() + b'", "content": "'
        while produced < 100_000_000:  # a safety net: the fetch must stop long before
            produced += 4096
            yield b"a" * 4096

    def respond(request: httpx.Request) -> httpx.Response:
        response = httpx.Response(200, headers={"Content-Type": AS2}, content=endless())
        assert "Content-Length" not in response.headers
        assert response.headers["Transfer-Encoding"] == "chunked"
        return response

    remote = _Remote({NOTE: respond})
    async with remote.client() as client:
        with pytest.raises(TooLarge) as caught:
            await fetch_document(client, NOTE, max_bytes=50_000)
    assert caught.value.limit == 50_000
    assert "50000 bytes" in str(caught.value)
    assert produced < 60_000


async def test_fetch_document__content_length_is_not_trusted() -> None:
    body = json.dumps({"id": NOTE, "content": "a" * 5000}).encode()

    def respond(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": AS2, "Content-Length": "10"}
        return httpx.Response(200, headers=headers, content=body)

    remote = _Remote({NOTE: respond})
    async with remote.client() as client:
        with pytest.raises(TooLarge):
            await fetch_document(client, NOTE, max_bytes=1000)


async def test_fetch_document__declared_oversize_is_refused_unread() -> None:
    async def never_read() -> AsyncIterator[bytes]:
        raise AssertionError("the body of a declared-oversize answer must not be read")
        yield b""  # pragma: no cover

    def respond(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": AS2, "Content-Length": "2000000"}
        return httpx.Response(200, headers=headers, content=never_read())

    remote = _Remote({NOTE: respond})
    async with remote.client() as client:
        with pytest.raises(TooLarge):
            await fetch_document(client, NOTE)


async def _stream(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_fetch_document__limit_counts_decompressed_bytes() -> None:
    body = json.dumps({"id": NOTE, "content": "a" * 200_000}).encode()
    compressed = gzip.compress(body)
    assert len(compressed) < 2_000

    def respond(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": AS2, "Content-Encoding": "gzip"}
        return httpx.Response(200, headers=headers, content=_stream(compressed))

    remote = _Remote({NOTE: respond})
    async with remote.client() as client:
        with pytest.raises(TooLarge):
            await fetch_document(client, NOTE, max_bytes=100_000)
        fetched = await fetch_document(client, NOTE, max_bytes=300_000)
    assert fetched.document["content"] == "a" * 200_000


@pytest.mark.parametrize(("extra", "fits"), [(0, True), (1, False)])
async def test_fetch_document__limit_is_inclusive(extra: int, fits: bool) -> None:
    body = json.dumps({"id": NOTE}).encode()
    remote = _Remote({NOTE: _body(body + b" " * extra)})
    async with remote.client() as client:
        if fits:
            await fetch_document(client, NOTE, max_bytes=len(body))
        else:
            with pytest.raises(TooLarge):
                await fetch_document(client, NOTE, max_bytes=len(body))


# --- JSON -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b'{"id": "x",}', "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"a": Infinity}', "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b'{"n": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b'"https://remote.example/notes/1"', "expected a JSON object, got str"),
        (b"null", "expected a JSON object, got NoneType"),
        (b"42", "expected a JSON object, got int"),
    ],
)
async def test_fetch_document__invalid_json(body: bytes, message: str) -> None:
    remote = _Remote({NOTE: _body(body)})
    async with remote.client() as client:
        with pytest.raises(InvalidJson, match=message):
            await fetch_document(client, NOTE, max_bytes=1_000_000)


async def test_fetch_document__bad_gzip_is_invalid() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": AS2, "Content-Encoding": "gzip"}
        return httpx.Response(200, headers=headers, content=_stream(b"definitely not gzip"))

    remote = _Remote({NOTE: respond})
    async with remote.client() as client:
        with pytest.raises(InvalidJson, match="could not be decoded"):
            await fetch_document(client, NOTE)


# --- status -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [201, 204, 304, 400, 401, 403, 404, 410, 429, 500, 503])
async def test_fetch_document__bad_status(status: int) -> None:
    remote = _Remote({NOTE: lambda request: _as2({"id": NOTE}, status=status)})
    async with remote.client() as client:
        with pytest.raises(BadStatus) as caught:
            await fetch_document(client, NOTE)
    assert caught.value.status == status
    assert f"HTTP {status}" in str(caught.value)


# --- ids --------------------------------------------------------------------------------------


async def test_fetch_document__id_on_another_origin_is_refused_without_contacting_it() -> None:
    remote = _Remote({NOTE: {"id": "https://victim.example/notes/1", "content": "forged"}})
    async with remote.client() as client:
        with pytest.raises(IdMismatch, match="not on the origin that served it"):
            await fetch_document(client, NOTE)
    assert remote.urls == [NOTE]


@pytest.mark.parametrize(
    "document_id",
    [
        "http://remote.example/notes/1",  # scheme differs
        "https://remote.example:8443/notes/1",  # port differs
        "https://sub.remote.example/notes/1",
        "https://remote.example.evil/notes/1",
        "https://user@remote.example/notes/1",
        "/notes/1",
        "urn:uuid:1",
    ],
)
async def test_fetch_document__id_must_share_the_serving_origin(document_id: str) -> None:
    remote = _Remote({NOTE: {"id": document_id}})
    async with remote.client() as client:
        with pytest.raises(IdMismatch):
            await fetch_document(client, NOTE)
    assert remote.urls == [NOTE]


@pytest.mark.parametrize("document", [{}, {"id": None}, {"id": 7}, {"id": ["x"]}])
async def test_fetch_document__id_missing(document: dict[str, Any]) -> None:
    remote = _Remote({NOTE: document})
    async with remote.client() as client:
        with pytest.raises(IdMismatch, match="no string id"):
            await fetch_document(client, NOTE)
        fetched = await fetch_document(client, NOTE, expect_id=False)
    assert fetched.document == document


async def test_fetch_document__expect_id_false_skips_all_id_checks() -> None:
    remote = _Remote({NOTE: {"id": "https://elsewhere.example/x"}})
    async with remote.client() as client:
        fetched = await fetch_document(client, NOTE, expect_id=False)
    assert fetched.id == "https://elsewhere.example/x"
    assert remote.urls == [NOTE]


async def test_fetch_document__same_origin_other_id_is_refetched_by_id() -> None:
    short = "https://remote.example/@alice"
    canonical = "https://remote.example/users/alice"
    remote = _Remote({short: {"id": canonical, "v": 1}, canonical: {"id": canonical, "v": 2}})
    async with remote.client() as client:
        fetched = await fetch_document(client, short)
    assert remote.urls == [short, canonical]
    assert fetched.url == canonical
    assert fetched.document == {"id": canonical, "v": 2}


async def test_fetch_document__refetch_must_return_exactly_the_id() -> None:
    short = "https://remote.example/@alice"
    canonical = "https://remote.example/users/alice"
    remote = _Remote({short: {"id": canonical}, canonical: {"id": canonical + "/other"}})
    async with remote.client() as client:
        with pytest.raises(IdMismatch, match="/other"):
            await fetch_document(client, short)
    assert remote.urls == [short, canonical]


async def test_fetch_document__refetch_redirected_elsewhere_is_refused() -> None:
    short = "https://remote.example/@alice"
    canonical = "https://remote.example/users/alice"
    remote = _Remote(
        {
            short: {"id": canonical},
            canonical: _redirect("https://evil.example/alice"),
            "https://evil.example/alice": {"id": canonical},
        }
    )
    async with remote.client() as client:
        with pytest.raises(IdMismatch, match="not on the origin"):
            await fetch_document(client, short)


async def test_fetch_document__cross_host_redirect_to_the_objects_own_id() -> None:
    start = "https://short.example/n/1"
    target = "https://remote.example/notes/1"
    remote = _Remote({start: _redirect(target, 301), target: {"id": target}})
    async with remote.client() as client:
        fetched = await fetch_document(client, start)
    assert fetched.url == fetched.id == target
    assert remote.urls == [start, target]  # the last hop already was a GET of the id


async def test_fetch_document__cross_host_redirect_then_refetch_by_id() -> None:
    start = "https://short.example/n/1"
    served = "https://remote.example/n/1"
    canonical = "https://remote.example/notes/1"
    remote = _Remote(
        {start: _redirect(served), served: {"id": canonical}, canonical: {"id": canonical}}
    )
    async with remote.client() as client:
        fetched = await fetch_document(client, start)
    assert fetched.id == canonical
    assert remote.urls == [start, served, canonical]


async def test_fetch_document__redirect_to_a_forger_of_the_requested_id() -> None:
    evil = "https://evil.example/forged"
    remote = _Remote({NOTE: _redirect(evil), evil: {"id": NOTE, "content": "forged"}})
    async with remote.client() as client:
        with pytest.raises(IdMismatch, match="not on the origin that served it"):
            await fetch_document(client, NOTE)


# --- redirects --------------------------------------------------------------------------------


async def test_fetch_document__relative_redirect_on_the_same_origin() -> None:
    final = "https://remote.example/objects/1"
    remote = _Remote({NOTE: _redirect("/objects/1", 308), final: {"id": NOTE}})
    async with remote.client() as client:
        fetched = await fetch_document(client, NOTE)
    assert fetched.url == final and fetched.id == NOTE
    assert remote.urls == [NOTE, final]


@pytest.mark.parametrize(
    "routes",
    [
        {NOTE: _redirect(NOTE)},
        {NOTE: _redirect(NOTE + "#frag")},
        {NOTE: _redirect("https://b.example/"), "https://b.example/": _redirect(NOTE)},
    ],
)
async def test_fetch_document__redirect_loop(routes: dict[str, Any]) -> None:
    remote = _Remote(routes)
    async with remote.client() as client:
        with pytest.raises(TooManyRedirects, match="loop"):
            await fetch_document(client, NOTE, max_redirects=10)
    assert len(remote.requests) <= 2


def _chain(length: int) -> dict[str, Any]:
    urls = [f"https://hop{index}.example/x" for index in range(length + 1)]
    routes: dict[str, Any] = {url: _redirect(nxt) for url, nxt in zip(urls, urls[1:], strict=False)}
    routes[urls[-1]] = {"id": urls[-1]}
    return routes


async def test_fetch_document__redirect_limit() -> None:
    async with _Remote(_chain(3)).client() as client:
        fetched = await fetch_document(client, "https://hop0.example/x", max_redirects=3)
    assert fetched.id == "https://hop3.example/x"
    remote = _Remote(_chain(4))
    async with remote.client() as client:
        with pytest.raises(TooManyRedirects, match="more than 3 redirects"):
            await fetch_document(client, "https://hop0.example/x", max_redirects=3)
    assert len(remote.requests) == 4


async def test_fetch_document__no_redirects_allowed() -> None:
    async with _Remote(_chain(1)).client() as client:
        with pytest.raises(TooManyRedirects):
            await fetch_document(client, "https://hop0.example/x", max_redirects=0)


@pytest.mark.parametrize(
    "location",
    [
        "http://remote.example/downgraded",
        "ftp://remote.example/x",
        "javascript:alert(1)",
        "https://user:pw@remote.example/x",
    ],
)
async def test_fetch_document__redirect_to_an_unsupported_url(location: str) -> None:
    remote = _Remote({NOTE: _redirect(location)})
    async with remote.client() as client:
        with pytest.raises(UnsupportedUrl):
            await fetch_document(client, NOTE)
    assert remote.urls == [NOTE]


async def test_fetch_document__redirect_without_location() -> None:
    remote = _Remote({NOTE: lambda request: httpx.Response(302)})
    async with remote.client() as client:
        with pytest.raises(BadStatus, match="without a Location") as caught:
            await fetch_document(client, NOTE)
    assert caught.value.status == 302


# --- transport failures -----------------------------------------------------------------------


async def test_fetch_document__forbidden_address_is_mapped() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise ForbiddenAddressError("remote.example", None, "it resolves to 10.0.0.1")

    remote = _Remote({NOTE: refuse})
    async with remote.client() as client:
        with pytest.raises(ForbiddenAddress, match="10.0.0.1") as caught:
            await fetch_document(client, NOTE)
    assert isinstance(caught.value.__cause__, ForbiddenAddressError)


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), httpx.RemoteProtocolError("x")],
)
async def test_fetch_document__network_errors_are_unreachable(error: Exception) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    async with _Remote({NOTE: fail}).client() as client:
        with pytest.raises(Unreachable):
            await fetch_document(client, NOTE)


async def test_fetch_document__error_while_reading_the_body() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b'{"id": '
        raise httpx.ReadError("connection reset")

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": AS2}, content=broken())

    async with _Remote({NOTE: respond}).client() as client:
        with pytest.raises(Unreachable, match="connection reset"):
            await fetch_document(client, NOTE)


async def test_fetch_document__total_timeout() -> None:
    async def trickle() -> AsyncIterator[bytes]:
        while True:
            await asyncio.sleep(0.01)
            yield b" "

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": AS2}, content=trickle())

    async with _Remote({NOTE: respond}).client() as client:
        with pytest.raises(Unreachable, match="longer than 0.1 seconds"):
            await fetch_document(client, NOTE, total_timeout=0.1)


def test_every_fetch_error_names_the_url() -> None:
    errors: list[FetchError] = [
        UnsupportedUrl(NOTE, "x"),
        ForbiddenAddress(NOTE, "x"),
        Unreachable(NOTE, "x"),
        BadStatus(NOTE, 404),
        TooManyRedirects(NOTE, "x"),
        BadContentType(NOTE, "text/html"),
        TooLarge(NOTE, 10),
        InvalidJson(NOTE, "x"),
        IdMismatch(NOTE, "x"),
    ]
    for error in errors:
        assert isinstance(error, FetchError)
        assert error.url == NOTE and NOTE in str(error)


def test_all_names_exist() -> None:
    for name in fetch.__all__:
        assert hasattr(fetch, name), name
