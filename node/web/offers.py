"""Pages of offers and needs: the list (search, tag, chamber, kind), the form, an offer's
page (AS2 on negotiation) with "Declare an exchange from this offer" and the author's close
button. The JSON API is ``node.web.offers_api``; both run the operations here."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from node.activitypub.jsonld import proposal_context
from node.db import read_only, session_scope
from node.members.models import Member
from node.offers import (
    Offer,
    OfferForbidden,
    OfferInvalid,
    OfferNotFound,
    OfferQuery,
    close_offer,
    create_offer,
    get_offer,
    offer_proposal,
    search_offers,
    validate_offer,
)
from node.offers.service import Scope
from node.offers.validation import KINDS
from node.web._members import page_member
from node.web.api import ID_MAX
from node.web.auth import current_member
from node.web.context import NodeContext, node_context
from node.web.errors import ApiError
from node.web.flash import N_, flash
from node.web.negotiation import ActivityJSONResponse, wants_activity_json
from node.web.templating import render

__all__ = ["close_by_key", "create_from", "load_offer", "offer_query", "routes"]

SCOPES = ("local", "federated", "all")
_FIELDS = {"kind": 8, "title": 300, "description": 6000, "tags": 1000, "minutes": 40}
_FIELDS |= {"bricks": 25_000}


def offer_query(params: Any, *, limit: int = 20) -> OfferQuery:
    """Filters from query parameters; the API has checked them already, a page falls back
    to the defaults on a value it does not know."""
    scope: Scope = params.get("scope") if params.get("scope") in SCOPES else "all"
    kind = params.get("kind") if params.get("kind") in KINDS else None
    after = params.get("after") or ""
    cursor = int(after) if after.isdigit() and 1 <= int(after) <= ID_MAX else None
    raw_limit = params.get("limit") or ""
    if raw_limit.isdigit() and 1 <= int(raw_limit) <= 100:
        limit = int(raw_limit)
    return OfferQuery(
        q=(params.get("q") or "")[:200],
        tag=(params.get("tag") or "")[:64] or None,
        kind=kind,
        chamber=(params.get("chamber") or "")[:255] or None,
        scope=scope,
        cursor=cursor,
        limit=limit,
    )


async def load_offer(node: NodeContext, key: str) -> Offer:
    async with read_only(node.sessionmaker) as session:
        try:
            return await get_offer(session, key)
        except OfferNotFound as exc:
            raise ApiError(404, str(exc)) from None


async def create_from(node: NodeContext, member: Member, data: dict[str, Any]) -> Offer:
    """Check, store and federate; ``OfferInvalid`` names the fields to fix."""
    checked = validate_offer(data)
    async with session_scope(node.sessionmaker) as session:
        stored = await session.get(Member, member.id)
        assert stored is not None
        offer = await create_offer(node.federation, session, stored, checked)
    node.worker.wakeup.set()
    return offer


async def close_by_key(node: NodeContext, member: Member, key: str) -> Offer:
    async with session_scope(node.sessionmaker) as session:
        try:
            offer = await get_offer(session, key)
        except OfferNotFound as exc:
            raise ApiError(404, str(exc)) from None
        await close_offer(node.federation, session, offer, member)
    node.worker.wakeup.set()
    return offer


async def offers_page(request: Request) -> Response:
    node = node_context(request)
    query = offer_query(request.query_params)
    async with read_only(node.sessionmaker) as session:
        page = await search_offers(session, query)
        chambers = (await session.execute(select(Offer.host, Offer.chamber_name).distinct())).all()
    params = {k: v for k, v in request.query_params.items() if k != "after" and v}
    next_url = None
    if page.next_cursor is not None:
        next_url = "?" + urlencode({**params, "after": page.next_cursor})
    names: dict[str, str] = {}
    for host, name in chambers:
        names[host] = names.get(host) or name or host
    return render(
        request,
        "offers/list.html",
        page=page,
        query=query,
        chambers=sorted(names.items()),
        next_url=next_url,
        member=await current_member(request),
    )


def _form_values(form: Any) -> dict[str, str]:
    return {name: str(form.get(name) or "")[:limit] for name, limit in _FIELDS.items()}


async def new_offer(request: Request) -> Response:
    node = node_context(request)
    member = await page_member(request)
    if not isinstance(member, Member):
        return member
    if request.method == "GET":
        kind = request.query_params.get("kind")
        values = {"kind": kind if kind in KINDS else "offer"}
        return render(request, "offers/form.html", values=values, errors={}, member=member)
    values = _form_values(await request.form())
    try:
        offer = await create_from(node, member, {**values, "bricks": values["bricks"]})
    except OfferInvalid as exc:
        return render(
            request,
            "offers/form.html",
            status_code=422,
            values=values,
            errors=exc.errors,
            member=member,
        )
    flash(request, N_("Your offer is published."))
    return RedirectResponse(f"/offers/{offer.key}", status_code=303)


async def offer_page(request: Request) -> Response:
    node = node_context(request)
    offer = await load_offer(node, request.path_params["key"])
    if wants_activity_json(request):
        if not offer.local:
            return RedirectResponse(offer.uri, status_code=303, headers={"Vary": "Accept"})
        if not offer.is_open:
            gone = {"@context": proposal_context(), "id": offer.uri, "type": "Tombstone"}
            return ActivityJSONResponse({**gone, "formerType": "Proposal"}, status_code=410)
        document = {"@context": proposal_context(), **offer_proposal(node.federation, offer)}
        return ActivityJSONResponse(document)
    member = await current_member(request)
    mine = member is not None and offer.local and offer.member_id == member.id
    return render(request, "offers/offer.html", offer=offer, member=member, mine=mine)


async def close_page(request: Request) -> Response:
    node = node_context(request)
    member = await page_member(request)
    if not isinstance(member, Member):
        return member
    try:
        offer = await close_by_key(node, member, request.path_params["key"])
    except OfferForbidden:
        raise ApiError(403, "only the author of an offer can close it") from None
    flash(request, N_("Your offer is closed."))
    return RedirectResponse(f"/offers/{offer.key}", status_code=303)


routes = [
    Route("/offers", offers_page, methods=["GET"]),
    Route("/offers/new", new_offer, methods=["GET", "POST"]),
    Route("/offers/{key}", offer_page, methods=["GET"]),
    Route("/offers/{key}/close", close_page, methods=["POST"]),
]
