"""The JSON API of members and governance: the same actions as the pages.

Bearer tokens need no CSRF token; a browser session that changes something sends the
session's token in ``X-CSRF-Token``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from node import i18n
from node.activitypub.actors import ActorUrls
from node.activitypub.models import DomainBlock, LocalActor
from node.db import read_only, session_scope
from node.members.accounts import change_password, register_member, update_profile
from node.members.audit import list_audit
from node.members.charter import current_charter, edit_charter
from node.members.clearing_access import clearing_access
from node.members.contributions import MemberContributions
from node.members.errors import MemberError, NotAllowed
from node.members.governance import (
    MEMBER_ACTIONS,
    block_domain,
    remove_remote_content,
    require_admin,
    unblock_domain,
)
from node.members.models import AuditEntry, Member, MemberStatus
from node.members.service import get_member
from node.web._members import api_error
from node.web.account import answer_follow, pending_follow_requests
from node.web.api import Answer, Body, Endpoint, Param, cursor, routes_of
from node.web.auth import require_member
from node.web.context import node_context
from node.web.errors import ApiError
from node.web.profiles import federate_profile, find_identity

__all__ = ["endpoints", "member_json", "routes"]


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _str(body: dict[str, Any], name: str, default: str | None = "") -> Any:
    """The text field ``name``; absent or null: ``default``."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ApiError(422, f"{name}: expected text", field=name)
    return value


async def _member(request: Request, *, admin: bool = False) -> Member:
    """The caller, in their own language (CSRF: ``node.web.csrf`` checks every change)."""
    member = await require_member(request)
    i18n.use_language(
        i18n.negotiate_language(
            member.language,
            request.headers.get("accept-language"),
            node_context(request).settings.language,
        )
    )
    if admin:
        try:
            require_admin(member)
        except NotAllowed as exc:
            raise api_error(exc) from None
    return member


def _contributions_json(found: MemberContributions, balances_public: bool) -> dict[str, Any]:
    bricks, clearing = found.bricks, found.clearing
    shown = balances_public and clearing.balance is not None
    return {
        "published_bricks": bricks.published,
        "rating_average": bricks.rating_average,
        "rating_count": bricks.rating_count,
        "exchanges": clearing.exchanges,
        "balance": str(clearing.balance) if shown else None,
    }


async def member_json(request: Request, session: Any, member: Member) -> dict[str, Any]:
    node = node_context(request)
    access = await clearing_access(session, node.settings, node.contributions, member)
    found = await node.contributions.of(session, member)
    actor = await session.get(LocalActor, member.actor_id)
    return {
        "username": member.username,
        "actor": ActorUrls(node.settings.url, member.username).id,
        "display_name": member.display_name,
        "bio": member.bio,
        "avatar_url": member.avatar_url,
        "language": member.language,
        "status": member.status,
        "roles": ["member", "admin"] if member.is_admin else ["member"],
        "charter_version": member.charter_version,
        "manually_approves_followers": bool(actor and actor.manually_approves_followers),
        "clearing_access": {
            "allowed": access.allowed,
            "missing": access.reasons(),
            "override": access.override,
        },
        "contributions": _contributions_json(found, node.settings.balances_public),
    }


def _admin_member_json(member: Member) -> dict[str, Any]:
    return {
        "username": member.username,
        "display_name": member.display_name,
        "status": member.status,
        "status_reason": member.status_reason,
        "roles": ["member", "admin"] if member.is_admin else ["member"],
        "charter_version": member.charter_version,
        "clearing_override": member.clearing_override,
        "created_at": member.created_at.isoformat(),
    }


def _audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "by": entry.by,
        "action": entry.action,
        "target": entry.target,
        "reason": entry.reason,
        "details": entry.details,
    }


async def charter(request: Request) -> Response:
    node = node_context(request)
    async with read_only(node.sessionmaker) as session:
        current = await current_charter(session)
    return JSONResponse({"version": current.version, "text": current.text})


async def register(request: Request) -> Response:
    node = node_context(request)
    body = await _json(request)
    version = body.get("charter_version")
    try:
        async with session_scope(node.sessionmaker) as session:
            member = await register_member(
                session,
                node.box,
                chamber_username=node.settings.chamber_username,
                username=_str(body, "username"),
                password=_str(body, "password"),
                display_name=_str(body, "display_name"),
                accepted_charter_version=version if isinstance(version, int) else None,
                language=_str(body, "language", None),
            )
    except MemberError as exc:
        raise api_error(exc) from None
    return JSONResponse({"username": member.username, "status": member.status}, status_code=201)


