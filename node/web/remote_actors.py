"""Remote people and chambers inside our chamber: ``/@user@host`` (their page here, with a
Follow / Unfollow button), its forms, and ``/people?q=`` (the search box: a handle or a
profile URL, resolved through WebFinger, opens that page).

A remote chamber (a ``Group``) is followed by the chamber itself, from an administrator's
page; what it publishes then reaches every member's timeline.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from node import i18n
from node.activitypub.actors import get_local_actor
from node.activitypub.federation import FederationError, RemoteUnavailable, authority_of
from node.activitypub.follows import follow, unfollow
from node.activitypub.models import Follow, RemoteActor
from node.bricks.models import Brick, BrickAuthor
from node.db import read_only, session_scope
from node.members.models import Member
from node.web._members import page_member
from node.web.auth import current_member
from node.web.bricks import category_label
from node.web.context import NodeContext, node_context
from node.web.errors import ApiError
from node.web.flash import N_, flash
from node.web.negotiation import wants_activity_json
from node.web.people import Person, brick_uris, load_people
from node.web.templating import render

__all__ = ["find_remote_actor", "remote_profile", "resolve_to_page", "routes"]

MAX_QUERY = 300


def _split(handle: str) -> tuple[str, str]:
    user, sep, host = handle.strip().lstrip("@").rpartition("@")
    if not sep or not user or not host or "/" in host or " " in handle.strip():
        raise ApiError(404, i18n.gettext("This is not an address of the form @user@host."))
    return user, host.lower()


async def find_remote_actor(node: NodeContext, user: str, host: str) -> RemoteActor:
    """The remote actor ``@user@host``: cached, else found through WebFinger (network)."""
    async with read_only(node.sessionmaker) as session:
        rows = await session.execute(
            select(RemoteActor).where(RemoteActor.host == host, RemoteActor.gone_at.is_(None))
        )
        for actor in rows.scalars():
            name = actor.document.get("preferredUsername")
            if isinstance(name, str) and name.lower() == user.lower():
                return actor
    try:
        uri = await node.federation.resolve_handle(f"@{user}@{host}")
        return await node.federation.get_remote_actor(uri)
    except RemoteUnavailable:
        raise ApiError(
            503, i18n.gettext("The server of %(host)s does not answer now.") % {"host": host}
        ) from None
    except FederationError:
        raise ApiError(
            404,
            i18n.gettext("Nobody answers to @%(user)s@%(host)s.") % {"user": user, "host": host},
        ) from None


async def _person(node: NodeContext, actor: RemoteActor) -> Person:
    async with read_only(node.sessionmaker) as session:
        return (await load_people(session, node.federation, node.settings, [actor.uri]))[actor.uri]


def _follower_uri(node: NodeContext, member: Member | None, person: Person) -> str | None:
    """Who follows ``person`` from here for this member: the member, or the chamber for a
    remote chamber (administrators only); None when this member cannot."""
    if member is None:
        return None
    if person.is_chamber:
        return node.federation.urls(node.settings.chamber_username).id if member.is_admin else None
    return node.federation.urls(member.username).id


async def remote_profile(request: Request, handle: str) -> Response:
    node = node_context(request)
    user, host = _split(handle)
    if host == node.settings.host.lower():
        return RedirectResponse(f"/@{user}", status_code=303)
    actor = await find_remote_actor(node, user, host)
    if wants_activity_json(request):
        return RedirectResponse(actor.uri, status_code=303, headers={"Vary": "Accept"})
    person = await _person(node, actor)
    if not person.is_chamber and person.chamber == actor.host:  # its chamber is unknown yet
        if await _discover_chamber(node, actor):
            person = await _person(node, actor)
    if request.url.path != person.url:
        return RedirectResponse(person.url, status_code=303)
    member = await current_member(request)
    follower = _follower_uri(node, member, person)
    async with read_only(node.sessionmaker) as session:
        state = None
        if follower is not None:
            state = (
                await session.execute(
                    select(Follow.state).where(
                        Follow.follower_uri == follower, Follow.followee_uri == actor.uri
                    )
                )
            ).scalar_one_or_none()
        query = select(Brick).order_by(Brick.published_at.desc()).limit(20)
        if person.is_chamber:
            query = query.where(Brick.chamber_uri == actor.uri)
        else:
            query = query.where(
                Brick.id.in_(select(BrickAuthor.brick_id).where(BrickAuthor.actor_uri == actor.uri))
            )
        bricks = list((await session.execute(query)).scalars())
        people = await load_people(session, node.federation, node.settings, brick_uris(bricks))
    return render(
        request,
        "remote_profile.html",
        person=person,
        actor=actor,
        member=member,
        can_follow=follower is not None,
        state=state,
        approves_by_hand=actor.document.get("manuallyApprovesFollowers") is True,
        bricks=bricks,
        people=people,
        origin_url=_origin_url(actor),
        category_label=category_label,
    )


async def _discover_chamber(node: NodeContext, actor: RemoteActor) -> bool:
    """Fetch the chamber actor of the Archipel node ``actor`` lives on (its NodeInfo names
    it, ``metadata.chamber.actor``), so that pages name the chamber; False for a server
    that is not a chamber, or does not answer."""
    parts = urlsplit(actor.uri)
    origin = f"{parts.scheme}://{parts.netloc}"
    http = node.federation.http
    try:
        index = await http.get(f"{origin}/.well-known/nodeinfo", timeout=5)
        links = index.json().get("links", []) if len(index.content) < 10_000 else []
        href = next(
            link["href"]
            for link in links
            if isinstance(link, dict)
            and isinstance(link.get("href"), str)
            and link["href"].startswith(origin + "/")
        )
        info = await http.get(href, timeout=5)
        chamber = info.json()["metadata"]["chamber"]["actor"] if len(info.content) < 100_000 else ""
        if not isinstance(chamber, str) or not chamber.startswith(origin + "/"):
            return False
        await node.federation.get_remote_actor(chamber)
    except (httpx.HTTPError, ValueError, KeyError, TypeError, StopIteration, FederationError):
        return False
    return True


def _origin_url(actor: RemoteActor) -> str:
    url = actor.document.get("url")
    if isinstance(url, list):
        url = url[0] if url else None
    if isinstance(url, dict):
        url = url.get("href")
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else actor.uri


async def follow_action(request: Request) -> Response:
    """POST ``/@user@host/follow`` or ``/unfollow``: the member (or, for a chamber, the
    chamber through an administrator) follows or stops following."""
    node = node_context(request)
    member = await page_member(request)
    if not isinstance(member, Member):
        return member
    user, host = _split(request.path_params["handle"])
    actor = await find_remote_actor(node, user, host)
    person = await _person(node, actor)
    follower = _follower_uri(node, member, person)
    if follower is None:
        raise ApiError(
            403, i18n.gettext("Only an administrator follows a chamber, as the chamber.")
        )
    username = node.settings.chamber_username if person.is_chamber else member.username
    try:
        await node.federation.get_remote_actor(actor.uri)
        async with session_scope(node.sessionmaker) as session:
            local = await get_local_actor(session, username)
            assert local is not None
            if request.url.path.endswith("/unfollow"):
                await unfollow(node.federation, session, local, actor.uri)
                message = N_("You no longer follow this account.")
            else:
                await follow(node.federation, session, local, actor.uri)
                message = N_("Follow request sent: it is confirmed when their server answers.")
    except FederationError:
        raise ApiError(
            503, i18n.gettext("The server of %(host)s does not answer now.") % {"host": host}
        ) from None
    node.worker.wakeup.set()
    flash(request, message)
    return RedirectResponse(person.url, status_code=303)


async def resolve_to_page(node: NodeContext, text: str) -> str:
    """Our page for a handle, a profile URL or a local username (WebFinger for remote ones)."""
    text = text.strip()
    if not text.startswith(("https://", "http://")):
        user, _, host = text.lstrip("@").partition("@")
        if not host or host.lower() == node.settings.host.lower():
            return f"/@{user.lower()}"
        await find_remote_actor(node, user, host.lower())
        return f"/@{user}@{host.lower()}"
    if node.federation.is_local(text):
        username = node.federation.local_username(text)
        path = text[len(node.settings.url) :]
        return f"/@{username}" if username else (path if path.startswith("/@") else "/")
    try:
        uri = await node.federation.resolve_handle(text)
        actor = await node.federation.get_remote_actor(uri)
    except RemoteUnavailable:
        raise ApiError(
            503,
            i18n.gettext("The server of %(host)s does not answer now.")
            % {"host": authority_of(text)},
        ) from None
    except FederationError:
        raise ApiError(404, i18n.gettext("No person or chamber answers at this address.")) from None
    return (await _person(node, actor)).url


async def people_search(request: Request) -> Response:
    """GET ``/people?q=``: the search box; a found actor opens its page here."""
    node = node_context(request)
    query = request.query_params.get("q", "").strip()
    error = None
    status = 200
    if query:
        if len(query) > MAX_QUERY or "\x00" in query:
            error, status = i18n.gettext("This address is too long."), 422
        else:
            try:
                return RedirectResponse(await resolve_to_page(node, query), status_code=303)
            except ApiError as exc:
                error, status = str(exc.detail), exc.status_code
    return render(request, "people.html", status_code=status, query=query, error=error)


routes = [
    Route("/people", people_search, methods=["GET"]),
    Route("/@{handle}/follow", follow_action, methods=["POST"]),
    Route("/@{handle}/unfollow", follow_action, methods=["POST"]),
]
