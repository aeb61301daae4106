"""Follow, Accept, Reject, Undo(Follow), Block, Delete(actor) and Update(actor), both
directions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.federation import Federation, FederationError, id_of
from node.activitypub.inbox import ACTOR, ANY, InboxContext, InboxDispatcher, InboxRejected
from node.activitypub.models import (
    Follow,
    FollowState,
    FollowStates,
    LocalActor,
    RemoteActor,
    follow_subject,
)
from node.activitypub.outbox import new_activity_id, publish
from node.process_store import move, start

__all__ = [
    "OnActorUpdated",
    "OnFollowed",
    "answer_follow_request",
    "follow",
    "following_of",
    "is_followed_here",
    "followers_of",
    "register_follow_handlers",
    "unfollow",
]


async def _get_follow(session: AsyncSession, follower: str, followee: str) -> Follow | None:
    return (
        await session.execute(
            select(Follow).where(Follow.follower_uri == follower, Follow.followee_uri == followee)
        )
    ).scalar_one_or_none()


async def follow(
    federation: Federation, session: AsyncSession, actor: LocalActor, target_uri: str
) -> Follow:
    """``actor`` asks to follow a remote actor (fetched beforehand with
    ``Federation.get_remote_actor``): a pending follow until it answers."""
    remote = await federation.cached_actor(session, target_uri)
    me = federation.urls(actor.username).id
    existing = await _get_follow(session, me, remote.uri)
    if existing is not None and existing.state == FollowState.ACCEPTED:
        return existing
    now = federation.clock()
    activity_id = new_activity_id(federation, actor)
    if existing is None:
        existing = Follow(
            follower_uri=me,
            followee_uri=remote.uri,
            follow_activity_id=activity_id,
            created_at=now,
            updated_at=now,
        )
        start(
            session,
            FollowStates,
            existing,
            FollowStates.pending,
            subject=follow_subject(existing),
            now=now,
            by=me,
        )
        session.add(existing)
    else:
        existing.follow_activity_id = activity_id
        if existing.state != FollowState.PENDING:
            move(
                session,
                FollowStates,
                existing,
                FollowStates.pending,
                subject=follow_subject(existing),
                now=now,
                by=me,
            )
        existing.updated_at = now
    await session.flush()
    await publish(
        federation,
        session,
        actor,
        {"id": activity_id, "type": "Follow", "object": remote.uri, "to": [remote.uri]},
        inboxes=[remote.inbox],
    )
    return existing


async def unfollow(
    federation: Federation, session: AsyncSession, actor: LocalActor, target_uri: str
) -> bool:
    """Undo the follow; False when there was none."""
    me = federation.urls(actor.username).id
    existing = await _get_follow(session, me, target_uri)
    if existing is None:
        return False
    remote = await federation.cached_actor(session, target_uri)
    await publish(
        federation,
        session,
        actor,
        {
            "type": "Undo",
            "object": {
                "id": existing.follow_activity_id,
                "type": "Follow",
                "actor": me,
                "object": target_uri,
            },
            "to": [target_uri],
        },
        inboxes=[remote.inbox],
    )
    await session.delete(existing)
    return True


async def answer_follow_request(
    federation: Federation,
    session: AsyncSession,
    actor: LocalActor,
    follower_uri: str,
    *,
    accept: bool,
) -> None:
    """A member who approves followers by hand accepts or rejects a pending request."""
    me = federation.urls(actor.username).id
    request = await _get_follow(session, follower_uri, me)
    if request is None:
        raise FederationError(f"{follower_uri} has not asked to follow {me}")
    await _answer(federation, session, actor, request, accept=accept)


async def _answer(
    federation: Federation,
    session: AsyncSession,
    actor: LocalActor,
    request: Follow,
    *,
    accept: bool,
) -> None:
    remote = await federation.cached_actor(session, request.follower_uri)
    me = federation.urls(actor.username).id
    await publish(
        federation,
        session,
        actor,
        {
            "type": "Accept" if accept else "Reject",
            "object": {
                "id": request.follow_activity_id,
                "type": "Follow",
                "actor": request.follower_uri,
                "object": me,
            },
            "to": [request.follower_uri],
        },
        inboxes=[remote.inbox],
    )
    if accept:
        _accepted(session, request, federation.clock())
    else:
        await session.delete(request)


def _accepted(session: AsyncSession, request: Follow, now: datetime) -> None:
    """The follow is accepted (a repeated Accept changes nothing)."""
    if request.state != FollowState.ACCEPTED:
        move(
            session,
            FollowStates,
            request,
            FollowStates.accepted,
            subject=follow_subject(request),
            now=now,
            by=request.followee_uri,
        )
    request.updated_at = now


async def followers_of(session: AsyncSession, actor_uri: str) -> list[str]:
    rows = await session.execute(
        select(Follow.follower_uri)
        .where(Follow.followee_uri == actor_uri, Follow.state == FollowState.ACCEPTED)
        .order_by(Follow.id)
    )
    return list(rows.scalars())


async def is_followed_here(session: AsyncSession, actor_uri: str) -> bool:
    """Whether an actor here follows ``actor_uri``, or has asked to: what it sends after our
    ``Follow`` may arrive before its ``Accept`` (deliveries to one host are not ordered)."""
    row = await session.execute(
        select(Follow.id)
        .where(
            Follow.followee_uri == actor_uri,
            Follow.state.in_([FollowState.ACCEPTED, FollowState.PENDING]),
        )
        .limit(1)
    )
    return row.first() is not None


async def following_of(session: AsyncSession, actor_uri: str) -> list[str]:
    rows = await session.execute(
        select(Follow.followee_uri)
        .where(Follow.follower_uri == actor_uri, Follow.state == FollowState.ACCEPTED)
        .order_by(Follow.id)
    )
    return list(rows.scalars())


# --- incoming --------------------------------------------------------------------------------


async def _local_target(ctx: InboxContext, uri: str | None) -> LocalActor:
    username = ctx.federation.local_username(uri or "")
    actor = None
    if username is not None:
        actor = (
            await ctx.session.execute(select(LocalActor).where(LocalActor.username == username))
        ).scalar_one_or_none()
    if actor is None:
        raise InboxRejected(404, f"{uri} is not an actor of this node", "noRecipient")
    return actor


#: Called in the inbox's transaction when a remote actor follows a local one (or asks to):
#: ``(session, followed actor, follower URI, pending)``. Registered by the runtime, so that
#: domains hear of it without this layer knowing them.
OnFollowed = Callable[[AsyncSession, LocalActor, str, bool], Awaitable[None]]


def _on_follow_handler(on_followed: OnFollowed | None) -> Any:
    async def handle(ctx: InboxContext) -> None:
        target = await _on_follow(ctx)
        if target is not None and on_followed is not None:
            actor, state = target
            await on_followed(ctx.session, actor, ctx.actor_uri, state == FollowState.PENDING)

    return handle


async def _on_follow(ctx: InboxContext) -> tuple[LocalActor, str] | None:
    """Store the request and accept it unless the target approves by hand; returns the
    target and the request's state when it is new (None for a repeated follow)."""
    target = await _local_target(ctx, id_of(ctx.object))
    await ctx.federation.cached_actor(ctx.session, ctx.actor_uri)  # fetched to verify
    me = ctx.federation.urls(target.username).id
    now = ctx.federation.clock()
    request = await _get_follow(ctx.session, ctx.actor_uri, me)
    was_new = request is None
    if request is None:
        request = Follow(
            follower_uri=ctx.actor_uri,
            followee_uri=me,
            follow_activity_id=ctx.activity["id"],
            created_at=now,
            updated_at=now,
        )
        start(
            ctx.session,
            FollowStates,
            request,
            FollowStates.pending,
            subject=follow_subject(request),
            now=now,
            by=ctx.actor_uri,
        )
        ctx.session.add(request)
    else:
        request.follow_activity_id = ctx.activity["id"]
        request.updated_at = now
    await ctx.session.flush()
    if request.state == FollowState.ACCEPTED or not target.manually_approves_followers:
        await _answer(ctx.federation, ctx.session, target, request, accept=True)
    return (target, request.state) if was_new else None


