"""Signing outgoing requests: the auth flow, double-knocking, the scheme memory."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from node.activitypub import http_auth
from node.activitypub.http_auth import HttpSignatureAuth, InMemorySignatureSchemeMemory
from node.activitypub.signatures import PublicKey, Scheme, VerificationResult, verify_request
from tests.activitypub._keys import ACTOR_KEY

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
KEY_ID = "https://lille.example/actors/alice#main-key"
INBOX = "https://gand.example/actors/bob/inbox"
BODY = b'{"type": "Follow"}'


def resolve(key_id: str) -> PublicKey | None:
    return ACTOR_KEY.public_key() if key_id == KEY_ID else None


def make_auth(memory: InMemorySignatureSchemeMemory | None = None) -> HttpSignatureAuth:
    return HttpSignatureAuth(KEY_ID, ACTOR_KEY, memory=memory, clock=lambda: NOW)


def scheme_of(request: httpx.Request) -> Scheme:
    return "rfc9421" if "signature-input" in request.headers else "cavage"


def check(request: httpx.Request) -> VerificationResult:
    return verify_request(
        request.method,
        str(request.url),
        request.headers,
        request.content,
        resolve_key=resolve,
        now=NOW,
    )


class Server:
    """A fake remote server that verifies signatures and accepts only some schemes."""

    def __init__(self, accepts: set[str], refusal: int = 401) -> None:
        self.accepts = accepts
        self.refusal = refusal
        self.seen: list[tuple[Scheme, VerificationResult, bytes]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        result = check(request)
        scheme = scheme_of(request)
        self.seen.append((scheme, result, request.content))
        if result.ok and scheme in self.accepts:
            return httpx.Response(202)
        return httpx.Response(self.refusal, json={"error": result.message})


# --- the flow, one step at a time ---------------------------------------------------------------


def test_flow__signs_rfc9421_first() -> None:
    auth = make_auth()
    flow = auth.sync_auth_flow(httpx.Request("POST", INBOX, content=BODY))
    request = next(flow)
    assert request.headers["signature-input"].startswith('sig1=("@method" "@target-uri"')
    assert "content-digest" in request.headers
    assert f"created={int(NOW.timestamp())}" in request.headers["signature-input"]
    assert check(request).ok
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(202))
    assert auth.memory.get("gand.example") == "rfc9421"


@pytest.mark.parametrize("status", [401, 403])
def test_flow__refused_rfc9421_is_retried_with_cavage(status: int) -> None:
    auth = make_auth()
    flow = auth.sync_auth_flow(httpx.Request("POST", INBOX, content=BODY))
    first = next(flow)
    assert scheme_of(first) == "rfc9421"
    second = flow.send(httpx.Response(status))
    assert scheme_of(second) == "cavage"
    for gone in ("signature-input", "content-digest"):
        assert gone not in second.headers
    assert second.headers["date"] == "Wed, 15 Jan 2025 12:00:00 GMT"
    assert 'headers="(request-target) host date digest"' in second.headers["signature"]
    assert second.content == BODY
    result = check(second)
    assert (result.ok, result.scheme) == (True, "cavage")
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(202))
    assert auth.memory.get("gand.example") == "cavage"


def test_flow__remembered_scheme_is_used_directly() -> None:
    memory = InMemorySignatureSchemeMemory()
    memory.remember("gand.example", "cavage")
    flow = make_auth(memory).sync_auth_flow(httpx.Request("GET", INBOX))
    request = next(flow)
    assert scheme_of(request) == "cavage"
    assert "digest" not in request.headers
    assert 'headers="(request-target) host date"' in request.headers["signature"]
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(200))


def test_flow__both_refused_knocks_twice_and_remembers_nothing() -> None:
    auth = make_auth()
    flow = auth.sync_auth_flow(httpx.Request("POST", INBOX, content=BODY))
    next(flow)
    flow.send(httpx.Response(401))
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(401))
    assert auth.memory.get("gand.example") is None


@pytest.mark.parametrize(("status", "remembered"), [(404, "rfc9421"), (500, None)])
def test_flow__other_statuses_are_not_retried(status: int, remembered: Scheme | None) -> None:
    auth = make_auth()
    flow = auth.sync_auth_flow(httpx.Request("GET", INBOX))
    next(flow)
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(status))
    assert auth.memory.get("gand.example") == remembered


async def test_async_flow__double_knocks_too() -> None:
    auth = make_auth()
    flow = auth.async_auth_flow(httpx.Request("POST", INBOX, content=BODY))
    first = await flow.__anext__()
    assert scheme_of(first) == "rfc9421"
    second = await flow.asend(httpx.Response(401))
    assert scheme_of(second) == "cavage"
    assert check(second).ok
    with pytest.raises(StopAsyncIteration):
        await flow.asend(httpx.Response(202))
    assert auth.memory.get("gand.example") == "cavage"


def test_flow__port_is_part_of_the_host() -> None:
    auth = make_auth()
    flow = auth.sync_auth_flow(httpx.Request("GET", "http://127.0.0.1:8081/actors/bob"))
    next(flow)
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(200))
    assert auth.memory.get("127.0.0.1:8081") == "rfc9421"
    assert auth.memory.get("127.0.0.1") is None


# --- through a client, against fake servers ----------------------------------------------------


def client_for(
    server: Callable[[httpx.Request], httpx.Response], auth: HttpSignatureAuth
) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(server), auth=auth)


def test_client__cavage_only_server_costs_one_extra_request_once() -> None:
    server = Server(accepts={"cavage"})
    memory = InMemorySignatureSchemeMemory()
    with client_for(server, make_auth(memory)) as client:
        assert client.post(INBOX, content=BODY).status_code == 202
        assert client.post(INBOX, content=BODY).status_code == 202
        assert client.get(INBOX).status_code == 202
    assert [scheme for scheme, _, _ in server.seen] == ["rfc9421", "cavage", "cavage", "cavage"]
    assert all(result.ok for _, result, _ in server.seen)
    assert all(body == BODY for _, _, body in server.seen[:3])
    assert memory.get("gand.example") == "cavage"


def test_client__rfc9421_server_needs_one_request() -> None:
    server = Server(accepts={"rfc9421", "cavage"})
    with client_for(server, make_auth()) as client:
        assert client.post(INBOX, content=BODY).status_code == 202
        assert client.post(INBOX, content=BODY).status_code == 202
    assert [scheme for scheme, _, _ in server.seen] == ["rfc9421", "rfc9421"]


def test_client__memory_is_shared_between_auth_instances() -> None:
    memory = InMemorySignatureSchemeMemory()
    server = Server(accepts={"cavage"}, refusal=403)
    with client_for(server, make_auth(memory)) as client:
        client.post(INBOX, content=BODY)
    with client_for(server, make_auth(memory)) as client:
        client.post(INBOX, content=BODY)
    assert [scheme for scheme, _, _ in server.seen] == ["rfc9421", "cavage", "cavage"]


async def test_async_client__double_knocks() -> None:
    server = Server(accepts={"cavage"})
    transport = httpx.MockTransport(server)
    async with httpx.AsyncClient(transport=transport, auth=make_auth()) as client:
        response = await client.post(INBOX, content=BODY)
    assert response.status_code == 202
    assert [scheme for scheme, _, _ in server.seen] == ["rfc9421", "cavage"]


# --- the memory ---------------------------------------------------------------------------------


def test_memory__forgets_the_least_recently_used_host() -> None:
    memory = InMemorySignatureSchemeMemory(max_hosts=2)
    memory.remember("a.example", "cavage")
    memory.remember("b.example", "rfc9421")
    assert memory.get("a.example") == "cavage"  # a is now the most recently used
    memory.remember("c.example", "cavage")
    assert memory.get("b.example") is None
    assert (memory.get("a.example"), memory.get("c.example")) == ("cavage", "cavage")
    assert len(memory) == 2


def test_public_names_are_declared() -> None:
    for name in http_auth.__all__:
        assert hasattr(http_auth, name), name
