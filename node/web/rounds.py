"""Clearing rounds on the web, read-only. Thin: `node.clearing.round_service` does the work.

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

from node.clearing.round_service import RoundNotFound, RoundService
from node.db import read_only
from node.web.context import node_context
from node.web.errors import ApiError
from node.web.negotiation import ActivityJSONResponse

__all__ = ["routes"]

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
            detail = await RoundService(node.federation).get_round(session, uri)
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
        items = await RoundService(node.federation).list_rounds(session, state=state)
    return JSONResponse({"items": [r.as_json() for r in items]})


async def round_api(request: Request) -> Response:
    """One round this chamber proposed, by its key."""
    return await _detail(request, _uri(request))


async def _detail(request: Request, uri: str) -> Response:
    node = node_context(request)
    async with read_only(node.sessionmaker) as session:
        try:
            detail = await RoundService(node.federation).get_round(session, uri)
        except RoundNotFound as exc:
            raise ApiError(404, str(exc)) from None
    return JSONResponse(detail.as_json())


routes = [
    Route("/rounds/{key}", round_document, methods=["GET"]),
    Route("/api/v1/rounds", rounds_api, methods=["GET"]),
    Route("/api/v1/rounds/{key}", round_api, methods=["GET"]),
]
