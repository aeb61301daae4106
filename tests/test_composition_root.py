"""``create_app(transport=..., clock=...)``: what tests inject instead of mutating clients."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from node.config import Settings
from tests.harness.chambers import quiet_app
from tests.harness.clock import Clock


async def test_the_federation_sends_through_the_injected_transport(settings: Settings) -> None:
    seen: list[httpx.Request] = []

    def remote(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async with quiet_app(settings, transport=httpx.MockTransport(remote)) as app:
        http = app.state.node.federation.http
        response = await http.get("https://remote.test/actors/bob")
    assert response.status_code == 204
    [request] = seen
    assert request.url == "https://remote.test/actors/bob"
    # the client around it is still the federation's: its User-Agent, no redirects followed
    assert request.headers["User-Agent"].startswith("Archipel/")
    assert http.follow_redirects is False


async def test_the_federation_and_the_worker_tell_the_injected_time(settings: Settings) -> None:
    clock = Clock(datetime(2031, 5, 1, 12, tzinfo=UTC))
    async with quiet_app(settings, clock=clock) as app:
        node = app.state.node
        clock.advance(hours=2)
        assert node.federation.clock() == datetime(2031, 5, 1, 14, tzinfo=UTC)
        assert node.worker.clock() == datetime(2031, 5, 1, 14, tzinfo=UTC)
