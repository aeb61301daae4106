"""Backups as one ``tar.gz``, restorable into SQLite or PostgreSQL, whichever the source was.

An archive holds::

    manifest.json          format, alembic heads, row counts per table, created_at
    archipel.toml          the configuration as written, node secret included
    database/<table>.jsonl one JSON object per row, for every table of ``Base.metadata``
    files/...              the uploaded files (``DATA_DIR/files``), when there are any

The dump is logical and generic: every table the models declare is exported, in
dependency order, so a table a new domain adds is backed up without changing this file.
Values are encoded by their Python type (datetimes as ISO 8601 with their offset, bytes in
base64, decimals as text) and decoded by the column's type, so booleans, JSON documents
and UTC timestamps come back the same on either database.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import tomli_w
from alembic.script import ScriptDirectory
from alembic.util import CommandError as AlembicError
from sqlalchemy import (
    JSON,
    Column,
    Integer,
    MetaData,
    Table,
    TypeDecorator,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from node.config import CONFIG_FILENAME, Settings, load_settings
from node.db import READ_ONLY, Base, is_sqlite, make_engine, utcnow
from node.migrate import alembic_config, head_revisions, upgrade

__all__ = [
    "FORMAT_VERSION",
    "BackupError",
    "BackupSummary",
    "RestoreSummary",
    "create_backup",
    "dump_tables",
    "prune_backups",
    "restore_backup",
    "tables",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_BATCH = 500


class BackupError(Exception):
    """A backup cannot be made or restored; the message says why and what to do."""


@dataclass(frozen=True)
class BackupSummary:
    path: Path
    rows: dict[str, int]
    files: int


@dataclass(frozen=True)
class RestoreSummary:
    data_dir: Path
    database_url: str
    rows: dict[str, int]
    files: int


def tables() -> list[Table]:
    """Every table of the models, parents before children."""
    import node.models  # noqa: F401 - completes Base.metadata

    return list(Base.metadata.sorted_tables)


# -- values ------------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


def _python_type(column: Column[Any]) -> type | None:
    kind: Any = column.type
    while isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    try:
        return cast(type, kind.python_type)
    except NotImplementedError:
        return None


def _decode(column: Column[Any], value: Any) -> Any:
    if value is None or isinstance(column.type, JSON):
        return value
    if isinstance(column.type, TypeDecorator) and isinstance(column.type.impl_instance, JSON):
        return value
    kind = _python_type(column)
    if kind is dt.datetime:
        return dt.datetime.fromisoformat(value)
    if kind is dt.date:
        return dt.date.fromisoformat(value)
    if kind is dt.time:
        return dt.time.fromisoformat(value)
    if kind is bytes:
        return base64.b64decode(value)
    if kind is Decimal:
        return Decimal(value)
    if kind is dt.timedelta:
        return dt.timedelta(seconds=value)
    if kind is bool:
        return bool(value)
    return value


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


# -- dump --------------------------------------------------------------------------------


async def existing_tables(connection: AsyncConnection) -> set[str]:
    """Names of the tables the database has (a model whose migration is missing has none)."""
    return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def dump_tables(connection: AsyncConnection, out_dir: Path) -> dict[str, int]:
    """Write ``out_dir/<table>.jsonl`` for every table the database has; return row counts."""
    counts: dict[str, int] = {}
    present = await existing_tables(connection)
    for table in tables():
        if table.name not in present:
            continue
        order = list(table.primary_key.columns) or list(table.columns)
        path = out_dir / f"{table.name}.jsonl"
        count = 0
        with path.open("w", encoding="utf-8") as out:
            result = await connection.stream(select(table).order_by(*order))
            async for row in result.mappings():
                record = {name: _encode(value) for name, value in row.items()}
                out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
                count += 1
        counts[table.name] = count
    return counts


async def _current_heads(connection: AsyncConnection) -> list[str]:
    from alembic.runtime.migration import MigrationContext

    heads = await connection.run_sync(
        lambda sync: MigrationContext.configure(sync).get_current_heads()
    )
    return sorted(heads)


async def _dump(settings: Settings, out_dir: Path) -> tuple[dict[str, int], list[str]]:
    engine = make_engine(settings.database_url)
    try:
        # one transaction: a consistent snapshot (REPEATABLE READ; SQLite's WAL read snapshot)
        options: dict[str, Any] = (
            READ_ONLY if is_sqlite(engine) else {"isolation_level": "REPEATABLE READ"}
        )
        async with engine.connect() as connection:
            connection = await connection.execution_options(**options)
            async with connection.begin():
                heads = await _current_heads(connection)
                if set(heads) != set(head_revisions()):
                    raise BackupError(
                        f"the database is at revision {heads}, this code expects"
                        f" {sorted(head_revisions())}: run `archipel migrate` first"
                    )
                counts = await dump_tables(connection, out_dir)
    finally:
        await engine.dispose()
    return counts, heads


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o600) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = int(utcnow().timestamp())
    archive.addfile(info, io.BytesIO(data))


def _uploaded_files(files_dir: Path) -> Iterator[Path]:
    if files_dir.is_dir():
        for path in sorted(files_dir.rglob("*")):
            if path.is_file() and not path.is_symlink():
                yield path


def create_backup(data_dir: Path | str, out: Path | str) -> BackupSummary:
    """Write the archive to ``out`` (mode 0600: it holds the node secret)."""
    settings = load_settings(data_dir)
    out = Path(out)
    if out.is_dir():
        out = _dated_name(out)
    config_bytes = (settings.data_dir / CONFIG_FILENAME).read_bytes()
    with tempfile.TemporaryDirectory(prefix="archipel-backup-") as tmp:
        dump_dir = Path(tmp)
        try:
            counts, heads = asyncio.run(_dump(settings, dump_dir))
        except (SQLAlchemyError, OSError) as exc:
            raise BackupError(f"cannot read the database: {_first_line(exc)}") from exc
        manifest = {
            "format": "archipel-backup",
            "format_version": FORMAT_VERSION,
            "created_at": utcnow().isoformat(),
            "alembic_heads": heads,
            "source_dialect": "sqlite" if is_sqlite(settings.database_url) else "postgresql",
            "tables": list(counts),
            "missing_tables": [t.name for t in tables() if t.name not in counts],
            "row_counts": counts,
        }
        files = list(_uploaded_files(settings.files_dir))
        partial = out.with_name(out.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
                _add_bytes(archive, MANIFEST, json.dumps(manifest, indent=2).encode())
                _add_bytes(archive, CONFIG_FILENAME, config_bytes)
                for table_name in counts:
                    archive.add(
                        dump_dir / f"{table_name}.jsonl", arcname=f"database/{table_name}.jsonl"
                    )
                for path in files:
                    relative = path.relative_to(settings.files_dir).as_posix()
                    archive.add(path, arcname=f"files/{relative}", recursive=False)
            os.replace(partial, out)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return BackupSummary(out, counts, len(files))


#: The names ``create_backup`` gives in a directory: ``archipel-20240301T123015Z.tar.gz``, then
#: ``-2``, ``-3``... for more backups in the same second. Only these are ever pruned.
_DATED = re.compile(r"archipel-(\d{8}T\d{6}Z)(?:-(\d+))?\.tar\.gz")


def _dated_name(directory: Path) -> Path:
    stamp = f"{utcnow():%Y%m%dT%H%M%SZ}"
    path, n = directory / f"archipel-{stamp}.tar.gz", 1
    while path.exists() or path.with_name(path.name + ".partial").exists():
        n += 1
        path = directory / f"archipel-{stamp}-{n}.tar.gz"
    return path


def prune_backups(directory: Path | str, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest dated archives in ``directory`` (the names
    ``create_backup`` gives there; any other file is left alone); the deleted paths."""
    if keep < 1:
        raise BackupError("--keep: at least 1 (the backup just written)")
    dated = []
    for path in Path(directory).iterdir():
        match = _DATED.fullmatch(path.name)
        if match and path.is_file():
            dated.append(((match[1], int(match[2] or 1)), path))
    dated.sort(reverse=True)
    removed = [path for _, path in dated[keep:]]
    for path in removed:
        path.unlink()
    return removed


