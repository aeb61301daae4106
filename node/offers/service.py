"""Offers and needs: publish, close, find; remote ones kept as they arrive.

Callers open the transaction; nothing here touches the network. Publishing sends
``Create(Proposal)`` from the member to their followers and the chamber announces it to its
own; closing sends ``Delete`` from the member wherever the offer went, and the chamber
undoes its boost (``docs/protocol.md``, "Offers and needs"):
software that knows no marketplace removes the Note it showed, another chamber forgets the
offer, and here the offer stays, closed, for the exchanges that answer it.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from node import i18n
from node.activitypub.actors import get_local_actor
from node.activitypub.federation import Federation, FederationError
from node.activitypub.jsonld import proposal_context
from node.activitypub.models import LocalActor
from node.activitypub.outbox import last_sent, new_activity_id, publish
from node.bricks.text import html_to_text
from node.bricks.validation import normalize_tag
from node.clearing.units import format_minutes
from node.members.models import Member
from node.offers.as2 import PUBLIC, OfferDocument, description_html, proposal
from node.offers.models import Offer, OfferKind, OfferState, OfferStates
from node.offers.validation import OfferInput
from node.process_store import move, start

__all__ = [
    "MAX_PAGE",
    "OfferForbidden",
    "OfferNotFound",
    "OfferPage",
    "OfferQuery",
    "Scope",
    "answered_offer",
    "close_offer",
    "create_offer",
    "document_of",
    "find_offer",
    "get_offer",
    "headline",
    "offer_proposal",
    "offers_of",
    "search_offers",
    "store_remote_offer",
]

Scope = Literal["local", "federated", "all"]
MAX_PAGE = 100
_WORD = re.compile(r"\w+", re.UNICODE)


class OfferNotFound(LookupError):
    pass


class OfferForbidden(PermissionError):
    pass


@dataclass(frozen=True)
class OfferQuery:
    q: str = ""
    tag: str | None = None
    kind: str | None = None
    chamber: str | None = None  # a host
    scope: Scope = "all"
    cursor: int | None = None
    limit: int = 20


@dataclass(frozen=True)
class OfferPage:
    items: list[Offer]
    next_cursor: int | None


def _tags_text(tags: list[str]) -> str:
    return f" {' '.join(tags)} " if tags else ""


def _index(offer: Offer) -> None:
    """What search reads: the tags between spaces, the words in lower case."""
    offer.tags_text = _tags_text(list(offer.tags))
    offer.search_text = f"{offer.title}\n{offer.description}\n{offer.tags_text}".lower()


def headline(kind: str, title: str, minutes: int | None) -> str:
    """ "I propose: title · 1 h 30" in the current language (the ``summary`` others read)."""
    if kind == OfferKind.OFFER:
        text = i18n.gettext("I propose: %(title)s") % {"title": title}
    else:
        text = i18n.gettext("I am looking for: %(title)s") % {"title": title}
    return f"{text} · {format_minutes(minutes)}" if minutes else text


def document_of(offer: Offer) -> OfferDocument:
    return OfferDocument(
        uri=offer.uri,
        url=offer.url,
        kind=offer.kind,
        title=offer.title,
        description_html=offer.description_html,
        author=offer.author_uri,
        published=offer.published_at,
        updated=offer.updated_at,
        tags=list(offer.tags),
        minutes=offer.minutes,
        bricks=list(offer.bricks),
        chamber_uri=offer.chamber_uri,
    )


def _tag_url(federation: Federation, tag: str) -> str:
    return f"{federation.base_url}/offers?tag={quote(tag)}"


def offer_proposal(federation: Federation, offer: Offer) -> dict[str, Any]:
    """The ``Proposal`` of a local offer, addressed to the author's and chamber's followers."""
    cc = [f"{offer.author_uri}/followers"] if federation.is_local(offer.author_uri) else []
    if offer.local:
        cc.append(federation.urls(federation.instance_username).followers)
    return proposal(
        document_of(offer),
        headline=headline(offer.kind, offer.title, offer.minutes),
        tag_url=lambda t: _tag_url(federation, t),
        cc=cc,
    )


async def get_offer(session: AsyncSession, key: str) -> Offer:
    offer = (await session.execute(select(Offer).where(Offer.key == key))).scalar_one_or_none()
    if offer is None:
        raise OfferNotFound(f"no offer {key!r} here")
    return offer


async def find_offer(session: AsyncSession, reference: str) -> Offer | None:
    """An offer by its key, its id or its page's URL."""
    reference = reference.strip()
    return (
        await session.execute(
            select(Offer).where(
                or_(Offer.key == reference, Offer.uri == reference, Offer.url == reference)
            )
        )
    ).scalar_one_or_none()


