"""Pages of a person's own account: register (with the charter), sign in and out, status
and clearing access, profile, password, follow requests. Thin: the rules are in
``node.members``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from node import i18n
from node.activitypub.actors import ActorUrls
from node.activitypub.federation import FederationError
from node.activitypub.follows import answer_follow_request
from node.activitypub.models import Follow, FollowState, LocalActor, RemoteActor
from node.db import read_only, session_scope, utcnow
from node.mail import MAX_ADDRESS_LENGTH, normalize_address
from node.members.accounts import (
    attempt_sign_in,
    change_password,
    ensure_may_sign_in,
    register_member,
    update_profile,
)
from node.members.charter import current_charter, get_charter
from node.members.clearing_access import clearing_access
from node.members.errors import InvalidMemberInput, LoginRefused, LoginThrottled, MemberError
from node.members.models import Member
from node.members.notifications import EMAIL_KINDS
from node.members.passwords import MIN_PASSWORD_LENGTH
from node.members.recovery import set_email
from node.web._members import client_address, page_member, remember_language
from node.web.auth import current_member, log_in, log_out
from node.web.context import node_context
from node.web.errors import ApiError
from node.web.flash import N_, flash
from node.web.forms import (
    REGISTRATION_FIELDS,
    password_error,
    profile_error,
    registration_error,
)
from node.web.negotiation import wants_page
from node.web.people import load_people
from node.web.profiles import federate_profile
from node.web.templating import render

__all__ = ["account_page_again", "pending_follow_requests", "routes"]


def _text(form: Any, name: str, limit: int = 5000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/account"


async def charter_page(request: Request) -> Response:
    node = node_context(request)
    version = request.path_params.get("version")
    async with read_only(node.sessionmaker) as session:
        charter = await (get_charter(session, version) if version else current_charter(session))
        latest = await current_charter(session)
    if charter is None:
        raise ApiError(404, f"no version {version} of the charter")
    return render(request, "account/charter.html", charter=charter, latest=latest)


async def register_page(request: Request) -> Response:
    node = node_context(request)
    async with read_only(node.sessionmaker) as session:
        charter = await current_charter(session)
    if request.method == "GET":
        return render(
            request, "account/register.html", charter=charter, values={}, errors={}, error=None
        )
    form = await request.form()
    values = {
        k: _text(form, k, 200) for k in ("username", "display_name", "language", "accept_charter")
    }
    values["email"] = _text(form, "email", MAX_ADDRESS_LENGTH + 1)
    accepted = _text(form, "charter_version", 10)
    try:
        if _text(form, "accept_charter", 10) != "yes":
            raise InvalidMemberInput("charter", i18n.gettext("Please accept the charter."))
        if _text(form, "password", 2000) != _text(form, "password_confirm", 2000):
            raise InvalidMemberInput("password", i18n.gettext("The passwords do not match."))
        if values["email"].strip() and normalize_address(values["email"]) is None:
            raise InvalidMemberInput("email", "one email address, such as marie@example.org")
        async with session_scope(node.sessionmaker) as session:
            member = await register_member(
                session,
                node.box,
                chamber_username=node.settings.chamber_username,
                username=values["username"],
                password=_text(form, "password", 2000),
                display_name=values["display_name"],
                accepted_charter_version=int(accepted) if accepted.isdigit() else None,
                language=values["language"] or None,
            )
            # Unverified; with SMTP configured the link to verify it goes out with this.
            await set_email(session, node.settings, member, values["email"])
    except MemberError as exc:
        field, message = registration_error(exc)
        return render(
            request,
            "account/register.html",
            status_code=422 if isinstance(exc, InvalidMemberInput) else 409,
            charter=charter,
            values=values,
            errors={field: message},
            error=None if field in REGISTRATION_FIELDS else message,
        )
    return render(request, "account/registered.html", status_code=201, member=member)


async def login_page(request: Request) -> Response:
    node = node_context(request)
    next_url = _safe_next(request.query_params.get("next", "/account"))
    if request.method == "GET":
        return render(request, "account/login.html", next_url=next_url, error=None, username="")
    form = await request.form()
    username = _text(form, "username", 100).strip().lower()
    password = _text(form, "password", 2000)
    next_url = _safe_next(_text(form, "next", 500) or next_url)
    address = client_address(request)
    try:
        member = await attempt_sign_in(node.sessionmaker, username, password, address)
        if member is None:
            return render(
                request,
                "account/login.html",
                status_code=401,
                next_url=next_url,
                username=username,
                error=i18n.gettext("Unknown username or wrong password."),
            )
        ensure_may_sign_in(member)
    except LoginThrottled as exc:
        response = render(
            request,
            "account/login.html",
            status_code=429,
            next_url=next_url,
            username=username,
            error=_throttled_message(exc.retry_after),
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except LoginRefused as exc:
        return render(
            request, "account/status.html", status_code=403, status=exc.status, reason=exc.reason
        )
    async with session_scope(node.sessionmaker) as session:
        stored = await session.get(Member, member.id)
        if stored is not None:
            stored.last_active_at = utcnow()
    log_in(request, member)
    remember_language(request, member.language)
    return RedirectResponse(next_url, status_code=303)


def _throttled_message(retry_after: int) -> str:
    if retry_after <= 90:
        return i18n.ngettext(
            "Too many failed attempts: try again in %(seconds)d second.",
            "Too many failed attempts: try again in %(seconds)d seconds.",
            retry_after,
        ) % {"seconds": retry_after}
    return i18n.gettext("Too many failed attempts: try again in %(minutes)d minutes.") % {
        "minutes": max(1, round(retry_after / 60))
    }


async def logout(request: Request) -> Response:
    log_out(request)
    return RedirectResponse("/", status_code=303)


async def account_page(request: Request) -> Response:
    member = await page_member(request)
    if not isinstance(member, Member):
        return member
    return await _account_page(request, member)


async def account_page_again(
    request: Request, member: Member, *, email: str, email_error: str
) -> Response:
    """The account page after a refused email address: what was typed, the error by it."""
    return await _account_page(
        request, member, status_code=422, email_typed=email, email_error=email_error
    )


async def _account_page(
    request: Request,
    member: Member,
    *,
    status_code: int = 200,
    profile: dict[str, str] | None = None,
    profile_errors: dict[str, str] | None = None,
    email_typed: str | None = None,
    email_error: str = "",
    error: str | None = None,
) -> Response:
    """The account page; after a refused profile, what was typed and the error by its field
    (``error``: above everything)."""
    node = node_context(request)
    async with read_only(node.sessionmaker) as session:
        access = await clearing_access(session, node.settings, node.contributions, member)
        found = await node.contributions.of(session, member)
        charter = await current_charter(session)
        actor = await session.get(LocalActor, member.actor_id)
        pending = len(await pending_follow_requests(session, node.settings.url, member))
    typed = {
        "display_name": member.display_name,
        "bio": member.bio,
        "avatar_url": member.avatar_url or "",
        "language": member.language or "",
    }
    return render(
        request,
        "account/account.html",
        status_code=status_code,
        profile=profile or typed,
        profile_errors=profile_errors or {},
        member=member,
        access=access,
        contributions=found,
        charter=charter,
        actor=actor,
        pending_requests=pending,
        email_kinds=EMAIL_KINDS,
        email_typed=(member.email or "") if email_typed is None else email_typed,
        email_error=email_error,
        saved=request.query_params.get("saved") == "1",
        error=error,
    )


async def _shown(session: Any, member: Member) -> tuple[Any, ...]:
    """What the member's actor document shows; a change is sent to the followers."""
    actor = await session.get(LocalActor, member.actor_id)
    approves = actor.manually_approves_followers if actor is not None else None
    return (member.display_name, member.bio, member.avatar_url, approves)


