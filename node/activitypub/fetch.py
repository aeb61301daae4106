"""Fetching ActivityPub documents from other servers, treating every answer as hostile.

`fetch_document` GETs an object by URL and returns it only when:

- every URL on the way is https (http only with `allow_http=True`, for loopback tests), has no
  credentials, and every hop — redirects included — went through the caller's client (use
  `transport.make_async_client`, whose guard refuses private addresses at connect time);
- at most `max_redirects` redirects were followed, without a loop;
- the final answer is `200` with `Content-Type: application/activity+json` or
  `application/ld+json; profile="https://www.w3.org/ns/activitystreams"`;
- the body, read as a stream, stays within `max_bytes` whatever `Content-Length` claims, and is
  a UTF-8 JSON object;
- with `expect_id` (default), the document's `id` has the origin of the URL it was actually
  served from; if that `id` is not the URL we asked for, the document is fetched again from its
  `id` and must then carry exactly that `id` (Mastodon's rule: a server only vouches for its own
  objects, and a redirect does not make a foreign object ours). No refetch is needed when the
  last redirect hop already was a GET of that `id`.

Failures raise a subclass of `FetchError` whose message names the URL and the cause.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx

from node.activitypub.transport import ForbiddenAddressError, UnknownHostError
from node.activitypub.urls import InvalidUrlError, origin_of, same_origin

__all__ = [
    "AS2_ACCEPT",
    "AS2_PROFILE",
    "BadContentType",
    "BadStatus",
    "FetchError",
    "FetchedDocument",
    "ForbiddenAddress",
    "IdMismatch",
    "InvalidJson",
    "TooLarge",
    "TooManyRedirects",
    "UnknownHost",
    "Unreachable",
    "UnsupportedUrl",
    "fetch_document",
    "is_as2_content_type",
    "parse_media_type",
]

AS2_PROFILE = "https://www.w3.org/ns/activitystreams"
# What ActivityPub §3.2 asks a client to send. Mastodon's JsonLdHelper#build_request sends
# 'application/activity+json, application/ld+json' (without the profile); both are accepted.
AS2_ACCEPT = f'application/activity+json, application/ld+json; profile="{AS2_PROFILE}"'

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


# --- errors ----------------------------------------------------------------------------------


class FetchError(Exception):
    """A remote document could not be fetched or was not acceptable; `url` says which."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"{message} (fetching {url})")
        self.url = url


class UnsupportedUrl(FetchError):
    """The URL (or a redirect target) is not an https URL we may fetch."""


class ForbiddenAddress(FetchError):
    """The host is, or resolves to, a private or otherwise non-public address."""


class UnknownHost(FetchError):
    """The URL's host name does not exist: not an outage (nothing to retry)."""


class Unreachable(FetchError):
    """Connecting, sending or reading failed, or the fetch took longer than allowed."""


class BadStatus(FetchError):
    """The server answered with a status other than 200 (or a redirect without Location)."""

    def __init__(self, url: str, status: int, message: str | None = None) -> None:
        super().__init__(url, message or f"the server answered HTTP {status}")
        self.status = status


class TooManyRedirects(FetchError):
    """More than `max_redirects` redirects, or a redirect loop."""


class BadContentType(FetchError):
    """The answer is not declared as an ActivityStreams document."""

    def __init__(self, url: str, content_type: str) -> None:
        super().__init__(
            url,
            f"Content-Type {content_type!r} is neither application/activity+json nor "
            f'application/ld+json; profile="{AS2_PROFILE}"',
        )
        self.content_type = content_type


class TooLarge(FetchError):
    """The body is larger than `max_bytes`."""

    def __init__(self, url: str, limit: int) -> None:
        super().__init__(url, f"the document is larger than {limit} bytes")
        self.limit = limit


class InvalidJson(FetchError):
    """The body is not UTF-8 JSON, or not a JSON object."""


