"""The test proxy itself, against a tiny local HTTP server: each rule does what it says."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from federation_tests.harness import http_get, http_post
from federation_tests.proxy import Proxy, Request, activity

OFFER = {"type": "Offer", "id": "https://a.example/1", "object": {"type": "Settlement"}}
ACCEPT = {"type": "Accept", "id": "https://a.example/2", "object": "https://a.example/1"}


class Upstream:
    """Records what reaches it; answers 202 to POSTs (200 to GETs) with what it received."""

    def __init__(self) -> None:
        self.received: list[dict[str, object]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _record(self, body: bytes) -> dict[str, object]:
                seen = {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode(),
                    "at": time.monotonic(),
                }
                upstream.received.append(seen)
                return seen

            def _reply(self, status: int, seen: dict[str, object]) -> None:
                data = json.dumps({k: v for k, v in seen.items() if k != "at"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Upstream", "yes")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 -- http.server's names
                self._reply(200, self._record(b""))

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                self._reply(202, self._record(self.rfile.read(length)))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        # checks for shutdown() every 10 ms (the default half second made each test's
        # teardown wait for it)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def bodies(self) -> list[object]:
        return [json.loads(str(r["body"])) for r in self.received if r["method"] == "POST"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


@pytest.fixture
def proxy(upstream: Upstream) -> Iterator[Proxy]:
    with Proxy(upstream.port) as running:
        yield running


def post(proxy: Proxy, body: object, path: str = "/inbox", **kwargs: object) -> httpx.Response:
    return http_post(proxy.url + path, json=body, timeout=10, **kwargs)


def test_forwards_verbatim(proxy: Proxy, upstream: Upstream) -> None:
    response = http_post(
        proxy.url + "/users/alice/inbox?x=1",
        content=b'{"type": "Create"}',
        headers={
            "Host": "lille.example",
            "Signature": 'keyId="k",signature="abc"',
            "Content-Type": "application/activity+json",
        },
        timeout=10,
    )
    assert response.status_code == 202
    assert response.headers["x-upstream"] == "yes"
    (seen,) = upstream.received
    assert seen["method"] == "POST"
    assert seen["path"] == "/users/alice/inbox?x=1"
    headers = seen["headers"]
    assert isinstance(headers, dict)
    assert headers["host"] == "lille.example"
    assert headers["signature"] == 'keyId="k",signature="abc"'
    assert headers["content-type"] == "application/activity+json"
    assert seen["body"] == '{"type": "Create"}'
    assert response.json()["body"] == '{"type": "Create"}'
    assert http_get(proxy.url + "/healthz?a=b", timeout=10).json()["path"] == "/healthz?a=b"
    (logged, get) = proxy.log
    assert (logged.action, logged.statuses, logged.answered) == ("forwarded", [202], 202)
    assert logged.activity_type == "Create" and get.method == "GET"


def test_chunked_request_bodies_are_forwarded(proxy: Proxy, upstream: Upstream) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"type": '
        yield b'"Offer"}'

    response = http_post(proxy.url + "/inbox", content=chunks(), timeout=10)
    assert response.status_code == 202
    assert upstream.bodies() == [{"type": "Offer"}]


def test_matching_by_activity_and_object_type(proxy: Proxy, upstream: Upstream) -> None:
    rule = proxy.drop(activity("Offer", "Settlement"))
    assert post(proxy, ACCEPT).status_code == 202
    assert post(proxy, {"type": "Offer", "object": {"type": "Note"}}).status_code == 202
    assert post(proxy, OFFER, path="/outbox").status_code == 202  # not an inbox
    assert post(proxy, OFFER, path="/actors/gand/inbox").status_code == 502
    assert post(proxy, OFFER).status_code == 502
    assert len(rule.hits) == 2
    assert len(upstream.received) == 3
    where = activity("Offer", where=lambda body: body["id"].endswith("/9"))
    assert where(Request("POST", "/inbox", "HTTP/1.1", [], json.dumps(OFFER).encode())) is False


def test_drop_answers_502_without_forwarding(proxy: Proxy, upstream: Upstream) -> None:
    proxy.drop(activity("Offer"))
    assert post(proxy, OFFER).status_code == 502
    assert upstream.received == []
    assert proxy.seen(activity("Offer"))[0].action == "dropped"


def test_drop_can_close_the_connection(proxy: Proxy, upstream: Upstream) -> None:
    proxy.drop(activity("Offer"), close=True)
    with pytest.raises(httpx.TransportError):
        post(proxy, OFFER)
    assert upstream.received == []
    assert proxy.log[0].answered is None


def test_swallow_answers_202_and_loses_the_message(proxy: Proxy, upstream: Upstream) -> None:
    proxy.swallow(activity("Offer"))
    assert post(proxy, OFFER).status_code == 202
    assert upstream.received == []
    assert post(proxy, ACCEPT).status_code == 202
    assert upstream.bodies() == [ACCEPT]


def test_duplicate_forwards_twice(proxy: Proxy, upstream: Upstream) -> None:
    proxy.duplicate(activity("Offer"))
    response = post(proxy, OFFER)
    assert response.status_code == 202
    assert upstream.bodies() == [OFFER, OFFER]
    assert proxy.log[0].statuses == [202, 202]


def test_times_limits_a_rule(proxy: Proxy, upstream: Upstream) -> None:
    rule = proxy.drop(activity("Offer"), times=1)
    assert post(proxy, OFFER).status_code == 502
    assert post(proxy, OFFER).status_code == 202  # the retry passes
    assert rule.exhausted and len(rule.hits) == 1
    assert upstream.bodies() == [OFFER]


def test_delay_for_seconds(proxy: Proxy, upstream: Upstream) -> None:
    proxy.delay(activity("Offer"), seconds=1.0)
    started = time.monotonic()
    assert post(proxy, OFFER).status_code == 202
    assert time.monotonic() - started >= 1.0
    assert upstream.bodies() == [OFFER]


def test_delay_until_released_reorders(proxy: Proxy, upstream: Upstream) -> None:
    rule = proxy.delay(activity("Offer"))
    answers: list[int] = []
    sender = threading.Thread(target=lambda: answers.append(post(proxy, OFFER).status_code))
    sender.start()
    rule.wait_hits(1)
    assert post(proxy, ACCEPT).status_code == 202  # overtakes the held Offer
    time.sleep(0.3)
    assert upstream.bodies() == [ACCEPT] and answers == []
    rule.release()
    sender.join(10)
    assert answers == [202]
    assert upstream.bodies() == [ACCEPT, OFFER]


def test_delay_answering_now_delivers_later(proxy: Proxy, upstream: Upstream) -> None:
    rule = proxy.delay(activity("Offer"), seconds=None, answer_now=True)
    started = time.monotonic()
    assert post(proxy, OFFER).status_code == 202
    assert time.monotonic() - started < 1.0
    time.sleep(0.3)
    assert upstream.received == []
    rule.release()
    # the proxy records the upstream's status once its answer is back, after the upstream
    # has recorded the request: wait for the status, not for the request
    deadline = time.monotonic() + 10
    while not rule.hits[0].statuses and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.bodies() == [OFFER]
    assert rule.hits[0].statuses == [202] and rule.hits[0].answered == 202


def test_hook_is_called_before_forwarding(proxy: Proxy, upstream: Upstream) -> None:
    calls: list[tuple[str | None, int]] = []
    proxy.on(
        activity("Offer", "Settlement"),
        lambda request: calls.append((request.activity_type, len(upstream.received))),
    )
    assert post(proxy, OFFER).status_code == 202
    assert calls == [("Offer", 0)]
    assert upstream.bodies() == [OFFER]


def test_hook_can_kill_the_upstream(proxy: Proxy, upstream: Upstream) -> None:
    proxy.on(activity("Offer"), lambda request: upstream.close(), times=1)
    assert post(proxy, OFFER).status_code == 502  # the receiver died as the message arrived
    assert upstream.received == []
    assert proxy.log[0].statuses == [None]


def test_remove_and_clear(proxy: Proxy, upstream: Upstream) -> None:
    rule = proxy.drop(activity("Offer"))
    assert post(proxy, OFFER).status_code == 502
    proxy.remove(rule)
    assert post(proxy, OFFER).status_code == 202
    proxy.swallow(activity())
    proxy.clear()
    assert proxy.rules == [] and proxy.log == []
    assert post(proxy, ACCEPT).status_code == 202
    assert upstream.bodies() == [OFFER, ACCEPT]


def test_a_dead_upstream_is_a_502(upstream: Upstream) -> None:
    port = upstream.port
    upstream.close()
    with Proxy(port) as proxy:
        assert post(proxy, OFFER).status_code == 502
        assert proxy.log[0].statuses == [None]
