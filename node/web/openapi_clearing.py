"""OpenAPI 3.1 paths of the clearing house API (exchanges, accounts, the ledger's summary and
partner chambers), for the node's ``/api/v1/openapi.json``.

Merge with ``{**paths, **CLEARING_PATHS}`` and ``{**schemas, **CLEARING_SCHEMAS}``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CLEARING_PATHS", "CLEARING_SCHEMAS"]

_ERR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_EXCHANGE = {"application/json": {"schema": {"$ref": "#/components/schemas/Exchange"}}}
_PARTNER = {"application/json": {"schema": {"$ref": "#/components/schemas/Partner"}}}
_SECURED: list[dict[str, list[str]]] = [{"bearer": []}]
_UNAUTHENTICATED = {
    "description": "no valid bearer token or session",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}

CLEARING_SCHEMAS: dict[str, Any] = {
    "Account": {
        "type": "object",
        "required": ["balance_minutes", "floor_minutes", "ceiling_minutes", "history", "pending"],
        "properties": {
            "balance_minutes": {"type": "integer"},
            "balance": {"type": "string", "examples": ["1 h 30"]},
            "floor_minutes": {"type": "integer", "maximum": 0},
            "ceiling_minutes": {"type": ["integer", "null"], "minimum": 0},
            "history": {"type": "array", "items": {"type": "object"}},
            "pending": {"type": "array", "items": {"type": "object"}},
        },
    },
    "LedgerSummary": {
        "type": "object",
        "required": ["accounts", "sum_minutes", "exchanges_posted"],
        "properties": {
            "accounts": {"type": "integer", "minimum": 0},
            "sum_minutes": {"type": "integer", "const": 0},
            "exchanges_posted": {"type": "integer", "minimum": 0},
            "volume_minutes": {"type": "integer", "minimum": 0},
        },
    },
    "Exchange": {
        "type": "object",
        "required": ["key", "id", "state", "provider", "beneficiary", "minutes", "description"],
        "properties": {
            "key": {"type": "string"},
            "id": {"type": "string", "format": "uri", "description": "the EconomicEvent's id"},
            "state": {
                "enum": [
                    "proposed",
                    "contested",
                    "settling",
                    "posted",
                    "refused",
                    "withdrawn",
                    "expired",
                ],
                "description": "settling: accepted across two chambers, which are settling it",
            },
            "provider": {"type": "string", "format": "uri"},
            "beneficiary": {"type": "string", "format": "uri"},
            "initiator": {"enum": ["provider", "beneficiary"]},
            "role": {"enum": ["provider", "beneficiary", None]},
            "minutes": {"type": "integer", "minimum": 1},
            "duration": {"type": "string", "examples": ["1 h 30"]},
            "description": {"type": "string"},
            "date": {"type": "string", "format": "date"},
            "bricks": {"type": "array", "items": {"type": "string", "format": "uri"}},
            "comment": {"type": "string"},
            "version": {"type": "integer"},
            "proposal": {"type": "string", "format": "uri"},
            "created_at": {"type": "string", "format": "date-time"},
            "expires_at": {"type": "string", "format": "date-time"},
            "posted_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "Partner": {
        "type": "object",
        "description": "a chamber this one trades with; balance: its mirror account here",
        "required": ["chamber", "credit_line_minutes", "balance_minutes"],
        "properties": {
            "chamber": {"type": "string", "format": "uri", "description": "its actor id"},
            "name": {"type": "string"},
            "handle": {"type": "string", "examples": ["@gand@gand.example"]},
            "credit_line_minutes": {
                "type": "integer",
                "minimum": 0,
                "description": "how far that chamber may owe this one",
            },
            "credit_line": {"type": "string", "examples": ["10 h 00"]},
            "balance_minutes": {
                "type": "integer",
                "description": "its mirror account: negative when it owes this chamber",
            },
            "balance": {"type": "string", "examples": ["-2 h 00"]},
            "since": {"type": "string", "format": "date-time"},
        },
    },
    "PartnerAddition": {
        "type": "object",
        "required": ["chamber", "credit_line_minutes"],
        "properties": {
            "chamber": {
                "type": "string",
                "description": "@chamber@host or its actor URL",
                "examples": ["@gand@gand.example"],
            },
            "credit_line_minutes": {"type": "integer", "minimum": 0, "examples": [600]},
            "reason": {"type": "string", "description": "written to the audit log"},
        },
    },
    "CreditLineChange": {
        "type": "object",
        "required": ["credit_line_minutes"],
        "properties": {
            "chamber": {
                "type": "string",
                "format": "uri",
                "description": "the partner's actor id (or in the query)",
            },
            "credit_line_minutes": {"type": "integer", "minimum": 0},
            "reason": {"type": "string", "description": "written to the audit log"},
        },
    },
    "Declaration": {
        "type": "object",
        "description": "name the beneficiary (you are the provider) or the provider (reverse flow)",
        "properties": {
            "beneficiary": {"type": "string", "examples": ["@marie@lille.example"]},
            "provider": {"type": "string"},
            "minutes": {"type": "integer", "minimum": 1, "maximum": 60000},
            "duration": {
                "type": "string",
                "description": "instead of minutes: 1 h 30, 1:30, 90 min",
            },
            "description": {"type": "string", "maxLength": 2000},
            "date": {"type": "string", "format": "date"},
            "bricks": {
                "type": "array",
                "items": {"type": "string", "format": "uri"},
                "maxItems": 20,
            },
        },
        "required": ["description"],
    },
}

CLEARING_PATHS: dict[str, Any] = {
    "/api/v1/exchanges": {
        "post": {
            "summary": "Declare an exchange (idempotent with Idempotency-Key)",
            "security": _SECURED,
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "schema": {"type": "string", "maxLength": 255},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Declaration"}}
                },
            },
            "responses": {
                "201": {
                    "description": "declared (or replayed: header Idempotent-Replayed)",
                    "content": _EXCHANGE,
                },
                "403": {**_ERR, "description": "no clearing access (missing: the reasons)"},
                "422": {
                    **_ERR,
                    "description": "invalid field, or a counterparty on another chamber",
                },
            },
        },
        "get": {
            "summary": "My exchanges",
            "security": _SECURED,
            "parameters": [
                {"name": "state", "in": "query", "schema": {"type": "string"}},
                {"name": "role", "in": "query", "schema": {"enum": ["provider", "beneficiary"]}},
                {"name": "before", "in": "query", "schema": {"type": "integer"}},
            ],
            "responses": {
                "200": {
                    "description": "items",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "items": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Exchange"},
                                    }
                                },
                            }
                        }
                    },
                },
                "403": _ERR,
            },
        },
    },
    "/api/v1/exchanges/{key}": {
        "get": {
            "summary": "One exchange with its activity ids",
            "security": _SECURED,
            "parameters": [
                {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {"description": "the exchange", "content": _EXCHANGE},
                "404": _ERR,
            },
        }
    },
    "/api/v1/exchanges/{key}/{action}": {
        "post": {
            "summary": "accept | refuse | contest (comment required) | withdraw | amend",
            "security": _SECURED,
            "parameters": [
                {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}},
                {
                    "name": "action",
                    "in": "path",
                    "required": True,
                    "schema": {"enum": ["accept", "refuse", "contest", "withdraw", "amend"]},
                },
            ],
            "requestBody": {
                "content": {
                    "application/json": {
                        "schema": {"type": "object", "properties": {"comment": {"type": "string"}}}
                    }
                }
            },
            "responses": {
                "200": {"description": "the exchange after the change", "content": _EXCHANGE},
                "404": {**_ERR, "description": "no such exchange, or no such action"},
                "403": {**_ERR, "description": "not a party, or no clearing access"},
                "409": {
                    **_ERR,
                    "description": "not allowed now, or a limit would be breached",
                },
                "422": _ERR,
            },
        }
    },
    "/api/v1/accounts/me": {
        "get": {
            "summary": "My balance, limits, history and the exchanges waiting for an answer",
            "security": _SECURED,
            "responses": {
                "200": {
                    "description": "balance, floor and ceiling (null: none) in minutes, history",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Account"}}
                    },
                },
                "403": _ERR,
            },
        }
    },
    "/api/v1/ledger/summary": {
        "get": {
            "summary": "Public: accounts, sum_minutes (always 0), exchanges_posted, volume_minutes",
            "responses": {
                "200": {
                    "description": "the summary",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/LedgerSummary"}
                        }
                    },
                }
            },
        }
    },
    "/api/v1/partners": {
        "get": {
            "summary": "Public: the partner chambers, their credit lines and mirror balances",
            "responses": {
                "200": {
                    "description": "items",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["items"],
                                "properties": {
                                    "items": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Partner"},
                                    }
                                },
                            }
                        }
                    },
                }
            },
        },
        "post": {
            "summary": "Administrators: trade with a chamber (or set its credit line if it is one)",
            "security": _SECURED,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/PartnerAddition"}}
                },
            },
            "responses": {
                "201": {"description": "the partner", "content": _PARTNER},
                "400": {**_ERR, "description": "the body is not a JSON object"},
                "403": {**_ERR, "description": "not an administrator, or no CSRF token"},
                "422": {
                    **_ERR,
                    "description": "invalid field, unreachable, or not a chamber (Group)",
                },
            },
        },
        "patch": {
            "summary": "Administrators: change the credit line extended to a partner (logged)",
            "security": _SECURED,
            "parameters": [
                {
                    "name": "chamber",
                    "in": "query",
                    "description": "the partner's actor id (or chamber in the body)",
                    "schema": {"type": "string", "format": "uri"},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/CreditLineChange"}
                    }
                },
            },
            "responses": {
                "200": {"description": "the partner after the change", "content": _PARTNER},
                "400": {**_ERR, "description": "the body is not a JSON object"},
                "403": {**_ERR, "description": "not an administrator, or no CSRF token"},
                "404": {**_ERR, "description": "not a partner chamber"},
                "422": _ERR,
            },
        },
    },
}

for _operations in CLEARING_PATHS.values():
    for _operation in _operations.values():
        if _operation.get("security"):
            _operation["responses"].setdefault("401", _UNAUTHENTICATED)
