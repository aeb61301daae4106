"""Backups: a logical dump any database can restore, SQLite ⇄ PostgreSQL, keys intact."""

from __future__ import annotations

import asyncio
import json
import os
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from node.activitypub.keys import rsa_public_pem, unseal_ed25519, unseal_rsa
from node.activitypub.models import (
    DomainBlock,
    Follow,
    FollowState,
    LocalActor,
    RemoteActor,
    StoredActivity,
)
from node.chamber import ensure_chamber_actor
from node.cli import main
from node.config import Settings, load_settings, write_settings
from node.db import make_engine, make_sessionmaker, session_scope
from node.jobs import JobState, enqueue
from node.members.models import MemberRole, MemberStatus
from node.members.service import create_member, get_member
from node.migrate import head_revisions
from node.ops.backup import BackupError, create_backup, prune_backups, restore_backup
from node.secretbox import SecretBox
from node.web.app import create_app
from tests.ops._support import snapshot, throwaway_postgres

AS2 = "application/activity+json"
PARTNER = "https://gand.example/actors/gand"
WHEN = datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


async def _populate(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    box = SecretBox(settings.secret_key)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            chamber = await ensure_chamber_actor(session, settings, box)
            await create_member(
                session,
                box,
                username="marie",
                chamber_username=settings.chamber_username,
                password="correct horse battery",
                status=MemberStatus.APPROVED,
                role=MemberRole.ADMIN,
            )
            chamber.manually_approves_followers = True
            session.add(
                RemoteActor(
                    uri=PARTNER,
                    host="gand.example",
                    inbox=f"{PARTNER}/inbox",
                    shared_inbox="https://gand.example/inbox",
                    document={"id": PARTNER, "type": "Group", "tags": ["a", {"b": None}]},
                    fetched_at=WHEN,
                )
            )
            chamber_uri = f"{settings.url}/actors/{settings.chamber_username}"
            session.add(
                Follow(
                    follower_uri=chamber_uri,
                    followee_uri=PARTNER,
                    follow_activity_id=f"{chamber_uri}/activities/1",
                    state=FollowState.ACCEPTED,
                    created_at=WHEN,
                    updated_at=WHEN,
                )
            )
            activity = StoredActivity(
                activity_id=f"{chamber_uri}/activities/2",
                direction="out",
                actor_uri=chamber_uri,
                activity_type="Create",
                object_id=f"{chamber_uri}/notes/1",
                public=True,
                document={"type": "Create", "content": "Assemblée à 19 h — ça marche", "n": 1.5},
                created_at=WHEN,
            )
            session.add(activity)
            session.add(DomainBlock(host="spam.example", reason="spam", created_at=WHEN))
            await session.flush()
            await enqueue(
                session,
                "deliver",
                {"inbox": f"{PARTNER}/inbox", "actor": settings.chamber_username},
                host="gand.example",
                activity_pk=activity.id,
                give_up_after=timedelta(days=3),
                now=WHEN,
            )
            failed = await enqueue(session, "deliver", {"inbox": "x"}, now=WHEN)
            failed.state = JobState.FAILED
            failed.last_error = "HTTP 400"
    finally:
        await engine.dispose()


def _source(settings: Settings) -> Settings:
    write_settings(settings)
    asyncio.run(_populate(settings))
    files = settings.files_dir / "bricks" / "1"
    files.mkdir(parents=True)
    (files / "plan.pdf").write_bytes(b"%PDF-1.4 \x00\xff")
    return load_settings(settings.data_dir, environ={})


async def _actor_document(settings: Settings, username: str) -> dict[str, object]:
    app = create_app(settings, run_worker=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=settings.url) as http:
            response = await http.get(f"/actors/{username}", headers={"Accept": AS2})
    assert response.status_code == 200
    document: dict[str, object] = response.json()
    return document


async def _chamber_keys(settings: Settings) -> tuple[str, str]:
    engine = make_engine(settings.database_url)
    box = SecretBox(settings.secret_key)
    try:
        async with make_sessionmaker(engine)() as session:
            actor = await ensure_chamber_actor(session, settings, box)
            assert isinstance(actor, LocalActor)
            rsa_key = unseal_rsa(actor.rsa_private_sealed, box)
            unseal_ed25519(actor.ed25519_private_sealed, box)
            return rsa_public_pem(rsa_key), actor.rsa_public_pem
    finally:
        await engine.dispose()


def _restored_target(kind: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    if kind == "sqlite":
        from contextlib import nullcontext

        return nullcontext(None)
    return throwaway_postgres()


@pytest.mark.parametrize("target", ["sqlite", "postgresql"])
def test_backup_then_restore_gives_the_same_node(
    settings: Settings, tmp_path: Path, target: str
) -> None:
    source = _source(settings)
    archive = tmp_path / "backup.tar.gz"
    summary = create_backup(source.data_dir, archive)
    assert summary.rows["members"] == 1 and summary.rows["jobs"] == 2 and summary.files == 1
    assert archive.stat().st_mode & 0o077 == 0  # it holds the node secret

    with _restored_target(target, tmp_path) as database_url:
        new_dir = tmp_path / "restored"
        restored = restore_backup(archive, new_dir, database_url=database_url)
        assert restored.rows == summary.rows
        new = load_settings(new_dir, environ={})
        assert new.secret_key == source.secret_key
        assert new.database_url.startswith("postgresql" if target == "postgresql" else "sqlite")
        assert str(new_dir.resolve()) in new.database_url or target == "postgresql"

        # every row of every table, typed (datetimes, JSON, booleans) as the models read it
        before, after = snapshot(source.database_url), snapshot(new.database_url)
        assert after == before
        assert after["remote_actors"][0]["document"]["tags"] == ["a", {"b": None}]
        assert after["activities"][0]["public"] is True
        assert after["activities"][0]["created_at"] == WHEN
        assert {j["state"] for j in after["jobs"]} == {"pending", "failed"}
        assert (new.files_dir / "bricks" / "1" / "plan.pdf").read_bytes() == b"%PDF-1.4 \x00\xff"

        # the sealed keys open with the restored secret; the actor document is the same
        derived, published = asyncio.run(_chamber_keys(new))
        assert derived == published
        original = asyncio.run(_actor_document(source, "lille"))
        served = asyncio.run(_actor_document(new, "lille"))
        assert served["publicKey"] == original["publicKey"]
        assert served["assertionMethod"] == original["assertionMethod"]
        assert served["id"] == original["id"]

        # sequences continue after the restored keys (PostgreSQL setval)
        assert main(["member", "add", "--data-dir", str(new_dir), "paul"]) == 0
        marie = asyncio.run(_get_member(new, "marie"))
        assert marie.role == MemberRole.ADMIN


async def _get_member(settings: Settings, username: str):  # type: ignore[no-untyped-def]
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return await get_member(session, username)
    finally:
        await engine.dispose()


def test_archive_layout_and_manifest(settings: Settings, tmp_path: Path) -> None:
    source = _source(settings)
    archive = tmp_path / "b.tar.gz"
    assert main(["backup", "--data-dir", str(source.data_dir), str(archive)]) == 0
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        config = tar.extractfile("archipel.toml").read().decode()  # type: ignore[union-attr]
        lines = tar.extractfile("database/members.jsonl").read().splitlines()  # type: ignore[union-attr]
    assert {"manifest.json", "archipel.toml", "files/bricks/1/plan.pdf"} <= names
    assert source.secret_key in config
    assert manifest["format_version"] == 1
    assert set(manifest["alembic_heads"]) == set(head_revisions())
    assert manifest["row_counts"]["local_actors"] == 2
    for name in manifest["tables"]:
        assert f"database/{name}.jsonl" in names
    assert [json.loads(line)["username"] for line in lines] == ["marie"]
    datetime.fromisoformat(manifest["created_at"])


def test_restore_refuses_a_non_empty_directory(settings: Settings, tmp_path: Path) -> None:
    source = _source(settings)
    archive = tmp_path / "b.tar.gz"
    create_backup(source.data_dir, archive)
    target = tmp_path / "busy"
    target.mkdir()
    (target / "something").write_text("x")
    with pytest.raises(BackupError, match="not empty"):
        restore_backup(archive, target)
    assert main(["restore", "--data-dir", str(source.data_dir), str(archive)]) == 1


def test_restore_refuses_a_non_empty_database_and_leaves_the_directory_empty(
    settings: Settings, tmp_path: Path
) -> None:
    source = _source(settings)
    archive = tmp_path / "b.tar.gz"
    create_backup(source.data_dir, archive)
    target = tmp_path / "again"
    with pytest.raises(BackupError, match="not empty"):
        restore_backup(archive, target, database_url=source.database_url)
    assert not target.exists() or list(target.iterdir()) == []


def test_restore_refuses_what_is_not_a_backup(tmp_path: Path) -> None:
    bogus = tmp_path / "b.tar.gz"
    with tarfile.open(bogus, "w:gz"):
        pass
    with pytest.raises(BackupError, match="manifest"):
        restore_backup(bogus, tmp_path / "new")
    (tmp_path / "plain.txt").write_text("nope")
    with pytest.raises(BackupError, match="cannot read"):
        restore_backup(tmp_path / "plain.txt", tmp_path / "new2")


def test_keep_prunes_the_oldest_dated_backups_only(settings: Settings, tmp_path: Path) -> None:
    """``backup DIR --keep N``: the scheduled backups (timer, compose service) keep N."""
    source = _source(settings)
    out = tmp_path / "backups"
    out.mkdir()
    (out / "notes.txt").write_text("not a backup: never pruned")
    (out / "archipel-manual.tar.gz").write_text("not a dated name: never pruned")
    written: list[str] = []
    for _ in range(3):  # even three in the same second get distinct names, in order
        before = set(os.listdir(out))
        assert main(["backup", "--data-dir", str(source.data_dir), str(out), "--keep", "2"]) == 0
        (new,) = set(os.listdir(out)) - before
        written.append(new)
    dated = sorted(name for name in os.listdir(out) if name[len("archipel-") :][:1].isdigit())
    assert dated == sorted(written[1:])  # the oldest went
    assert (out / "notes.txt").exists() and (out / "archipel-manual.tar.gz").exists()
    for name in dated:
        with tarfile.open(out / name) as tar:
            assert "manifest.json" in tar.getnames()


def test_prune_keeps_the_newest_by_name(tmp_path: Path) -> None:
    names = [
        "archipel-20240301T120000Z.tar.gz",
        "archipel-20240301T120000Z-2.tar.gz",
        "archipel-20240301T120000Z-10.tar.gz",
        "archipel-20240302T000000Z.tar.gz",
        "archipel-20240229T235959Z.tar.gz",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    removed = prune_backups(tmp_path, 3)
    assert sorted(p.name for p in removed) == sorted([names[0], names[4]])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names[1], names[2], names[3]])
    with pytest.raises(BackupError, match="at least 1"):
        prune_backups(tmp_path, 0)


def test_keep_needs_a_directory(settings: Settings, tmp_path: Path) -> None:
    source = _source(settings)
    target = str(tmp_path / "one.tar.gz")
    assert main(["backup", "--data-dir", str(source.data_dir), target, "--keep", "2"]) == 1
    assert not Path(target).exists()
