"""``archipel doctor``: is this chamber set up right? One line per check, and what to do.

A check says ``OK``, ``WARN`` (works, but look at it: a partner is down, the public URL does
not answer from here) or ``FAIL`` (the chamber cannot work: fix it first). The network is
reached through the client the caller passes, so tests give an ``httpx.MockTransport`` or
the app itself.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from node.activitypub.actors import ActorUrls
from node.activitypub.keys import rsa_public_pem, unseal_ed25519, unseal_rsa
from node.activitypub.models import Follow, LocalActor
from node.activitypub.multikey import public_key_to_multibase
from node.activitypub.transport import make_async_client
from node.clearing.partners.models import Partner
from node.config import CONFIG_FILENAME, ConfigError, Settings, load_settings
from node.db import is_sqlite, make_engine
from node.migrate import current_heads, head_revisions
from node.runtime import user_agent
from node.secretbox import SecretBox, SecretBoxError

__all__ = ["Check", "Status", "doctor", "format_report", "run_checks"]

AS2 = "application/activity+json"


class Status:
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    message: str

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.message}"


def format_report(checks: list[Check]) -> str:
    return "\n".join(check.line() for check in checks)


def _check_config(data_dir: Path) -> tuple[Settings | None, Check]:
    try:
        settings = load_settings(data_dir)
    except ConfigError as exc:
        return None, Check("configuration", Status.FAIL, str(exc))
    if not settings.url.startswith("https://") and not settings.allow_private_addresses:
        return settings, Check(
            "configuration",
            Status.FAIL,
            f"url {settings.url} is not https: other servers refuse plain-http actors;"
            " put a TLS reverse proxy in front and set url = https://...",
        )
    return settings, Check("configuration", Status.OK, f"{settings.url} ({settings.data_dir})")


def _check_data_dir(settings: Settings) -> Check:
    probe = settings.data_dir / f".doctor-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return Check(
            "data directory",
            Status.FAIL,
            f"cannot write in {settings.data_dir} ({exc.strerror}): give the user running"
            f" archipel (uid {os.getuid()}) write access",
        )
    exposed = [
        path
        for path in (settings.data_dir, settings.data_dir / CONFIG_FILENAME, _sqlite_file(settings))
        if path is not None and path.exists() and path.stat().st_mode & 0o077
    ]
    if exposed:
        return Check(
            "data directory",
            Status.WARN,
            "readable by other users, though it holds the node secret and the database:"
            f" chmod 0700 {settings.data_dir}"
            + "".join(f"; chmod 0600 {path}" for path in exposed if path != settings.data_dir),
        )
    return Check("data directory", Status.OK, f"{settings.data_dir} is writable and private")


def _sqlite_file(settings: Settings) -> Path | None:
    if not is_sqlite(settings.database_url):
        return None
    database = make_url(settings.database_url).database
    return Path(database) if database else None


async def _check_database(engine: AsyncEngine) -> list[Check]:
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the finding
        return [
            Check(
                "database",
                Status.FAIL,
                f"cannot connect ({type(exc).__name__}: {str(exc)[:200]}): check database_url"
                " and that the database server runs",
            )
        ]
    checks = [Check("database", Status.OK, f"reachable ({engine.dialect.name})")]
    current, expected = await current_heads(engine), head_revisions()
    if current != expected:
        checks.append(
            Check(
                "migrations",
                Status.FAIL,
                f"the database is at {sorted(current) or 'no revision'}, this version needs"
                f" {sorted(expected)}: run `archipel migrate --data-dir DIR`",
            )
        )
    else:
        checks.append(Check("migrations", Status.OK, f"at {', '.join(sorted(current))}"))
    return checks


async def _check_keys(engine: AsyncEngine, settings: Settings) -> tuple[str | None, Check]:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(LocalActor).where(LocalActor.username == settings.chamber_username)
            )
        ).first()
    name = "chamber keys"
    if row is None:
        return None, Check(
            name,
            Status.FAIL,
            f"no chamber actor {settings.chamber_username!r} in the database: was"
            " chamber_username changed since init, or is this the wrong database?",
        )
    actor_id = ActorUrls(settings.url, settings.chamber_username).id
    box = SecretBox(settings.secret_key)
    try:
        rsa_key = unseal_rsa(row.rsa_private_sealed, box)
        ed_key = unseal_ed25519(row.ed25519_private_sealed, box)
    except SecretBoxError:
        return actor_id, Check(
            name,
            Status.FAIL,
            "the private keys do not open with this secret_key: it is not the one they were"
            " sealed with; put back the archipel.toml (or ARCHIPEL_SECRET_KEY) from init or"
            " from the backup",
        )
    ed_public = public_key_to_multibase(ed_key.public_key())
    if rsa_public_pem(rsa_key) != row.rsa_public_pem or ed_public != row.ed25519_public_multibase:
        return actor_id, Check(
            name, Status.FAIL, "the private keys do not match the published public keys"
        )
    return actor_id, Check(name, Status.OK, f"@{settings.chamber_username}: keys open and match")


async def _partners(engine: AsyncEngine, actor_id: str) -> list[str]:
    """The chambers this one follows and those it trades with (clearing partners)."""
    async with engine.connect() as connection:
        followed = await connection.execute(
            select(Follow.followee_uri).where(Follow.follower_uri == actor_id)
        )
        trading = await connection.execute(select(Partner.chamber_uri))
        return sorted({uri for (uri,) in followed} | {uri for (uri,) in trading})


async def _probe(http: httpx.AsyncClient, url: str, accept: str) -> str | None:
    """None when ``url`` answers 2xx, else why not."""
    try:
        response = await http.get(url, headers={"Accept": accept})
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {str(exc)[:200] or 'no answer'}"
    if not 200 <= response.status_code < 300:
        return f"HTTP {response.status_code}"
    return None


async def _check_public_url(http: httpx.AsyncClient, settings: Settings) -> Check:
    url = settings.absolute("/healthz")
    problem = await _probe(http, url, "application/json")
    if problem is not None:
        return Check(
            "public URL",
            Status.WARN,
            f"{url} does not answer from here ({problem}): check DNS, the reverse proxy and"
            " that `archipel serve` runs (skip this if this machine cannot reach it)",
        )
    return Check("public URL", Status.OK, f"{url} answers")


async def _check_partners(http: httpx.AsyncClient, partners: list[str]) -> list[Check]:
    if not partners:
        return [
            Check(
                "partners",
                Status.OK,
                "the chamber follows no other chamber yet (archipel follow @name@host)",
            )
        ]
    checks = []
    for uri in partners:
        problem = await _probe(http, uri, AS2)
        if problem is None:
            checks.append(Check("partner", Status.OK, f"{uri} answers"))
        else:
            checks.append(
                Check(
                    "partner",
                    Status.WARN,
                    f"{uri} does not answer ({problem}): deliveries to it wait and retry",
                )
            )
    return checks


HttpFactory = Callable[[Settings], httpx.AsyncClient]


def _default_http(settings: Settings) -> httpx.AsyncClient:
    return make_async_client(
        allow_private_addresses=settings.allow_private_addresses,
        user_agent=user_agent(settings),
        timeout=10,
    )


async def run_checks(
    data_dir: Path | str,
    *,
    http: HttpFactory = _default_http,
    probe_public_url: bool = True,
) -> list[Check]:
    """Every check, in order; stops early only when later checks cannot run."""
    settings, config_check = _check_config(Path(data_dir))
    checks = [config_check]
    if settings is None:
        return checks
    checks.append(_check_data_dir(settings))
    engine = make_engine(settings.database_url)
    actor_id: str | None = None
    partners: list[str] = []
    try:
        database_checks = await _check_database(engine)
        checks += database_checks
        if all(check.status == Status.OK for check in database_checks):
            actor_id, keys_check = await _check_keys(engine, settings)
            checks.append(keys_check)
            if actor_id is not None:
                partners = await _partners(engine, actor_id)
    finally:
        await engine.dispose()
    async with http(settings) as client:
        if probe_public_url:
            checks.append(await _check_public_url(client, settings))
        if actor_id is not None:
            checks += await _check_partners(client, partners)
    return checks


def doctor(
    data_dir: Path | str,
    run: Callable[..., Coroutine[Any, Any, list[Check]]] = run_checks,
) -> int:
    """Print the report; the exit status is 1 when a check failed."""
    checks: list[Check] = asyncio.run(run(data_dir))
    print(format_report(checks))
    failed = [check for check in checks if check.status == Status.FAIL]
    warned = [check for check in checks if check.status == Status.WARN]
    print(f"{len(checks)} checks: {len(failed)} failed, {len(warned)} warnings")
    return 1 if failed else 0
