"""Archipel interop test peer of another family than Fedify: a small ActivityPub server built
on the ``bovine`` library (PyPI), run in its own venv (``install.sh``), sharing no code with
Archipel.

    .venv/bin/python peer.py --port 8102 [--host 127.0.0.1] [--actor carol]

bovine does the ActivityPub work: RSA keys (``bovine.crypto``), the actor document
(``bovine.activitystreams.Actor``), activities (``ActivityFactory``), signed GETs and POSTs
(``SignedHttpClient``, draft-cavage with a ``Digest``), verification of incoming HTTP signatures,
draft-cavage or RFC 9421 (``SignatureChecker``), and JSON-LD compaction of what arrives to the
ActivityStreams context (``bovine.jsonld``, PyLD). aiohttp (a bovine dependency) serves it.

A JSON control API under ``/_control/`` drives it from the tests: ``health``, ``follow``
(``{"target": actor URL}``), ``following``, ``received``, ``objects``, ``object?id=``.
It keeps the objects it receives as a Mastodon server keeps statuses: a ``Create`` or an
``Announce`` embedding its object stores it; an ``Update``/``Delete`` whose actor owns the
object (its ``attributedTo``, else the bringing activity's actor) replaces/removes it.
Everything is in memory. Test use only: it talks plain http to loopback addresses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from bovine.activitystreams import Actor, factories_for_actor_object
from bovine.clients.signed_http import SignedHttpClient
from bovine.crypto import build_validate_http_signature_raw, generate_rsa_public_private_key
from bovine.crypto.types import CryptographicIdentifier
from bovine.jsonld import jsonld_cache, with_activitystreams_context

log = logging.getLogger("bovine-peer")
AS2 = "application/activity+json"


def now() -> str:
    return datetime.now(UTC).isoformat()


def as_list(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]


def id_of(value: Any) -> str | None:
    return value if isinstance(value, str) else value.get("id") if isinstance(value, dict) else None


class Peer:
    def __init__(self, origin: str, name: str) -> None:
        self.origin = origin
        self.name = name
        self.actor_id = f"{origin}/users/{name}"
        self.key_id = f"{self.actor_id}#main-key"
        self.public_pem, self.private_pem = generate_rsa_public_private_key()
        self.document = Actor(
            id=self.actor_id,
            type="Person",
            name=f"{name} (bovine interop peer)",
            preferred_username=name,
            inbox=f"{self.actor_id}/inbox",
            outbox=f"{self.actor_id}/outbox",
            followers=f"{self.actor_id}/followers",
            following=f"{self.actor_id}/following",
            public_key=self.public_pem,
            public_key_name="main-key",
        ).build()
        self.activities, _ = factories_for_actor_object(
            self.document, id_generator=lambda: f"{self.actor_id}/activities/{uuid.uuid4()}"
        )
        self.session: aiohttp.ClientSession | None = None
        self.seq = 0
        self.received: list[dict[str, Any]] = []
        self.following: dict[str, dict[str, Any]] = {}
        self.objects: dict[str, dict[str, Any]] = {}
        self.validate = build_validate_http_signature_raw(self.retrieve_key)

    @property
    def client(self) -> SignedHttpClient:
        assert self.session is not None
        return SignedHttpClient(self.session, self.key_id, self.private_pem)

    async def fetch(self, url: str) -> dict[str, Any]:
        response = await self.client.get(url)
        if response.status != 200:
            raise web.HTTPBadGateway(text=f"GET {url}: {response.status}")
        return dict(await response.json(content_type=None))

    async def retrieve_key(self, key_id: str) -> CryptographicIdentifier | None:
        document = await self.fetch(key_id.split("#")[0])
        key = document.get("publicKey", document)
        if isinstance(key, list):
            key = next((k for k in key if k.get("id") == key_id), None)
        return CryptographicIdentifier.from_public_key(key) if isinstance(key, dict) else None

    # -- inbox ----------------------------------------------------------------------------

    async def inbox(self, request: web.Request) -> web.Response:
        body = await request.read()

        async def read_body() -> bytes:
            return body

        self.seq += 1
        record: dict[str, Any] = {"seq": self.seq, "received_at": now(), "verified": False}
        self.received.append(record)
        try:
            raw = json.loads(body)
        except ValueError:
            record["error"] = "not JSON"
            return web.json_response({"error": "not JSON"}, status=400)
        record.update(
            raw=raw, type=raw.get("type"), id=raw.get("id"), actor=id_of(raw.get("actor"))
        )
        try:
            signer = await self.validate(
                request.method, str(request.url), request.headers, read_body
            )
        except Exception as exc:  # noqa: BLE001 — recorded for the test to read
            record["error"] = f"signature check failed: {exc!r}"
            signer = None
        record["signer"] = signer
        record["scheme"] = "rfc9421" if "signature-input" in request.headers else "draft-cavage"
        if signer is None or signer != record["actor"]:
            record.setdefault("error", f"signature by {signer}, actor {record['actor']}")
            return web.json_response({"error": record["error"]}, status=401)
        record["verified"] = True
        try:
            activity = await asyncio.to_thread(with_activitystreams_context, raw)
            record["jsonld"] = "compacted"
        except Exception as exc:  # noqa: BLE001 — a context it cannot load: the raw JSON
            activity = raw
            record["jsonld"] = "raw"
            record["jsonld_error"] = f"{exc.__class__.__name__}: {str(exc)[:500]}"
        self.apply(record, activity)
        return web.json_response({"ok": True}, status=202)

    def apply(self, record: dict[str, Any], activity: dict[str, Any]) -> None:
        kind, actor = activity.get("type"), record["actor"]
        objects = as_list(activity.get("object"))
        if kind in ("Create", "Announce"):
            for obj in objects:
                if not isinstance(obj, dict) or obj.get("id") is None:
                    continue
                if self.objects.get(obj["id"], {}).get("deleted"):
                    continue
                owners = [o for o in map(id_of, as_list(obj.get("attributedTo"))) if o]
                self.objects[obj["id"]] = {
                    "id": obj["id"],
                    "type": obj.get("type"),
                    "owners": owners or [actor],
                    "via": {"type": kind, "actor": actor, "seq": record["seq"]},
                    "object": obj,
                    "updates": [],
                    "deleted": False,
                    "deleted_by": None,
                    "refused": [],
                }
        elif kind in ("Update", "Delete"):
            for obj in objects:
                held = self.objects.get(id_of(obj) or "")
                if held is None:
                    record["note"] = f"{kind} of {id_of(obj)}: not held here"
                    continue
                if actor not in held["owners"]:
                    held["refused"].append({"type": kind, "actor": actor, "seq": record["seq"]})
                    continue
                if kind == "Delete":
                    held.update(deleted=True, object=None)
                    held["deleted_by"] = {"actor": actor, "seq": record["seq"]}
                elif isinstance(obj, dict) and not held["deleted"]:
                    held["object"] = obj
                    held["updates"].append({"actor": actor, "seq": record["seq"]})
        elif kind == "Accept":
            follow = id_of(activity.get("object"))
            for target in self.following.values():
                if target["follow_id"] == follow or (target["id"] == actor and follow is None):
                    target["state"] = "accepted"

    # -- served documents and the control API ---------------------------------------------

    async def actor(self, request: web.Request) -> web.Response:
        if request.match_info["name"] != self.name:
            raise web.HTTPNotFound()
        return web.json_response(self.document, content_type=AS2)

    async def control(self, request: web.Request) -> web.Response:
        route = request.match_info["route"]
        if request.method == "GET" and route == "health":
            return web.json_response(
                {"ok": True, "actor": self.actor_id, "inbox": f"{self.actor_id}/inbox"}
            )
        if request.method == "GET" and route == "received":
            return web.json_response(self.received)
        if request.method == "GET" and route == "following":
            return web.json_response(list(self.following.values()))
        if request.method == "GET" and route == "objects":
            return web.json_response(list(self.objects.values()))
        if request.method == "GET" and route == "object":
            held = self.objects.get(request.query.get("id", ""))
            return web.json_response(held or {"error": "not held"}, status=200 if held else 404)
        if request.method == "POST" and route == "follow":
            target = (await request.json())["target"]
            actor = await self.fetch(target)
            follow = self.activities.follow(actor["id"]).build()
            self.following[actor["id"]] = {
                "id": actor["id"],
                "follow_id": follow["id"],
                "state": "pending",
                "since": now(),
            }
            response = await self.client.post(actor["inbox"], json.dumps(follow))
            return web.json_response(
                {"ok": response.status < 300, "status": response.status, "follow": follow},
                status=200 if response.status < 300 else 502,
            )
        return web.json_response(
            {"error": f"no control route {request.method} {route}"}, status=404
        )


async def serve(host: str, port: int, name: str) -> None:
    peer = Peer(f"http://{host}:{port}", name)
    app = web.Application()
    app.add_routes(
        [
            web.get("/users/{name}", peer.actor),
            web.post("/users/{name}/inbox", peer.inbox),
            web.post("/inbox", peer.inbox),
            web.route("*", "/_control/{route}", peer.control),
        ]
    )
    async with aiohttp.ClientSession() as session:
        peer.session = session
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        log.info("bovine peer %s listening", peer.actor_id)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--actor", default="carol")
    parser.add_argument(
        "--contexts",
        help="a JSON file {context URL: published document}: seeds bovine's JSON-LD context"
        " cache, as a peer online would have fetched them (this one runs offline)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.contexts:
        with open(args.contexts, encoding="utf-8") as file:
            for url, document in json.load(file).items():
                if jsonld_cache.retrieve(url) is None:
                    jsonld_cache.add(url, document["@context"])
    asyncio.run(serve(args.host, args.port, args.actor))


if __name__ == "__main__":
    main()