async def answered_offer(session: AsyncSession, reference: str, other_uri: str) -> str:
    """The id of the offer an exchange with ``other_uri`` answers: ``OfferNotFound`` when
    there is no such offer here, ``OfferForbidden`` when someone else published it."""
    offer = await find_offer(session, reference)
    if offer is None:
        raise OfferNotFound(f"no offer {reference!r} here")
    if offer.author_uri != other_uri:
        raise OfferForbidden("the offer's author is not the other party")
    return offer.uri


async def _local_actor(session: AsyncSession, username: str) -> LocalActor:
    actor = await get_local_actor(session, username)
    if actor is None:
        raise FederationError(f"no local actor {username!r}")
    return actor


async def _federate(
    federation: Federation,
    session: AsyncSession,
    member: Member,
    activity_type: str,
    obj: dict[str, Any],
    object_id: str,
) -> None:
    """``activity_type`` from the member to their followers; the chamber boosts a new offer.

    As for bricks (``node.activitypub.outbox``'s delivery records): a ``Delete`` goes from
    the author to every inbox the offer reached (through the author or the chamber's boost)
    and to the current followers, and the chamber undoes its boost."""
    actor = await _local_actor(session, member.username)
    urls = federation.urls(actor.username)
    chamber = await _local_actor(session, federation.instance_username)
    chamber_urls = federation.urls(chamber.username)
    creating = activity_type == "Create"
    await publish(
        federation,
        session,
        actor,
        {
            "@context": proposal_context(),
            "id": new_activity_id(federation, actor),
            "type": activity_type,
            "object": obj,
            "to": [PUBLIC],
            "cc": [urls.followers, chamber_urls.followers],
        },
        to_followers=True,
        to_recipients_of=None if creating else object_id,
    )
    if creating:
        await publish(
            federation,
            session,
            chamber,
            {
                "@context": proposal_context(),
                "type": "Announce",
                "object": obj,
                "to": [PUBLIC],
                "cc": [chamber_urls.followers],
            },
            to_followers=True,
        )
        return
    boost = await last_sent(session, object_id, actor_uri=chamber_urls.id, types=["Announce"])
    if boost is not None:
        announce = {k: v for k, v in boost.document.items() if k not in ("@context", "proof")}
        await publish(
            federation,
            session,
            chamber,
            {
                "@context": proposal_context(),
                "type": "Undo",
                "object": announce,
                "to": [PUBLIC],
                "cc": [chamber_urls.followers],
            },
            to_followers=True,
            to_recipients_of=object_id,
        )


async def create_offer(
    federation: Federation, session: AsyncSession, member: Member, data: OfferInput
) -> Offer:
    """A new offer or need of ``member``, federated as ``Create(Proposal)``."""
    now = federation.clock()
    key = secrets.token_hex(8)
    uri = f"{federation.base_url}/offers/{key}"
    described = description_html(data.description)
    offer = Offer(
        key=key,
        uri=uri,
        url=uri,
        local=True,
        kind=data.kind,
        title=data.title,
        description=data.description,
        description_html=described,
        tags=list(data.tags),
        minutes=data.minutes,
        bricks=list(data.bricks),
        author_uri=federation.urls(member.username).id,
        author_name=member.display_name or member.username,
        author_url=f"{federation.base_url}/@{member.username}",
        member_id=member.id,
        host=urlsplit(federation.base_url).netloc.lower(),
        chamber_uri=federation.urls(federation.instance_username).id,
        chamber_name="",
        published_at=now,
        updated_at=now,
    )
    _index(offer)
    start(session, OfferStates, offer, OfferStates.open, subject=offer.uri, now=now)
    session.add(offer)
    await session.flush()
    document = offer_proposal(federation, offer)
    await _federate(federation, session, member, "Create", document, offer.uri)
    return offer


