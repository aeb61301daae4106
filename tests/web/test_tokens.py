"""Revocable tokens (issue 12, finding 4): named, may expire, listed and revoked from the
command line and the account page; a password change and a suspension revoke them, and
reinstating does not revive them. The API answers 401 with the reason."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from starlette.applications import Starlette

from node.cli import main
from node.config import Settings, write_settings
from node.db import session_scope, utcnow
from node.members.governance import reinstate_member, suspend_member
from node.members.models import MemberRole
from node.members.service import create_token, get_member
from tests.web._members import PASSWORD, add_member, csrf_of, sign_in

ME = "/api/v1/members/me"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _status(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get(ME, headers=_bearer(token))).status_code


async def _new_token(app: Starlette, username: str, name: str = "", **extra: object) -> str:
    async with session_scope(app.state.node.sessionmaker) as session:
        member = await get_member(session, username)
        return await create_token(session, member, name, **extra)  # type: ignore[arg-type]


async def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``archipel ...`` in a thread (it runs its own event loop), with its output."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def test_cli_revoke_all_makes_every_token_answer_401(
    app: Starlette,
    client: httpx.AsyncClient,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_settings(settings)
    data = ["--data-dir", str(settings.data_dir)]
    first = await add_member(app, "jean", token=True)
    assert first is not None
    code, out, _err = await _cli(
        capsys, "token", "create", *data, "jean", "--name", "laptop", "--expires-in", "30"
    )
    assert code == 0
    second = out.split()[-1]
    assert second.startswith("arch_")
    code, _out, err = await _cli(capsys, "token", "create", *data, "jean", "--name", "laptop")
    assert code == 1 and "already have a token named 'laptop'" in err
    assert await _status(client, first) == 200 and await _status(client, second) == 200

    code, out, _err = await _cli(capsys, "token", "list", *data, "jean")
    lines = [line.split("\t") for line in out.splitlines()]
    assert [(line[0], line[3].startswith("expires 2"), line[4]) for line in lines] == [
        ("token", False, "active"),
        ("laptop", True, "active"),
    ]
    assert lines[0][2] != "last used -" and lines[0][3] == "expires never"
    assert first not in out and second not in out

    code, out, _err = await _cli(capsys, "token", "revoke", *data, "jean", "--all")
    assert code == 0 and "2 token(s) of jean revoked" in out
    for token in (first, second):
        refused = await client.get(ME, headers=_bearer(token))
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]
    code, out, _err = await _cli(capsys, "token", "list", *data, "jean")
    assert [line.split("\t")[4] for line in out.splitlines()] == ["revoked", "revoked"]

    # One by name; the name of a revoked token is free again.
    code, out, _err = await _cli(capsys, "token", "create", *data, "jean", "--name", "laptop")
    third = out.split()[-1]
    fourth = await _new_token(app, "jean", "phone")
    code, out, err = await _cli(capsys, "token", "revoke", *data, "jean", "laptop")
    assert code == 0 and "'laptop'" in out, err
    assert await _status(client, third) == 401 and await _status(client, fourth) == 200
    code, _out, err = await _cli(capsys, "token", "revoke", *data, "jean", "laptop")
    assert code == 1 and "no token named 'laptop'" in err
    with pytest.raises(SystemExit):  # --all or a NAME, not both, not neither
        main(["token", "revoke", *data, "jean"])
    with pytest.raises(SystemExit):
        main(["token", "revoke", *data, "jean", "phone", "--all"])


async def test_a_password_change_revokes_the_tokens(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    token = await add_member(app, "marie", token=True)
    assert token is not None and await _status(client, token) == 200
    await sign_in(client, "marie")
    page = await client.get("/account/password")
    new = "another horse battery"
    changed = await client.post(
        "/account/password",
        data={
            "current_password": PASSWORD,
            "new_password": new,
            "new_password_confirm": new,
            "csrf_token": csrf_of(page.text),
        },
    )
    assert changed.status_code == 200 and "révoqués" in changed.text
    refused = await client.get(ME, headers=_bearer(token))
    assert refused.status_code == 401 and "password change" in refused.json()["error"]
    assert await _status(client, await _new_token(app, "marie")) == 200


async def test_reinstating_does_not_revive_the_tokens(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "ada", role=MemberRole.ADMIN)
    token = await add_member(app, "bob", token=True)
    assert token is not None and await _status(client, token) == 200
    async with session_scope(app.state.node.sessionmaker) as session:
        ada, bob = await get_member(session, "ada"), await get_member(session, "bob")
        await suspend_member(session, ada, bob, "spam")
    assert await _status(client, token) == 401
    async with session_scope(app.state.node.sessionmaker) as session:
        ada, bob = await get_member(session, "ada"), await get_member(session, "bob")
        await reinstate_member(session, ada, bob)
    refused = await client.get(ME, headers=_bearer(token))
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]
    assert await _status(client, await _new_token(app, "bob")) == 200


async def test_an_expired_token_answers_401(app: Starlette, client: httpx.AsyncClient) -> None:
    await add_member(app, "marie")
    then = utcnow() - timedelta(days=31)
    expired = await _new_token(app, "marie", "old", now=then, expires_at=then + timedelta(days=30))
    lasting = await _new_token(app, "marie", "new", expires_at=utcnow() + timedelta(days=30))
    refused = await client.get(ME, headers=_bearer(expired))
    assert refused.status_code == 401 and "expired" in refused.json()["error"]
    assert refused.headers["www-authenticate"] == "Bearer"
    assert await _status(client, lasting) == 200
    # An expired token's name can be taken again (the expired one is revoked then).
    assert await _status(client, await _new_token(app, "marie", "old")) == 200


async def test_the_account_page_lists_creates_and_revokes(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "marie")
    await sign_in(client, "marie")
    assert "/account/tokens" in (await client.get("/account")).text
    page = await client.get("/account/tokens")
    assert page.status_code == 200 and "Vous n'avez aucun jeton." in page.text
    csrf = csrf_of(page.text)
    created = await client.post(
        "/account/tokens",
        data={"name": "mon ordinateur", "expires_in_days": "90", "csrf_token": csrf},
    )
    assert created.status_code == 201
    token = created.text.split('<code id="new-token">')[1].split("<")[0]
    assert token.startswith("arch_") and await _status(client, token) == 200
    listed = await client.get("/account/tokens")
    assert "mon ordinateur" in listed.text and token not in listed.text
    taken = await client.post(
        "/account/tokens",
        data={"name": "mon ordinateur", "expires_in_days": "0", "csrf_token": csrf},
    )
    assert taken.status_code == 422 and "déjà un jeton" in taken.text
    odd = await client.post(
        "/account/tokens", data={"name": "x", "expires_in_days": "7", "csrf_token": csrf}
    )
    assert odd.status_code == 422

    forged = await client.post(
        "/account/tokens/revoke",
        data={"name": "mon ordinateur"},
        headers={"Origin": "https://evil.example"},
    )
    assert forged.status_code == 403 and await _status(client, token) == 200
    revoked = await client.post(
        "/account/tokens/revoke", data={"name": "mon ordinateur", "csrf_token": csrf}
    )
    assert revoked.status_code == 303 and await _status(client, token) == 401
    after = await client.get(revoked.headers["location"])
    assert "révoqué" in after.text and "Révoquer" not in after.text
    again = await client.post(
        "/account/tokens/revoke", data={"name": "mon ordinateur", "csrf_token": csrf}
    )
    assert again.status_code == 404
