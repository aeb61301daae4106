"""People of other chambers from a member's browser (issue 15): their page here, the search
box, following with the button, the timeline, and names instead of raw addresses."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from node.activitypub.notes import publish_note
from node.config import Settings
from node.db import session_scope
from node.members.models import MemberRole
from node.web import timeline as timeline_module
from node.web.people import person_html, remote_person
from tests.bricks._helpers import BRICK
from tests.clearing._chambers import bearer, settle_between, two_chambers
from tests.harness.chambers import Chamber
from tests.harness.plugin import OpenArchipelago
from tests.web._members import PASSWORD, csrf_of, sign_in

#: A link whose text is an actor's address: what no page may show as a name.
RAW_ACTOR_LINK = re.compile(r">\s*(https?://[^<\s]*/actors/[^<\s]*|chamber:[^<\s]*)\s*<")


@asynccontextmanager
async def signed_in(
    chamber: Chamber, username: str, **kwargs: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A browser of ``chamber`` signed in as a new member ``username``."""
    await chamber.member(username, password=PASSWORD, **kwargs)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=chamber.app),
        base_url=chamber.settings.url,
        headers={"Accept-Language": "en"},
    ) as client:
        signed = await sign_in(client, username)
        assert signed.status_code == 303, signed.text
        yield client


async def _follow_with_button(lille: Chamber, gand: Chamber, web: httpx.AsyncClient) -> str:
    """From the search box to the follow button; returns the remote page's path."""
    found = await web.get("/people", params={"q": "@bob@gand.test"})
    assert found.status_code == 303, found.text
    page_url = found.headers["location"]
    assert page_url == "/@bob@gand.test"
    page = await web.get(page_url)
    assert page.status_code == 200, page.text
    assert "Chambre de Gand" in page.text
    assert 'action="/@bob@gand.test/follow"' in page.text
    followed = await web.post(f"{page_url}/follow", data={"csrf_token": csrf_of(page.text)})
    assert followed.status_code == 303
    waiting = await web.get(page_url)
    assert "waiting for its server" in waiting.text
    await lille.deliver()  # the Follow
    await gand.deliver()  # its Accept
    return page_url


async def test_a_member_finds_follows_and_reads_a_remote_member(
    archipelago: OpenArchipelago, settings: Settings
) -> None:
    async with two_chambers(archipelago, settings) as (lille, gand):
        bob = await gand.member("bob")
        async with signed_in(lille, "alice") as web:
            page_url = await _follow_with_button(lille, gand, web)
            page = await web.get(page_url)
            assert "You follow this account." in page.text
            assert f'action="{page_url}/unfollow"' in page.text

            published = await gand.client.post("/api/v1/bricks", json=BRICK, headers=bearer(bob))
            assert published.status_code == 201, published.text
            await gand.deliver()
            timeline = await web.get("/timeline")
            assert timeline.status_code == 200
            assert "Le jardin partagé" in timeline.text
            assert "/@bob@gand.test" in timeline.text
            assert not RAW_ACTOR_LINK.search(timeline.text)

            page = await web.get(page_url)
            assert "Le jardin partagé" in page.text  # their bricks known here
            unfollowed = await web.post(
                f"{page_url}/unfollow", data={"csrf_token": csrf_of(page.text)}
            )
            assert unfollowed.status_code == 303
            assert 'action="/@bob@gand.test/follow"' in (await web.get(page_url)).text


