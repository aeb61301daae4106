"""The JSON API of the clearing house (each operation declared in ``endpoints``).

Bearer tokens need no CSRF token; a browser session that changes something sends the
session's token in ``X-CSRF-Token``. Every member route checks the clearing-access gate
(``node.members.clearing_access``): 403 with what is missing.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from node.clearing.exchanges.house import (
    ChamberUnreachable,
    ClearingHouse,
    CrossChamberUnavailable,
    ExchangeNotFound,
    IdempotencyConflict,
    InvalidExchange,
    NotAParty,
    RemoteParty,
)
from node.clearing.exchanges.states import ExchangeEvent, ExchangeState, InvalidTransition, Role
from node.clearing.ledger.models import Exchange
from node.clearing.ledger.rules import CeilingBreach, FloorBreach, LedgerError
from node.clearing.units import (
    AmountError,
    ClearingError,
    DurationError,
    format_minutes,
    parse_duration,
)
from node.db import read_only
from node.members.clearing_access import (
    ClearingAccessDenied,
    clearing_access,
    require_clearing_access,
)
from node.members.errors import MemberNotFound
from node.members.models import Member
from node.members.service import get_member
from node.offers.service import OfferForbidden, OfferNotFound, answered_offer
from node.web.api import Answer, Body, Endpoint, Param, cursor, json_object, routes_of
from node.web.auth import require_member
from node.web.context import NodeContext, node_context
from node.web.errors import ApiError

__all__ = [
    "clearing_error",
    "endpoints",
    "exchange_json",
    "house_of",
    "routes",
]

ACTIONS = {
    "accept": ExchangeEvent.ACCEPT,
    "refuse": ExchangeEvent.REFUSE,
    "contest": ExchangeEvent.CONTEST,
    "withdraw": ExchangeEvent.WITHDRAW,
    "amend": ExchangeEvent.AMEND,
}


def house_of(node: NodeContext) -> ClearingHouse:
    """The node's clearing house (built once, by the runtime)."""
    return node.services.clearing


def clearing_error(exc: Exception) -> ApiError:
    """The HTTP status a clearing error means, with a message a member can act on."""
    if isinstance(exc, ClearingAccessDenied):
        return ApiError(403, str(exc), missing=exc.access.reasons())
    if isinstance(exc, InvalidExchange):
        return ApiError(422, exc.message, field=exc.field)
    if isinstance(exc, ChamberUnreachable):
        headers = {"Retry-After": str(exc.retry_after)}
        return ApiError(503, str(exc), headers=headers, field=exc.field, retryable=True)
    if isinstance(exc, CrossChamberUnavailable | IdempotencyConflict | DurationError | AmountError):
        return ApiError(422, str(exc))
    if isinstance(exc, ExchangeNotFound):
        return ApiError(404, str(exc))
    if isinstance(exc, NotAParty):
        return ApiError(403, str(exc))
    if isinstance(exc, InvalidTransition):
        return ApiError(409, str(exc))
    if isinstance(exc, FloorBreach):
        return ApiError(
            409,
            f"not posted: the beneficiary's balance would go below their floor of "
            f"{format_minutes(exc.limit)} by {format_minutes(exc.excess)}",
            limit_minutes=exc.limit,
            excess_minutes=exc.excess,
        )
    if isinstance(exc, CeilingBreach):
        return ApiError(
            409,
            f"not posted: the provider's balance would go above their ceiling of "
            f"{format_minutes(exc.limit)} by {format_minutes(exc.excess)}",
            limit_minutes=exc.limit,
            excess_minutes=exc.excess,
        )
    if isinstance(exc, LedgerError):
        return ApiError(409, f"not posted: {exc}")
    return ApiError(400, str(exc))


async def _clearing_member(request: Request) -> Member:
    """The caller, with clearing access (CSRF: ``node.web.csrf`` checks every change)."""
    member = await require_member(request)
    node = node_context(request)
    async with read_only(node.sessionmaker) as session:
        try:
            await require_clearing_access(session, node.settings, node.contributions, member)
        except ClearingAccessDenied as exc:
            raise clearing_error(exc) from None
    return member


