"""Pages and public documents of the clearing house.

Public: ``/ledger`` (page, or an AS2 ``OrderedCollection`` of posted exchanges), ``/ledger.csv``,
``/ledger/activities`` (every signed clearing activity, AS2), ``/exchanges/{key}`` (page, or the
``EconomicEvent`` with its ``history``: every signed activity of its life, proofs included).
Members: ``/clearing`` (their account: balance, limits, history, items to answer, the form to
declare), its CSV, and the forms that act on an exchange.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from datetime import date
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from node import i18n
from node.activitypub.jsonld import default_context
from node.clearing.exchanges.house import (
    MAX_BRICKS,
    MAX_DESCRIPTION,
    MAX_MINUTES,
    ExchangeNotFound,
    InvalidExchange,
    NoPartnership,
    RemoteParty,
)
from node.clearing.exchanges.queries import (
    account_rows,
    member_usernames,
    posted_exchanges,
    signed_activities,
    stream_posted_exchanges,
)
from node.clearing.exchanges.states import ExchangeState, Role, allowed_events, party_of
from node.clearing.ledger.models import Exchange
from node.clearing.units import ClearingError, DurationError, format_minutes, parse_duration
from node.db import read_only
from node.members.clearing_access import clearing_access
from node.members.models import Member
from node.offers.models import Offer, OfferKind
from node.offers.service import OfferForbidden, OfferNotFound, answered_offer, find_offer
from node.web._members import page_member
from node.web.auth import current_member
from node.web.clearing_api import ACTIONS, clearing_error, house_of, party_uri
from node.web.context import NodeContext, node_context
from node.web.errors import ApiError
from node.web.exchange_forms import ANSWER_FIELDS, answer_error
from node.web.flash import N_, flash
from node.web.negotiation import ActivityJSONResponse, wants_activity_json, wants_page
from node.web.people import MIRROR_PREFIX, People, load_people
from node.web.templating import render

__all__ = ["routes"]

PAGE_SIZE = 50


def _cursor(request: Request) -> int | None:
    raw = request.query_params.get("before")
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(400, "before must be a positive integer (a cursor from a next link)")
    return int(raw)


def _collection_page(
    collection_id: str, request: Request, items: list[Any], cursors: list[int], total: int
) -> dict[str, Any]:
    if "page" not in request.query_params:
        return {
            "@context": default_context()[0],
            "id": collection_id,
            "type": "OrderedCollection",
            "totalItems": total,
            "first": f"{collection_id}?page=true",
        }
    page: dict[str, Any] = {
        "@context": default_context(),
        "id": f"{collection_id}?{request.url.query}",
        "type": "OrderedCollectionPage",
        "partOf": collection_id,
        "orderedItems": items,
    }
    if len(items) == PAGE_SIZE:
        page["next"] = f"{collection_id}?page=true&before={cursors[-1]}"
    return page


async def _people(
    session: Any, node: NodeContext, exchanges: list[Exchange], more: Iterable[str] = ()
) -> People:
    """The parties of ``exchanges`` (and ``more`` actors or mirror accounts), by name."""
    uris = [u for e in exchanges for u in (e.provider_uri, e.beneficiary_uri)]
    return await load_people(session, node.federation, node.settings, [*uris, *more])


async def ledger(request: Request) -> Response:
    node = node_context(request)
    house = house_of(node)
    before = _cursor(request)
    async with read_only(node.sessionmaker) as session:
        exchanges = await posted_exchanges(session, limit=PAGE_SIZE, before=before)
        summary = await house.summary(session)
        accounts: list[tuple[str, int]] = []
        holders: dict[str, str] = {}  # an account's name -> the actor it is (pages name them)
        if node.settings.balances_public:
            for key, balance, username in await account_rows(session):
                accounts.append((username or key, balance))
                if username:
                    holders[username] = node.federation.urls(username).id
                elif key.startswith(MIRROR_PREFIX):
                    holders[key] = key
        people = await _people(session, node, exchanges, holders.values())
    collection_id = node.settings.absolute("/ledger")
    if wants_activity_json(request):
        document = _collection_page(
            collection_id,
            request,
            [house.document_of(e) for e in exchanges],
            [e.id for e in exchanges],
            summary.exchanges_posted,
        )
        if node.settings.balances_public and "page" not in request.query_params:
            document["@context"] = default_context()
            document["attachment"] = [
                {"type": "PropertyValue", "name": name, "value": str(balance)}
                for name, balance in accounts
            ]
        return ActivityJSONResponse(document)
    return render(
        request,
        "clearing/ledger.html",
        exchanges=exchanges,
        people=people,
        holders=holders,
        summary=summary,
        accounts=accounts,
        format_minutes=format_minutes,
        next_before=exchanges[-1].id if len(exchanges) == PAGE_SIZE else None,
    )


async def ledger_csv(request: Request) -> Response:
    node = node_context(request)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["key", "id", "date", "provider", "beneficiary", "minutes", "description", "posted_at"]
    )
    async with read_only(node.sessionmaker) as session:
        async for e in stream_posted_exchanges(session):
            writer.writerow(
                [
                    e.key,
                    e.uri,
                    e.performed_on.isoformat(),
                    e.provider_uri,
                    e.beneficiary_uri,
                    e.minutes,
                    e.description,
                    e.posted_at.isoformat() if e.posted_at else "",
                ]
            )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="ledger.csv"'},
    )


async def ledger_activities(request: Request) -> Response:
    node = node_context(request)
    before = _cursor(request)
    async with read_only(node.sessionmaker) as session:
        total, rows = await signed_activities(session, limit=PAGE_SIZE, before=before)
    items = [{k: v for k, v in document.items() if k != "@context"} for _, document in rows]
    return ActivityJSONResponse(
        _collection_page(
            node.settings.absolute("/ledger/activities"),
            request,
            items,
            [pk for pk, _ in rows],
            total,
        )
    )


async def exchange_page(request: Request) -> Response:
    node = node_context(request)
    if wants_activity_json(request):
        async with read_only(node.sessionmaker) as session:
            try:
                exchange = await house_of(node).get(session, request.path_params["key"])
            except ClearingError as exc:
                raise clearing_error(exc) from None
            history = await house_of(node).history_of(session, exchange)
        return ActivityJSONResponse(
            {
                "@context": default_context(),
                **house_of(node).document_of(exchange),
                "history": history,
            }
        )
    return await _exchange_page(request, node, request.path_params["key"])


async def _exchange_page(
    request: Request,
    node: NodeContext,
    key: str,
    *,
    status_code: int = 200,
    answer: str = "",
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    """The exchange's page; a refused ``answer`` comes back with what was typed
    (``values``) and its errors next to their fields (``errors``; ``form``: above)."""
    house = house_of(node)
    async with read_only(node.sessionmaker) as session:
        try:
            exchange = await house.get(session, key)
        except ClearingError as exc:
            raise clearing_error(exc) from None
        events = await house.events_of(session, exchange)
        people = await _people(session, node, [exchange])
    member = await page_member(request)
    actions: list[str] = []
    if isinstance(member, Member) and member.id in (
        exchange.provider_member_id,
        exchange.beneficiary_member_id,
    ):
        role = Role.PROVIDER if member.id == exchange.provider_member_id else Role.BENEFICIARY
        party = party_of(role, Role(exchange.initiator))
        actions = [e.value for e in allowed_events(ExchangeState(exchange.state), party)]
    return render(
        request,
        "clearing/exchange.html",
        status_code=status_code,
        exchange=exchange,
        events=events,
        people=people,
        actions=actions,
        format_minutes=format_minutes,
        answer=answer,
        values=values or {},
        errors=errors or {},
    )


async def exchange_form_action(request: Request) -> Response:
    """Answer an exchange; refused, its page comes back with what was typed and the
    reason next to its field (422, or the refusal's own status when no field is at fault)."""
    node = node_context(request)
    member = await page_member(request)
    if not isinstance(member, Member):
        return member
    form = await request.form()
    event = ACTIONS.get(request.path_params["action"])
    if event is None:
        raise ApiError(404, "no such action")
    key = request.path_params["key"]
    async with read_only(node.sessionmaker) as session:
        access = await clearing_access(session, node.settings, node.contributions, member)
    if not access.allowed:
        raise ApiError(403, "no access to the clearing house yet: " + "; ".join(access.reasons()))
    values = {name: str(form.get(name) or "")[:limit] for name, limit in ANSWER_FIELDS.items()}
    try:
        minutes = None
        if event.value == "amend" and values["duration"]:
            minutes = parse_duration(values["duration"])
        await house_of(node).act(
            member,
            key,
            event,
            comment=values["comment"],
            minutes=minutes,
            description=values["description"] or None,
        )
    except ExchangeNotFound as exc:
        raise clearing_error(exc) from None
    except ClearingError as exc:
        refusal = clearing_error(exc)
        field, message = answer_error(exc, str(refusal.detail))
        status = 422 if field != "form" else refusal.status_code
        return await _exchange_page(
            request,
            node,
            key,
            status_code=status,
            answer=event.value,
            values=values,
            errors={field: message},
        )
    flash(request, _ANSWERED.get(event.value, N_("Your answer is recorded.")))
    return RedirectResponse(f"/exchanges/{key}", status_code=303)


_ANSWERED = {
    "accept": N_("You validated the exchange."),
    "contest": N_("You contested the exchange: the other member can amend it."),
    "refuse": N_("You refused the exchange."),
    "amend": N_("You amended the exchange: the other member is asked to validate it."),
    "withdraw": N_("You withdrew the exchange."),
}


async def account_page(request: Request) -> Response:
    """The member's account; ``?offer=KEY`` fills the declaration in from an offer or a need
    (its author on the other side, its title, its estimate)."""
    node = node_context(request)
    member = await page_member(request)
    if not isinstance(member, Member):
        return member
    values = None
    reference = request.query_params.get("offer", "")[:2048]
    if reference:
        async with read_only(node.sessionmaker) as session:
            offer = await find_offer(session, reference)
        if offer is not None:
            values = _from_offer(node, offer)
    return await _account_page(request, node, member, values=values)


def _from_offer(node: NodeContext, offer: Offer) -> dict[str, str]:
    """An offer's author did (or will do) the work; a need's author benefits from it."""
    username = node.federation.local_username(offer.author_uri)
    return {
        "role": "beneficiary" if offer.kind == OfferKind.OFFER else "provider",
        "counterparty": username or offer.author_uri,
        "duration": format_minutes(offer.minutes) if offer.minutes else "",
        "description": offer.title,
        "offer": offer.key,
        "offer_title": offer.title,
    }


async def _account_page(
    request: Request,
    node: NodeContext,
    member: Member,
    *,
    status_code: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    """The member's account; a refused declaration comes back filled in (``values``) with
    its errors next to its fields (``errors``; ``form``: above the form)."""
    house = house_of(node)
    async with read_only(node.sessionmaker) as session:
        access = await clearing_access(session, node.settings, node.contributions, member)
        view = await house.account_of(session, member)
        history = await house.history(session, view.account) if view.account else []
        exchanges = await house.exchanges_of(session, member)
        names = await member_usernames(
            session,
            {m for e in exchanges for m in (e.provider_member_id, e.beneficiary_member_id) if m},
        )
        people = await _people(session, node, exchanges)
    to_answer = [
        e
        for e in exchanges
        if e.state in ("proposed", "contested") and e.initiator_member_id != member.id
    ]
    return render(
        request,
        "clearing/account.html",
        status_code=status_code,
        member=member,
        access=access,
        view=view,
        history=history,
        exchanges=exchanges,
        to_answer=to_answer,
        names=names,
        people=people,
        format_minutes=format_minutes,
        today=date.today().isoformat(),
        error=request.query_params.get("error"),
        values=values or {},
        errors=errors or {},
    )


async def account_csv(request: Request) -> Response:
    node = node_context(request)
    member = await page_member(request)
    if not isinstance(member, Member):
        return member
    house = house_of(node)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["posted_at", "kind", "memo", "amount_minutes", "balance_after_minutes"])
    async with read_only(node.sessionmaker) as session:
        view = await house.account_of(session, member)
        history = await house.history(session, view.account, limit=100_000) if view.account else []
    for entry, tx in reversed(history):
        writer.writerow(
            [entry.posted_at.isoformat(), tx.kind, tx.memo, entry.amount, entry.balance_after]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="my-account.csv"'},
    )


_DECLARE_FIELDS = {
    "role": 20,
    "counterparty": 300,
    "duration": 40,
    "description": 2000,
    "date": 20,
    "bricks": 50_000,
    "offer": 2048,
}
#: The form field an `InvalidExchange` is about (the others go above the form).
_FIELD_OF = {"counterparty": "counterparty", "minutes": "duration", "description": "description"}
_FIELD_OF |= {"date": "date", "bricks": "bricks"}


def _no_partnership(exc: NoPartnership) -> str:
    if exc.ours:
        return i18n.gettext(
            "%(host)s has not added this chamber as a partner yet: its members and ours can "
            "trade once both chambers have added each other."
        ) % {"host": exc.host}
    return i18n.gettext(
        "%(host)s is not a partner chamber of this chamber: its administrators and ours must "
        "first open credit lines to each other."
    ) % {"host": exc.host}


async def declare_form(request: Request) -> Response:
    """Declare an exchange; refused, the account page comes back (422) with what was typed
    and the reason next to its field."""
    node = node_context(request)
    member = await page_member(request)
    if not isinstance(member, Member):
        return member
    form = await request.form()
    house = house_of(node)
    values = {name: str(form.get(name) or "")[:limit] for name, limit in _DECLARE_FIELDS.items()}
    role = Role.BENEFICIARY if values["role"] == "beneficiary" else Role.PROVIDER
    async with read_only(node.sessionmaker) as session:
        access = await clearing_access(session, node.settings, node.contributions, member)
    if not access.allowed:
        raise ApiError(403, "no access to the clearing house yet: " + "; ".join(access.reasons()))
    errors: dict[str, str] = {}
    try:
        minutes = parse_duration(values["duration"])
        try:
            performed = date.fromisoformat(values["date"]) if values["date"] else None
        except ValueError as exc:
            raise InvalidExchange("date", str(exc)) from None
        counterparty = await house.resolve_counterparty(values["counterparty"])
        offer_uri = None
        if values["offer"]:
            async with read_only(node.sessionmaker) as session:
                offer = await find_offer(session, values["offer"])
                values["offer_title"] = offer.title if offer is not None else ""
                offer_uri = await answered_offer(
                    session, values["offer"], party_uri(house, counterparty)
                )
        if form.get("step") == "lookup":  # the first step: who was found, to confirm
            return await _confirm_page(request, node, counterparty, values, minutes)
        exchange, _ = await house.declare(
            member,
            counterparty,
            role=role,
            minutes=minutes,
            description=values["description"],
            performed_on=performed,
            bricks=[b for b in values["bricks"].split() if b],
            idempotency_key=str(form.get("form_key")) if form.get("form_key") else None,
            offer_uri=offer_uri,
        )
    except (OfferNotFound, OfferForbidden):
        errors["form"] = i18n.gettext(
            "This exchange cannot answer that offer: declare it to the offer's author, or"
            " without the offer."
        )
    except DurationError:
        errors["duration"] = _declare_error("duration")
    except NoPartnership as exc:
        errors["counterparty"] = _no_partnership(exc)
    except InvalidExchange as exc:
        field = _FIELD_OF.get(exc.field, "form")
        errors[field] = _declare_error(field) if field in _DECLARE_MESSAGES else exc.message
    except ClearingError as exc:
        errors["form"] = str(clearing_error(exc).detail)
    if errors:
        return await _account_page(
            request, node, member, status_code=422, values=values, errors=errors
        )
    flash(request, N_("Your exchange is declared: the other member is asked to validate it."))
    return RedirectResponse(f"/exchanges/{exchange.key}", status_code=303)


async def _confirm_page(
    request: Request,
    node: NodeContext,
    counterparty: Member | RemoteParty,
    values: dict[str, str],
    minutes: int,
) -> Response:
    """The second step of the form (no JavaScript needed): who the other member is, their
    chamber and that it is a partner; confirming sends what was typed, the person fixed."""
    uri = (
        counterparty.actor_uri
        if isinstance(counterparty, RemoteParty)
        else node.federation.urls(counterparty.username).id
    )
    async with read_only(node.sessionmaker) as session:
        found = (await load_people(session, node.federation, node.settings, [uri]))[uri]
    return render(
        request,
        "clearing/confirm.html",
        found=found,
        remote=isinstance(counterparty, RemoteParty),
        values={
            **values,
            "counterparty": uri if isinstance(counterparty, RemoteParty) else counterparty.username,
        },
        minutes=minutes,
        form_key=str((await request.form()).get("form_key") or ""),
    )


#: What to fix, per field of the declaration form, in the page's language.
_DECLARE_MESSAGES = {
    "counterparty": N_(
        "Check the other member: the username of a member of this chamber (e.g. marie)"
        " or @user@host for a partner chamber, and someone other than you."
    ),
    "duration": N_("Give a duration such as 1 h 30, 45 min or 2 h (at most %(most)s)."),
    "description": N_("Say in a few words what was done (at most %(count)d characters)."),
    "date": N_("Give the day the work was done: today or before."),
    "bricks": N_("Give the addresses of bricks (https://…), one per line, at most %(count)d."),
}


def _declare_error(field: str) -> str:
    return i18n.gettext(_DECLARE_MESSAGES[field]) % {
        "most": format_minutes(MAX_MINUTES),
        "count": MAX_BRICKS if field == "bricks" else MAX_DESCRIPTION,
    }


_ANSWER_PATH = re.compile(r"^/exchanges/(?P<key>[^/]+)/[a-z]+$")


async def too_large_form(request: Request, note: str) -> Response | None:
    """The declaration or answer form again, with ``note``, for a body refused before it
    was read; None when this is not a member posting one of them from a page."""
    if request.method != "POST" or not wants_page(request):
        return None
    answer = _ANSWER_PATH.match(request.url.path)
    if answer is None and request.url.path != "/clearing/exchanges":
        return None
    member = await current_member(request)
    if member is None:
        return None
    node = node_context(request)
    if answer is None:
        return await _account_page(request, node, member, status_code=413, errors={"form": note})
    try:
        return await _exchange_page(
            request, node, answer["key"], status_code=413, errors={"form": note}
        )
    except ApiError:
        return None


routes = [
    Route("/ledger", ledger, methods=["GET"]),
    Route("/ledger.csv", ledger_csv, methods=["GET"]),
    Route("/ledger/activities", ledger_activities, methods=["GET"]),
    Route("/exchanges/{key}", exchange_page, methods=["GET"]),
    Route("/exchanges/{key}/{action}", exchange_form_action, methods=["POST"]),
    Route("/clearing", account_page, methods=["GET"]),
    Route("/clearing/account.csv", account_csv, methods=["GET"]),
    Route("/clearing/exchanges", declare_form, methods=["POST"]),
]
