"""Profile pictures uploaded by members, stored by content under ``DATA_DIR/avatars`` and
served from our node (``/avatars/<sha256>.<ext>``). The type is read from the file's first
bytes, never from its name or the browser's word."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from node.members.errors import InvalidMemberInput

__all__ = ["AVATAR_TYPES", "MAX_AVATAR_BYTES", "avatar_path", "image_type", "store_avatar"]

MAX_AVATAR_BYTES = 2 * 1024 * 1024
#: Extension -> media type of the images we keep.
AVATAR_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
}


def image_type(content: bytes) -> str | None:
    """The extension of a PNG, JPEG, GIF or WebP image, by its magic bytes, else None."""
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if content.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if content.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "webp"
    return None


def store_avatar(avatars_dir: Path, content: bytes) -> str:
    """Check and store the image; return its file name."""
    if not content:
        raise InvalidMemberInput("avatar", "choose an image file")
    if len(content) > MAX_AVATAR_BYTES:
        raise InvalidMemberInput("avatar", "the image is too large: at most 2 MB")
    extension = image_type(content)
    if extension is None:
        raise InvalidMemberInput("avatar", "a PNG, JPEG, GIF or WebP image, please")
    name = f"{hashlib.sha256(content).hexdigest()}.{extension}"
    avatars_dir.mkdir(parents=True, exist_ok=True)
    stored = avatars_dir / name
    if not stored.exists():
        partial = stored.with_suffix(".part")
        partial.write_bytes(content)
        os.replace(partial, stored)
    return name


def avatar_path(avatars_dir: Path, name: str) -> tuple[Path, str] | None:
    """The stored file for ``/avatars/<name>`` and its media type, or None."""
    stem, _, extension = name.partition(".")
    if len(stem) != 64 or not all(c in "0123456789abcdef" for c in stem):
        return None
    media_type = AVATAR_TYPES.get(extension)
    path = avatars_dir / name
    if media_type is None or not path.is_file():
        return None
    return path, media_type