def exchange_json(exchange: Exchange, member: Member | None = None) -> dict[str, Any]:
    role = None
    if member is not None:
        if exchange.provider_member_id == member.id:
            role = "provider"
        elif exchange.beneficiary_member_id == member.id:
            role = "beneficiary"
    return {
        "key": exchange.key,
        "id": exchange.uri,
        "url": exchange.uri,
        "state": exchange.state,
        "provider": exchange.provider_uri,
        "beneficiary": exchange.beneficiary_uri,
        "initiator": exchange.initiator,
        "role": role,
        "minutes": exchange.minutes,
        "duration": format_minutes(exchange.minutes),
        "description": exchange.description,
        "date": exchange.performed_on.isoformat(),
        "bricks": list(exchange.bricks or []),
        "comment": exchange.comment,
        "version": exchange.version,
        "proposal": exchange.proposal_activity_id,
        "offer": exchange.offer_uri,
        "created_at": exchange.created_at.isoformat(),
        "expires_at": exchange.expires_at.isoformat(),
        "posted_at": exchange.posted_at.isoformat() if exchange.posted_at else None,
    }


def _minutes_of(body: dict[str, Any], required: bool) -> Any:
    if "minutes" in body:
        return body["minutes"]
    if "duration" in body:
        duration = body["duration"]
        if not isinstance(duration, str):
            raise ApiError(422, 'duration: text such as "1 h 30"', field="duration")
        try:
            return parse_duration(duration)
        except DurationError as exc:
            raise ApiError(422, str(exc), field="duration") from None
    if required:
        raise ApiError(422, "minutes: how long, in minutes (90 for 1 h 30)", field="minutes")
    return None


def _date_of(body: dict[str, Any]) -> date | None:
    value = body.get("date")
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ApiError(422, "date: YYYY-MM-DD", field="date") from None


def _bricks_of(body: dict[str, Any]) -> list[str] | None:
    bricks = body.get("bricks")
    if bricks is not None and not isinstance(bricks, list):
        raise ApiError(422, "bricks: a list of brick URLs", field="bricks")
    return bricks


def party_uri(house: ClearingHouse, party: Member | RemoteParty) -> str:
    return party.actor_uri if isinstance(party, RemoteParty) else house.actor_uri(party)


async def _offer_of(node: NodeContext, body: dict[str, Any], other_uri: str) -> str | None:
    """The id of the offer the declaration answers (``offer``), whose author is the other
    party; None when it names none."""
    reference = body.get("offer")
    if reference is None or reference == "":
        return None
    if not isinstance(reference, str) or len(reference) > 2048:
        raise ApiError(422, "offer: an offer's id, URL or key", field="offer")
    async with read_only(node.sessionmaker) as session:
        try:
            return await answered_offer(session, reference, other_uri)
        except OfferNotFound:
            raise ApiError(422, "offer: no such offer or need here", field="offer") from None
        except OfferForbidden:
            raise ApiError(
                422, "offer: its author is not the other party of this exchange", field="offer"
            ) from None