class IdMismatch(FetchError):
    """The document's `id` is missing, or is not vouched for by the server that served it."""


# --- result ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchedDocument:
    """A fetched AS2 document and the URL that finally served it (after redirects)."""

    url: str
    document: dict[str, Any]
    content_type: str

    @property
    def id(self) -> str | None:
        """The document's `id` when it is a string."""
        value = self.document.get("id")
        return value if isinstance(value, str) else None


# --- content type ----------------------------------------------------------------------------


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type into a lower-cased media type and its parameters (RFC 9110 §8.3.1).

    Parameter names are lower-cased; quoted-string values are unquoted (backslash escapes
    honoured); a parameter without a value, or with an unterminated quoted string, is dropped;
    the first of repeated parameters wins.
    """
    media_type, _, rest = value.partition(";")
    params: dict[str, str] = {}
    index, length = 0, len(rest)
    while index < length:
        while index < length and rest[index] in " \t;":
            index += 1
        start = index
        while index < length and rest[index] not in "=;":
            index += 1
        name = rest[start:index].strip().lower()
        if index >= length or rest[index] == ";":
            continue  # a parameter without a value: ignored
        index += 1  # '='
        while index < length and rest[index] in " \t":
            index += 1
        if index < length and rest[index] == '"':
            index += 1
            chars: list[str] = []
            while index < length and rest[index] != '"':
                if rest[index] == "\\" and index + 1 < length:
                    index += 1
                chars.append(rest[index])
                index += 1
            if index >= length:
                break  # unterminated quoted-string: this parameter and the rest are dropped
            index += 1  # closing quote
            param_value = "".join(chars)
            while index < length and rest[index] != ";":
                index += 1
        else:
            start = index
            while index < length and rest[index] != ";":
                index += 1
            param_value = rest[start:index].strip()
        if name and name not in params:
            params[name] = param_value
    return media_type.strip().lower(), params


def is_as2_content_type(value: str) -> bool:
    """True for `application/activity+json` or AS2-profiled `application/ld+json`."""
    media_type, params = parse_media_type(value)
    if media_type == "application/activity+json":
        return True
    return media_type == "application/ld+json" and AS2_PROFILE in params.get("profile", "").split()


# --- fetching --------------------------------------------------------------------------------


async def fetch_document(
    client: httpx.AsyncClient,
    url: str,
    *,
    accept: str = AS2_ACCEPT,
    max_bytes: int = 1_000_000,
    max_redirects: int = 3,
    expect_id: bool = True,
    allow_http: bool = False,
    auth: httpx.Auth | None = None,
    total_timeout: float | None = 60.0,
) -> FetchedDocument:
    """GET the ActivityPub document at `url` (see the module docstring for the checks).

    `auth` (e.g. the HTTP-signature `httpx.Auth` for authorized fetch) is used for every request
    instead of the client's; `total_timeout` bounds the whole fetch, refetch and redirects
    included, against servers that trickle bytes just under the client's read timeout.
    """
    options = _Options(accept, max_bytes, max_redirects, allow_http, auth)
    try:
        async with asyncio.timeout(total_timeout):
            fetched = await _fetch_following_redirects(client, url, options)
            if not expect_id:
                return fetched
            document_id = _vouched_id(fetched)
            if document_id in (url, _without_fragment(url), fetched.url):
                return fetched  # asked for it, or the last hop was a GET of the id itself
            refetched = await _fetch_following_redirects(client, document_id, options)
            if _vouched_id(refetched) != document_id:
                raise IdMismatch(
                    document_id,
                    f"refetching {url}'s document from its id returned id {refetched.id!r}",
                )
            return refetched
    except TimeoutError:
        raise Unreachable(url, f"the fetch took longer than {total_timeout} seconds") from None


@dataclass(frozen=True, slots=True)
class _Options:
    accept: str
    max_bytes: int
    max_redirects: int
    allow_http: bool
    auth: httpx.Auth | None


def _vouched_id(fetched: FetchedDocument) -> str:
    """The document's id, if the origin that served the document may speak for it."""
    document_id = fetched.id
    if document_id is None:
        raise IdMismatch(fetched.url, "the document has no string id")
    if not same_origin(document_id, fetched.url):
        raise IdMismatch(
            fetched.url,
            f"the document's id {document_id!r} is not on the origin that served it",
        )
    return document_id


