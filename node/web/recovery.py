"""Pages of account recovery and contact: asking for a password reset, the reset link's
page, the member's email address (and its check), which notifications come by mail, the
profile picture upload, and the administrators' reset links. Thin: the rules are in
``node.members.recovery``, ``.notifications`` and ``.avatars``."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from node import i18n
from node.db import read_only, session_scope
from node.members.audit import AuditAction, record_audit
from node.members.avatars import MAX_AVATAR_BYTES, avatar_path, store_avatar
from node.members.errors import InvalidMemberInput, MemberError
from node.members.governance import require_admin
from node.members.models import AccountTokenPurpose, Member
from node.members.notifications import EMAIL_KINDS
from node.members.passwords import MIN_PASSWORD_LENGTH, hash_password_async
from node.members.recovery import (
    check_new_password,
    find_token,
    make_reset_link,
    request_reset,
    reset_password,
    set_email,
    verify_email,
)
from node.members.service import get_member
from node.web._members import api_error, page_admin, page_member
from node.web.account import account_page_again
from node.web.context import node_context
from node.web.errors import ApiError
from node.web.profiles import federate_profile
from node.web.responses import stored_file
from node.web.templating import render

__all__ = ["routes"]


def _text(form: Any, name: str, limit: int = 5000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _expired_message() -> str:
    return i18n.gettext("This link expired or was already used: ask for a new one.")


async def reset_request_page(request: Request) -> Response:
    node = node_context(request)
    smtp = node.settings.smtp_configured
    if request.method == "GET":
        return render(request, "account/reset_request.html", smtp=smtp, sent=False)
    form = await request.form()
    identifier = _text(form, "identifier", 320)
    if smtp and identifier.strip():
        async with session_scope(node.sessionmaker) as session:
            await request_reset(session, node.settings, identifier)
    return render(request, "account/reset_request.html", smtp=smtp, sent=smtp)


async def reset_page(request: Request) -> Response:
    node = node_context(request)
    token = request.path_params["token"]
    values = {"token": token, "min_length": MIN_PASSWORD_LENGTH, "done": False, "expired": False}
    async with read_only(node.sessionmaker) as session:
        valid = await find_token(session, token, AccountTokenPurpose.RESET) is not None
    if not valid:
        values["expired"] = True
        return render(
            request, "account/reset.html", status_code=410, error=_expired_message(), **values
        )
    if request.method == "GET":
        return render(request, "account/reset.html", error=None, **values)
    form = await request.form()
    password = _text(form, "password", 2000)
    try:
        if password != _text(form, "password_confirm", 2000):
            raise InvalidMemberInput("password", i18n.gettext("The passwords do not match."))
        try:
            check_new_password(password)
        except InvalidMemberInput:
            raise InvalidMemberInput(
                "password",
                i18n.gettext("At least %(num)d characters, please.") % {"num": MIN_PASSWORD_LENGTH},
            ) from None
        password_hash = await hash_password_async(password)  # before the transaction
        async with session_scope(node.sessionmaker) as session:
            await reset_password(session, token, password_hash)
    except InvalidMemberInput as exc:
        message = _expired_message() if exc.field == "token" else exc.message
        status = 410 if exc.field == "token" else 422
        values["expired"] = exc.field == "token"
        return render(request, "account/reset.html", status_code=status, error=message, **values)
    return render(request, "account/reset.html", error=None, **{**values, "done": True})


async def email_update(request: Request) -> Response:
    member = await page_member(request)
    if not isinstance(member, Member):
        return member
    node = node_context(request)
    form = await request.form()
    try:
        async with session_scope(node.sessionmaker) as session:
            stored = await session.get(Member, member.id)
            assert stored is not None
            sent = await set_email(session, node.settings, stored, _text(form, "email", 400))
    except InvalidMemberInput:
        return await account_page_again(
            request,
            member,
            email=_text(form, "email", 400),
            email_error=i18n.gettext("Give one email address, such as marie@example.org."),
        )
    return RedirectResponse(f"/account?email={'sent' if sent else 'saved'}", status_code=303)


async def email_verify(request: Request) -> Response:
    node = node_context(request)
    try:
        async with session_scope(node.sessionmaker) as session:
            member = await verify_email(session, request.path_params["token"])
    except (InvalidMemberInput, MemberError):
        return render(
            request, "account/email_verified.html", status_code=410, error=_expired_message()
        )
    return render(request, "account/email_verified.html", error=None, email=member.email)


async def mail_choices(request: Request) -> Response:
    member = await page_member(request)
    if not isinstance(member, Member):
        return member
    node = node_context(request)
    form = await request.form()
    wanted = set(form.getlist("on"))
    async with session_scope(node.sessionmaker) as session:
        stored = await session.get(Member, member.id)
        assert stored is not None
        stored.email_off = sorted(kind for kind in EMAIL_KINDS if kind not in wanted)
    return RedirectResponse("/account?saved=1", status_code=303)


async def avatar_upload(request: Request) -> Response:
    member = await page_member(request)
    if not isinstance(member, Member):
        return member
    node = node_context(request)
    form = await request.form(max_part_size=MAX_AVATAR_BYTES + 1)
    upload = form.get("avatar")
    content = await upload.read(MAX_AVATAR_BYTES + 1) if isinstance(upload, UploadFile) else b""
    try:
        name = store_avatar(node.settings.data_dir / "avatars", content)
    except InvalidMemberInput:
        raise ApiError(
            422, i18n.gettext("Choose a PNG, JPEG, GIF or WebP image of at most 2 MB.")
        ) from None
    async with session_scope(node.sessionmaker) as session:
        stored = await session.get(Member, member.id)
        assert stored is not None
        stored.avatar_url = node.settings.absolute(f"/avatars/{name}")
        await federate_profile(
            node.federation, session, node.settings, stored.username, node.contributions
        )
    node.worker.wakeup.set()
    return RedirectResponse("/account?saved=1", status_code=303)


async def avatar_file(request: Request) -> Response:
    node = node_context(request)
    found = avatar_path(node.settings.data_dir / "avatars", request.path_params["name"])
    if found is None:
        raise ApiError(404, "no such picture")
    path, media_type = found
    return stored_file(path, media_type)


async def admin_reset_link(request: Request) -> Response:
    """An administrator makes a reset link for a member (logged), shown once."""
    admin = await page_admin(request)
    if not isinstance(admin, Member):
        return admin
    node = node_context(request)
    try:
        async with session_scope(node.sessionmaker) as session:
            by = await session.get(Member, admin.id)
            require_admin(by)
            member = await get_member(session, request.path_params["username"])
            link = await make_reset_link(session, node.settings, member)
            await record_audit(session, by, AuditAction.RESET_LINK, member.username)
    except MemberError as exc:
        raise api_error(exc) from None
    return render(request, "admin/reset_link.html", member=member, link=link)


routes = [
    Route("/account/reset", reset_request_page, methods=["GET", "POST"]),
    Route("/account/reset/{token}", reset_page, methods=["GET", "POST"]),
    Route("/account/email", email_update, methods=["POST"]),
    Route("/account/email/verify/{token}", email_verify, methods=["GET"]),
    Route("/account/mail-choices", mail_choices, methods=["POST"]),
    Route("/account/avatar", avatar_upload, methods=["POST"]),
    Route("/avatars/{name}", avatar_file, methods=["GET"]),
    Route("/admin/members/{username}/reset-link", admin_reset_link, methods=["POST"]),
]
