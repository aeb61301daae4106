"""JSON Schemas of the API's bodies (OpenAPI components) for bricks, members and follows; the
operations name them (``node.web.api``). Clearing ones: ``node.web.api_schemas_clearing``."""

from __future__ import annotations

from typing import Any

from node.members.notifications import TYPES as NOTIFICATION_TYPES

__all__ = ["SCHEMAS"]

_TEXT = {"type": "string"}
_NULLABLE_TEXT = {"type": ["string", "null"]}
_TIME = {"type": "string", "format": "date-time"}

COMMON_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "description": "every error: a message, the status, and what is at fault when known",
        "required": ["error", "status"],
        "properties": {
            "error": {"type": "string"},
            "status": {"type": "integer"},
            "field": {"type": ["string", "null"], "description": "the input at fault"},
            "fields": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "inputs at fault, one message each",
            },
            "errors": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "brick fields at fault, one message each",
            },
            "missing": {
                "type": "array",
                "items": {"type": "string"},
                "description": "what the member still needs for the clearing house",
            },
            "limit_minutes": {"type": "integer"},
            "excess_minutes": {"type": "integer"},
        },
    },
}

#: What a brick holds, as the API takes it (creation requires the first four).
_BRICK_FIELDS: dict[str, Any] = {
    "title": {"type": "string", "minLength": 3, "maxLength": 150},
    "category": {"type": "string", "enum": ["concept", "analyse", "methode"]},
    "summary": {
        "type": "string",
        "maxLength": 500,
        "description": "about five lines (at most 5 lines, 500 characters)",
    },
    "body": {
        "type": "string",
        "description": "the development, in Markdown (served as sanitized HTML)",
    },
    "tags": {
        "oneOf": [
            {"type": "array", "items": {"type": "string"}, "maxItems": 10},
            {"type": "string", "description": "comma-separated"},
        ]
    },
    "links": {
        "oneOf": [
            {"type": "array", "items": {"type": "string", "format": "uri"}, "maxItems": 20},
            {"type": "string", "description": "one URL per line"},
        ]
    },
    "authors": {
        "type": "array",
        "items": {"type": "string"},
        "description": "co-authors: local usernames, "
        "@user@host or actor URLs (the "
        "caller is always the first "
        "author)",
    },
}


BRICK_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "status"],
        "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
    },
    "BrickInput": {
        "type": "object",
        "required": ["title", "category", "summary", "body"],
        "properties": _BRICK_FIELDS,
    },
    "BrickPatch": {
        "type": "object",
        "properties": {
            **_BRICK_FIELDS,
            "remove_files": {"type": "array", "items": {"type": "string", "format": "uri"}},
        },
    },
    "Created": {
        "type": "object",
        "required": ["id", "key", "url"],
        "properties": {
            "id": {"type": "string", "format": "uri"},
            "key": {"type": "string"},
            "url": {"type": "string", "format": "uri"},
        },
    },
    "Author": {
        "type": "object",
        "required": ["id", "name", "url"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "url": {"type": "string"},
        },
    },
    "BrickItem": {
        "type": "object",
        "required": [
            "id",
            "key",
            "url",
            "title",
            "category",
            "tags",
            "summary",
            "authors",
            "local",
        ],
        "properties": {
            "id": {"type": "string", "format": "uri", "description": "the ActivityPub id"},
            "key": {"type": "string"},
            "url": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "category": {"type": "string", "enum": ["concept", "analyse", "methode"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "summary": {"type": "string"},
            "authors": {"type": "array", "items": {"$ref": "#/components/schemas/Author"}},
            "local": {"type": "boolean"},
            "published": {"type": "string", "format": "date-time"},
            "updated": {"type": "string", "format": "date-time"},
            "rating_average": {"type": ["number", "null"]},
            "rating_count": {"type": "integer"},
        },
    },
    "BrickPage": {
        "type": "object",
        "required": ["items", "next", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/BrickItem"}},
            "next": {"type": ["string", "null"]},
            "next_cursor": {"type": ["integer", "null"]},
        },
    },
    "BrickDetail": {
        "allOf": [
            {"$ref": "#/components/schemas/BrickItem"},
            {
                "type": "object",
                "required": ["body", "content", "links", "files", "licence", "version", "reviews"],
                "properties": {
                    "body": {"type": "string", "description": "Markdown source (local bricks)"},
                    "content": {"type": "string", "description": "sanitized HTML"},
                    "links": {"type": "array", "items": {"type": "object"}},
                    "files": {"type": "array", "items": {"type": "object"}},
                    "licence": {"type": "string"},
                    "version": {"type": "integer"},
                    "likes": {"type": "integer"},
                    "reviews": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/ReviewItem"},
                    },
                },
            },
        ]
    },
    "ReviewInput": {
        "type": "object",
        "required": ["rating"],
        "properties": {
            "rating": {"type": "integer", "minimum": 1, "maximum": 5},
            "comment": {"type": "string", "maxLength": 5000},
        },
    },
    "Review": {
        "type": "object",
        "required": ["id", "rating", "comment", "used"],
        "properties": {
            "id": {"type": "string", "format": "uri"},
            "rating": {"type": "integer"},
            "comment": {"type": "string"},
            "used": {"type": "boolean"},
        },
    },
    "ReviewItem": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "author": {"$ref": "#/components/schemas/Author"},
            "rating": {"type": ["integer", "null"]},
            "comment": {"type": "string"},
            "used": {"type": "boolean"},
            "local": {"type": "boolean"},
            "published": {"type": "string"},
        },
    },
}

