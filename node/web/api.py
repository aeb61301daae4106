"""Every JSON API operation declared once: the declaration builds the Starlette route (query
parameters and the body's media type checked before the handler runs) and the operation of the
OpenAPI 3.1 document served at ``/api/v1/openapi.json`` (``node.web.api_document``).

Query parameters are validated here, never in handlers: integers bounded (ids are cursors
from 1 to 2³¹-1, what both databases store), enumerations checked; a bad value answers 400
``{"error": "...", "status": 400, "field": name}``. A body in a media type the operation does
not take answers 415; handlers still check the body's fields (422 with ``field``/``fields``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from node.web.errors import ApiError

__all__ = [
    "ID_MAX",
    "JSON",
    "NO_NUL",
    "Answer",
    "Body",
    "Endpoint",
    "Param",
    "cursor",
    "json_object",
    "routes_of",
    "schema_ref",
]

#: The largest id a cursor may name: PostgreSQL's ``integer`` (asyncpg refuses more).
ID_MAX = 2**31 - 1
JSON = "application/json"
Auth = Literal["public", "member", "admin"]
Handler = Callable[[Request], Awaitable[Response]]

NO_NUL = "text cannot contain NUL characters"
_INTEGER = re.compile(r"-?[0-9]{1,19}")


@dataclass(frozen=True)
class Param:
    """A query (or path) parameter; ``parse`` is the check the route runs before its handler."""

    name: str
    description: str
    type: Literal["integer", "string"] = "string"
    minimum: int | None = None
    maximum: int | None = None
    enum: tuple[str, ...] = ()
    max_length: int | None = None
    required: bool = False
    location: Literal["query", "path", "header"] = "query"
    default: Any = None

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.type}
        if self.enum:
            schema["enum"] = list(self.enum)
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.default is not None:
            schema["default"] = self.default
        return schema

    def document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": self.location,
            "required": self.required or self.location == "path",
            "schema": self.schema(),
            "description": self.description,
        }

    def parse(self, raw: str) -> int | str:
        """The value, or a 400 naming the parameter and what it takes."""
        if self.type == "integer":
            low = "" if self.minimum is None else f" from {self.minimum}"
            high = "" if self.maximum is None else f" to {self.maximum}"
            wanted = f"{self.name}: a whole number{low}{high}"
            if not _INTEGER.fullmatch(raw):
                raise ApiError(400, wanted, field=self.name)
            number = int(raw)
            if (self.minimum is not None and number < self.minimum) or (
                self.maximum is not None and number > self.maximum
            ):
                raise ApiError(400, wanted, field=self.name)
            return number
        if "\x00" in raw:
            raise ApiError(400, f"{self.name}: {NO_NUL}", field=self.name)
        if self.enum and raw not in self.enum:
            raise ApiError(400, f"{self.name}: one of {', '.join(self.enum)}", field=self.name)
        if self.max_length is not None and len(raw) > self.max_length:
            raise ApiError(
                400, f"{self.name}: at most {self.max_length} characters", field=self.name
            )
        return raw


def cursor(name: str, description: str) -> Param:
    """An id to page from: a whole number from 1 to `ID_MAX`."""
    return Param(name, description, type="integer", minimum=1, maximum=ID_MAX)


@dataclass(frozen=True)
class Body:
    """The request body: a component schema name (or an inline schema) per media type."""

    schema: str | dict[str, Any]
    required: bool = True
    forms: dict[str, Any] | None = None
    """Also taken as ``multipart/form-data`` and urlencoded forms, with this schema."""
    description: str = ""

    def media(self) -> dict[str, Any]:
        content = {JSON: {"schema": schema_ref(self.schema)}}
        if self.forms is not None:
            content["multipart/form-data"] = {"schema": self.forms}
            content["application/x-www-form-urlencoded"] = {"schema": self.forms}
        return content

    def accepts(self, content_type: str) -> bool:
        if content_type == JSON or (
            content_type.startswith("application/") and content_type.endswith("+json")
        ):
            return True
        return self.forms is not None and content_type in (
            "multipart/form-data",
            "application/x-www-form-urlencoded",
        )


@dataclass(frozen=True)
class Answer:
    """One status code an operation answers: what it means and its body's schema (a component
    name, an inline schema, or None for no body)."""

    description: str
    schema: str | dict[str, Any] | None = "Error"
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    """One operation: the route it builds and what the OpenAPI document says of it."""

    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    responses: Mapping[int, Answer]
    auth: Auth = "public"
    params: tuple[Param, ...] = ()
    body: Body | None = None
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        declared = {p.name for p in self.params if p.location == "path"}
        missing = set(re.findall(r"{(\w+)}", self.path)) - declared
        if missing:
            raise ValueError(f"{self.method} {self.path}: declare path parameters {missing}")

    def route(self) -> Route:
        async def checked(request: Request) -> Response:
            await self.check(request)
            return await self.handler(request)

        checked.__name__ = self.operation_id
        checked.__doc__ = self.summary
        return Route(self.path, checked, methods=[self.method], name=self.operation_id)

    async def check(self, request: Request) -> None:
        """Parameters, the body's media type and its text, before the handler runs (which
        still checks the body's fields)."""
        for param in self.params:
            if param.location == "path" and "\x00" in request.path_params.get(param.name, ""):
                raise ApiError(400, f"{param.name}: {NO_NUL}", field=param.name)
            if param.location != "query":
                continue
            raw = request.query_params.get(param.name)
            if raw is None or raw == "":
                if param.required:
                    raise ApiError(400, f"{param.name}: required", field=param.name)
                continue
            param.parse(raw)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type and self.body is not None and not self.body.accepts(content_type):
            forms = " or a form" if self.body.forms is not None else ""
            raise ApiError(415, f"send the body as {JSON}{forms}, not {content_type}")
        if self.body is not None and (not content_type or content_type.endswith("json")):
            try:
                data = json.loads(await request.body())
            except ValueError:
                return  # the handler answers 400 with what it expects
            where = _nul_in(data, "body")
            if where is not None:
                raise ApiError(400, f"{where}: {NO_NUL}", field=where)

    def all_responses(self) -> dict[int, Answer]:
        """The declared answers and those the declaration itself gives (400, 401, 403, 415)."""
        answers: dict[int, Answer] = {}
        if self.params or self.body is not None:
            answers[400] = Answer("a parameter or the body is not valid")
        if self.auth != "public":
            answers[401] = Answer("no valid bearer token or session")
        if self.auth == "admin":
            answers[403] = Answer("for the chamber's administrators")
        elif self.method not in ("GET", "HEAD"):
            answers[403] = Answer("a browser session's change without its CSRF token")
        if self.body is not None:
            answers[413] = Answer("the body is larger than this node accepts")
            answers[415] = Answer("the body is not in a media type this operation takes")
        answers.update(self.responses)
        return dict(sorted(answers.items()))

    def operation(self) -> dict[str, Any]:
        operation: dict[str, Any] = {"operationId": self.operation_id, "summary": self.summary}
        if self.tags:
            operation["tags"] = list(self.tags)
        if self.auth != "public":
            operation["security"] = [{"bearer": []}]
        if self.params:
            operation["parameters"] = [p.document() for p in self.params]
        if self.body is not None:
            operation["requestBody"] = {
                "required": self.body.required,
                "content": self.body.media(),
            }
            if self.body.description:
                operation["requestBody"]["description"] = self.body.description
        operation["responses"] = {
            str(status): _answer(answer) for status, answer in self.all_responses().items()
        }
        return operation


def schema_ref(schema: str | dict[str, Any]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{schema}"} if isinstance(schema, str) else schema


def _answer(answer: Answer) -> dict[str, Any]:
    document: dict[str, Any] = {"description": answer.description}
    if answer.schema is not None:
        document["content"] = {JSON: {"schema": schema_ref(answer.schema)}}
    if answer.headers:
        document["headers"] = {
            name: {"schema": {"type": "string"}, "description": name} for name in answer.headers
        }
    return document


def _nul_in(value: Any, where: str) -> str | None:
    """Where a NUL character hides in a JSON value (PostgreSQL cannot store one in text)."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _nul_in(key, where) or _nul_in(item, key if where == "body" else where)
            if found is not None:
                return found
    if isinstance(value, list):
        for item in value:
            found = _nul_in(item, where)
            if found is not None:
                return found
    return None


def routes_of(endpoints: Iterable[Endpoint]) -> list[Route]:
    return [endpoint.route() for endpoint in endpoints]


async def json_object(request: Request) -> dict[str, Any]:
    """The request's JSON body, which must be an object (400 otherwise)."""
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body
