"""The administrators' page of partner chambers: who may see it, its forms (CSRF, errors next to
their fields, no JavaScript needed), the audit log, the settlements and the slots for the
reconciliation and the rounds."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from node.clearing.partners.models import Settlement, SettlementRole, SettlementState
from node.clearing.reconciliation.service import RECONCILE_JOB
from node.db import session_scope, utcnow
from node.jobs import Job
from node.members.audit import list_audit
from node.members.models import MemberRole
from tests.activitypub._remote import FakeRemote, actor_document
from tests.web._members import add_member, csrf_of, sign_in

GAND = "https://gand.test/actors/gand"
EN = {"Accept-Language": "en"}


@pytest.fixture
def gand() -> FakeRemote:
    """Gand's chamber actor (a Group), served by a fake remote server."""
    remote = FakeRemote()
    remote.add({**actor_document(GAND), "type": "Group", "name": "Chambre de Gand"})
    remote.add(actor_document("https://gand.test/users/bob"))
    return remote


@pytest.fixture
def federation_transport(gand: FakeRemote) -> httpx.AsyncBaseTransport:
    """The app of every test here sends to the fake Gand."""
    return gand.transport()


@pytest.fixture
async def admin(app: Starlette, client: httpx.AsyncClient) -> httpx.AsyncClient:
    await add_member(app, "ada", role=MemberRole.ADMIN)
    assert (await sign_in(client, "ada")).status_code == 303
    return client


async def _form(client: httpx.AsyncClient, path: str, **data: str) -> httpx.Response:
    page = await client.get("/admin/partners", headers=EN)
    return await client.post(path, data={"csrf_token": csrf_of(page.text), **data}, headers=EN)


def _error_of(html: str, field_id: str) -> str:
    """The error message shown under the field ``field_id`` (its aria-describedby)."""
    field = re.search(rf'<input id="{re.escape(field_id)}"[^>]*>', html)
    assert field, f"no field {field_id}"
    assert 'aria-invalid="true"' in field.group(0)
    described = re.search(r'aria-describedby="([^"]+)"', field.group(0))
    assert described
    message = re.search(rf'<p class="error" id="{re.escape(described.group(1))}">([^<]*)</p>', html)
    assert message, f"no error for {field_id}"
    return message.group(1)


async def test_the_page_is_for_administrators(app: Starlette, client: httpx.AsyncClient) -> None:
    anonymous = await client.get("/admin/partners")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    await add_member(app, "marie")
    assert (await sign_in(client, "marie")).status_code == 303
    assert (await client.get("/admin/partners")).status_code == 403
    refused = await client.post("/admin/partners", data={"chamber": GAND, "credit_line": "1 h"})
    assert refused.status_code == 403


async def test_an_administrator_adds_a_partner_and_changes_its_credit_line(
    admin: httpx.AsyncClient, gand: FakeRemote, app: Starlette
) -> None:
    index = await admin.get("/admin", headers=EN)
    assert 'href="/admin/partners"' in index.text
    empty = await admin.get("/admin/partners", headers=EN)
    assert empty.status_code == 200 and "No partner chamber yet." in empty.text
    added = await _form(
        admin, "/admin/partners", chamber=GAND, credit_line="10 h", reason="voted on 3 May"
    )
    assert added.status_code == 303, added.text
    page = await admin.get(added.headers["location"], headers=EN)
    assert "Chambre de Gand" in page.text
    assert "Credit line: 10 h 00" in page.text and "nothing owed" in page.text
    assert 'value="10 h 00"' in page.text  # the change form starts from the current line
    assert "Not confirmed: it has not added this chamber as a partner (yet)" in page.text
    async with session_scope(app.state.node.sessionmaker) as session:
        reconciling = await session.execute(select(Job.id).where(Job.kind == RECONCILE_JOB))
        assert len(reconciling.all()) == 1  # statements will be exchanged with the new partner

    changed = await _form(
        admin,
        "/admin/partners/credit-line",
        chamber=GAND,
        credit_line="2 h 30",
        reason="too much owed already",
    )
    assert changed.status_code == 303, changed.text
    assert "Credit line: 2 h 30" in (await admin.get("/admin/partners", headers=EN)).text
    async with session_scope(app.state.node.sessionmaker) as session:
        entries, _ = await list_audit(session)
    change = entries[0]
    assert (change.action, change.target, change.reason) == (
        "partner.credit_line",
        GAND,
        "too much owed already",
    )
    assert change.details == {"before": 600, "after": 150}
    assert change.by == "ada"
    audit = await admin.get("/admin/audit")
    assert "ligne de crédit modifiée" in audit.text and "too much owed already" in audit.text
    # in French, the chamber's language
    french = await admin.get("/admin/partners")
    assert "Ligne de crédit : 2 h 30" in french.text
    assert "Non confirmé : elle n'a pas (encore) ajouté cette chambre" in french.text.replace(
        "&#39;", "'"
    )


