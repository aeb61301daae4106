"""Clearing rounds on the web, read-only. Thin: `node.clearing.rounds.service` does the work.

* ``GET /rounds/{key}``: the public, verifiable document of a round this chamber proposed
  (what ``archipel verify URL`` fetches);
* ``GET /api/v1/rounds`` (``?state=``), ``GET /api/v1/rounds?uri=URL`` (any round this
  chamber took part in), ``GET /api/v1/rounds/{key}``: JSON for pages and scripts.

Public, as the ledger and the partners are: a round is evidence between chambers.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.clearing.rounds.protocol import RoundState
from node.clearing.rounds.service import RoundNotFound
from node.db import read_only
from node.web.api import Answer, Endpoint, Param, routes_of, schema_ref
from node.web.context import node_context
from node.web.errors import ApiError
from node.web.negotiation import ActivityJSONResponse

__all__ = ["endpoints", "routes"]

MAX_KEY = 64


def _uri(request: Request) -> str:
    key = request.path_params["key"]
    if not key.isalnum() or len(key) > MAX_KEY:
        raise ApiError(404, "no such round")
    return f"{node_context(request).settings.url}/rounds/{key}"


async def round_document(request: Request) -> Response:
    node = node_context(request)
    uri = _uri(request)
    async with read_only(node.sessionmaker) as session:
        try:
            detail = await node.services.rounds.get_round(session, uri)
        except RoundNotFound as exc:
            raise ApiError(404, str(exc)) from None
    return ActivityJSONResponse(detail.document)


async def rounds_api(request: Request) -> Response:
    """The latest rounds (``?state=``), or one round by ``?uri=`` (any proposer's)."""
    node = node_context(request)
    uri = request.query_params.get("uri")
    if uri:
        return await _detail(request, uri)
    state = request.query_params.get("state") or None
    async with read_only(node.sessionmaker) as session:
        items = await node.services.rounds.list_rounds(session, state=state)
    return JSONResponse({"items": [r.as_json() for r in items]})


async def round_api(request: Request) -> Response:
    """One round this chamber proposed, by its key."""
    return await _detail(request, _uri(request))


async def _detail(request: Request, uri: str) -> Response:
    node = node_context(request)
    async with read_only(node.sessionmaker) as session:
        try:
            detail = await node.services.rounds.get_round(session, uri)
        except RoundNotFound as exc:
            raise ApiError(404, str(exc)) from None
    return JSONResponse(detail.as_json())


endpoints = [
    Endpoint(
        "GET",
        "/api/v1/rounds",
        rounds_api,
        "listRounds",
        "Public: the latest clearing rounds (?state=), or one round by ?uri= (any proposer's)",
        {
            200: Answer(
                "the rounds, or the round named by uri",
                {"anyOf": [schema_ref("Rounds"), schema_ref("RoundDetail")]},
            ),
            404: Answer("no round with this uri"),
        },
        params=(
            Param("state", "only rounds in this state", enum=tuple(s.value for s in RoundState)),
            Param("uri", "one round by its id", max_length=2048),
        ),
        tags=("clearing",),
    ),
    Endpoint(
        "GET",
        "/api/v1/rounds/{key}",
        round_api,
        "getRound",
        "Public: one round this chamber proposed, by its key",
        {200: Answer("the round", "RoundDetail"), 404: Answer("no such round")},
        params=(Param("key", "the round's key (last segment of its id)", location="path"),),
        tags=("clearing",),
    ),
]

routes = [
    Route("/rounds/{key}", round_document, methods=["GET"]),
    *routes_of(endpoints),
]
