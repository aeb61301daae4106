"""``archipel doctor`` on real data directories made by ``archipel init``."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from node.activitypub.models import Follow, FollowState
from node.clearing.ledger.models import ClearingAccount, partner_account_key
from node.clearing.partners.models import Partner
from node.cli import main
from node.config import load_settings, new_settings, write_settings
from node.db import make_engine, make_sessionmaker, session_scope
from node.ops.doctor import Check, Status, run_checks

PARTNER = "https://gand.example/actors/gand"


def _init(data_dir: Path, database_url: str) -> None:
    assert (
        main(
            [
                "init",
                "--data-dir",
                str(data_dir),
                "--url",
                "https://lille.example",
                "--name",
                "Lille",
                "--chamber-username",
                "lille",
                "--database-url",
                database_url,
            ]
        )
        == 0
    )


def _answering(*down: str):  # type: ignore[no-untyped-def]
    """An HTTP client factory whose fake network answers 200 except for ``down`` URLs."""

    def handler(request: httpx.Request) -> httpx.Response:
        if str(request.url) in down:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"status": "ok"})

    return lambda _settings: httpx.AsyncClient(transport=httpx.MockTransport(handler))


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def test_a_good_chamber_passes(tmp_path: Path, database_url: str) -> None:
    data = tmp_path / "data"
    _init(data, database_url)
    checks = asyncio.run(run_checks(data, http=_answering()))
    assert [c.status for c in checks] == [Status.OK] * len(checks), checks
    names = [c.name for c in checks]
    assert names[:6] == [
        "configuration",
        "data directory",
        "database",
        "migrations",
        "chamber keys",
        "public URL",
    ]


def test_the_command_prints_one_line_per_check(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    _init(data, database_url)
    capsys.readouterr()
    # lille.example does not resolve here: the public URL only warns, the exit status is 0
    assert main(["doctor", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "OK   chamber keys" in out
    assert "WARN public URL" in out
    assert "0 failed" in out


def test_a_wrong_secret_fails_the_keys_check(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    _init(data, database_url)
    settings = load_settings(data, environ={})
    write_settings(replace(settings, secret_key="another-secret-" * 4))
    checks = _by_name(asyncio.run(run_checks(data, http=_answering())))
    assert checks["chamber keys"].status == Status.FAIL
    assert "secret_key" in checks["chamber keys"].message
    assert "backup" in checks["chamber keys"].message
    capsys.readouterr()
    assert main(["doctor", "--data-dir", str(data)]) == 1
    captured = capsys.readouterr()
    assert "FAIL chamber keys" in captured.out
    assert "some checks failed" in captured.err


def test_an_unmigrated_database_fails(tmp_path: Path) -> None:
    data = tmp_path / "data"
    empty = tmp_path / "empty.db"
    write_settings(
        new_settings(
            data,
            url="https://lille.example",
            name="Lille",
            chamber_username="lille",
            database_url=f"sqlite+aiosqlite:///{empty}",
        )
    )
    checks = _by_name(asyncio.run(run_checks(data, http=_answering())))
    assert checks["database"].status == Status.OK
    assert checks["migrations"].status == Status.FAIL
    assert "archipel migrate" in checks["migrations"].message
    assert "chamber keys" not in checks  # cannot be checked without the tables


def test_an_unreachable_public_url_warns(tmp_path: Path, database_url: str) -> None:
    data = tmp_path / "data"
    _init(data, database_url)
    checks = _by_name(
        asyncio.run(run_checks(data, http=_answering("https://lille.example/healthz")))
    )
    assert checks["public URL"].status == Status.WARN
    assert "ConnectError" in checks["public URL"].message
    assert all(c.status != Status.FAIL for c in checks.values())


def test_plain_http_url_fails_unless_private_addresses_are_allowed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_settings(new_settings(data, url="http://lille.example", name="Lille"))
    checks = _by_name(asyncio.run(run_checks(data, http=_answering())))
    assert checks["configuration"].status == Status.FAIL
    assert "https" in checks["configuration"].message


def test_a_missing_configuration_fails_with_what_to_do(tmp_path: Path) -> None:
    checks = asyncio.run(run_checks(tmp_path / "nothing", http=_answering()))
    assert [(c.name, c.status) for c in checks] == [("configuration", Status.FAIL)]
    assert "archipel init" in checks[0].message


async def _follow(database_url: str, uri: str) -> None:
    engine = make_engine(database_url)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            session.add(
                Follow(
                    follower_uri="https://lille.example/actors/lille",
                    followee_uri=uri,
                    follow_activity_id="https://lille.example/activities/f",
                    state=FollowState.ACCEPTED,
                )
            )
    finally:
        await engine.dispose()


def test_partner_chambers_are_probed(tmp_path: Path, database_url: str) -> None:
    data = tmp_path / "data"
    _init(data, database_url)
    asyncio.run(_follow(database_url, PARTNER))
    asyncio.run(_follow(database_url, "https://roubaix.example/actors/roubaix"))
    checks = asyncio.run(
        run_checks(data, http=_answering("https://roubaix.example/actors/roubaix"))
    )
    partners = [c for c in checks if c.name == "partner"]
    assert [(c.status, c.message.split()[0]) for c in partners] == [
        (Status.OK, PARTNER),
        (Status.WARN, "https://roubaix.example/actors/roubaix"),
    ]


async def _trade_with(database_url: str, uri: str) -> None:
    """A clearing partner (credit line) that this chamber does not follow."""
    engine = make_engine(database_url)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            account = ClearingAccount(key=partner_account_key(uri), kind="chamber", balance=0)
            session.add(account)
            await session.flush()
            session.add(
                Partner(
                    chamber_uri=uri,
                    inbox=uri + "/inbox",
                    credit_line_minutes=600,
                    account_id=account.id,
                )
            )
    finally:
        await engine.dispose()


def test_clearing_partners_are_probed_too(tmp_path: Path, database_url: str) -> None:
    data = tmp_path / "data"
    _init(data, database_url)
    asyncio.run(_follow(database_url, PARTNER))
    asyncio.run(_trade_with(database_url, PARTNER))  # followed and trading: probed once
    asyncio.run(_trade_with(database_url, "https://roubaix.example/actors/roubaix"))
    checks = asyncio.run(
        run_checks(data, http=_answering("https://roubaix.example/actors/roubaix"))
    )
    partners = [c for c in checks if c.name == "partner"]
    assert [(c.status, c.message.split()[0]) for c in partners] == [
        (Status.OK, PARTNER),
        (Status.WARN, "https://roubaix.example/actors/roubaix"),
    ]


def test_a_data_directory_others_can_read_is_a_warning(tmp_path: Path) -> None:
    """``init`` makes it private; an older chamber (or a careless copy) is told how to fix it."""
    data = tmp_path / "data"
    _init(data, "")
    assert _by_name(asyncio.run(run_checks(data, http=_answering())))["data directory"].status == (
        Status.OK
    )
    data.chmod(0o755)
    (data / "archipel.db").chmod(0o644)
    check = _by_name(asyncio.run(run_checks(data, http=_answering())))["data directory"]
    assert check.status == Status.WARN
    assert f"chmod 0700 {data.resolve()}" in check.message
    assert f"chmod 0600 {(data / 'archipel.db').resolve()}" in check.message
    assert "archipel.toml" not in check.message  # still 0600
