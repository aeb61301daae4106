"""Actor documents and profile pages, negotiated on ``Accept``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from node.activitypub.actors import actor_document
from node.activitypub.jsonld import archipel_context_bytes
from node.db import read_only
from node.web.bricks import category_label
from node.web.context import node_context
from node.web.errors import ApiError
from node.web.home import home_view
from node.web.negotiation import ActivityJSONResponse, wants_activity_json
from node.web.people import load_people
from node.web.profiles import LocalIdentity, find_identity
from node.web.remote_actors import remote_profile
from node.web.templating import render

__all__ = ["routes"]


async def _identity(request: Request, username: str) -> LocalIdentity:
    node = node_context(request)
    async with read_only(node.sessionmaker) as session:
        identity = await find_identity(session, node.settings, username, node.contributions)
    if identity is None:
        raise ApiError(404, f"no actor named {username!r} on this node")
    return identity


def _actor_response(request: Request, identity: LocalIdentity) -> Response:
    settings = node_context(request).settings
    return ActivityJSONResponse(actor_document(identity.actor, settings.url, identity.profile))


async def actor(request: Request) -> Response:
    identity = await _identity(request, request.path_params["username"])
    if wants_activity_json(request):
        return _actor_response(request, identity)
    return RedirectResponse(identity.profile.page_url, status_code=303, headers={"Vary": "Accept"})


async def profile_page(request: Request) -> Response:
    if "@" in request.path_params["username"]:  # /@user@host: a remote person or chamber
        return await remote_profile(request, request.path_params["username"])
    identity = await _identity(request, request.path_params["username"])
    if wants_activity_json(request):
        return _actor_response(request, identity)
    if identity.is_chamber:
        return RedirectResponse("/", status_code=303)
    return render(request, "profile.html", identity=identity)


async def home(request: Request) -> Response:
    node = node_context(request)
    identity = await _identity(request, node.settings.chamber_username)
    if wants_activity_json(request):
        return _actor_response(request, identity)
    view = await home_view(node)
    async with read_only(node.sessionmaker) as session:
        people = await load_people(
            session, node.federation, node.settings, [p.chamber_uri for p in view.partners]
        )
    return render(
        request,
        "home.html",
        identity=identity,
        home=view,
        people=people,
        category_label=category_label,
    )


async def archipel_context(request: Request) -> Response:
    return Response(
        archipel_context_bytes(),
        media_type="application/ld+json",
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=86400"},
    )


routes = [
    Route("/", home, methods=["GET"]),
    Route("/actors/{username}", actor, methods=["GET"]),
    Route("/@{username}", profile_page, methods=["GET"]),
    Route("/ns/archipel/v1", archipel_context, methods=["GET"]),
]