async def declare_exchange(request: Request) -> Response:
    node = node_context(request)
    member = await _clearing_member(request)
    body = await json_object(request)
    house = house_of(node)
    if ("beneficiary" in body) == ("provider" in body):
        raise ApiError(
            422,
            "name the beneficiary (you did the work) or the provider (they did it for you)",
            field="beneficiary",
        )
    role = Role.PROVIDER if "beneficiary" in body else Role.BENEFICIARY
    other = body["beneficiary"] if role == Role.PROVIDER else body["provider"]
    if not isinstance(other, str) or not other.strip():
        raise ApiError(422, "@user@host or an actor URL", field=role.value)
    try:
        counterparty = await house.resolve_counterparty(other)
        if isinstance(counterparty, Member):
            async with read_only(node.sessionmaker) as session:
                access = await clearing_access(
                    session, node.settings, node.contributions, counterparty
                )
            if not access.allowed:
                raise InvalidExchange(
                    "beneficiary" if role == Role.PROVIDER else "provider",
                    f"{counterparty.username} cannot use the clearing house yet",
                )
        offer_uri = await _offer_of(node, body, party_uri(house, counterparty))
        exchange, replayed = await house.declare(
            member,
            counterparty,
            role=role,
            minutes=_minutes_of(body, required=True),
            description=body.get("description"),
            performed_on=_date_of(body),
            bricks=_bricks_of(body),
            idempotency_key=request.headers.get("idempotency-key"),
            offer_uri=offer_uri,
        )
    except (InvalidExchange, ChamberUnreachable) as exc:
        if exc.field == "counterparty":
            exc.field = "beneficiary" if role == Role.PROVIDER else "provider"
        raise clearing_error(exc) from None
    except ClearingError as exc:
        raise clearing_error(exc) from None
    headers = {"Location": f"/api/v1/exchanges/{exchange.key}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(exchange_json(exchange, member), status_code=201, headers=headers)


async def exchange_action(request: Request) -> Response:
    node = node_context(request)
    action = request.path_params["action"]
    event = ACTIONS.get(action)
    if event is None:
        raise ApiError(404, f"no action {action!r}: one of {', '.join(ACTIONS)}")
    member = await _clearing_member(request)
    body: dict[str, Any] = {}
    if request.headers.get("content-length", "0") not in ("", "0"):
        body = await json_object(request)
    comment = body.get("comment", "")
    if not isinstance(comment, str):
        raise ApiError(422, "comment: text", field="comment")
    try:
        exchange = await house_of(node).act(
            member,
            request.path_params["key"],
            event,
            comment=comment,
            minutes=_minutes_of(body, required=False) if event == ExchangeEvent.AMEND else None,
            description=body.get("description") if event == ExchangeEvent.AMEND else None,
            performed_on=_date_of(body) if event == ExchangeEvent.AMEND else None,
            bricks=_bricks_of(body) if event == ExchangeEvent.AMEND else None,
        )
    except ClearingError as exc:
        raise clearing_error(exc) from None
    return JSONResponse(exchange_json(exchange, member))


async def list_exchanges(request: Request) -> Response:
    node = node_context(request)
    member = await _clearing_member(request)
    role_text = request.query_params.get("role")
    if role_text not in (None, "", "provider", "beneficiary"):
        raise ApiError(422, "role: provider or beneficiary", field="role")
    state = request.query_params.get("state") or None
    before = request.query_params.get("before")
    async with read_only(node.sessionmaker) as session:
        items = await house_of(node).exchanges_of(
            session,
            member,
            state=state,
            role=Role(role_text) if role_text else None,
            before=int(before) if before and before.isdigit() else None,
        )
    return JSONResponse({"items": [exchange_json(e, member) for e in items]})


async def get_exchange(request: Request) -> Response:
    node = node_context(request)
    member = await _clearing_member(request)
    house = house_of(node)
    async with read_only(node.sessionmaker) as session:
        try:
            exchange = await house.get(session, request.path_params["key"])
        except ClearingError as exc:
            raise clearing_error(exc) from None
        events = await house.events_of(session, exchange)
    data = exchange_json(exchange, member)
    data["activities"] = [e.activity_id for e in events]
    return JSONResponse(data)


async def my_account(request: Request) -> Response:
    node = node_context(request)
    member = await _clearing_member(request)
    house = house_of(node)
    async with read_only(node.sessionmaker) as session:
        view = await house.account_of(session, member)
        history = await house.history(session, view.account) if view.account else []
        pending = [
            e
            for e in await house.exchanges_of(session, member)
            if e.state in ("proposed", "contested")
        ]
    return JSONResponse(
        {
            "balance_minutes": view.balance,
            "balance": format_minutes(view.balance),
            "floor_minutes": view.limits.floor,
            "ceiling_minutes": view.limits.ceiling,
            "history": [
                {
                    "amount_minutes": entry.amount,
                    "balance_after_minutes": entry.balance_after,
                    "kind": tx.kind,
                    "memo": tx.memo,
                    "posted_at": entry.posted_at.isoformat(),
                }
                for entry, tx in history
            ],
            "pending": [exchange_json(e, member) for e in pending],
        }
    )


async def ledger_summary(request: Request) -> Response:
    node = node_context(request)
    async with read_only(node.sessionmaker) as session:
        summary = await house_of(node).summary(session)
    return JSONResponse(
        {
            "accounts": summary.accounts,
            "sum_minutes": summary.sum_minutes,
            "exchanges_posted": summary.exchanges_posted,
            "volume_minutes": summary.volume_minutes,
        }
    )


async def admin_account_limits(request: Request) -> Response:
    """PUT {"floor_minutes": int|null, "ceiling_minutes": int|null, "reason": str}: an
    administrator overrides a member's limits (null: the chamber default). Logged."""
    node = node_context(request)
    admin = await require_member(request)
    if not admin.is_admin:
        raise ApiError(403, "only the chamber's administrators can change limits")
    body = await json_object(request)
    limits: dict[str, int | None] = {}
    for name in ("floor_minutes", "ceiling_minutes"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ApiError(
                422, "invalid input", fields={name: "a whole number of minutes, or null"}
            )
        limits[name] = value
    reason = body.get("reason")
    if not isinstance(reason, str):
        raise ApiError(422, "invalid input", fields={"reason": "say why (it is logged)"})
    async with read_only(node.sessionmaker) as session:
        try:
            member = await get_member(session, request.path_params["username"])
        except MemberNotFound as exc:
            raise ApiError(404, str(exc)) from None
    try:
        view = await house_of(node).set_limits(
            member,
            floor=limits["floor_minutes"],
            ceiling=limits["ceiling_minutes"],
            by=admin,
            reason=reason,
        )
    except ClearingError as exc:
        raise clearing_error(exc) from None
    return JSONResponse(
        {
            "username": member.username,
            "balance_minutes": view.balance,
            "floor_minutes": view.limits.floor,
            "ceiling_minutes": view.limits.ceiling,
        }
    )


_EXCHANGE_KEY = Param("key", "the exchange's key (last segment of its URL)", location="path")
_ACCESS = Answer("no clearing access (missing: what is missing)")

endpoints = [
    Endpoint(
        "PUT",
        "/api/v1/admin/accounts/{username}/limits",
        admin_account_limits,
        "setAccountLimits",
        "Administrators: override a member's floor and ceiling (null: the default); logged",
        {
            200: Answer("the member's limits and balance", "Limits"),
            404: Answer("no such member"),
            409: Answer("the balance is already outside the new limits"),
            422: Answer("an invalid field (fields: one message each)"),
        },
        auth="admin",
        params=(Param("username", "the member's username", location="path"),),
        body=Body("LimitsChange"),
        tags=("clearing",),
    ),
    Endpoint(
        "POST",
        "/api/v1/exchanges",
        declare_exchange,
        "declareExchange",
        "Declare an exchange (idempotent with Idempotency-Key)",
        {
            201: Answer(
                "declared (or replayed: header Idempotent-Replayed)",
                "Exchange",
                headers=("Location",),
            ),
            403: _ACCESS,
            409: Answer("a limit would be breached"),
            422: Answer("an invalid field (field), or a counterparty that cannot take part"),
            503: Answer(
                "the counterparty's chamber cannot be reached now: try again (Retry-After)",
                headers=("Retry-After",),
            ),
        },
        auth="member",
        params=(
            Param(
                "Idempotency-Key",
                "the same key replays the first answer",
                max_length=255,
                location="header",
            ),
        ),
        body=Body("Declaration"),
        tags=("clearing",),
    ),
    Endpoint(
        "GET",
        "/api/v1/exchanges",
        list_exchanges,
        "listExchanges",
        "My exchanges, newest first",
        {200: Answer("items", "ExchangeList"), 403: _ACCESS},
        auth="member",
        params=(
            Param(
                "state", "only exchanges in this state", enum=tuple(s.value for s in ExchangeState)
            ),
            Param("role", "my role in them", enum=("provider", "beneficiary")),
            cursor("before", "the key of the last exchange of the previous page"),
        ),
        tags=("clearing",),
    ),
    Endpoint(
        "GET",
        "/api/v1/exchanges/{key}",
        get_exchange,
        "getExchange",
        "One exchange with its activity ids",
        {
            200: Answer("the exchange", "ExchangeDetail"),
            403: _ACCESS,
            404: Answer("no such exchange"),
        },
        auth="member",
        params=(_EXCHANGE_KEY,),
        tags=("clearing",),
    ),
    Endpoint(
        "POST",
        "/api/v1/exchanges/{key}/{action}",
        exchange_action,
        "actOnExchange",
        "accept | refuse | contest (comment required) | withdraw | amend",
        {
            200: Answer("the exchange after the change", "Exchange"),
            403: Answer("not a party, or no clearing access"),
            404: Answer("no such exchange, or no such action"),
            409: Answer("not allowed now, or a limit would be breached"),
            422: Answer("an invalid field"),
        },
        auth="member",
        params=(_EXCHANGE_KEY, Param("action", "what to do", enum=tuple(ACTIONS), location="path")),
        body=Body("ExchangeAction", required=False),
        tags=("clearing",),
    ),
    Endpoint(
        "GET",
        "/api/v1/accounts/me",
        my_account,
        "myAccount",
        "My balance, limits, history and the exchanges waiting for an answer",
        {
            200: Answer("balance, floor and ceiling (null: none) in minutes", "Account"),
            403: _ACCESS,
        },
        auth="member",
        tags=("clearing",),
    ),
    Endpoint(
        "GET",
        "/api/v1/ledger/summary",
        ledger_summary,
        "ledgerSummary",
        "Public: accounts, sum_minutes (always 0), exchanges_posted, volume_minutes",
        {200: Answer("the summary", "LedgerSummary")},
        tags=("clearing",),
    ),
]
routes = routes_of(endpoints)
