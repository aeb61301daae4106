"""The OpenAPI file is valid, and every operation it lists answers as documented."""

from __future__ import annotations

import json
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from starlette.applications import Starlette

from tests.bricks._helpers import BRICK, add_member, bearer

#: The OpenAPI documents already validated in this run, as canonical JSON.
_VALID_SPECS: set[str] = set()


def validate_spec(spec: dict[str, Any]) -> None:
    """``openapi_spec_validator.validate``, once per distinct document in a run (it depends
    on the document alone, and takes a fifth of a second; several tests check the same)."""
    canonical = json.dumps(spec, sort_keys=True)
    if canonical not in _VALID_SPECS:
        validate(spec)
        _VALID_SPECS.add(canonical)


class Documented:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.checked: set[tuple[str, str, str]] = set()

    def check(self, path: str, method: str, response: httpx.Response) -> None:
        operation = self.spec["paths"][path][method]
        status = str(response.status_code)
        assert status in operation["responses"], f"{method} {path} answered undocumented {status}"
        self.checked.add((path, method, status))
        documented = operation["responses"][status]
        if "$ref" in documented:
            documented = self.spec["components"]["responses"][documented["$ref"].rsplit("/", 1)[1]]
        content = documented.get("content")
        if not content:
            assert not response.content
            return
        assert response.headers["content-type"].startswith("application/json")
        schema = {**content["application/json"]["schema"], "components": self.spec["components"]}
        Draft202012Validator(schema).validate(response.json())


async def test_openapi_is_valid_and_true(app: Starlette, client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    validate_spec(spec)
    doc = Documented(spec)
    doc.check("/api/v1/openapi.json", "get", response)

    token = await add_member(app, "marie")
    other = await add_member(app, "paul")
    base = "/api/v1/bricks"
    doc.check(base, "post", await client.post(base, json=BRICK))
    doc.check(base, "post", await client.post(base, json={"title": ""}, headers=bearer(token)))
    created = await client.post(base, json=BRICK, headers=bearer(token))
    doc.check(base, "post", created)
    multipart = await client.post(
        base,
        data={k: v if isinstance(v, str) else ",".join(v) for k, v in BRICK.items()},
        files={"files": ("notes.txt", b"hello", "text/plain")},
        headers=bearer(token),
    )
    doc.check(base, "post", multipart)
    assert multipart.status_code == 201, multipart.text
    key = created.json()["key"]
    one = f"{base}/{{key}}"
    doc.check(base, "get", await client.get(base, params={"q": "jardin", "limit": 1}))
    doc.check(base, "get", await client.get(base, params={"category": "nope"}))
    doc.check(one, "get", await client.get(f"{base}/{key}"))
    doc.check(one, "get", await client.get(f"{base}/missing"))
    doc.check(
        one,
        "patch",
        await client.patch(f"{base}/{key}", json={"summary": "Neuf."}, headers=bearer(token)),
    )
    doc.check(
        one,
        "patch",
        await client.patch(f"{base}/{key}", json={"category": "x"}, headers=bearer(token)),
    )
    doc.check(
        one,
        "patch",
        await client.patch(f"{base}/{key}", json={"summary": "x"}, headers=bearer(other)),
    )
    doc.check(one, "patch", await client.patch(f"{base}/{key}", json={"summary": "x"}))
    doc.check(one, "patch", await client.patch(f"{base}/missing", json={}, headers=bearer(token)))
    reviews = f"{base}/{{key}}/reviews"
    doc.check(
        reviews,
        "post",
        await client.post(
            f"{base}/{key}/reviews", json={"rating": 3, "comment": "bien"}, headers=bearer(other)
        ),
    )
    doc.check(
        reviews,
        "post",
        await client.post(f"{base}/{key}/reviews", json={"rating": 0}, headers=bearer(other)),
    )
    doc.check(
        reviews,
        "post",
        await client.post(f"{base}/{key}/reviews", json={"rating": 3}, headers=bearer(token)),
    )
    doc.check(reviews, "post", await client.post(f"{base}/{key}/reviews", json={"rating": 3}))
    doc.check(
        reviews,
        "post",
        await client.post(f"{base}/missing/reviews", json={"rating": 3}, headers=bearer(other)),
    )
    pin = f"{base}/{{key}}/pin"
    for method in ("post", "delete"):
        send = getattr(client, method)
        doc.check(pin, method, await send(f"{base}/{key}/pin", headers=bearer(token)))
        doc.check(pin, method, await send(f"{base}/{key}/pin", headers=bearer(other)))
        doc.check(pin, method, await send(f"{base}/{key}/pin?as=x", headers=bearer(token)))
        doc.check(pin, method, await send(f"{base}/missing/pin", headers=bearer(token)))
        doc.check(pin, method, await send(f"{base}/{key}/pin"))
    doc.check(one, "delete", await client.delete(f"{base}/{key}"))
    doc.check(one, "delete", await client.delete(f"{base}/{key}", headers=bearer(other)))
    doc.check(one, "delete", await client.delete(f"{base}/{key}", headers=bearer(token)))
    doc.check(one, "delete", await client.delete(f"{base}/{key}", headers=bearer(token)))
    ours = ("/api/v1/bricks", "/api/v1/openapi.json")  # clearing: tests/clearing/test_openapi.py
    every = {
        (path, method)
        for path, item in spec["paths"].items()
        for method in item
        if method != "parameters" and path.startswith(ours)
    }
    assert {(p, m) for p, m, _ in doc.checked} == every
    documented_success = {
        (path, method, status)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method != "parameters"
        for status in op["responses"]
        if status.startswith("2") and path.startswith(ours)
    }
    assert documented_success <= doc.checked
