"""WebFinger (RFC 7033), host-meta (RFC 6415), NodeInfo 2.1 and the health check."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node import __version__
from node.activitypub.actors import ActorUrls
from node.bricks.catalogue import count_local_bricks
from node.db import read_only, utcnow
from node.members.service import count_members
from node.web.context import node_context
from node.web.errors import ApiError
from node.web.negotiation import parse_accept
from node.web.profiles import find_identity

__all__ = ["routes"]

JRD = "application/jrd+json"
NODEINFO_21 = "http://nodeinfo.diaspora.software/ns/schema/2.1"
CORS = {"Access-Control-Allow-Origin": "*"}


def _username_from_resource(resource: str, base_url: str, host: str) -> str:
    """The local username a WebFinger resource names; ApiError 400/404 otherwise."""
    if len(resource) > 512:
        raise ApiError(400, "resource is too long")
    if resource.startswith(("http://", "https://")):
        parts = urlsplit(resource)
        if f"{parts.scheme}://{parts.netloc.lower()}" != base_url:
            raise ApiError(404, f"{resource} is not on this node")
        path = parts.path.rstrip("/")
        for prefix in ("/actors/", "/@"):
            if path.startswith(prefix) and "/" not in path[len(prefix) :]:
                return path[len(prefix) :]
        raise ApiError(404, f"{resource} is not an actor of this node")
    account = resource[5:] if resource.startswith("acct:") else resource
    account = account.lstrip("@")
    user, sep, domain = account.rpartition("@")
    if not sep or not user or not domain:
        raise ApiError(
            400,
            "resource must be acct:user@host or the URL of an actor (e.g. acct:marie@" + host + ")",
        )
    if domain.lower() != host:
        raise ApiError(404, f"{domain} is not this node ({host})")
    return user


async def webfinger(request: Request) -> Response:
    node = node_context(request)
    settings = node.settings
    resource = request.query_params.get("resource")
    if not resource:
        raise ApiError(400, "the resource query parameter is required (acct:user@host)")
    username = _username_from_resource(resource.strip(), settings.url, settings.host)
    async with read_only(node.sessionmaker) as session:
        identity = await find_identity(session, settings, username)
    if identity is None:
        raise ApiError(404, f"no account {username!r} on {settings.host}")
    urls = ActorUrls(settings.url, identity.actor.username)
    document = {
        "subject": f"acct:{identity.actor.username}@{settings.host}",
        "aliases": [urls.id, identity.profile.page_url],
        "links": [
            {"rel": "self", "type": "application/activity+json", "href": urls.id},
            {
                "rel": "http://webfinger.net/rel/profile-page",
                "type": "text/html",
                "href": identity.profile.page_url,
            },
        ],
    }
    return JSONResponse(document, media_type=JRD, headers=CORS)


async def host_meta(request: Request) -> Response:
    settings = node_context(request).settings
    template = settings.absolute("/.well-known/webfinger?resource={uri}")
    wants_json = any(
        media in ("application/json", JRD)
        for media, _, q in parse_accept(request.headers.get("accept", ""))
        if q > 0
    )
    if wants_json or request.url.path.endswith(".json"):
        return JSONResponse(
            {"links": [{"rel": "lrdd", "template": template}]}, media_type=JRD, headers=CORS
        )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n'
        f'  <Link rel="lrdd" type="application/xrd+xml" template="{template}"/>\n'
        "</XRD>\n"
    )
    return Response(xml, media_type="application/xrd+xml", headers=CORS)


async def nodeinfo_links(request: Request) -> Response:
    settings = node_context(request).settings
    return JSONResponse(
        {"links": [{"rel": NODEINFO_21, "href": settings.absolute("/nodeinfo/2.1")}]},
        headers=CORS,
    )


async def nodeinfo(request: Request) -> Response:
    node = node_context(request)
    settings = node.settings
    now = utcnow()
    async with read_only(node.sessionmaker) as session:
        total = await count_members(session)
        month = await count_members(session, active_since=now - timedelta(days=30))
        halfyear = await count_members(session, active_since=now - timedelta(days=180))
        local_bricks = await count_local_bricks(session)
    document = {
        "version": "2.1",
        "software": {
            "name": "archipel",
            "version": __version__,
            "homepage": "https://archipel.social/",
        },
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": []},
        "openRegistrations": True,
        "usage": {
            "users": {"total": total, "activeMonth": month, "activeHalfyear": halfyear},
            "localPosts": local_bricks,
        },
        "metadata": {
            "nodeName": settings.name,
            "nodeDescription": settings.description,
            "chamber": {
                "name": settings.name,
                "actor": ActorUrls(settings.url, settings.chamber_username).id,
                "language": settings.language,
            },
        },
    }
    return JSONResponse(
        document,
        media_type=f'application/json; profile="{NODEINFO_21}#"',
        headers=CORS,
    )


async def healthz(request: Request) -> Response:
    node = node_context(request)
    try:
        async with node.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any database failure means unhealthy
        return JSONResponse({"status": "error", "database": str(exc)[:200]}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


routes = [
    Route("/.well-known/webfinger", webfinger, methods=["GET"]),
    Route("/.well-known/host-meta", host_meta, methods=["GET"]),
    Route("/.well-known/host-meta.json", host_meta, methods=["GET"]),
    Route("/.well-known/nodeinfo", nodeinfo_links, methods=["GET"]),
    Route("/nodeinfo/2.1", nodeinfo, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
]