def _follow_reference(obj: Any) -> tuple[str | None, str | None, str | None]:
    """(follow id, follower, followee) from an id or an embedded Follow."""
    if isinstance(obj, dict):
        return id_of(obj), id_of(obj.get("actor")), id_of(obj.get("object"))
    return id_of(obj), None, None


async def _our_follow(ctx: InboxContext) -> Follow | None:
    follow_id, follower, followee = _follow_reference(ctx.object)
    query = select(Follow).where(Follow.followee_uri == ctx.actor_uri)
    if follow_id:
        found = (
            await ctx.session.execute(query.where(Follow.follow_activity_id == follow_id))
        ).scalar_one_or_none()
        if found is not None:
            return found
    if follower and followee == ctx.actor_uri and ctx.federation.is_local(follower):
        return await _get_follow(ctx.session, follower, ctx.actor_uri)
    return None


async def _on_accept(ctx: InboxContext) -> None:
    request = await _our_follow(ctx)
    if request is not None:
        _accepted(ctx.session, request, ctx.federation.clock())


async def _on_reject(ctx: InboxContext) -> None:
    request = await _our_follow(ctx)
    if request is not None:
        await ctx.session.delete(request)


async def _on_undo(ctx: InboxContext) -> None:
    follow_id, follower, followee = _follow_reference(ctx.object)
    if follower is not None and follower != ctx.actor_uri:
        raise InboxRejected(403, "an actor can only undo its own follow", "actorMismatch")
    query = delete(Follow).where(Follow.follower_uri == ctx.actor_uri)
    if followee is not None:
        await ctx.session.execute(query.where(Follow.followee_uri == followee))
    elif follow_id is not None:
        await ctx.session.execute(query.where(Follow.follow_activity_id == follow_id))


