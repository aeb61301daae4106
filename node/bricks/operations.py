"""Brick operations as members run them, from the pages or the JSON API: network look-ups
first, then one transaction, then the worker is woken to deliver.

``BrickService`` is built once by the runtime (``node.runtime.Services``); a brick that does
not exist raises ``BrickNotFound`` (the web answers 404).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.activitypub.federation import Federation, FederationError
from node.bricks.files import store_files
from node.bricks.models import Brick, BrickReview
from node.bricks.pins import pin_brick
from node.bricks.service import (
    add_review,
    author_refs,
    create_brick,
    delete_brick,
    get_brick,
    prefetch_actors,
    update_brick,
)
from node.bricks.validation import BrickInput, BrickInvalid, validate_brick
from node.db import read_only, session_scope
from node.members.contributions import BricksPublished
from node.members.models import Member

__all__ = ["BrickService", "brick_fields"]


def brick_fields(brick: Brick) -> dict[str, Any]:
    """The stored brick as form/JSON input (what an edit starts from)."""
    return {
        "title": brick.title,
        "category": brick.category,
        "summary": brick.summary,
        "body": brick.body_markdown,
        "tags": brick.tag_names,
        "links": [link["href"] for link in brick.links],
        "authors": [a.actor_uri for a in brick.authors[1:]],
    }


@dataclass(frozen=True)
class BrickService:
    federation: Federation
    sessionmaker: async_sessionmaker[AsyncSession]
    files_dir: Path
    base_url: str
    #: Wakes the delivery worker once a transaction has published something.
    wake: Callable[[], None]

    async def load(self, key: str) -> Brick:
        async with read_only(self.sessionmaker) as session:
            return await get_brick(session, key)

    async def _resolve_remote_authors(self, data: BrickInput) -> BrickInput:
        """Remote co-authors (``@user@host`` or an actor URL) as fetched actor URIs."""
        names = []
        for name in data.authors:
            plain = name.strip()
            remote = plain.startswith(("http://", "https://")) or plain.lstrip("@").count("@") == 1
            if remote and not self.federation.is_local(plain):
                try:
                    uri = await self.federation.resolve_handle(plain)
                    await self.federation.get_remote_actor(uri)
                except FederationError as exc:
                    raise BrickInvalid({"authors": f"{name!r}: {exc}"}) from None
                names.append(uri)
            else:
                names.append(plain)
        return BrickInput(**{**data.__dict__, "authors": names})

    async def create(
        self,
        member: Member,
        fields: Mapping[str, Any],
        uploads: list[tuple[str, bytes]],
        *,
        published: BricksPublished | None = None,
    ) -> Brick:
        """A new brick; ``published`` (``ContributionStats.bricks_published``) is told, in
        its transaction, which local members it counts for."""
        data = await self._resolve_remote_authors(validate_brick(fields))
        files = store_files(self.files_dir, self.base_url, uploads)
        async with session_scope(self.sessionmaker) as session:
            refs = await author_refs(self.federation, session, member, data.authors)
            brick = await create_brick(
                self.federation,
                session,
                member,
                data,
                authors=refs,
                files=files,
                published=published,
            )
        self.wake()
        return brick

    async def update(
        self,
        member: Member,
        key: str,
        fields: Mapping[str, Any],
        uploads: list[tuple[str, bytes]],
        remove_files: list[str],
        *,
        published: BricksPublished | None = None,
    ) -> tuple[Brick, list[str]]:
        current = await self.load(key)
        merged = {**brick_fields(current), **fields}
        data = await self._resolve_remote_authors(validate_brick(merged))
        files = store_files(self.files_dir, self.base_url, uploads)
        async with session_scope(self.sessionmaker) as session:
            brick = await get_brick(session, key)
            refs = None
            if "authors" in fields:
                refs = await author_refs(self.federation, session, member, data.authors)
            changed = await update_brick(
                self.federation,
                session,
                brick,
                member,
                data,
                authors=refs,
                add_files=files,
                remove_files=remove_files,
                published=published,
            )
        self.wake()
        return brick, changed

    async def delete(self, member: Member, key: str) -> None:
        async with session_scope(self.sessionmaker) as session:
            brick = await get_brick(session, key)
            await delete_brick(self.federation, session, brick, member)
        self.wake()

    async def pin(
        self,
        member: Member,
        key: str,
        *,
        for_chamber: bool,
        pinned: bool,
        on_changed: Callable[[AsyncSession, str], Awaitable[None]],
    ) -> None:
        """Pin or unpin; ``on_changed(session, username)`` runs in the same transaction for
        the actor whose pinned bricks changed (the web sends its new document)."""
        async with session_scope(self.sessionmaker) as session:
            brick = await get_brick(session, key)
            changed = await pin_brick(
                self.federation, session, brick, member, for_chamber=for_chamber, pinned=pinned
            )
            if changed is not None:
                await on_changed(session, changed)
        self.wake()

    async def review(self, member: Member, key: str, rating: Any, comment: Any) -> BrickReview:
        current = await self.load(key)
        if not current.local:
            await prefetch_actors(self.federation, [a.actor_uri for a in current.authors])
        async with session_scope(self.sessionmaker) as session:
            brick = await get_brick(session, key)
            review = await add_review(
                self.federation, session, brick, member, rating=rating, comment=comment
            )
        self.wake()
        return review