async def _fetch_following_redirects(
    client: httpx.AsyncClient, url: str, options: _Options
) -> FetchedDocument:
    current = _without_fragment(url)  # never sent; the served URL has none
    seen = {current}
    for _hop in range(options.max_redirects + 1):
        _check_url(current, options.allow_http)
        response = await _send(client, current, options)
        try:
            if response.status_code in _REDIRECT_STATUSES:
                target = _without_fragment(_redirect_target(current, response))
                if target in seen:
                    raise TooManyRedirects(url, f"redirect loop at {target}")
                seen.add(target)
                current = target
                continue
            if response.status_code != 200:
                raise BadStatus(current, response.status_code)
            content_type = response.headers.get("Content-Type", "")
            if not is_as2_content_type(content_type):
                raise BadContentType(current, content_type)
            body = await _read_limited(response, current, options.max_bytes)
        finally:
            await response.aclose()
        return FetchedDocument(
            url=current, document=_parse_object(body, current), content_type=content_type
        )
    raise TooManyRedirects(url, f"more than {options.max_redirects} redirects")


def _check_url(url: str, allow_http: bool) -> None:
    try:
        scheme = origin_of(url).scheme
    except InvalidUrlError as exc:
        raise UnsupportedUrl(url, str(exc)) from None
    if scheme != "https" and not allow_http:
        raise UnsupportedUrl(url, "only https URLs are fetched")


async def _send(client: httpx.AsyncClient, url: str, options: _Options) -> httpx.Response:
    try:
        request = client.build_request("GET", url, headers={"Accept": options.accept})
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise UnsupportedUrl(url, str(exc)) from None
    auth = httpx.USE_CLIENT_DEFAULT if options.auth is None else options.auth
    try:
        return await client.send(request, auth=auth, stream=True, follow_redirects=False)
    except ForbiddenAddressError as exc:
        raise ForbiddenAddress(url, str(exc)) from exc
    except UnknownHostError as exc:
        raise UnknownHost(url, str(exc)) from exc
    except httpx.InvalidURL as exc:  # httpx parses a redirect's Location even when not following
        raise UnsupportedUrl(url, f"the server redirected to an invalid URL: {exc}") from None
    except httpx.TimeoutException as exc:
        raise Unreachable(url, f"timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise Unreachable(url, f"{type(exc).__name__}: {exc}") from exc


def _redirect_target(current: str, response: httpx.Response) -> str:
    location = response.headers.get("Location")
    if not location:
        raise BadStatus(current, response.status_code, "redirect without a Location header")
    try:
        return str(response.request.url.join(location))
    except httpx.InvalidURL as exc:
        raise UnsupportedUrl(current, f"invalid redirect Location {location!r}: {exc}") from None


async def _read_limited(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length", "")
    encoded = "Content-Encoding" in response.headers
    if not encoded and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(url, max_bytes)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():  # decoded bytes: the limit is what we parse
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(url, max_bytes)
            chunks.append(chunk)
    except httpx.DecodingError as exc:
        raise InvalidJson(url, f"the body could not be decoded: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise Unreachable(url, f"timed out reading the body ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise Unreachable(url, f"reading the body failed: {type(exc).__name__}: {exc}") from exc
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_object(body: bytes, url: str) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
        value = json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise InvalidJson(url, "the body is not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise InvalidJson(url, f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidJson(url, f"expected a JSON object, got {type(value).__name__}")
    return value


def _without_fragment(url: str) -> str:
    return url.partition("#")[0]
