import asyncio
import uuid
from pathlib import Path

import pytest

from node.cli import main
from node.config import load_settings
from node.db import make_engine, make_sessionmaker
from node.members.service import authenticate_token, get_member


def init(data_dir: Path, *extra: str) -> int:
    return main(
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
            *extra,
        ]
    )


async def _member(data_dir: Path, username: str):  # type: ignore[no-untyped-def]
    settings = load_settings(data_dir, environ={})
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return await get_member(session, username)
    finally:
        await engine.dispose()


async def _authenticate(data_dir: Path, token: str) -> str | None:
    settings = load_settings(data_dir, environ={})
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            member = await authenticate_token(session, token)
            return member.username if member else None
    finally:
        await engine.dispose()


def test_init_creates_config_database_and_admin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert init(data, "--admin", "marie", "--admin-password", "correct horse battery") == 0
    out = capsys.readouterr().out
    assert "@lille@lille.example" in out
    assert (data / "archipel.toml").exists()
    assert (data / "archipel.db").exists()
    admin = asyncio.run(_member(data, "marie"))
    assert admin.role == "admin" and admin.status == "approved"


def test_init_without_password_prints_a_generated_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert init(tmp_path / "d", "--admin", "marie") == 0
    assert "password:" in capsys.readouterr().out


def test_init_twice_refuses_and_keeps_the_first_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert init(data) == 0
    before = (data / "archipel.toml").read_text()
    assert init(data) == 1
    assert "already set up" in capsys.readouterr().err
    assert (data / "archipel.toml").read_text() == before


def test_init_with_a_bad_url_explains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["init", "--data-dir", str(tmp_path), "--url", "lille", "--name", "Lille"])
    assert code == 1
    assert "is not an http(s) URL" in capsys.readouterr().err
    assert not (tmp_path / "archipel.toml").exists()


def test_member_add_and_token_create(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert init(data) == 0
    assert main(["member", "add", "--data-dir", str(data), "Jean", "--display-name", "Jean D"]) == 0
    member = asyncio.run(_member(data, "jean"))
    assert member.display_name == "Jean D" and member.status == "approved"
    capsys.readouterr()
    assert main(["token", "create", "--data-dir", str(data), "jean"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("arch_")
    assert asyncio.run(_authenticate(data, token)) == "jean"
    assert asyncio.run(_authenticate(data, token + "x")) is None


@pytest.mark.parametrize(
    ("username", "message"),
    [("lille", "reserved"), ("bad name", "lowercase letters"), ("admin", "reserved")],
)
def test_member_add_refuses_bad_usernames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], username: str, message: str
) -> None:
    data = tmp_path / "data"
    assert init(data) == 0
    assert main(["member", "add", "--data-dir", str(data), username]) == 1
    assert message in capsys.readouterr().err


def test_member_add_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert init(data) == 0
    assert main(["member", "add", "--data-dir", str(data), "jean"]) == 0
    assert main(["member", "add", "--data-dir", str(data), "jean"]) == 1
    assert "already taken" in capsys.readouterr().err


def test_short_password_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert init(data) == 0
    assert main(["member", "add", "--data-dir", str(data), "jean", "--password", "short"]) == 1
    assert "password" in capsys.readouterr().err


def test_token_for_unknown_member(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert init(data) == 0
    assert main(["token", "create", "--data-dir", str(data), "nobody"]) == 1
    assert "no member named" in capsys.readouterr().err


def test_commands_on_an_uninitialised_dir_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["member", "add", "--data-dir", str(tmp_path), "jean"]) == 1
    assert "archipel init" in capsys.readouterr().err


def test_init_on_postgresql(tmp_path: Path, postgres_database: str) -> None:
    data = tmp_path / "data"
    admin = "pg_" + uuid.uuid4().hex[:8]
    assert init(data, "--database-url", postgres_database, "--admin", admin) == 0
    assert asyncio.run(_member(data, admin)).role == "admin"
