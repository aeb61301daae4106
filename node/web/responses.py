"""Responses shared by several routes."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import FileResponse

__all__ = ["stored_file"]


def stored_file(path: Path, media_type: str) -> FileResponse:
    """A file stored under its content's hash (attachments, avatars): cached for good, never
    sniffed into another type, and sandboxed if a browser opens it as a page."""
    return FileResponse(
        path,
        media_type=media_type,
        headers={
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        },
    )
