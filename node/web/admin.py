"""Administration pages: registrations, members (suspend, roles, clearing access by hand),
the charter, domain blocks, removal of remote content, and the audit log."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlalchemy import func, or_, select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from node import i18n
from node.activitypub.actors import get_local_actor
from node.activitypub.models import DomainBlock
from node.db import read_only, session_scope
from node.members.audit import list_audit
from node.members.charter import current_charter, edit_charter
from node.members.clearing_access import clearing_rule, set_clearing_rule
from node.members.errors import InvalidMemberInput, MemberError, MemberNotFound
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
from node.web.flash import N_, flash
from node.web.profiles import federate_profile
from node.web.templating import render

__all__ = ["CONFIRMED_ACTIONS", "routes"]

#: Actions a page asks to confirm first (a second form step, no JavaScript needed).
CONFIRMED_ACTIONS = frozenset({"suspend"})


def _text(form: Any, name: str, limit: int = 5000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


async def _acting_admin(request: Request) -> Member | Response:
    return await page_admin(request)


#: Members listed per page of /admin (registrations waiting are all shown).
MEMBERS_PER_PAGE = 25

_DONE = {
    "approve": N_("The member is approved."),
    "refuse": N_("The registration is refused."),
    "suspend": N_("The member is suspended."),
    "reinstate": N_("The member is reinstated."),
    "promote": N_("The member is now an administrator."),
    "demote": N_("The member is no longer an administrator."),
    "grant-clearing": N_("Clearing access is granted."),
    "revoke-clearing": N_("Clearing access is withdrawn."),
    "clearing-by-rule": N_("Clearing access follows the chamber's rule again."),
    "charter": N_("The new version of the charter is published."),
    "block": N_("The list of blocked domains is updated."),
    "remove": N_("The remote actor's content is removed."),
    "clearing-rule": N_("The clearing-access rule is saved."),
    "icon": N_("The chamber's icon is saved and sent to its followers."),
}


def _list_state(request: Request) -> dict[str, str]:
    """The search and page of the members list the request came from (``?q=&page=``),
    kept through a member's form so that its answer comes back to the same list."""
    query = request.query_params.get("q", "").strip()[:100]
    page = request.query_params.get("page", "")
    state = {"q": query} if query else {}
    if page.isdigit() and 1 < int(page) < 10**6:
        state["page"] = str(int(page))
    return state


def _done(request: Request, action: str, anchor: str = "") -> Response:
    """The success message once, back on /admin (``?done=`` names the action), on the
    members list's same search and page."""
    flash(request, _DONE.get(action, N_("Done.")))
    target = "/admin?" + urlencode({"done": action, **_list_state(request)})
    return RedirectResponse(target + (f"#{anchor}" if anchor else ""), status_code=303)


async def admin_home(request: Request) -> Response:
    admin = await _acting_admin(request)
    if not isinstance(admin, Member):
        return admin
    return await _admin_page(request, admin)


