"""``GET /api/v1/openapi.json``: the OpenAPI 3.1 document, generated from the declarations
the API's routes are built from (``endpoints`` of each API module, ``node.web.api``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from node.web import (
    bricks_api,
    clearing_api,
    federation,
    members_api,
    notifications,
    offers_api,
    partners_api,
    rounds,
    timeline,
)
from node.web.api import Answer, Endpoint, routes_of
from node.web.api_schemas import SCHEMAS
from node.web.api_schemas_clearing import CLEARING_SCHEMAS
from node.web.api_schemas_offers import OFFER_SCHEMAS
from node.web.context import node_context

__all__ = ["ENDPOINTS", "openapi_document", "routes"]

_DESCRIPTION = (
    "The JSON API of an Archipel chamber: the commons bank's bricks, members and governance, "
    "follows, offers and needs, and the clearing house. Operations that need a member take "
    "`Authorization: Bearer <token>` (`archipel token create USERNAME`). Every error answers "
    '`{"error": "...", "status": N}`, with `field` (or `fields`, `errors`) naming the input '
    "at fault; a bad query parameter answers 400."
)


async def openapi(request: Request) -> Response:
    document = openapi_document(node_context(request).settings.url)
    return JSONResponse(document, headers={"Access-Control-Allow-Origin": "*"})


_SELF = Endpoint(
    "GET",
    "/api/v1/openapi.json",
    openapi,
    "openapi",
    "This document",
    {200: Answer("the OpenAPI 3.1 document", {"type": "object"})},
)

ENDPOINTS: list[Endpoint] = [
    _SELF,
    *bricks_api.endpoints,
    *members_api.endpoints,
    *federation.endpoints,
    *clearing_api.endpoints,
    *partners_api.endpoints,
    *rounds.endpoints,
    *notifications.endpoints,
    *offers_api.endpoints,
    *timeline.endpoints,
]


def openapi_document(server_url: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in ENDPOINTS:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = endpoint.operation()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Archipel API",
            "version": "1",
            "description": _DESCRIPTION,
            "license": {"name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later"},
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "archipel token create USERNAME",
                }
            },
            "schemas": {
                **SCHEMAS,
                **CLEARING_SCHEMAS,
                **OFFER_SCHEMAS,
                **timeline.TIMELINE_SCHEMAS,
            },
        },
    }


routes = routes_of([_SELF])