# -- restore -----------------------------------------------------------------------------


def _read_manifest(archive: tarfile.TarFile) -> dict[str, Any]:
    try:
        member = archive.extractfile(MANIFEST)
    except KeyError:
        raise BackupError("not an Archipel backup: the archive has no manifest.json") from None
    assert member is not None
    manifest: dict[str, Any] = json.loads(member.read())
    if manifest.get("format") != "archipel-backup":
        raise BackupError("not an Archipel backup (manifest format)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"backup format {manifest.get('format_version')} is not supported by this version"
            f" (it reads format {FORMAT_VERSION})"
        )
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    for revision in manifest.get("alembic_heads", []):
        try:
            known = scripts.get_revision(revision) is not None
        except AlembicError:
            known = False
        if not known:
            raise BackupError(
                f"the backup was taken at database revision {revision}, which this version"
                f" does not know (it is at {sorted(head_revisions())}): restore with the version"
                " that made the backup, or a newer one"
            )
    return manifest


def _bare(table: Table, names: Iterable[str]) -> Table:
    """The table with only ``names`` and no Python defaults: inserts exactly what the
    backup holds, whatever columns later revisions added (they get their server defaults
    or their migration's values when the restored database is upgraded)."""
    columns = {column.name: column for column in table.columns}
    return Table(
        table.name,
        MetaData(),
        *(
            Column(name, columns[name].type, primary_key=columns[name].primary_key)
            for name in names
        ),
    )


def _read_jsonl(archive: tarfile.TarFile, table: Table) -> Iterator[dict[str, Any]]:
    try:
        member = archive.extractfile(f"database/{table.name}.jsonl")
    except KeyError:
        return
    assert member is not None
    columns = {column.name: column for column in table.columns}
    for line in io.TextIOWrapper(member, encoding="utf-8"):
        if not line.strip():
            continue
        raw = json.loads(line)
        unknown = set(raw) - set(columns)
        if unknown:
            raise BackupError(f"{table.name}: the backup has unknown columns {sorted(unknown)}")
        yield {name: _decode(columns[name], value) for name, value in raw.items()}