async def profile_update(request: Request) -> Response:
    member = await page_member(request)
    if not isinstance(member, Member):
        return member
    node = node_context(request)
    form = await request.form()
    language = _text(form, "language", 8) or None
    try:
        async with session_scope(node.sessionmaker) as session:
            stored = await session.get(Member, member.id)
            assert stored is not None
            before = await _shown(session, stored)
            await update_profile(
                session,
                stored,
                display_name=_text(form, "display_name", 200),
                bio=_text(form, "bio", 6000),
                avatar_url=_text(form, "avatar_url", 3000),
                language=language,
                manually_approves_followers=_text(form, "manually_approves_followers") == "yes",
                directory_listed=_text(form, "directory_listed") == "yes",
            )
            if await _shown(session, stored) != before:
                await federate_profile(
                    node.federation, session, node.settings, stored.username, node.contributions
                )
        node.worker.wakeup.set()
    except InvalidMemberInput as exc:
        typed = {k: _text(form, k, 6000) for k in ("display_name", "bio", "avatar_url", "language")}
        field, message = profile_error(exc)
        return await _account_page(
            request, member, status_code=422, profile=typed, profile_errors={field: message}
        )
    remember_language(request, language)
    flash(request, N_("Your profile is saved."))
    return RedirectResponse("/account?saved=1", status_code=303)


