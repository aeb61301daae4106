"""The JSON API of offers and needs under ``/api/v1/offers`` (each operation declared in
``endpoints``, ``node.web.api``)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from node.db import read_only
from node.offers import Offer, OfferForbidden, OfferInvalid, search_offers
from node.offers.validation import KINDS
from node.web.api import Answer, Body, Endpoint, Param, cursor, routes_of
from node.web.auth import require_member
from node.web.context import node_context
from node.web.errors import ApiError
from node.web.offers import SCOPES, close_by_key, create_from, load_offer, offer_query

__all__ = ["endpoints", "offer_item", "routes"]


def offer_item(offer: Offer) -> dict[str, Any]:
    return {
        "id": offer.uri,
        "key": offer.key,
        "kind": offer.kind,
        "title": offer.title,
        "description": offer.description,
        "tags": list(offer.tags),
        "minutes": offer.minutes,
        "bricks": list(offer.bricks),
        "author": {"id": offer.author_uri, "name": offer.author_name, "url": offer.author_url},
        "chamber": {
            "id": offer.chamber_uri,
            "name": offer.chamber_name or offer.host,
            "host": offer.host,
        },
        "url": offer.url,
        "local": offer.local,
        "state": offer.state,
        "published": offer.published_at.isoformat(),
    }


async def list_offers(request: Request) -> Response:
    node = node_context(request)
    query = offer_query(request.query_params)
    async with read_only(node.sessionmaker) as session:
        page = await search_offers(session, query)
    next_url = None
    if page.next_cursor is not None:
        params = {k: v for k, v in request.query_params.items() if k != "after"}
        params["after"] = str(page.next_cursor)
        next_url = node.settings.absolute("/api/v1/offers?" + urlencode(params))
    return JSONResponse(
        {
            "items": [offer_item(o) for o in page.items],
            "next": next_url,
            "next_cursor": page.next_cursor,
        }
    )


async def create(request: Request) -> Response:
    member = await require_member(request)
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "send a JSON object with kind, title, description and tags")
    try:
        offer = await create_from(node_context(request), member, body)
    except OfferInvalid as exc:
        raise ApiError(422, "some fields are not valid", errors=exc.errors) from None
    return JSONResponse(
        {"id": offer.uri, "url": offer.url, "key": offer.key},
        status_code=201,
        headers={"Location": offer.url},
    )


async def one_offer(request: Request) -> Response:
    offer = await load_offer(node_context(request), request.path_params["key"])
    return JSONResponse(offer_item(offer))


async def close(request: Request) -> Response:
    member = await require_member(request)
    try:
        offer = await close_by_key(node_context(request), member, request.path_params["key"])
    except OfferForbidden as exc:
        raise ApiError(403, str(exc)) from None
    return JSONResponse(offer_item(offer))


_KEY = Param("key", "the offer's local key (last segment of its URL)", location="path")
_NOT_FOUND = Answer("no such offer or need")

endpoints = [
    Endpoint(
        "GET",
        "/api/v1/offers",
        list_offers,
        "listOffers",
        "Open offers and needs, this chamber's and the archipelago's, newest first",
        {200: Answer("a page", "OfferPage")},
        params=(
            Param("q", "words of the title, description or tags (every word)", max_length=200),
            Param("tag", "a tag", max_length=64),
            Param("kind", "offer or need", enum=KINDS),
            Param("chamber", "a chamber's host", max_length=255),
            Param("scope", "local, federated or all", enum=SCOPES, default="all"),
            cursor("after", "the `next_cursor` of the previous page"),
            Param(
                "limit",
                "items per page (1 to 100)",
                type="integer",
                minimum=1,
                maximum=100,
                default=20,
            ),
        ),
        tags=("offers",),
    ),
    Endpoint(
        "POST",
        "/api/v1/offers",
        create,
        "createOffer",
        "Publish an offer (I propose) or a need (I am looking for), federated as a FEP-0837 "
        "Proposal to the member's and the chamber's followers",
        {
            201: Answer("published", "OfferCreated", headers=("Location",)),
            422: Answer("invalid fields (errors: one message per field)"),
        },
        auth="member",
        body=Body("OfferInput"),
        tags=("offers",),
    ),
    Endpoint(
        "GET",
        "/api/v1/offers/{key}",
        one_offer,
        "getOffer",
        "One offer or need",
        {200: Answer("the offer", "OfferItem"), 404: _NOT_FOUND},
        params=(_KEY,),
        tags=("offers",),
    ),
    Endpoint(
        "POST",
        "/api/v1/offers/{key}/close",
        close,
        "closeOffer",
        "Close an offer or a need (its author only); federated as Delete",
        {
            200: Answer("the offer, closed", "OfferItem"),
            403: Answer("not its author"),
            404: _NOT_FOUND,
        },
        auth="member",
        params=(_KEY,),
        tags=("offers",),
    ),
]
routes = routes_of(endpoints)
