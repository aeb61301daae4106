"""Reading brick input from a form or a JSON body (shared by the pages and the API)."""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from node.bricks.validation import MAX_FILE_BYTES, MAX_FILES
from node.web.errors import ApiError

__all__ = ["BrickPayload", "read_payload"]

FIELDS = ("title", "category", "summary", "body", "tags", "links", "authors")


class BrickPayload:
    def __init__(
        self,
        data: dict[str, Any],
        uploads: list[tuple[str, bytes]],
        form: Any = None,
        remove_files: list[str] | None = None,
    ) -> None:
        self.data = data
        self.uploads = uploads
        self.form = form
        self.remove_files = remove_files or []


async def read_payload(request: Request) -> BrickPayload:
    """JSON object, urlencoded form or multipart form (with ``files``)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/json", "application/activity+json"):
        try:
            data = json.loads(await request.body())
        except ValueError:
            raise ApiError(400, "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "send a JSON object")
        remove = data.get("remove_files")
        return BrickPayload(data, [], None, remove if isinstance(remove, list) else [])
    if content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise ApiError(415, "send JSON, or a form (urlencoded or multipart)")
    form = await request.form(max_files=MAX_FILES + 1, max_part_size=MAX_FILE_BYTES + 1)
    data = {name: form.get(name) for name in FIELDS if name in form}
    uploads: list[tuple[str, bytes]] = []
    for item in form.getlist("files"):
        if isinstance(item, UploadFile) and item.filename:
            content = await item.read(MAX_FILE_BYTES + 1)
            uploads.append((item.filename, content))
    remove = [str(v) for v in form.getlist("remove_files")]
    return BrickPayload(data, uploads, form, remove)