def _is_https_url(value: str) -> bool:
    parts = urlsplit(value.strip())
    return parts.scheme == "https" and bool(parts.hostname) and len(value) <= 2048


def _visible(member: Member, actor: LocalActor) -> tuple[Any, ...]:
    """What the actor document shows of a member: a change is sent to the followers."""
    return (
        member.display_name,
        member.bio,
        member.avatar_url,
        actor.image_url,
        actor.manually_approves_followers,
    )


async def me(request: Request) -> Response:
    member = await _member(request)
    node = node_context(request)
    if request.method == "PATCH":
        body = await _json(request)
        fields: dict[str, Any] = {}
        for name in ("display_name", "bio", "avatar_url"):
            if name in body:
                fields[name] = _str(body, name, None)  # null: unchanged
        if "language" in body:
            fields["language"] = _str(body, "language", None)
        if "manually_approves_followers" in body:
            value = body["manually_approves_followers"]
            if not isinstance(value, bool):
                raise ApiError(422, "manually_approves_followers: true or false")
            fields["manually_approves_followers"] = value
        header = _str(body, "header_url", None) if "header_url" in body else None
        if header and not _is_https_url(header):
            raise ApiError(422, "invalid input", fields={"header_url": "an https:// address"})
        try:
            async with session_scope(node.sessionmaker) as session:
                stored = await session.get(Member, member.id)
                assert stored is not None
                actor = await session.get(LocalActor, stored.actor_id)
                assert actor is not None
                before = _visible(stored, actor)
                await update_profile(session, stored, **fields)
                if header is not None:
                    actor.image_url = header.strip() or None
                if _visible(stored, actor) != before:
                    await federate_profile(
                        node.federation, session, node.settings, stored.username, node.contributions
                    )
        except MemberError as exc:
            raise api_error(exc) from None
        node.worker.wakeup.set()
    async with read_only(node.sessionmaker) as session:
        stored = await session.get(Member, member.id)
        assert stored is not None
        return JSONResponse(await member_json(request, session, stored))


async def password(request: Request) -> Response:
    member = await _member(request)
    node = node_context(request)
    body = await _json(request)
    try:
        async with session_scope(node.sessionmaker) as session:
            await change_password(
                session, member, _str(body, "current_password"), _str(body, "new_password")
            )
    except MemberError as exc:
        raise api_error(exc) from None
    return Response(status_code=204)


async def follow_requests(request: Request) -> Response:
    member = await _member(request)
    node = node_context(request)
    if request.method == "POST":
        body = await _json(request)
        decision = _str(body, "decision")
        if decision not in ("accept", "reject"):
            raise ApiError(422, "decision: accept or reject", field="decision")
        await answer_follow(request, member, _str(body, "actor"), decision == "accept")
    async with read_only(node.sessionmaker) as session:
        pending = await pending_follow_requests(session, node.settings.url, member)
    return JSONResponse(
        {
            "pending": [
                {"actor": follow.follower_uri, "requested_at": follow.created_at.isoformat()}
                for follow, _remote in pending
            ]
        }
    )


async def public_member(request: Request) -> Response:
    node = node_context(request)
    async with read_only(node.sessionmaker) as session:
        identity = await find_identity(
            session, node.settings, request.path_params["username"], node.contributions
        )
    if identity is None or identity.member is None or identity.contributions is None:
        raise ApiError(404, f"no member named {request.path_params['username']!r}")
    member = identity.member
    return JSONResponse(
        {
            "username": member.username,
            "actor": identity.actor and ActorUrls(node.settings.url, member.username).id,
            "display_name": identity.profile.name,
            "bio": member.bio,
            "avatar_url": member.avatar_url,
            "member_since": (member.approved_at or member.created_at).date().isoformat(),
            "contributions": _contributions_json(
                identity.contributions, node.settings.balances_public
            ),
        }
    )


async def admin_members(request: Request) -> Response:
    await _member(request, admin=True)
    node = node_context(request)
    status = request.query_params.get("status")
    query = select(Member).order_by(Member.id)
    if status:
        if status not in MemberStatus.ALL:
            raise ApiError(422, f"status: one of {', '.join(MemberStatus.ALL)}")
        query = query.where(Member.status == status)
    async with read_only(node.sessionmaker) as session:
        members = list((await session.execute(query)).scalars())
    return JSONResponse({"members": [_admin_member_json(m) for m in members]})