async def test_the_timeline_api_pages_what_the_member_and_the_chamber_follow(
    archipelago: OpenArchipelago, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timeline_module, "PAGE_SIZE", 2)
    async with two_chambers(archipelago, settings) as (lille, gand):
        bob = await gand.member("bob")
        carol = await lille.member("carol")  # follows nobody
        async with (
            signed_in(lille, "ada", role=MemberRole.ADMIN) as admin,
            signed_in(lille, "alice") as web,
        ):
            await _follow_with_button(lille, gand, web)
            chamber_page = await admin.get("/@gand@gand.test")
            assert "Follow as the chamber" in chamber_page.text
            followed = await admin.post(
                "/@gand@gand.test/follow", data={"csrf_token": csrf_of(chamber_page.text)}
            )
            assert followed.status_code == 303
            await lille.deliver()
            await gand.deliver()
            assert "This chamber follows it." in (await admin.get("/@gand@gand.test")).text
            member_view = await web.get("/@gand@gand.test")
            assert "Follow as the chamber" not in member_view.text

            for n in range(3):
                brick = {**BRICK, "title": f"Brique {n}"}
                created = await gand.client.post("/api/v1/bricks", json=brick, headers=bearer(bob))
                assert created.status_code == 201
                await gand.deliver()  # received in the order published (newest: received last)
            async with session_scope(gand.node.sessionmaker) as session:
                await publish_note(
                    gand.federation, session, await gand.local_actor("gand"), "Assemblée jeudi"
                )
                await publish_note(
                    gand.federation, session, await gand.local_actor("bob"), "Note de Bob"
                )
            await gand.deliver()

            items: list[dict[str, Any]] = []
            url = "/api/v1/timeline"
            alice_token = await _token(lille, "alice")
            while True:
                answer = await lille.client.get(url, headers=bearer(alice_token))
                assert answer.status_code == 200, answer.text
                body = answer.json()
                items.extend(body["items"])
                if body["next"] is None:
                    break
                url = f"/api/v1/timeline?before={body['next']}"
            summaries = [i["summary"] for i in items]
            assert any("Assemblée jeudi" in s for s in summaries)
            assert "Note de Bob" in summaries
            bricks = [s for s in summaries if s.startswith("Brique")]
            assert [s.split()[1] for s in bricks] == ["2", "1", "0"]  # newest first, once each
            assert all(
                set(i) == {"id", "type", "actor", "published", "summary", "url"} for i in items
            )

            # Carol follows nobody: the chamber's follows only (its news, the bricks it shares).
            nobody = await lille.client.get("/api/v1/timeline", headers=bearer(carol))
            assert nobody.json()["items"][0]["summary"] == "Assemblée jeudi"
            assert "Note de Bob" not in str(nobody.json())
            assert (await lille.client.get("/api/v1/timeline")).status_code == 401


async def _token(chamber: Chamber, username: str) -> str:
    from sqlalchemy import select

    from node.members.models import Member
    from node.members.service import create_token

    async with session_scope(chamber.node.sessionmaker) as session:
        member = (
            await session.execute(select(Member).where(Member.username == username))
        ).scalar_one()
        return await create_token(session, member)


async def test_no_page_shows_a_raw_actor_address_as_a_name(
    archipelago: OpenArchipelago, settings: Settings
) -> None:
    """A cross-chamber exchange, a remote brick and a follower: every page names them."""
    async with two_chambers(archipelago, settings) as (lille, gand):
        settled = await settle_between(lille, gand)
        async with signed_in(lille, "ada", role=MemberRole.ADMIN) as web:
            await _follow_with_button(lille, gand, web)
            bob_token = await _token(gand, "bob")
            brick = await gand.client.post("/api/v1/bricks", json=BRICK, headers=bearer(bob_token))
            assert brick.status_code == 201
            await gand.deliver()
            remote_key = (await lille.client.get("/api/v1/bricks")).json()["items"][0]["key"]
            pages = [
                "/",
                "/ledger",
                f"/exchanges/{settled.keys[0]}",
                "/bricks",
                f"/bricks/{remote_key}",
                "/admin/partners",
                "/timeline",
                "/@bob@gand.test",
            ]
            for path in pages:
                page = await web.get(path)
                assert page.status_code == 200, (path, page.text)
                assert not RAW_ACTOR_LINK.search(page.text), (
                    path,
                    RAW_ACTOR_LINK.search(page.text),
                )
                assert "chamber:http" not in page.text, path
            ledger = (await web.get("/ledger")).text
            assert "/@bob@gand.test" in ledger and "Chambre de Gand" in ledger
        async with signed_in(gand, "gina") as gand_web:
            for path in ("/ledger", f"/exchanges/{settled.keys[1]}"):
                page = await gand_web.get(path)
                assert not RAW_ACTOR_LINK.search(page.text), path
                assert "/@alice@lille.test" in page.text, path