_CONTRIBUTIONS = {
    "type": "object",
    "required": ["published_bricks", "rating_average", "rating_count", "exchanges", "balance"],
    "properties": {
        "published_bricks": {"type": "integer", "minimum": 0},
        "rating_average": {"type": ["number", "null"]},
        "rating_count": {"type": "integer", "minimum": 0},
        "exchanges": {"type": "integer", "minimum": 0},
        "balance": {"type": ["string", "null"], "description": "null unless balances are public"},
    },
}
_ROLES = {"type": "array", "items": {"enum": ["member", "admin"]}}
_STATUS = {"enum": ["pending", "approved", "refused", "suspended"]}

MEMBER_SCHEMAS: dict[str, Any] = {
    "Charter": {
        "type": "object",
        "required": ["version", "text"],
        "properties": {"version": {"type": "integer"}, "text": _TEXT},
    },
    "CharterEdit": {
        "type": "object",
        "required": ["text", "reason"],
        "properties": {"text": _TEXT, "reason": {**_TEXT, "description": "written to the log"}},
    },
    "Registration": {
        "type": "object",
        "required": ["username", "password", "charter_version"],
        "properties": {
            "username": _TEXT,
            "password": _TEXT,
            "display_name": _TEXT,
            "charter_version": {"type": "integer", "description": "the charter accepted"},
            "language": _NULLABLE_TEXT,
        },
    },
    "Registered": {
        "type": "object",
        "required": ["username", "status"],
        "properties": {"username": _TEXT, "status": _STATUS},
    },
    "Member": {
        "type": "object",
        "required": ["username", "actor", "status", "roles", "clearing_access", "contributions"],
        "properties": {
            "username": _TEXT,
            "actor": {"type": "string", "format": "uri"},
            "display_name": _TEXT,
            "bio": _TEXT,
            "avatar_url": _NULLABLE_TEXT,
            "language": _NULLABLE_TEXT,
            "status": _STATUS,
            "roles": _ROLES,
            "charter_version": {"type": ["integer", "null"]},
            "manually_approves_followers": {"type": "boolean"},
            "clearing_access": {
                "type": "object",
                "required": ["allowed", "missing", "override"],
                "properties": {
                    "allowed": {"type": "boolean"},
                    "missing": {"type": "array", "items": _TEXT},
                    "override": {"enum": ["granted", "revoked", None]},
                },
            },
            "contributions": _CONTRIBUTIONS,
        },
    },
    "ProfileChange": {
        "type": "object",
        "properties": {
            "display_name": _TEXT,
            "bio": _TEXT,
            "avatar_url": _TEXT,
            "header_url": _TEXT,
            "language": _NULLABLE_TEXT,
            "manually_approves_followers": {"type": "boolean"},
        },
    },
    "PasswordChange": {
        "type": "object",
        "required": ["current_password", "new_password"],
        "properties": {"current_password": _TEXT, "new_password": _TEXT},
    },
    "FollowRequests": {
        "type": "object",
        "required": ["pending"],
        "properties": {
            "pending": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["actor", "requested_at"],
                    "properties": {"actor": _TEXT, "requested_at": _TIME},
                },
            }
        },
    },
    "FollowDecision": {
        "type": "object",
        "required": ["actor", "decision"],
        "properties": {
            "actor": {**_TEXT, "description": "the follower's actor id"},
            "decision": {"enum": ["accept", "reject"]},
        },
    },
    "PublicMember": {
        "type": "object",
        "required": ["username", "display_name", "member_since", "contributions"],
        "properties": {
            "username": _TEXT,
            "actor": {"type": ["string", "null"], "format": "uri"},
            "display_name": _TEXT,
            "bio": _TEXT,
            "avatar_url": _NULLABLE_TEXT,
            "member_since": {"type": "string", "format": "date"},
            "contributions": _CONTRIBUTIONS,
        },
    },
    "AdminMember": {
        "type": "object",
        "required": ["username", "status", "roles", "created_at"],
        "properties": {
            "username": _TEXT,
            "display_name": _TEXT,
            "status": _STATUS,
            "status_reason": _TEXT,
            "roles": _ROLES,
            "charter_version": {"type": ["integer", "null"]},
            "clearing_override": {"enum": ["granted", "revoked", None]},
            "created_at": _TIME,
        },
    },
    "AdminMembers": {
        "type": "object",
        "required": ["members"],
        "properties": {
            "members": {"type": "array", "items": {"$ref": "#/components/schemas/AdminMember"}}
        },
    },
    "Reason": {
        "type": "object",
        "properties": {"reason": {**_TEXT, "description": "written to the log"}},
    },
    "Audit": {
        "type": "object",
        "required": ["total", "entries"],
        "properties": {
            "total": {"type": "integer", "minimum": 0},
            "entries": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "at", "by", "action", "target", "reason", "details"],
                    "properties": {
                        "id": {"type": "integer"},
                        "at": _TIME,
                        "by": _TEXT,
                        "action": _TEXT,
                        "target": _TEXT,
                        "reason": _TEXT,
                        "details": {"type": "object"},
                    },
                },
            },
        },
    },
    "DomainBlock": {
        "type": "object",
        "required": ["host"],
        "properties": {"host": _TEXT, "reason": _TEXT},
    },
    "DomainBlocks": {
        "type": "object",
        "required": ["blocks"],
        "properties": {
            "blocks": {"type": "array", "items": {"$ref": "#/components/schemas/DomainBlock"}}
        },
    },
    "RemoteRemoval": {
        "type": "object",
        "required": ["actor"],
        "properties": {"actor": {**_TEXT, "description": "the remote actor's id"}, "reason": _TEXT},
    },
    "Removed": {
        "type": "object",
        "required": ["removed_activities"],
        "properties": {"removed_activities": {"type": "integer", "minimum": 0}},
    },
    "FollowInput": {
        "type": "object",
        "required": ["handle"],
        "properties": {
            "handle": {"type": "string", "maxLength": 2048, "examples": ["@marie@lille.example"]}
        },
    },
    "Following": {
        "type": "object",
        "required": ["target", "state"],
        "properties": {"target": {"type": "string", "format": "uri"}, "state": _TEXT},
    },
    "Inbox": {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["key", "id", "type", "actor", "received_at", "activity"],
                    "properties": {
                        "key": {"type": "integer"},
                        "id": _TEXT,
                        "type": _TEXT,
                        "actor": _TEXT,
                        "object": _NULLABLE_TEXT,
                        "received_at": _TIME,
                        "activity": {"type": "object"},
                    },
                },
            }
        },
    },
}

NOTIFICATION_SCHEMAS: dict[str, Any] = {
    "Notification": {
        "type": "object",
        "required": ["id", "type", "created_at", "read", "url", "summary"],
        "properties": {
            "id": {"type": "integer"},
            "type": {"type": "string", "enum": list(NOTIFICATION_TYPES)},
            "created_at": {"type": "string", "format": "date-time"},
            "read": {"type": "boolean"},
            "url": {"type": "string", "format": "uri"},
            "summary": {"type": "string", "description": "in the reader's language"},
        },
    },
    "NotificationList": {
        "type": "object",
        "required": ["items", "unread"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Notification"}},
            "unread": {"type": "integer", "minimum": 0},
        },
    },
}

SCHEMAS: dict[str, Any] = {
    **COMMON_SCHEMAS,
    **BRICK_SCHEMAS,
    **MEMBER_SCHEMAS,
    **NOTIFICATION_SCHEMAS,
}