async def close_offer(
    federation: Federation, session: AsyncSession, offer: Offer, member: Member
) -> bool:
    """The author closes their offer; returns False when it was already closed (nothing
    sent again). Federated as ``Delete`` with a ``Tombstone``."""
    if not offer.local or offer.member_id != member.id:
        raise OfferForbidden("only the author of an offer can close it")
    if offer.state == OfferState.CLOSED:
        return False
    now = federation.clock()
    move(
        session,
        OfferStates,
        offer,
        OfferStates.closed,
        subject=offer.uri,
        now=now,
        by=offer.author_uri,
    )
    offer.closed_at = now
    offer.updated_at = now
    tombstone = {
        "id": offer.uri,
        "type": "Tombstone",
        "formerType": "Proposal",
        "deleted": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    await _federate(federation, session, member, "Delete", tombstone, offer.uri)
    await session.flush()
    return True


async def store_remote_offer(
    session: AsyncSession,
    doc: OfferDocument,
    *,
    author_name: str,
    author_url: str,
    chamber_name: str,
    now: datetime,
) -> Offer:
    """Insert or refresh the local copy of a remote offer or need."""
    offer = (await session.execute(select(Offer).where(Offer.uri == doc.uri))).scalar_one_or_none()
    if offer is None:
        offer = Offer(
            key=secrets.token_hex(8),
            uri=doc.uri,
            local=False,
            host=urlsplit(doc.uri).netloc.lower(),
            published_at=doc.published,
            description="",
        )
        start(session, OfferStates, offer, OfferStates.open, subject=doc.uri, now=now)
        session.add(offer)
    offer.url = doc.url
    offer.kind = doc.kind
    offer.title = doc.title
    offer.description_html = doc.description_html
    offer.description = html_to_text(doc.description_html)[:5000]
    offer.tags = list(doc.tags)
    offer.minutes = doc.minutes
    offer.bricks = list(doc.bricks)
    offer.author_uri = doc.author
    offer.author_name = author_name[:200]
    offer.author_url = author_url[:2048]
    offer.chamber_uri = doc.chamber_uri
    offer.chamber_name = chamber_name[:255]
    offer.updated_at = max(doc.updated, doc.published) if doc.updated else now
    _index(offer)
    await session.flush()
    return offer


def _words(q: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(q)][:12]


def _escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search_offers(session: AsyncSession, query: OfferQuery) -> OfferPage:
    """Open offers and needs, newest first, every word of ``q`` in the title, the
    description or the tags; paged by keyset (the last id seen)."""
    limit = max(1, min(query.limit, MAX_PAGE))
    statement: Select[Any] = select(Offer).where(Offer.state == OfferState.OPEN)
    if query.scope == "local":
        statement = statement.where(Offer.local.is_(True))
    elif query.scope == "federated":
        statement = statement.where(Offer.local.is_(False))
    if query.kind:
        statement = statement.where(Offer.kind == query.kind)
    if query.chamber:
        statement = statement.where(Offer.host == query.chamber.lower())
    if query.tag:
        tag = normalize_tag(query.tag)
        statement = statement.where(Offer.tags_text.like(f"% {_escape_like(tag)} %", escape="\\"))
    for word in _words(query.q):
        pattern = f"%{_escape_like(word)}%"
        statement = statement.where(Offer.search_text.like(pattern, escape="\\"))
    if query.cursor is not None:
        statement = statement.where(Offer.id < query.cursor)
    rows = list(
        (await session.execute(statement.order_by(Offer.id.desc()).limit(limit + 1))).scalars()
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return OfferPage(items=rows, next_cursor=rows[-1].id if more and rows else None)


async def offers_of(session: AsyncSession, member_ids: list[int]) -> dict[int, list[Offer]]:
    """The open offers and needs of these members, newest first (the directory)."""
    found: dict[int, list[Offer]] = {m: [] for m in member_ids}
    if not member_ids:
        return found
    rows = await session.execute(
        select(Offer)
        .where(Offer.member_id.in_(member_ids), Offer.state == OfferState.OPEN)
        .order_by(Offer.id.desc())
    )
    for offer in rows.scalars():
        if offer.member_id is not None:
            found[offer.member_id].append(offer)
    return found