async def _forget_actor(session: AsyncSession, uri: str) -> None:
    await session.execute(
        delete(Follow).where((Follow.follower_uri == uri) | (Follow.followee_uri == uri))
    )


async def _on_block(ctx: InboxContext) -> None:
    target = await _local_target(ctx, id_of(ctx.object))
    me = ctx.federation.urls(target.username).id
    await ctx.session.execute(
        delete(Follow).where(
            ((Follow.follower_uri == ctx.actor_uri) & (Follow.followee_uri == me))
            | ((Follow.follower_uri == me) & (Follow.followee_uri == ctx.actor_uri))
        )
    )


async def _on_delete_actor(ctx: InboxContext) -> None:
    await _forget_actor(ctx.session, ctx.actor_uri)
    remote = (
        await ctx.session.execute(select(RemoteActor).where(RemoteActor.uri == ctx.actor_uri))
    ).scalar_one_or_none()
    if remote is not None:
        remote.gone_at = ctx.federation.clock()


#: Called after an actor's ``Update`` of itself refreshed our cached copy (the bricks show
#: the author's new name), in the inbox transaction.
OnActorUpdated = Callable[[InboxContext], Awaitable[None]]


def _on_update_handler(on_actor_updated: OnActorUpdated | None) -> Any:
    async def on_update(ctx: InboxContext) -> None:
        """An actor's ``Update`` of itself refreshes our cached copy (name, avatar, keys)."""
        obj = ctx.object
        if not isinstance(obj, dict):
            return  # a bare id: nothing new to keep
        await ctx.federation.store_actor_document(ctx.session, ctx.actor_uri, obj)
        if on_actor_updated is not None:
            await on_actor_updated(ctx)

    return on_update


def register_follow_handlers(
    dispatcher: InboxDispatcher,
    *,
    on_followed: OnFollowed | None = None,
    on_actor_updated: OnActorUpdated | None = None,
) -> None:
    dispatcher.register("Follow", ANY, _on_follow_handler(on_followed))
    dispatcher.register("Accept", "Follow", _on_accept)
    dispatcher.register("Reject", "Follow", _on_reject)
    dispatcher.register("Undo", "Follow", _on_undo)
    dispatcher.register("Block", ANY, _on_block)
    dispatcher.register("Delete", ACTOR, _on_delete_actor)
    dispatcher.register("Update", ACTOR, _on_update_handler(on_actor_updated))
