"""Administration pages: registrations, members (suspend, roles, clearing access by hand),
the charter, domain blocks, removal of remote content, and the audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from node.activitypub.models import DomainBlock
from node.db import read_only, session_scope
from node.members.audit import list_audit
from node.members.charter import current_charter, edit_charter
from node.members.errors import MemberError
from node.members.governance import (
    MEMBER_ACTIONS,
    block_domain,
    remove_remote_content,
    unblock_domain,
)
from node.members.models import Member, MemberStatus
from node.members.service import get_member
from node.web._members import api_error, page_admin
from node.web.context import node_context
from node.web.templating import render

__all__ = ["routes"]


def _text(form: Any, name: str, limit: int = 5000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


async def _acting_admin(request: Request) -> Member | Response:
    return await page_admin(request)


async def admin_home(request: Request) -> Response:
    admin = await _acting_admin(request)
    if not isinstance(admin, Member):
        return admin
    node = node_context(request)
    order = case((Member.status == MemberStatus.PENDING, 0), else_=1)
    async with read_only(node.sessionmaker) as session:
        members = list(
            (await session.execute(select(Member).order_by(order, Member.username))).scalars()
        )
        blocks = list(
            (await session.execute(select(DomainBlock).order_by(DomainBlock.host))).scalars()
        )
        charter = await current_charter(session)
    pending = [m for m in members if m.status == MemberStatus.PENDING]
    others = [m for m in members if m.status != MemberStatus.PENDING]
    return render(
        request,
        "admin/index.html",
        admin=admin,
        pending=pending,
        members=others,
        blocks=blocks,
        charter=charter,
        message=request.query_params.get("done"),
    )


async def member_action(request: Request) -> Response:
    admin = await _acting_admin(request)
    if not isinstance(admin, Member):
        return admin
    node = node_context(request)
    form = await request.form()
    action = _text(form, "action", 40)
    if action not in MEMBER_ACTIONS:
        raise api_error(MemberError(f"unknown action {action!r}"))
    try:
        async with session_scope(node.sessionmaker) as session:
            by = await session.get(Member, admin.id)
            member = await get_member(session, request.path_params["username"])
            await MEMBER_ACTIONS[action](session, by, member, _text(form, "reason", 2000))
    except MemberError as exc:
        raise api_error(exc) from None
    return RedirectResponse(f"/admin?done={action}", status_code=303)


async def charter_edit(request: Request) -> Response:
    admin = await _acting_admin(request)
    if not isinstance(admin, Member):
        return admin
    node = node_context(request)
    form = await request.form()
    try:
        async with session_scope(node.sessionmaker) as session:
            by = await session.get(Member, admin.id)
            await edit_charter(session, by, _text(form, "text", 60_000), _text(form, "reason"))
    except MemberError as exc:
        raise api_error(exc) from None
    return RedirectResponse("/admin?done=charter", status_code=303)


async def blocks_edit(request: Request) -> Response:
    admin = await _acting_admin(request)
    if not isinstance(admin, Member):
        return admin
    node = node_context(request)
    form = await request.form()
    try:
        async with session_scope(node.sessionmaker) as session:
            by = await session.get(Member, admin.id)
            host, reason = _text(form, "host", 300), _text(form, "reason")
            if _text(form, "remove", 5) == "yes":
                await unblock_domain(session, by, host, reason)
            else:
                await block_domain(session, by, host, reason)
    except MemberError as exc:
        raise api_error(exc) from None
    return RedirectResponse("/admin?done=block", status_code=303)


async def remote_content(request: Request) -> Response:
    admin = await _acting_admin(request)
    if not isinstance(admin, Member):
        return admin
    node = node_context(request)
    form = await request.form()
    try:
        async with session_scope(node.sessionmaker) as session:
            by = await session.get(Member, admin.id)
            await remove_remote_content(
                session, by, _text(form, "actor", 2048), _text(form, "reason")
            )
    except MemberError as exc:
        raise api_error(exc) from None
    return RedirectResponse("/admin?done=remove", status_code=303)


async def audit_page(request: Request) -> Response:
    admin = await _acting_admin(request)
    if not isinstance(admin, Member):
        return admin
    node = node_context(request)
    before = request.query_params.get("before", "")
    async with read_only(node.sessionmaker) as session:
        entries, total = await list_audit(
            session, limit=100, before_id=int(before) if before.isdigit() else None
        )
    return render(request, "admin/audit.html", entries=entries, total=total)


routes = [
    Route("/admin", admin_home, methods=["GET"]),
    Route("/admin/members/{username}", member_action, methods=["POST"]),
    Route("/admin/charter", charter_edit, methods=["POST"]),
    Route("/admin/blocks", blocks_edit, methods=["POST"]),
    Route("/admin/remote-content", remote_content, methods=["POST"]),
    Route("/admin/audit", audit_page, methods=["GET"]),
]