async def password_page(request: Request) -> Response:
    member = await page_member(request)
    if not isinstance(member, Member):
        return member
    values = {"min_length": MIN_PASSWORD_LENGTH}
    if request.method == "GET":
        return render(request, "account/password.html", error=None, done=False, **values)
    node = node_context(request)
    form = await request.form()
    try:
        if _text(form, "new_password", 2000) != _text(form, "new_password_confirm", 2000):
            raise InvalidMemberInput("new_password", i18n.gettext("The passwords do not match."))
        async with session_scope(node.sessionmaker) as session:
            await change_password(
                session,
                member,
                _text(form, "current_password", 2000),
                _text(form, "new_password", 2000),
            )
    except InvalidMemberInput as exc:
        field, message = password_error(exc)
        return render(
            request,
            "account/password.html",
            status_code=422,
            error=message,
            error_field=field,
            done=False,
            **values,
        )
    return render(request, "account/password.html", error=None, done=True, **values)


async def pending_follow_requests(
    session: Any, base_url: str, member: Member
) -> list[tuple[Follow, RemoteActor | None]]:
    """Follow requests waiting for the member's answer, with the requester if known."""
    me = ActorUrls(base_url, member.username).id
    rows = await session.execute(
        select(Follow, RemoteActor)
        .outerjoin(RemoteActor, RemoteActor.uri == Follow.follower_uri)
        .where(Follow.followee_uri == me, Follow.state == FollowState.PENDING)
        .order_by(Follow.id)
    )
    return [(follow, remote) for follow, remote in rows.all()]


async def answer_follow(request: Request, member: Member, follower: str, accept: bool) -> None:
    """Refresh the follower's actor first (network), then answer in one transaction."""
    node = node_context(request)
    try:
        await node.federation.get_remote_actor(follower)
    except FederationError:
        pass  # the cached copy (stored when the request arrived) is enough to answer
    async with session_scope(node.sessionmaker) as session:
        actor = await session.get(LocalActor, member.actor_id)
        assert actor is not None
        try:
            await answer_follow_request(node.federation, session, actor, follower, accept=accept)
        except FederationError as exc:
            raise ApiError(404, str(exc)) from None


async def follow_requests_page(request: Request) -> Response:
    member = await page_member(request)
    if not isinstance(member, Member):
        return member
    node = node_context(request)
    if request.method == "POST":
        form = await request.form()
        decision = _text(form, "decision", 10)
        if decision not in ("accept", "reject"):
            raise ApiError(422, "decision: accept or reject")
        await answer_follow(request, member, _text(form, "follower", 2048), decision == "accept")
        return RedirectResponse("/account/follow-requests", status_code=303)
    async with read_only(node.sessionmaker) as session:
        requests = await pending_follow_requests(session, node.settings.url, member)
        actor = await session.get(LocalActor, member.actor_id)
        people = await load_people(
            session, node.federation, node.settings, [f.follower_uri for f, _ in requests]
        )
    return render(
        request, "account/follow_requests.html", requests=requests, actor=actor, people=people
    )


#: Forms of this module (and of ``node.web.recovery``) that come back with a note when
#: their body is too large to be read: the registration form, the profile forms.
_ACCOUNT_FORMS = ("/account/profile", "/account/avatar", "/account/email")


async def too_large_form(request: Request, note: str) -> Response | None:
    """The registration or account page again, with ``note``, for a body refused before it
    was read; None when this is not a person posting one of those forms from a page."""
    path = request.url.path
    if request.method != "POST" or not wants_page(request):
        return None
    if path == "/register":
        async with read_only(node_context(request).sessionmaker) as session:
            charter = await current_charter(session)
        return render(
            request,
            "account/register.html",
            status_code=413,
            charter=charter,
            values={},
            errors={},
            error=note,
        )
    if path not in _ACCOUNT_FORMS:
        return None
    member = await current_member(request)
    if member is None:
        return None
    return await _account_page(request, member, status_code=413, error=note)


routes = [
    Route("/charter", charter_page, methods=["GET"]),
    Route("/charter/{version:int}", charter_page, methods=["GET"]),
    Route("/register", register_page, methods=["GET", "POST"]),
    Route("/login", login_page, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/account", account_page, methods=["GET"]),
    Route("/account/profile", profile_update, methods=["POST"]),
    Route("/account/password", password_page, methods=["GET", "POST"]),
    Route("/account/follow-requests", follow_requests_page, methods=["GET", "POST"]),
]
