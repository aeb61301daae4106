"""People and chambers by name: one way to show an actor, local or remote, on every page.

``load_people`` reads what this node knows of some actors (members, the cached documents of
remote actors, partner chambers) in one go, before a page renders; the ``person`` Jinja
helper shows one of them as its display name linked to our page for it (``/@user@host``),
its handle and, for someone of another chamber, that chamber's name. Names from remote
documents are reduced to plain text; an actor this node never fetched is named after its
address's last segment, never shown as a raw URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.federation import Federation, authority_of
from node.activitypub.models import RemoteActor
from node.bricks.text import html_to_text, sanitize_html
from node.clearing.partners.models import Partner
from node.config import Settings
from node.members.models import Member

__all__ = [
    "CHAMBER_TYPES",
    "MIRROR_PREFIX",
    "People",
    "brick_uris",
    "Person",
    "display_name",
    "load_people",
    "person_html",
    "remote_person",
]

CHAMBER_TYPES = frozenset({"Group", "Organization"})
#: Mirror accounts of partner chambers in the ledger (``node.clearing.ledger.models``).
MIRROR_PREFIX = "chamber:"
_NAME_LENGTH = 100


@dataclass(frozen=True)
class Person:
    """An actor as pages show it; ``url`` is our page for it, ``chamber`` the name of its
    chamber ("" for a chamber itself)."""

    uri: str
    name: str
    handle: str
    chamber: str
    url: str
    local: bool
    is_chamber: bool = False
    avatar: str | None = None
    summary_html: str = ""


def display_name(value: Any, fallback: str) -> str:
    """A name from a remote document as plain text on one line (tags and emoji codes kept
    out of markup), or ``fallback``."""
    if not isinstance(value, str):
        return fallback
    text = " ".join(html_to_text(value).split())[:_NAME_LENGTH]
    return text or fallback


def _kinds(document: dict[str, Any]) -> set[str]:
    kind = document.get("type")
    return {k for k in (kind if isinstance(kind, list) else [kind]) if isinstance(k, str)}


def _last_segment(uri: str) -> str:
    path = urlsplit(uri).path.rstrip("/")
    return (path.rsplit("/", 1)[-1] or authority_of(uri)).lstrip("@")


def remote_person(uri: str, document: dict[str, Any] | None, chamber: str) -> Person:
    """A remote actor from its cached document (or only its URI when never fetched)."""
    document = document or {}
    user = document.get("preferredUsername")
    user = user if isinstance(user, str) and user and "/" not in user else _last_segment(uri)
    host = authority_of(uri)
    is_chamber = bool(_kinds(document) & CHAMBER_TYPES)
    icon = document.get("icon")
    icon_url = icon.get("url") if isinstance(icon, dict) else icon
    summary = document.get("summary")
    return Person(
        uri=uri,
        name=display_name(document.get("name"), user),
        handle=f"@{user}@{host}",
        chamber="" if is_chamber else chamber,
        url=f"/@{user}@{host}",
        local=False,
        is_chamber=is_chamber,
        avatar=icon_url if isinstance(icon_url, str) and icon_url.startswith("https://") else None,
        summary_html=sanitize_html(summary) if isinstance(summary, str) else "",
    )


class People:
    """Persons by actor URI (or mirror account key); an unknown one is made from its URI."""

    def __init__(self, known: dict[str, Person], chambers: dict[str, str], settings: Settings):
        self._known = known
        self._chambers = chambers
        self._settings = settings

    def __getitem__(self, uri: str) -> Person:
        found = self._known.get(uri)
        if found is not None:
            return found
        if uri.startswith(MIRROR_PREFIX):
            return self[uri[len(MIRROR_PREFIX) :]]
        try:
            host = authority_of(uri)
        except ValueError:
            host = ""
        return remote_person(uri, None, self._chambers.get(host, host))

    def get(self, uri: str | None) -> Person | None:
        return self[uri] if uri else None

    def chamber_names(self) -> dict[str, str]:
        """Chamber names by host (``host:port``), for the chambers these people belong to."""
        names = dict(self._chambers)
        names[self._settings.host] = self._settings.name
        for person in self._known.values():
            if person.is_chamber:
                names[authority_of(person.uri)] = person.name
        return names

    def chamber_name(self, host: str) -> str:
        return self.chamber_names().get(host, host)


async def _chamber_names(session: AsyncSession, hosts: set[str]) -> dict[str, str]:
    """The name of the chamber on each host: a partner's, else a cached Group's, else none."""
    names: dict[str, str] = {}
    if not hosts:
        return names
    for partner in (await session.execute(select(Partner))).scalars():
        try:
            host = authority_of(partner.chamber_uri)
        except ValueError:
            continue
        if host in hosts and partner.name:
            names[host] = display_name(partner.name, host)
    missing = hosts - names.keys()
    if missing:
        rows = await session.execute(select(RemoteActor).where(RemoteActor.host.in_(missing)))
        for actor in rows.scalars():
            if _kinds(actor.document) & CHAMBER_TYPES and actor.host not in names:
                names[actor.host] = display_name(actor.document.get("name"), actor.host)
    return names


async def load_people(
    session: AsyncSession,
    federation: Federation,
    settings: Settings,
    uris: Iterable[str | None],
) -> People:
    """What pages need to name these actors (mirror keys ``chamber:URI`` too)."""
    wanted = {u[len(MIRROR_PREFIX) :] if u.startswith(MIRROR_PREFIX) else u for u in uris if u}
    known: dict[str, Person] = {}
    local_names: dict[str, str] = {}
    remote: list[str] = []
    for uri in wanted:
        username = federation.local_username(uri)
        if username is not None:
            local_names[username] = uri
        elif not federation.is_local(uri):
            remote.append(uri)
    if settings.chamber_username in local_names:
        uri = local_names.pop(settings.chamber_username)
        known[uri] = Person(
            uri, settings.name, f"@{settings.chamber_username}@{settings.host}", "", "/", True, True
        )
    if local_names:
        rows = await session.execute(select(Member).where(Member.username.in_(local_names)))
        for member in rows.scalars():
            uri = local_names[member.username]
            known[uri] = Person(
                uri=uri,
                name=member.display_name or member.username,
                handle=f"@{member.username}@{settings.host}",
                chamber=settings.name,
                url=f"/@{member.username}",
                local=True,
                avatar=member.avatar_url,
            )
    hosts = set()
    for uri in remote:
        try:
            hosts.add(authority_of(uri))
        except ValueError:
            continue
    chambers = await _chamber_names(session, hosts)
    if remote:
        actors = await session.execute(select(RemoteActor).where(RemoteActor.uri.in_(remote)))
        for actor in actors.scalars():
            known[actor.uri] = remote_person(
                actor.uri, actor.document, chambers.get(actor.host, actor.host)
            )
    for partner in (await session.execute(select(Partner))).scalars():
        if partner.chamber_uri in wanted and partner.chamber_uri not in known:
            host = authority_of(partner.chamber_uri)
            fallback = remote_person(partner.chamber_uri, None, "")
            user = fallback.handle.split("@")[1]
            known[partner.chamber_uri] = Person(
                uri=partner.chamber_uri,
                name=display_name(partner.name, host),
                handle=partner.handle or fallback.handle,
                chamber="",
                url=f"/@{user}@{host}",
                local=False,
                is_chamber=True,
            )
    return People(known, chambers, settings)


def brick_uris(bricks: Iterable[Any]) -> list[str]:
    """The actors a list of bricks names: their authors and their chambers."""
    return [u for b in bricks for u in (*(a.actor_uri for a in b.authors), b.chamber_uri) if u]


def person_html(person: Person | None, *, chamber: bool = True) -> Markup:
    """``<a href="/@user@host">Name</a> @user@host · Chamber``: the one way pages show an actor."""
    if person is None:
        return Markup("")
    parts = [
        Markup(
            '<span class="person"><a href="{url}">{name}</a> <span class="handle">{handle}</span>'
        ).format(url=person.url, name=person.name, handle=person.handle)
    ]
    if chamber and person.chamber and not person.local:
        parts.append(Markup(' · <span class="chamber">{}</span>').format(person.chamber))
    parts.append(Markup("</span>"))
    return Markup("").join(parts)
