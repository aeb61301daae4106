"""JSON Schemas of the offers' API bodies (OpenAPI components, ``node.web.offers_api``)."""

from __future__ import annotations

from typing import Any

from node.offers.validation import MAX_DESCRIPTION_CHARS, MAX_OFFER_MINUTES, MAX_TAGS

__all__ = ["OFFER_SCHEMAS"]

_PARTY = {
    "type": "object",
    "required": ["id", "name"],
    "properties": {
        "id": {"type": ["string", "null"]},
        "name": {"type": "string"},
        "url": {"type": "string"},
        "host": {"type": "string"},
    },
}

OFFER_SCHEMAS: dict[str, Any] = {
    "OfferInput": {
        "type": "object",
        "required": ["kind", "title", "description"],
        "properties": {
            "kind": {
                "enum": ["offer", "need"],
                "description": "offer: I propose; need: I look for",
            },
            "title": {"type": "string", "minLength": 3, "maxLength": 150},
            "description": {"type": "string", "minLength": 1, "maxLength": MAX_DESCRIPTION_CHARS},
            "tags": {
                "oneOf": [
                    {"type": "array", "items": {"type": "string"}, "maxItems": MAX_TAGS},
                    {"type": "string", "description": "comma-separated"},
                ]
            },
            "minutes": {
                "type": ["integer", "null"],
                "minimum": 1,
                "maximum": MAX_OFFER_MINUTES,
                "description": "an estimate, in minutes (federated in hours)",
            },
            "bricks": {
                "type": "array",
                "items": {"type": "string", "format": "uri"},
                "maxItems": 10,
                "description": "the bricks the offer rests on",
            },
        },
    },
    "OfferCreated": {
        "type": "object",
        "required": ["id", "url", "key"],
        "properties": {
            "id": {"type": "string", "format": "uri", "description": "the Proposal's id"},
            "url": {"type": "string", "format": "uri"},
            "key": {"type": "string"},
        },
    },
    "OfferItem": {
        "type": "object",
        "required": ["id", "key", "kind", "title", "author", "chamber", "url", "state"],
        "properties": {
            "id": {"type": "string", "format": "uri", "description": "the Proposal's id"},
            "key": {"type": "string"},
            "kind": {"enum": ["offer", "need"]},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "minutes": {"type": ["integer", "null"]},
            "bricks": {"type": "array", "items": {"type": "string"}},
            "author": _PARTY,
            "chamber": _PARTY,
            "url": {"type": "string", "format": "uri"},
            "local": {"type": "boolean"},
            "state": {"enum": ["open", "closed"]},
            "published": {"type": "string", "format": "date-time"},
        },
    },
    "OfferPage": {
        "type": "object",
        "required": ["items", "next", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/OfferItem"}},
            "next": {"type": ["string", "null"]},
            "next_cursor": {"type": ["integer", "null"]},
        },
    },
}