async def _reset_sequences(connection: AsyncConnection) -> None:
    """PostgreSQL: move each serial sequence past the restored primary keys."""
    names = await existing_tables(connection)
    for table in tables():
        if table.name not in names:
            continue
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or not isinstance(keys[0].type, Integer):
            continue
        column = keys[0].name
        sequence = (
            await connection.execute(
                text("SELECT pg_get_serial_sequence(:table, :column)"),
                {"table": table.name, "column": column},
            )
        ).scalar()
        if sequence is None:
            continue
        await connection.execute(
            text(
                f'SELECT setval(:sequence, COALESCE(MAX("{column}"), 1),'
                f' MAX("{column}") IS NOT NULL) FROM "{table.name}"'
            ),
            {"sequence": sequence},
        )


async def _load(
    database_url: str, archive: tarfile.TarFile, manifest: dict[str, Any]
) -> dict[str, int]:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as connection:
            names = await existing_tables(connection)
            restored = [table for table in tables() if table.name in names]
            for table in restored:
                present = (
                    await connection.execute(select(func.count()).select_from(table))
                ).scalar()
                if present:
                    raise BackupError(
                        f"the target database is not empty ({table.name} has {present} rows):"
                        " restore into a new, empty database"
                    )
            for table in restored:
                batch: list[dict[str, Any]] = []
                for row in _read_jsonl(archive, table):
                    batch.append(row)
                    if len(batch) >= _BATCH:
                        await connection.execute(_bare(table, batch[0]).insert(), batch)
                        batch = []
                if batch:
                    await connection.execute(_bare(table, batch[0]).insert(), batch)
            if not is_sqlite(engine):
                await _reset_sequences(connection)
            counts: dict[str, int] = {}
            for table in restored:
                counts[table.name] = int(
                    (await connection.execute(select(func.count()).select_from(table))).scalar()
                    or 0
                )
            expected: dict[str, int] = manifest.get("row_counts", {})
            wrong = {
                name: (counts.get(name), n) for name, n in expected.items() if counts.get(name) != n
            }
            if wrong:
                raise BackupError(
                    "row counts differ from the manifest (restored, expected): "
                    + ", ".join(f"{name} {got} != {n}" for name, (got, n) in sorted(wrong.items()))
                )
    finally:
        await engine.dispose()
    return counts


def _extract_files(archive: tarfile.TarFile, files_dir: Path) -> int:
    count = 0
    for member in archive.getmembers():
        if not member.name.startswith("files/") or not member.isfile():
            continue
        relative = Path(member.name).relative_to("files")
        if relative.is_absolute() or ".." in relative.parts:
            raise BackupError(f"unsafe path in the archive: {member.name}")
        target = files_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        source = archive.extractfile(member)
        assert source is not None
        with target.open("wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
        count += 1
    return count


def restore_backup(
    archive_path: Path | str, data_dir: Path | str, *, database_url: str | None = None
) -> RestoreSummary:
    """Restore into a new data directory and an empty (or new SQLite) database."""
    data_dir = Path(data_dir)
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir} is not empty: restore into a new data directory")
    try:
        archive = tarfile.open(archive_path, mode="r:gz")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"cannot read {archive_path}: {exc}") from None
    try:
        with archive:
            return _restore(archive, data_dir, database_url)
    except BaseException:
        # leave the directory empty again so that the operator can simply retry
        if data_dir.exists():
            for child in data_dir.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise


def _restore(archive: tarfile.TarFile, data_dir: Path, database_url: str | None) -> RestoreSummary:
    manifest = _read_manifest(archive)
    member = archive.extractfile(CONFIG_FILENAME)
    if member is None:
        raise BackupError("the archive has no archipel.toml")
    config = tomllib.loads(member.read().decode("utf-8"))
    if database_url:
        config["database_url"] = database_url
    else:  # never the backed-up database: SQLite in the new directory (or ARCHIPEL_DATABASE_URL)
        config.pop("database_url", None)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # the database is in it
    path = data_dir / CONFIG_FILENAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(
            "# Archipel chamber configuration (restored from a backup)."
            " Every key can be overridden by ARCHIPEL_<KEY>.\n"
        )
        out.write(tomli_w.dumps(config))
    settings = load_settings(data_dir)
    try:
        # load at the backup's revision, then migrate: older backups restore into newer code
        for revision in manifest.get("alembic_heads", []):
            upgrade(settings.database_url, revision)
        rows = asyncio.run(_load(settings.database_url, archive, manifest))
        upgrade(settings.database_url)
    except (SQLAlchemyError, OSError) as exc:
        raise BackupError(
            f"cannot restore into {_safe_url(settings.database_url)}: {_first_line(exc)}"
        ) from exc
    files = _extract_files(archive, settings.files_dir)
    return RestoreSummary(settings.data_dir, settings.database_url, rows, files)
