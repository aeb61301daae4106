"""Attached files, stored under the data dir by content (``files/<sha256><ext>``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from node import i18n
from node.bricks.validation import MAX_FILES, BrickInvalid, check_file

__all__ = ["file_path", "store_files"]


def store_files(
    files_dir: Path, base_url: str, uploads: list[tuple[str, bytes]]
) -> list[dict[str, Any]]:
    """Check then store each upload; the attachment entries to keep on the brick."""
    if len(uploads) > MAX_FILES:
        raise BrickInvalid(
            {"files": i18n.gettext("too many files: at most %(count)d") % {"count": MAX_FILES}}
        )
    checked = [(name, content, check_file(name, content)) for name, content in uploads]
    files_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, content, media_type in checked:
        digest = hashlib.sha256(content).hexdigest()
        extension = "." + name.rsplit(".", 1)[-1].lower()
        stored = files_dir / f"{digest}{extension}"
        if not stored.exists():
            partial = stored.with_suffix(stored.suffix + ".part")
            partial.write_bytes(content)
            os.replace(partial, stored)
        entries.append(
            {
                "href": f"{base_url}/files/{digest}{extension}",
                "name": name.rsplit("/", 1)[-1][:200],
                "mediaType": media_type,
                "size": len(content),
            }
        )
    return entries


def file_path(files_dir: Path, name: str) -> tuple[Path, str] | None:
    """The stored file for ``/files/<name>`` and its media type, or None."""
    from node.bricks.validation import FILE_TYPES

    stem, _, extension = name.partition(".")
    if len(stem) != 64 or not all(c in "0123456789abcdef" for c in stem):
        return None
    kind = FILE_TYPES.get("." + extension)
    path = files_dir / name
    if kind is None or not path.is_file():
        return None
    return path, kind[0]