async def test_forms_show_their_errors_next_to_their_fields(
    admin: httpx.AsyncClient, gand: FakeRemote
) -> None:
    no_unit = await _form(admin, "/admin/partners", chamber=GAND, credit_line="10", reason="")
    assert no_unit.status_code == 422
    assert "has no unit" in _error_of(no_unit.text, "add-line")
    assert f'value="{GAND}"' in no_unit.text  # what was typed stays
    unknown = "https://roubaix.test/actors/roubaix"
    unreachable = await _form(admin, "/admin/partners", chamber=unknown, credit_line="1 h")
    assert unreachable.status_code == 422
    assert "cannot be reached" in _error_of(unreachable.text, "add-chamber")
    person = await _form(
        admin, "/admin/partners", chamber="https://gand.test/users/bob", credit_line="1 h"
    )
    assert "not a chamber" in _error_of(person.text, "add-chamber")

    assert (await _form(admin, "/admin/partners", chamber=GAND, credit_line="4 h")).status_code
    no_reason = await _form(admin, "/admin/partners/credit-line", chamber=GAND, credit_line="1 h")
    assert no_reason.status_code == 422
    assert "it is logged" in _error_of(no_reason.text, "partner-1-reason")
    negative = await _form(
        admin, "/admin/partners/credit-line", chamber=GAND, credit_line="-2 h", reason="x"
    )
    assert negative.status_code == 422
    assert "zero or more" in _error_of(negative.text, "partner-1-line")
    assert 'value="-2 h"' in negative.text
    in_french = await admin.post(
        "/admin/partners/credit-line",
        data={
            "csrf_token": csrf_of(negative.text),
            "chamber": GAND,
            "credit_line": "1 h",
            "reason": "",
        },
    )
    assert "Dites pourquoi" in _error_of(in_french.text, "partner-1-reason")
    without_token = await admin.post(
        "/admin/partners", data={"chamber": GAND, "credit_line": "1 h"}, headers=EN
    )
    assert without_token.status_code == 403
    stranger = await _form(
        admin, "/admin/partners/credit-line", chamber=unknown, credit_line="1 h", reason="x"
    )
    assert stranger.status_code == 422
    assert "is not a partner chamber (any more)" in stranger.text


async def test_settlements_reconciliation_and_rounds_are_shown(
    admin: httpx.AsyncClient, gand: FakeRemote, app: Starlette
) -> None:
    assert (await _form(admin, "/admin/partners", chamber=GAND, credit_line="4 h")).status_code
    now = utcnow()
    async with session_scope(app.state.node.sessionmaker) as session:
        session.add(
            Settlement(
                uri="https://gand.test/settlements/late",
                exchange_id=None,
                role=SettlementRole.DECIDER,
                partner_uri=GAND,
                state=SettlementState.ABORTED,
                minutes=0,
                deadline=now - timedelta(minutes=5),
                reason="the settlement did not arrive before its deadline",
                created_at=now,
                updated_at=now,
                decided_at=now,
            )
        )
    page = await admin.get("/admin/partners", headers=EN)
    assert page.status_code == 200
    row = page.text[page.text.index("Settlements in flight and recent") :]
    assert "aborted" in row and "decided by this chamber" in row
    assert "the settlement did not arrive before its deadline" in row
    assert "Chambre de Gand" in row
    assert 'id="reconciliation-heading"' in page.text and "not compared yet" in page.text
    assert 'id="rounds-heading"' in page.text and "No clearing round yet." in page.text
