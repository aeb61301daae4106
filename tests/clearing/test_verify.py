"""``archipel verify URL``: an exchange checked from public documents only, fetched from the
in-process chambers over their HTTP interface (no socket), as it is and tampered with."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from node.clearing import verify as verify_module
from node.clearing.rounds.protocol import RoundState, decision_activity
from node.clearing.verify import VerifyError, VerifyReport, report_round, verify_url
from node.cli import main
from tests.clearing._chambers import AS2, IN_MODULE_LOOP, Settled, bearer
from tests.clearing.test_rounds import (
    ACTORS,
    CHAMBERS,
    DEADLINE,
    LILLE,
    ROUND,
    committed_document,
    cycle_statements,
    sign,
)

from .conftest import MakeMember


def _serving(
    fallback: httpx.AsyncBaseTransport | None, documents: Mapping[str, dict[str, Any]]
) -> httpx.MockTransport:
    """``documents`` by URL; anything else from ``fallback`` (the chambers), or 404."""

    async def handle(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url in documents:
            return httpx.Response(200, headers={"Content-Type": AS2["Accept"]}, json=documents[url])
        if fallback is None:
            return httpx.Response(404)
        return await fallback.handle_async_request(request)

    return httpx.MockTransport(handle)


async def _verify(transport: httpx.AsyncBaseTransport, url: str) -> VerifyReport:
    async with httpx.AsyncClient(transport=transport) as client:
        return await verify_url(client, url)


def _url(settled: Settled, at: str) -> str:
    key = settled.keys[0] if at == "lille" else settled.keys[1]
    return f"https://{at}.test/exchanges/{key}"


@IN_MODULE_LOOP
async def test_a_settled_exchange_verifies_from_either_chamber(settled: Settled) -> None:
    for at in ("lille", "gand"):
        report = await _verify(settled.lille.network, _url(settled, at))
        assert report.ok, report.lines()
        assert report.state == "posted"
        lines = report.lines()
        assert lines[1:5] == [
            "  ✓ 1. Offer by https://lille.test/actors/alice: declare → proposed",
            "  ✓ 2. Accept by https://gand.test/actors/bob: accept → settling",
            "  ✓ 3. Offer by https://gand.test/actors/gand: prepare → settling",
            "  ✓ 4. Accept by https://lille.test/actors/lille: commit → posted",
        ]
        assert "✓ the document says posted; its history proves posted" in lines[-2]
        assert lines[-1] == "✓ verified: posted"
    # Gand serves its copy of an exchange declared on Lille: the id says so
    assert report.id == settled.at_lille["id"]
    assert "(served by https://gand.test/exchanges/" in report.lines()[0]


@IN_MODULE_LOOP
async def test_a_tampered_settlement_does_not_verify(settled: Settled) -> None:
    url = _url(settled, "gand")
    document = copy.deepcopy(settled.at_gand)
    document["history"][2]["object"]["minutes"] = 1200
    report = await _verify(_serving(settled.lille.network, {url: document}), url)
    assert not report.ok
    lines = report.lines()
    assert lines[3].startswith("  ✗ 3. Offer by https://gand.test/actors/gand")
    assert lines[4] == "  ✗ 1 later activity not checked"
    assert lines[-1] == "✗ not verified"


@IN_MODULE_LOOP
async def test_a_document_that_claims_more_than_its_proofs(settled: Settled) -> None:
    url = _url(settled, "lille")
    unfinished = {**settled.at_lille, "history": settled.at_lille["history"][:3]}
    report = await _verify(_serving(settled.lille.network, {url: unfinished}), url)
    assert not report.ok
    assert "  ✗ the document says posted; its history proves settling" in report.lines()
    inflated = {**settled.at_lille, "minutes": 1200}
    report = await _verify(_serving(settled.lille.network, {url: inflated}), url)
    assert not report.ok
    assert any("✗ the document's terms" in line for line in report.lines())


async def test_a_local_exchange_verifies(
    app: Starlette, client: httpx.AsyncClient, make_member: MakeMember
) -> None:
    _, alice = await make_member("alice")
    _, bob = await make_member("bob")
    created = await client.post(
        "/api/v1/exchanges",
        json={"beneficiary": "bob", "minutes": 90, "description": "Réparer un vélo"},
        headers=bearer(alice),
    )
    key = created.json()["key"]
    await client.post(f"/api/v1/exchanges/{key}/accept", headers=bearer(bob))
    report = await _verify(httpx.ASGITransport(app=app), f"https://lille.test/exchanges/{key}")
    assert report.ok, report.lines()
    assert report.lines()[-1] == "✓ verified: posted"


@IN_MODULE_LOOP
async def test_what_is_not_an_exchange_is_said_so(settled: Settled) -> None:
    with pytest.raises(VerifyError, match="is not an exchange"):
        await _verify(settled.lille.network, "https://lille.test/actors/alice")
    with pytest.raises(VerifyError, match="cannot fetch"):
        await _verify(settled.lille.network, "https://lille.test/exchanges/nope")
    # a clearing round is verified as a round
    round_url = "https://lille.test/rounds/r1"
    document = {"id": round_url, "type": "ClearingRound", "attributedTo": settled.lille.actor_uri}
    report = await _verify(_serving(settled.lille.network, {round_url: document}), round_url)
    assert report.kind == "clearing round" and not report.ok
    assert report.checks and not any(check.ok for check in report.checks)
    assert report_round(round_url, document, []).lines()[-1] == "✗ not verified"


@IN_MODULE_LOOP
async def test_the_command_prints_each_step_and_exits_1_on_a_forgery(
    settled: Settled, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(settled, "gand")
    documents = {url: settled.at_gand, **{actor["id"]: actor for actor in settled.actors}}
    asked: list[bool] = []

    def client(*, allow_private_addresses: bool, user_agent: str) -> httpx.AsyncClient:
        asked.append(allow_private_addresses)
        return httpx.AsyncClient(transport=_serving(None, documents))

    monkeypatch.setattr(verify_module, "make_async_client", client)
    # the command runs its own event loop: in a thread, away from the test's
    assert await asyncio.to_thread(main, ["verify", url]) == 0
    out = capsys.readouterr().out
    assert "✓ 3. Offer by https://gand.test/actors/gand: prepare → settling" in out
    assert out.strip().endswith("✓ verified: posted")

    forged = copy.deepcopy(settled.at_gand)
    forged["history"][3]["result"]["state"] = "aborted"
    documents[url] = forged
    assert await asyncio.to_thread(main, ["verify", url, "--allow-private-addresses"]) == 1
    captured = capsys.readouterr()
    assert "✗ 4. Accept by https://lille.test/actors/lille" in captured.out
    assert "the proofs do not establish what the document says" in captured.err
    assert asked == [False, True]

    assert await asyncio.to_thread(main, ["verify", settled.lille.actor_uri]) == 1
    assert "is not an exchange" in capsys.readouterr().err


async def test_the_command_refuses_private_addresses_unless_asked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await asyncio.to_thread(main, ["verify", "https://127.0.0.1:9/exchanges/x"]) == 1
    assert "loopback" in capsys.readouterr().err


def _aborted_round(stated: str) -> dict[str, Any]:
    document = committed_document(cycle_statements())
    document["decision"] = sign(
        decision_activity(ROUND, LILLE, CHAMBERS, DEADLINE, RoundState.ABORTED, reason="no")
    )
    document["state"] = stated
    return document


def test_a_round_stating_another_state_than_its_history_does_not_verify() -> None:
    report = report_round(ROUND, _aborted_round("committed"), ACTORS)
    assert not report.ok
    assert "the document says committed; its history proves aborted" in "\n".join(report.lines())
    assert report.lines()[-1] == "✗ not verified"


def test_an_aborted_round_verifies_and_nets_nothing() -> None:
    report = report_round(ROUND, _aborted_round("aborted"), ACTORS)
    assert report.ok and report.lines()[-1] == "✓ verified: aborted"
    assert not any("netted out" in line for line in report.lines())