async def admin_member_action(request: Request) -> Response:
    admin = await _member(request, admin=True)
    node = node_context(request)
    action = request.path_params["action"]
    if action not in MEMBER_ACTIONS:
        raise ApiError(404, f"unknown action {action!r}: one of {', '.join(MEMBER_ACTIONS)}")
    body = await _json(request)
    try:
        async with session_scope(node.sessionmaker) as session:
            by = await session.get(Member, admin.id)
            member = await get_member(session, request.path_params["username"])
            await MEMBER_ACTIONS[action](session, by, member, _str(body, "reason"))
            result = _admin_member_json(member)
    except MemberError as exc:
        raise api_error(exc) from None
    return JSONResponse(result)


async def admin_audit(request: Request) -> Response:
    await _member(request, admin=True)
    node = node_context(request)
    before = request.query_params.get("before", "")
    async with read_only(node.sessionmaker) as session:
        entries, total = await list_audit(
            session, limit=100, before_id=int(before) if before.isdigit() else None
        )
    return JSONResponse({"total": total, "entries": [_audit_json(e) for e in entries]})


async def admin_charter(request: Request) -> Response:
    admin = await _member(request, admin=True)
    node = node_context(request)
    body = await _json(request)
    try:
        async with session_scope(node.sessionmaker) as session:
            by = await session.get(Member, admin.id)
            new = await edit_charter(session, by, _str(body, "text"), _str(body, "reason"))
    except MemberError as exc:
        raise api_error(exc) from None
    return JSONResponse({"version": new.version, "text": new.text})


async def admin_blocks(request: Request) -> Response:
    admin = await _member(request, admin=True)
    node = node_context(request)
    try:
        if request.method == "POST":
            body = await _json(request)
            async with session_scope(node.sessionmaker) as session:
                by = await session.get(Member, admin.id)
                await block_domain(session, by, _str(body, "host"), _str(body, "reason"))
        elif request.method == "DELETE":
            async with session_scope(node.sessionmaker) as session:
                by = await session.get(Member, admin.id)
                await unblock_domain(
                    session, by, request.path_params["host"], request.query_params.get("reason", "")
                )
    except MemberError as exc:
        raise api_error(exc) from None
    async with read_only(node.sessionmaker) as session:
        rows = (await session.execute(select(DomainBlock).order_by(DomainBlock.host))).scalars()
        blocks = [{"host": b.host, "reason": b.reason} for b in rows]
    return JSONResponse({"blocks": blocks})


async def admin_remove_remote(request: Request) -> Response:
    admin = await _member(request, admin=True)
    node = node_context(request)
    body = await _json(request)
    try:
        async with session_scope(node.sessionmaker) as session:
            by = await session.get(Member, admin.id)
            removed = await remove_remote_content(
                session, by, _str(body, "actor"), _str(body, "reason")
            )
    except MemberError as exc:
        raise api_error(exc) from None
    return JSONResponse({"removed_activities": removed})


_USERNAME = Param("username", "a member's username", location="path")
_MEMBERS = ("members",)
_ADMIN = ("administration",)
_INVALID = Answer("an invalid field (field names it)")

