"""A member uploads a profile picture: its type is read from its bytes, its size bounded,
and it is served from our node."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from node.db import read_only
from node.members.avatars import MAX_AVATAR_BYTES, store_avatar
from node.members.errors import InvalidMemberInput
from node.members.service import get_member
from tests.web._members import add_member, csrf_of, sign_in

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def test_upload_checks_the_bytes_and_serves_the_picture(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "marie")
    assert (await sign_in(client, "marie")).status_code == 303
    csrf = csrf_of((await client.get("/account")).text)
    fake = await client.post(
        "/account/avatar",
        data={"csrf_token": csrf},
        files={"avatar": ("me.png", b"<svg onload=alert(1)>", "image/png")},
    )
    assert fake.status_code == 422 and "PNG" in fake.text
    uploaded = await client.post(
        "/account/avatar",
        data={"csrf_token": csrf},
        files={"avatar": ("me.bin", PNG, "application/octet-stream")},
    )
    assert uploaded.status_code == 303
    async with read_only(app.state.node.sessionmaker) as session:
        member = await get_member(session, "marie")
    assert member.avatar_url is not None
    assert member.avatar_url.startswith("https://lille.test/avatars/")
    assert member.avatar_url.endswith(".png")
    served = await client.get(member.avatar_url.removeprefix("https://lille.test"))
    assert served.status_code == 200 and served.content == PNG
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert (await client.get("/avatars/../archipel.toml")).status_code == 404


def test_size_and_type_are_bounded(tmp_path: Path) -> None:
    with pytest.raises(InvalidMemberInput):
        store_avatar(tmp_path, PNG + b"\x00" * MAX_AVATAR_BYTES)
    with pytest.raises(InvalidMemberInput):
        store_avatar(tmp_path, b"GIF8")
    assert store_avatar(tmp_path, b"RIFF\x00\x00\x00\x00WEBPVP8 ").endswith(".webp")
    assert store_avatar(tmp_path, b"\xff\xd8\xff\xe0rest").endswith(".jpg")
