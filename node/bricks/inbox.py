"""Bricks from the fediverse: Create/Update/Delete/Announce of Articles, replies, likes.

Remote bricks are kept when a local actor follows the sender (a member or a chamber);
only the brick's origin may update or delete it. A ``Note`` replying to a brick becomes a
comment (with its ``rating`` when it carries one); ``Like`` counts.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.federation import id_of
from node.activitypub.follows import is_followed_here
from node.activitypub.inbox import ANY, InboxContext, InboxDispatcher, InboxIgnored
from node.activitypub.models import RemoteActor
from node.activitypub.notes import apply_update, forget_deleted, require_audience
from node.activitypub.urls import same_origin
from node.bricks.as2 import ArticleInvalid, BrickDocument, parse_article, parse_reply
from node.bricks.models import Brick, BrickAuthor, BrickLike, BrickReview
from node.bricks.notices import notify_review
from node.bricks.service import AuthorRef, remote_author_ref, set_authors, set_tags
from node.bricks.text import html_to_text
from node.members.models import Member

__all__ = ["on_delete", "register_brick_handlers", "rename_remote_author", "store_remote_brick"]


def _same_origin(a: str | None, b: str | None) -> bool:
    return bool(a and b) and same_origin(str(a), str(b))


def _owned_by(brick: Brick, sender: str) -> bool:
    """Only an owner changes our copy of a brick: one of its authors, or its chamber (an older
    node announces its members' ``Update``/``Delete``); another actor of the same host does not."""
    return sender == brick.chamber_uri or any(a.actor_uri == sender for a in brick.authors)


async def _author_refs(ctx: InboxContext, uris: list[str]) -> list[AuthorRef]:
    refs = []
    for uri in uris:
        username = ctx.federation.local_username(uri)
        if username is not None:
            member = (
                await ctx.session.execute(select(Member).where(Member.username == username))
            ).scalar_one_or_none()
            if member is not None:
                refs.append(
                    AuthorRef(
                        uri,
                        member.display_name or member.username,
                        f"{ctx.federation.base_url}/@{member.username}",
                        member.id,
                    )
                )
                continue
        cached = (
            await ctx.session.execute(select(RemoteActor).where(RemoteActor.uri == uri))
        ).scalar_one_or_none()
        refs.append(remote_author_ref(cached, uri))
    return refs


async def store_remote_brick(
    session: AsyncSession, doc: BrickDocument, refs: list[AuthorRef]
) -> Brick:
    """Insert or refresh the local copy of a remote brick."""
    brick = (await session.execute(select(Brick).where(Brick.uri == doc.uri))).scalar_one_or_none()
    if brick is None:
        brick = Brick(
            key=secrets.token_hex(8),
            uri=doc.uri,
            local=False,
            host=urlsplit(doc.uri).netloc.lower(),
            published_at=doc.published,
            like_count=0,
            authors=[],
            tags=[],
            body_markdown="",
        )
        session.add(brick)
    brick.url = doc.url
    brick.chamber_uri = doc.chamber_uri
    brick.title = doc.title
    brick.category = doc.category
    brick.summary = doc.summary
    brick.body_html = doc.body_html
    brick.body_text = html_to_text(doc.body_html)
    brick.links = doc.links
    brick.files = doc.files
    brick.licence = doc.licence
    brick.version = doc.version
    brick.updated_at = doc.updated
    if doc.rating_average is not None and doc.rating_count:
        brick.rating_count = doc.rating_count
        brick.rating_sum = round(doc.rating_average * doc.rating_count)
    else:
        brick.rating_count = brick.rating_count or 0
        brick.rating_sum = brick.rating_sum or 0
    brick.like_count = max(brick.like_count or 0, doc.like_count)
    set_tags(brick, doc.tags)
    set_authors(brick, refs)
    await session.flush()
    return brick


async def _upsert(ctx: InboxContext, obj: Any, sender: str, *, creating: bool) -> None:
    try:
        doc = parse_article(obj)
    except ArticleInvalid:
        return  # not a brick: the timeline handlers decide whether to keep it
    if not _same_origin(doc.uri, sender) or not all(_same_origin(a, sender) for a in doc.authors):
        return  # a brick is only accepted from its own origin
    if ctx.federation.is_local(doc.uri):
        return
    existing = (
        await ctx.session.execute(select(Brick).where(Brick.uri == doc.uri))
    ).scalar_one_or_none()
    if existing is None and not await is_followed_here(ctx.session, sender):
        return  # nobody here follows the author or the chamber of this brick
    if existing is not None and (creating or not _owned_by(existing, sender)):
        return  # a repeated Create (or the chamber's Announce after the author's Create)
    await store_remote_brick(ctx.session, doc, await _author_refs(ctx, doc.authors))


async def _delete(ctx: InboxContext, object_id: str | None, sender: str) -> None:
    if object_id is None or not _same_origin(object_id, sender):
        return
    brick = (
        await ctx.session.execute(
            select(Brick).where(Brick.uri == object_id, Brick.local.is_(False))
        )
    ).scalar_one_or_none()
    if brick is not None:
        if _owned_by(brick, sender):
            await ctx.session.delete(brick)
        return
    review = (
        await ctx.session.execute(
            select(BrickReview).where(BrickReview.uri == object_id, BrickReview.local.is_(False))
        )
    ).scalar_one_or_none()
    if review is not None and review.author_uri == sender:
        await _forget_review(ctx.session, review)


async def _forget_review(session: AsyncSession, review: BrickReview) -> None:
    if review.rating is not None:
        brick = await session.get(Brick, review.brick_id)
        if brick is not None:
            brick.rating_sum -= review.rating
            brick.rating_count = max(0, brick.rating_count - 1)
    await session.delete(review)


async def _reply(ctx: InboxContext, obj: Any) -> bool:
    reply = parse_reply(obj)
    if reply is None:
        return False
    brick = (
        await ctx.session.execute(select(Brick).where(Brick.uri == reply.in_reply_to))
    ).scalar_one_or_none()
    if brick is None:
        return False
    if reply.author != ctx.actor_uri:
        raise InboxIgnored("a reply is only accepted from its author")
    # One review (so one rating) per actor and brick: a new reply replaces the earlier one,
    # and keeps its rating when it gives none (a plain follow-up comment).
    earlier = list(
        (
            await ctx.session.execute(
                select(BrickReview).where(
                    or_(
                        BrickReview.uri == reply.uri,
                        (BrickReview.brick_id == brick.id)
                        & (BrickReview.author_uri == reply.author),
                    )
                )
            )
        ).scalars()
    )
    rating = reply.rating
    for existing in earlier:
        if existing.uri != reply.uri and existing.brick_id == brick.id and rating is None:
            rating = existing.rating
        await _forget_review(ctx.session, existing)
    if earlier:
        await ctx.session.flush()
    author = (await _author_refs(ctx, [reply.author]))[0]
    ctx.session.add(
        BrickReview(
            uri=reply.uri,
            brick_id=brick.id,
            author_uri=reply.author,
            author_name=author.name,
            author_url=author.profile_url,
            local=False,
            rating=rating,
            used=rating is not None,
            comment_html=reply.content_html,
            created_at=reply.published or ctx.federation.clock(),
        )
    )
    if rating is not None:
        brick.rating_sum += rating
        brick.rating_count += 1
    if brick.local and not any(e.uri == reply.uri for e in earlier):  # a new Note, not an edit
        await notify_review(ctx.session, brick, author.name, rating, None)
    return True


async def _on_create_article(ctx: InboxContext) -> None:
    await require_audience(ctx)
    await _upsert(ctx, ctx.object, ctx.actor_uri, creating=True)


async def rename_remote_author(ctx: InboxContext) -> None:
    """A remote author's new profile (``Update`` of itself, once our cached copy is
    refreshed): the bricks and reviews we keep show its new name."""
    cached = (
        await ctx.session.execute(select(RemoteActor).where(RemoteActor.uri == ctx.actor_uri))
    ).scalar_one_or_none()
    if cached is None:
        return
    ref = remote_author_ref(cached, ctx.actor_uri)
    await ctx.session.execute(
        update(BrickAuthor)
        .where(BrickAuthor.actor_uri == ctx.actor_uri, BrickAuthor.member_id.is_(None))
        .values(name=ref.name, profile_url=ref.profile_url)
    )
    await ctx.session.execute(
        update(BrickReview)
        .where(BrickReview.author_uri == ctx.actor_uri, BrickReview.local.is_(False))
        .values(author_name=ref.name, author_url=ref.profile_url)
    )


async def _on_update_article(ctx: InboxContext) -> None:
    await require_audience(ctx)
    await apply_update(ctx)
    await _upsert(ctx, ctx.object, ctx.actor_uri, creating=False)


async def _on_note(ctx: InboxContext) -> None:
    """A ``Note``, created or updated: a review when it replies to a brick we know (relevant
    whoever sends it), otherwise the timeline's."""
    if not await _reply(ctx, ctx.object):
        await require_audience(ctx)
    if ctx.type == "Update":
        await apply_update(ctx)


async def on_delete(ctx: InboxContext) -> None:
    """The owner's Delete: the timeline forgets what it kept about the object, and the
    brick or review goes. The runtime registers it on ``("Delete", ANY)`` together with the
    other domains' (an id alone does not say which domain holds the object)."""
    await forget_deleted(ctx)
    await _delete(ctx, id_of(ctx.object), ctx.actor_uri)


async def _on_announce(ctx: InboxContext) -> None:
    """A chamber announces its members' bricks: the Article, or the Update/Delete itself."""
    await require_audience(ctx)
    obj = ctx.object
    if not isinstance(obj, dict):
        return  # a boost by reference: we do not fetch inside the inbox transaction
    if not _same_origin(id_of(obj), ctx.actor_uri):
        return
    kind = obj.get("type")
    if kind == "Article":
        await _upsert(ctx, obj, ctx.actor_uri, creating=True)
        return
    inner_actor = id_of(obj.get("actor"))
    if not _same_origin(inner_actor, ctx.actor_uri):
        return
    inner = obj.get("object")
    if kind in ("Create", "Update") and isinstance(inner, dict) and inner.get("type") == "Article":
        await _upsert(ctx, inner, ctx.actor_uri, creating=kind == "Create")
    elif kind == "Delete":
        await _delete(ctx, id_of(inner), ctx.actor_uri)


async def _on_like(ctx: InboxContext) -> None:
    brick = (
        await ctx.session.execute(select(Brick).where(Brick.uri == id_of(ctx.object)))
    ).scalar_one_or_none()
    if brick is None:
        return
    exists = (
        await ctx.session.execute(
            select(BrickLike.id).where(
                BrickLike.brick_id == brick.id, BrickLike.actor_uri == ctx.actor_uri
            )
        )
    ).first()
    if exists is None:
        ctx.session.add(
            BrickLike(brick_id=brick.id, actor_uri=ctx.actor_uri, activity_id=ctx.activity["id"])
        )
        brick.like_count += 1


async def _on_undo_like(ctx: InboxContext) -> None:
    like = (
        await ctx.session.execute(
            select(BrickLike).where(
                BrickLike.actor_uri == ctx.actor_uri,
                BrickLike.activity_id == id_of(ctx.object),
            )
        )
    ).scalar_one_or_none()
    if like is not None:
        brick = await ctx.session.get(Brick, like.brick_id)
        if brick is not None:
            brick.like_count = max(0, brick.like_count - 1)
        await ctx.session.delete(like)


def register_brick_handlers(dispatcher: InboxDispatcher) -> None:
    """Articles (bricks), Notes (reviews when they reply to a brick), Likes; the chamber's
    Announces of its members' bricks. Other objects are the timeline's (``notes``); Delete is
    ``on_delete``, composed by the runtime."""
    dispatcher.register("Create", "Article", _on_create_article)
    dispatcher.register("Update", "Article", _on_update_article)
    dispatcher.register("Create", "Note", _on_note)
    dispatcher.register("Update", "Note", _on_note)
    for announced in ("Article", ("Create", "Article"), ("Update", "Article"), "Delete"):
        dispatcher.register("Announce", announced, _on_announce)
    dispatcher.register("Like", ANY, _on_like)
    dispatcher.register("Undo", "Like", _on_undo_like)