endpoints = [
    Endpoint(
        "GET",
        "/api/v1/charter",
        charter,
        "getCharter",
        "The chamber's current charter (members accept it when they register)",
        {200: Answer("the charter", "Charter")},
        tags=_MEMBERS,
    ),
    Endpoint(
        "POST",
        "/api/v1/register",
        register,
        "register",
        "Ask to join the chamber (an administrator approves)",
        {
            201: Answer("registered, pending approval", "Registered"),
            403: Answer("registration is closed"),
            409: Answer("the username is taken"),
            422: _INVALID,
        },
        body=Body("Registration"),
        tags=_MEMBERS,
    ),
    Endpoint(
        "GET",
        "/api/v1/members/me",
        me,
        "getMe",
        "My profile, roles, clearing access and contributions",
        {200: Answer("me", "Member")},
        auth="member",
        tags=_MEMBERS,
    ),
    Endpoint(
        "PATCH",
        "/api/v1/members/me",
        me,
        "updateMe",
        "Change my profile",
        {200: Answer("me after the change", "Member"), 403: Answer("CSRF check"), 422: _INVALID},
        auth="member",
        body=Body("ProfileChange"),
        tags=_MEMBERS,
    ),
    Endpoint(
        "POST",
        "/api/v1/members/me/password",
        password,
        "changePassword",
        "Change my password",
        {204: Answer("changed", None), 403: Answer("CSRF check"), 422: _INVALID},
        auth="member",
        body=Body("PasswordChange"),
        tags=_MEMBERS,
    ),
    Endpoint(
        "GET",
        "/api/v1/members/me/follow-requests",
        follow_requests,
        "listFollowRequests",
        "Follow requests waiting for my answer",
        {200: Answer("pending requests", "FollowRequests")},
        auth="member",
        tags=_MEMBERS,
    ),
    Endpoint(
        "POST",
        "/api/v1/members/me/follow-requests",
        follow_requests,
        "answerFollowRequest",
        "Accept or reject a follow request",
        {
            200: Answer("the requests still pending", "FollowRequests"),
            403: Answer("CSRF check"),
            404: Answer("no such request"),
            422: _INVALID,
        },
        auth="member",
        body=Body("FollowDecision"),
        tags=_MEMBERS,
    ),
    Endpoint(
        "GET",
        "/api/v1/members/{username}",
        public_member,
        "getMember",
        "A member's public profile and contributions",
        {200: Answer("the member", "PublicMember"), 404: Answer("no such member")},
        params=(_USERNAME,),
        tags=_MEMBERS,
    ),
    Endpoint(
        "GET",
        "/api/v1/admin/members",
        admin_members,
        "adminListMembers",
        "Administrators: every member (optionally with one status)",
        {200: Answer("members", "AdminMembers")},
        auth="admin",
        params=(Param("status", "only members with this status", enum=MemberStatus.ALL),),
        tags=_ADMIN,
    ),
    Endpoint(
        "POST",
        "/api/v1/admin/members/{username}/{action}",
        admin_member_action,
        "adminActOnMember",
        "Administrators: approve, refuse, suspend, reinstate, promote, demote, or decide "
        "clearing access; logged",
        {
            200: Answer("the member after the change", "AdminMember"),
            404: Answer("no such member or action"),
            409: Answer("not possible in the member's state, or the last administrator"),
            422: _INVALID,
        },
        auth="admin",
        params=(
            _USERNAME,
            Param("action", "what to do", enum=tuple(MEMBER_ACTIONS), location="path"),
        ),
        body=Body("Reason"),
        tags=_ADMIN,
    ),
    Endpoint(
        "GET",
        "/api/v1/admin/audit",
        admin_audit,
        "adminAudit",
        "Administrators: the audit log, newest first (100 per page)",
        {200: Answer("entries", "Audit")},
        auth="admin",
        params=(cursor("before", "the id of the last entry of the previous page"),),
        tags=_ADMIN,
    ),
    Endpoint(
        "PUT",
        "/api/v1/admin/charter",
        admin_charter,
        "adminEditCharter",
        "Administrators: a new version of the charter; logged",
        {200: Answer("the new charter", "Charter"), 422: _INVALID},
        auth="admin",
        body=Body("CharterEdit"),
        tags=_ADMIN,
    ),
    Endpoint(
        "GET",
        "/api/v1/admin/domain-blocks",
        admin_blocks,
        "adminListDomainBlocks",
        "Administrators: the blocked domains",
        {200: Answer("blocks", "DomainBlocks")},
        auth="admin",
        tags=_ADMIN,
    ),
    Endpoint(
        "POST",
        "/api/v1/admin/domain-blocks",
        admin_blocks,
        "adminBlockDomain",
        "Administrators: block a domain (its activities refused); logged",
        {200: Answer("the blocks", "DomainBlocks"), 409: Answer("already blocked"), 422: _INVALID},
        auth="admin",
        body=Body("DomainBlock"),
        tags=_ADMIN,
    ),
    Endpoint(
        "DELETE",
        "/api/v1/admin/domain-blocks/{host}",
        admin_blocks,
        "adminUnblockDomain",
        "Administrators: unblock a domain; logged",
        {200: Answer("the blocks", "DomainBlocks"), 404: Answer("not blocked"), 422: _INVALID},
        auth="admin",
        params=(
            Param("host", "the blocked host", location="path"),
            Param("reason", "written to the log", max_length=2000),
        ),
        tags=_ADMIN,
    ),
    Endpoint(
        "POST",
        "/api/v1/admin/remote-content/remove",
        admin_remove_remote,
        "adminRemoveRemoteContent",
        "Administrators: remove what a remote actor sent; logged",
        {200: Answer("how many activities were removed", "Removed"), 422: _INVALID},
        auth="admin",
        body=Body("RemoteRemoval"),
        tags=_ADMIN,
    ),
]
routes = routes_of(endpoints)
