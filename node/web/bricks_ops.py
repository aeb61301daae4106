"""Brick operations as the routes run them: network look-ups first, then one transaction,
then the worker is woken to deliver. Shared by the pages and the JSON API."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.federation import FederationError
from node.bricks.files import store_files
from node.bricks.models import Brick
from node.bricks.service import (
    BrickNotFound,
    add_review,
    author_refs,
    create_brick,
    delete_brick,
    get_brick,
    pin_brick,
    prefetch_actors,
    update_brick,
)
from node.bricks.validation import BrickInput, BrickInvalid, validate_brick
from node.db import read_only, session_scope
from node.members.models import Member
from node.web.bricks_forms import BrickPayload
from node.web.context import NodeContext
from node.web.errors import ApiError
from node.web.profiles import federate_profile

__all__ = [
    "brick_fields",
    "create_from_payload",
    "delete_by_key",
    "load_brick",
    "review_by_key",
    "update_from_payload",
]


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


async def load_brick(node: NodeContext, key: str) -> Brick:
    async with read_only(node.sessionmaker) as session:
        try:
            return await get_brick(session, key)
        except BrickNotFound as exc:
            raise ApiError(404, str(exc)) from None


async def _resolve_remote_authors(node: NodeContext, data: BrickInput) -> BrickInput:
    """Remote co-authors (``@user@host`` or an actor URL) as fetched actor URIs."""
    federation = node.federation
    names = []
    for name in data.authors:
        plain = name.strip()
        remote = plain.startswith(("http://", "https://")) or plain.lstrip("@").count("@") == 1
        if remote and not federation.is_local(plain):
            try:
                uri = await federation.resolve_handle(plain)
                await federation.get_remote_actor(uri)
            except FederationError as exc:
                raise BrickInvalid({"authors": f"{name!r}: {exc}"}) from None
            names.append(uri)
        else:
            names.append(plain)
    return BrickInput(**{**data.__dict__, "authors": names})


async def create_from_payload(node: NodeContext, member: Member, payload: BrickPayload) -> Brick:
    data = await _resolve_remote_authors(node, validate_brick(payload.data))
    files = store_files(node.settings.files_dir, node.settings.url, payload.uploads)
    async with session_scope(node.sessionmaker) as session:
        refs = await author_refs(node.federation, session, member, data.authors)
        brick = await create_brick(
            node.federation,
            session,
            member,
            data,
            authors=refs,
            files=files,
            published=node.contributions.bricks_published,
        )
    node.worker.wakeup.set()
    return brick


async def _locked_brick(session: AsyncSession, key: str) -> Brick:
    try:
        return await get_brick(session, key)
    except BrickNotFound as exc:
        raise ApiError(404, str(exc)) from None


async def update_from_payload(
    node: NodeContext, member: Member, key: str, payload: BrickPayload
) -> tuple[Brick, list[str]]:
    current = await load_brick(node, key)
    merged = {**brick_fields(current), **payload.data}
    data = await _resolve_remote_authors(node, validate_brick(merged))
    files = store_files(node.settings.files_dir, node.settings.url, payload.uploads)
    async with session_scope(node.sessionmaker) as session:
        brick = await _locked_brick(session, key)
        refs = None
        if "authors" in payload.data:
            refs = await author_refs(node.federation, session, member, data.authors)
        changed = await update_brick(
            node.federation,
            session,
            brick,
            member,
            data,
            authors=refs,
            add_files=files,
            remove_files=payload.remove_files,
            published=node.contributions.bricks_published,
        )
    node.worker.wakeup.set()
    return brick, changed


async def delete_by_key(node: NodeContext, member: Member, key: str) -> None:
    async with session_scope(node.sessionmaker) as session:
        brick = await _locked_brick(session, key)
        await delete_brick(node.federation, session, brick, member)
    node.worker.wakeup.set()


async def pin_by_key(
    node: NodeContext, member: Member, key: str, *, for_chamber: bool, pinned: bool
) -> None:
    """Pin or unpin; the actor whose pinned bricks changed sends its new document."""
    async with session_scope(node.sessionmaker) as session:
        brick = await _locked_brick(session, key)
        changed = await pin_brick(
            node.federation, session, brick, member, for_chamber=for_chamber, pinned=pinned
        )
        if changed is not None:
            await federate_profile(
                node.federation, session, node.settings, changed, node.contributions
            )
    node.worker.wakeup.set()


async def review_by_key(
    node: NodeContext, member: Member, key: str, rating: Any, comment: Any
) -> Any:
    current = await load_brick(node, key)
    if not current.local:
        await prefetch_actors(node.federation, [a.actor_uri for a in current.authors])
    async with session_scope(node.sessionmaker) as session:
        brick = await _locked_brick(session, key)
        review = await add_review(
            node.federation, session, brick, member, rating=rating, comment=comment
        )
    node.worker.wakeup.set()
    return review