async def _admin_page(
    request: Request,
    admin: Member,
    *,
    status_code: int = 200,
    rule_values: dict[str, str] | None = None,
    rule_errors: dict[str, str] | None = None,
    section_errors: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
    icon_error: str | None = None,
) -> Response:
    """Registrations waiting, one page of members (``q`` searches, ``page`` pages), the
    clearing rule, the charter and the domain blocks."""
    node = node_context(request)
    query = request.query_params.get("q", "").strip()[:100]
    page_text = request.query_params.get("page", "1")
    page = max(1, int(page_text)) if page_text.isdigit() and len(page_text) < 7 else 1
    listed = select(Member).where(Member.status != MemberStatus.PENDING)
    if query:
        pattern = "%" + query.lower().replace("\\", "").replace("%", "").replace("_", "\\_") + "%"
        listed = listed.where(
            or_(
                func.lower(Member.username).like(pattern, escape="\\"),
                func.lower(Member.display_name).like(pattern, escape="\\"),
            )
        )
    async with read_only(node.sessionmaker) as session:
        pending = list(
            (
                await session.execute(
                    select(Member)
                    .where(Member.status == MemberStatus.PENDING)
                    .order_by(Member.created_at, Member.id)
                )
            ).scalars()
        )
        total = int(
            (
                await session.execute(select(func.count()).select_from(listed.subquery()))
            ).scalar_one()
        )
        members = list(
            (
                await session.execute(
                    listed.order_by(Member.username)
                    .limit(MEMBERS_PER_PAGE)
                    .offset((page - 1) * MEMBERS_PER_PAGE)
                )
            ).scalars()
        )
        blocks = list(
            (await session.execute(select(DomainBlock).order_by(DomainBlock.host))).scalars()
        )
        charter = await current_charter(session)
        rule = await clearing_rule(session, node.settings)
        chamber = await get_local_actor(session, node.settings.chamber_username)
    pages = max(1, -(-total // MEMBERS_PER_PAGE))

    def page_url(number: int) -> str:
        return "/admin?" + urlencode({**({"q": query} if query else {}), "page": number})

    return render(
        request,
        "admin/index.html",
        status_code=status_code,
        admin=admin,
        pending=pending,
        members=members,
        query=query,
        total=total,
        page=page,
        pages=pages,
        previous_url=page_url(page - 1) if page > 1 else None,
        next_url=page_url(page + 1) if page < pages else None,
        list_query=urlencode(_list_state(request)),
        blocks=blocks,
        charter=charter,
        rule=rule,
        rule_values=rule_values
        or {"min_bricks": str(rule.min_bricks), "min_days": str(rule.min_days)},
        rule_errors=rule_errors or {},
        section_errors=section_errors or {},
        chamber_icon=(typed or {}).get("icon_url", chamber.icon_url if chamber else None) or "",
        icon_error=icon_error,
        typed=typed or {},
    )


#: What to fix in a refused administration form, by the field the rule names.
_FIELD_MESSAGES = {
    "reason": N_("Give a reason: it is logged (and shown to the member when it concerns them)."),
    "text": N_("Write the text of the charter."),
    "actor": N_("Give the address of the remote actor (https://…)."),
}


async def _refused(
    request: Request, admin: Member, section: str, exc: MemberError, typed: dict[str, str]
) -> Response:
    """/admin again, with what was typed and the error in the section of the form."""
    if isinstance(exc, InvalidMemberInput) and exc.field in _FIELD_MESSAGES:
        message = i18n.gettext(_FIELD_MESSAGES[exc.field])
    else:
        message = exc.message if isinstance(exc, InvalidMemberInput) else str(exc)
    return await _admin_page(
        request,
        admin,
        status_code=api_error(exc).status_code,
        section_errors={section: message},
        typed=typed,
    )


async def clearing_rule_edit(request: Request) -> Response:
    """The clearing-access rule (published bricks, days of membership), logged."""
    admin = await _acting_admin(request)
    if not isinstance(admin, Member):
        return admin
    node = node_context(request)
    form = await request.form()
    values = {name: _text(form, name, 10) for name in ("min_bricks", "min_days")}
    try:
        async with session_scope(node.sessionmaker) as session:
            by = await session.get(Member, admin.id)
            await set_clearing_rule(
                session, node.settings, by, values["min_bricks"], values["min_days"]
            )
    except InvalidMemberInput as exc:
        message = i18n.gettext("Give a whole number from 0 to %(most)d.") % {
            "most": 1000 if exc.field == "min_bricks" else 3650
        }
        return await _admin_page(
            request,
            admin,
            status_code=422,
            rule_values=values,
            rule_errors={exc.field: message},
        )
    except MemberError as exc:
        raise api_error(exc) from None
    return _done(request, "clearing-rule")


async def chamber_icon_edit(request: Request) -> Response:
    """The chamber's ``icon`` (an https:// image address, empty: none); its followers get
    its new document."""
    admin = await _acting_admin(request)
    if not isinstance(admin, Member):
        return admin
    node = node_context(request)
    form = await request.form()
    url = _text(form, "icon_url", 2100).strip()
    parts = urlsplit(url)
    if url and (parts.scheme != "https" or not parts.hostname or len(url) > 2048):
        return await _admin_page(
            request,
            admin,
            status_code=422,
            typed={"icon_url": url},
            icon_error=i18n.gettext("An https:// address of an image, please."),
        )
    async with session_scope(node.sessionmaker) as session:
        chamber = await get_local_actor(session, node.settings.chamber_username)
        assert chamber is not None
        if chamber.icon_url != (url or None):
            chamber.icon_url = url or None
            await federate_profile(
                node.federation, session, node.settings, chamber.username, node.contributions
            )
    node.worker.wakeup.set()
    return _done(request, "icon")


async def member_action(request: Request) -> Response:
    admin = await _acting_admin(request)
    if not isinstance(admin, Member):
        return admin
    node = node_context(request)
    form = await request.form()
    action = _text(form, "action", 40)
    if action not in MEMBER_ACTIONS:
        raise api_error(MemberError(f"unknown action {action!r}"))
    if action in CONFIRMED_ACTIONS and _text(form, "confirm", 5) != "yes":
        async with read_only(node.sessionmaker) as session:
            member = await get_member(session, request.path_params["username"])
        return render(
            request,
            "admin/confirm.html",
            member=member,
            action=action,
            reason=_text(form, "reason", 2000),
            list_query=urlencode(_list_state(request)),
        )
    try:
        async with session_scope(node.sessionmaker) as session:
            by = await session.get(Member, admin.id)
            member = await get_member(session, request.path_params["username"])
            await MEMBER_ACTIONS[action](session, by, member, _text(form, "reason", 2000))
    except MemberNotFound as exc:
        raise api_error(exc) from None
    except MemberError as exc:
        username = request.path_params["username"]
        typed = {f"member:{username}:reason": _text(form, "reason", 2000)}
        return await _refused(request, admin, f"member:{username}", exc, typed)
    return _done(request, action, f"member-{request.path_params['username']}")


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
        typed = {
            "charter:text": _text(form, "text", 60_000),
            "charter:reason": _text(form, "reason"),
        }
        return await _refused(request, admin, "charter", exc, typed)
    return _done(request, "charter")


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
        typed = {"block:host": _text(form, "host", 300), "block:reason": _text(form, "reason")}
        return await _refused(request, admin, "block", exc, typed)
    return _done(request, "block")


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
        typed = {"remote:actor": _text(form, "actor", 2048), "remote:reason": _text(form, "reason")}
        return await _refused(request, admin, "remote", exc, typed)
    return _done(request, "remove")


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
    Route("/admin/clearing-rule", clearing_rule_edit, methods=["POST"]),
    Route("/admin/icon", chamber_icon_edit, methods=["POST"]),
    Route("/admin/blocks", blocks_edit, methods=["POST"]),
    Route("/admin/remote-content", remote_content, methods=["POST"]),
    Route("/admin/audit", audit_page, methods=["GET"]),
]
