"""A fake remote server (httpx.MockTransport) and signed inbox POSTs.

The remote host ``remote.test`` serves actor documents; its inboxes answer with a status the
test chooses. Every request is recorded, so a test can show that none was sent. An app talks
to it when built with its transport: ``quiet_app(settings, transport=remote.transport())``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select
from starlette.applications import Starlette

from node.activitypub.keys import rsa_public_pem
from node.activitypub.signatures import sign_cavage
from node.db import read_only, utcnow
from tests.activitypub._keys import ACTOR_KEY

REMOTE = "https://remote.test"
BOB = f"{REMOTE}/users/bob"
BOB_KEY_ID = f"{BOB}#main-key"
BOB_INBOX = f"{BOB}/inbox"
CAROL = f"{REMOTE}/users/carol"
LILLE = "https://lille.test/actors/lille"
LILLE_INBOX_PATH = "/actors/lille/inbox"
AS2 = "application/activity+json"
AS2_CONTEXT = "https://www.w3.org/ns/activitystreams"


def actor_document(
    uri: str, key: rsa.RSAPrivateKey = ACTOR_KEY, *, shared_inbox: str | None = None
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "@context": [AS2_CONTEXT, "https://w3id.org/security/v1"],
        "id": uri,
        "type": "Person",
        "preferredUsername": uri.rsplit("/", 1)[-1],
        "inbox": f"{uri}/inbox",
        "publicKey": {
            "id": f"{uri}#main-key",
            "owner": uri,
            "publicKeyPem": rsa_public_pem(key),
        },
    }
    if shared_inbox is not None:
        document["endpoints"] = {"sharedInbox": shared_inbox}
    return document


@dataclass
class FakeRemote:
    """Serves ``documents`` on GET; answers POSTs with ``inbox_status`` (last one repeats)."""

    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    inbox_status: list[int] = field(default_factory=lambda: [202])
    requests: list[httpx.Request] = field(default_factory=list)

    def add(self, document: dict[str, Any]) -> None:
        self.documents[document["id"]] = document

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = str(request.url).split("#")[0]
        if request.method == "GET" and url in self.documents:
            return httpx.Response(
                200, headers={"Content-Type": AS2}, content=json.dumps(self.documents[url])
            )
        if request.method == "POST":
            status = (
                self.inbox_status.pop(0) if len(self.inbox_status) > 1 else self.inbox_status[0]
            )
            return httpx.Response(status, text="" if status < 300 else f"status {status}")
        return httpx.Response(404, text="not found")

    def transport(self) -> httpx.MockTransport:
        """What an app's federation sends through (``create_app(transport=...)``)."""
        return httpx.MockTransport(self.handler)

    @property
    def posts(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST"]


def activity_body(activity: dict[str, Any]) -> bytes:
    return json.dumps({"@context": AS2_CONTEXT, **activity}).encode()


async def signed_post(
    client: httpx.AsyncClient,
    body: bytes,
    *,
    path: str = LILLE_INBOX_PATH,
    key: rsa.RSAPrivateKey = ACTOR_KEY,
    key_id: str = BOB_KEY_ID,
    now: datetime | None = None,
    content_type: str = AS2,
    send_body: bytes | None = None,
    replace: dict[str, str] | None = None,
) -> httpx.Response:
    """POST ``body`` signed (cavage) as ``key_id``; ``send_body``/``replace`` tamper after."""
    url = "https://lille.test" + path
    headers = {"Content-Type": content_type}
    headers.update(sign_cavage("POST", url, headers, body, key, key_id, now or utcnow()))
    headers.update(replace or {})
    return await client.post(
        path, content=body if send_body is None else send_body, headers=headers
    )


async def count(app: Starlette, model: Any, *where: Any) -> int:
    async with read_only(app.state.node.sessionmaker) as session:
        query = select(func.count()).select_from(model)
        if where:
            query = query.where(*where)
        return int((await session.execute(query)).scalar_one())