async def _declare_form(web: httpx.AsyncClient, counterparty: str) -> httpx.Response:
    page = await web.get("/clearing")
    return await web.post(
        "/clearing/exchanges",
        data={
            "csrf_token": csrf_of(page.text),
            "role": "provider",
            "counterparty": counterparty,
            "duration": "1 h",
            "description": "Une traduction",
            "step": "lookup",
        },
    )


async def test_declaring_looks_the_person_up_in_a_partner_chamber(
    archipelago: OpenArchipelago, settings: Settings
) -> None:
    async with two_chambers(archipelago, settings) as (lille, gand):
        await gand.member("bob")
        async with signed_in(lille, "alice") as web:
            for typed in ("@bob@gand.test", "https://gand.test/@bob"):
                found = await _declare_form(web, typed)
                assert found.status_code == 200, found.text
                assert '<a href="/@bob@gand.test">bob</a>' in found.text
                # (the in-process Gand app answering within this request may switch its language)
                assert '<p class="partner-confirmed">Chambre de Gand ' in found.text
            hidden = re.search(r'name="counterparty" value="([^"]+)"', found.text)
            assert hidden is not None and hidden.group(1) == "https://gand.test/actors/bob"
            page = await web.get("/clearing")
            confirmed = await web.post(
                "/clearing/exchanges",
                data={
                    "csrf_token": csrf_of(page.text),
                    "role": "provider",
                    "counterparty": hidden.group(1),
                    "duration": "1 h",
                    "description": "Une traduction",
                    "step": "confirm",
                },
            )
            assert confirmed.status_code == 303, confirmed.text


async def test_a_chamber_not_partner_both_ways_is_refused_on_the_form_at_once(
    archipelago: OpenArchipelago, settings: Settings
) -> None:
    async with two_chambers(archipelago, settings, partners=False) as (lille, gand):
        await gand.member("bob")
        async with signed_in(lille, "alice") as web:
            refused = await _declare_form(web, "@bob@gand.test")
            assert refused.status_code == 422
            assert 'id="counterparty-error"' in refused.text and "gand.test" in refused.text
            assert 'value="@bob@gand.test"' in refused.text  # what was typed stays


async def test_the_remote_page_answers_encoded_and_trailing_slash_forms(
    archipelago: OpenArchipelago, settings: Settings
) -> None:
    async with two_chambers(archipelago, settings) as (lille, gand):
        await gand.member("bob")
        async with signed_in(lille, "alice") as web:
            assert (await web.get("/@bob@gand.test")).status_code == 200
            encoded = await web.get("/@bob%40gand.test")
            assert encoded.status_code == 200 and "Follow" in encoded.text
            slashed = await web.get("/@bob@gand.test/", follow_redirects=True)
            assert slashed.status_code == 200 and slashed.url.path == "/@bob@gand.test"
            unknown = await web.get("/@nobody@gand.test", headers={"Accept": "text/html"})
            assert unknown.status_code == 404 and "<!doctype html>" in unknown.text
            local = await web.get("/@alice@lille.test")
            assert local.status_code == 303 and local.headers["location"] == "/@alice"


def test_a_hostile_remote_name_is_shown_as_plain_text() -> None:
    person = remote_person(
        "https://evil.example/users/x",
        {
            "type": "Person",
            "preferredUsername": "x",
            "name": '<script>alert(1)</script><a href="https://x">Eve</a>\n:blob:',
            "summary": '<p onclick="steal()">Bio<script>bad()</script></p>',
            "icon": {"url": "javascript:alert(1)"},
        },
        "evil.example",
    )
    shown = str(person_html(person))
    assert person.name == "Eve :blob:"  # plain text on one line, scripts dropped
    assert "<script" not in shown and "alert" not in shown
    assert '<a href="/@x@evil.example">' in shown
    assert "onclick" not in person.summary_html and "<script" not in person.summary_html
    assert person.avatar is None
