"""Files that hold secrets, readable by their owner only (mode 0600)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

from node.db import is_sqlite

__all__ = ["restrict_sqlite_file", "write_private_file"]


def write_private_file(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 whatever the umask (never an existing file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def restrict_sqlite_file(database_url: str) -> None:
    """A SQLite database holds password hashes and sealed keys: mode 0600 (SQLite gives its
    journal and WAL files the database's mode). Nothing to do for PostgreSQL."""
    if is_sqlite(database_url):
        database = make_url(database_url).database
        if database and Path(database).is_file():
            Path(database).chmod(0o600)
