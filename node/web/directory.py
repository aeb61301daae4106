"""``/directory``: the members who chose to appear (``Member.directory_listed``, off by
default, set on the account page) with their tags, bricks and open offers, and the partner
chambers with a link to their own directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from node.bricks.models import Brick, BrickAuthor
from node.clearing.partners.models import Partner
from node.db import read_only
from node.members.models import Member, MemberStatus
from node.offers import Offer, offers_of
from node.web.auth import current_member
from node.web.context import node_context
from node.web.templating import render

__all__ = ["routes"]

MAX_LISTED = 500
MAX_BRICKS = 5


@dataclass
class Entry:
    member: Member
    offers: list[Offer] = field(default_factory=list)
    bricks: list[tuple[str, str]] = field(default_factory=list)  # (title, key)
    tags: list[str] = field(default_factory=list)


async def directory(request: Request) -> Response:
    node = node_context(request)
    async with read_only(node.sessionmaker) as session:
        members = list(
            (
                await session.execute(
                    select(Member)
                    .where(
                        Member.directory_listed.is_(True), Member.status == MemberStatus.APPROVED
                    )
                    .order_by(Member.username)
                    .limit(MAX_LISTED)
                )
            ).scalars()
        )
        entries = {m.id: Entry(m) for m in members}
        for member_id, offers in (await offers_of(session, list(entries))).items():
            entries[member_id].offers = offers
        bricks = await session.execute(
            select(BrickAuthor.member_id, Brick)
            .join(Brick, Brick.id == BrickAuthor.brick_id)
            .where(BrickAuthor.member_id.in_(list(entries)), Brick.local.is_(True))
            .order_by(Brick.id.desc())
        )
        for author_id, brick in bricks.all():
            entry = entries.get(author_id or 0)
            if entry is None:
                continue
            if len(entry.bricks) < MAX_BRICKS:
                entry.bricks.append((brick.title, brick.key))
            entry.tags += brick.tag_names
        partners = list(
            (await session.execute(select(Partner).order_by(Partner.name, Partner.id))).scalars()
        )
    for entry in entries.values():
        for offer in entry.offers:
            entry.tags += offer.tags
        entry.tags = sorted(set(entry.tags))
    chambers = []
    for partner in partners:
        parts = urlsplit(partner.chamber_uri)
        chambers.append(
            {
                "name": partner.name or parts.netloc,
                "directory": f"{parts.scheme}://{parts.netloc}/directory",
                "confirmed": partner.confirmed_at is not None,
            }
        )
    return render(
        request,
        "offers/directory.html",
        entries=list(entries.values()),
        chambers=chambers,
        member=await current_member(request),
    )


routes = [Route("/directory", directory, methods=["GET"])]
