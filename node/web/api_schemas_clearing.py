"""JSON Schemas of the clearing house's API bodies (exchanges, accounts, partners, rounds)."""

from __future__ import annotations

from typing import Any

__all__ = ["CLEARING_SCHEMAS"]

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
            "offer": {
                "type": ["string", "null"],
                "description": "the offer or need (its id) this exchange answers",
            },
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
            "confirmed": {
                "type": "boolean",
                "description": "that chamber has added this one too: members may trade",
            },
            "confirmed_at": {"type": ["string", "null"], "format": "date-time"},
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
            "offer": {
                "type": "string",
                "maxLength": 2048,
                "description": "the offer or need this exchange answers (its id, URL or key); "
                "its author must be the other party",
            },
        },
        "required": ["description"],
    },
    "ExchangeList": {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Exchange"}}
        },
    },
    "ExchangeDetail": {
        "allOf": [
            {"$ref": "#/components/schemas/Exchange"},
            {
                "type": "object",
                "required": ["activities"],
                "properties": {"activities": {"type": "array", "items": {"type": "string"}}},
            },
        ]
    },
    "ExchangeAction": {
        "type": "object",
        "description": "a comment; to amend, the fields of the declaration that change",
        "properties": {
            "comment": {"type": "string"},
            "minutes": {"type": "integer", "minimum": 1, "maximum": 60000},
            "duration": {"type": "string"},
            "description": {"type": "string", "maxLength": 2000},
            "date": {"type": "string", "format": "date"},
            "bricks": {"type": "array", "items": {"type": "string", "format": "uri"}},
        },
    },
    "LimitsChange": {
        "type": "object",
        "required": ["reason"],
        "properties": {
            "floor_minutes": {"type": ["integer", "null"], "maximum": 0},
            "ceiling_minutes": {"type": ["integer", "null"], "minimum": 0},
            "reason": {"type": "string", "description": "written to the log"},
        },
    },
    "Limits": {
        "type": "object",
        "required": ["username", "balance_minutes", "floor_minutes", "ceiling_minutes"],
        "properties": {
            "username": {"type": "string"},
            "balance_minutes": {"type": "integer"},
            "floor_minutes": {"type": "integer"},
            "ceiling_minutes": {"type": ["integer", "null"]},
        },
    },
    "Partners": {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Partner"}}
        },
    },
    "Round": {
        "type": "object",
        "required": ["id", "role", "state", "proposer", "participants", "deadline"],
        "properties": {
            "id": {"type": "string", "format": "uri"},
            "role": {"enum": ["proposer", "participant"]},
            "state": {"enum": ["collecting", "proposed", "signed", "committed", "aborted"]},
            "proposer": {"type": "string", "format": "uri"},
            "participants": {"type": "array", "items": {"type": "string"}},
            "deadline": {"type": "string", "format": "date-time"},
            "total_before_minutes": {"type": "integer"},
            "total_after_minutes": {"type": "integer"},
            "netted_minutes": {"type": "integer"},
            "reason": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "decided_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "Rounds": {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Round"}}},
    },
    "RoundDetail": {
        "allOf": [
            {"$ref": "#/components/schemas/Round"},
            {
                "type": "object",
                "required": ["chambers", "netting", "mismatches", "changes", "document"],
                "properties": {
                    "chambers": {"type": "array", "items": {"type": "object"}},
                    "netting": {"type": "array", "items": {"type": "object"}},
                    "mismatches": {"type": "array", "items": {"type": "object"}},
                    "changes": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "document": {"type": "object"},
                },
            },
        ]
    },
}
