"""``GET /metrics``: Prometheus text format, counters that move, gauges from the database."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
from starlette.applications import Starlette

from node.config import Settings
from node.db import session_scope
from node.jobs import JobState, enqueue
from node.members.models import MemberStatus
from node.members.service import create_member
from node.ops.metrics import Counter, Family, Histogram, Registry, Sample
from node.web.app import create_app

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"'
_SAMPLE = re.compile(
    rf"^(?P<name>{_NAME})(?:\{{(?P<labels>{_LABEL}(?:,{_LABEL})*)?\}})?"
    r" (?P<value>[-+]?(?:\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|Inf|NaN))$"
)
_LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """A strict little parser of the text format 0.0.4: fails on any malformed line."""
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    types: dict[str, str] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            assert re.match(rf"^# HELP {_NAME} .*$", line), line
            continue
        if line.startswith("# TYPE "):
            match = re.match(rf"^# TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)$", line)
            assert match, line
            assert match.group(1) not in types, f"{match.group(1)} declared twice"
            types[match.group(1)] = match.group(2)
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        labels = frozenset(_LABEL_PAIR.findall(match.group("labels") or ""))
        key = (match.group("name"), labels)
        assert key not in samples, f"duplicate sample {line!r}"
        value = match.group("value")
        samples[key] = math.inf if value in ("+Inf", "Inf") else float(value)
        base = re.sub(r"_(bucket|sum|count)$", "", match.group("name"))
        assert match.group("name") in types or base in types, f"no TYPE for {line!r}"
    return samples


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def _scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


async def test_counters_move_and_the_format_parses(
    client: httpx.AsyncClient, app: Starlette, settings: Settings
) -> None:
    before = await _scrape(client)
    assert (await client.get("/healthz")).status_code == 200
    assert (
        await client.get("/no/such/page", headers={"Accept": "application/json"})
    ).status_code == 404
    rejected = await client.post(
        "/inbox", content=b"{not json", headers={"Content-Type": "application/activity+json"}
    )
    assert rejected.status_code == 400
    unsigned = await client.post(
        "/inbox",
        json={
            "id": "https://gand.example/activities/1",
            "type": "Follow",
            "actor": "https://gand.example/actors/gand",
            "object": f"{settings.url}/actors/lille",
        },
        headers={"Content-Type": "application/activity+json"},
    )
    assert unsigned.status_code == 401

    node = app.state.node
    async with session_scope(node.sessionmaker) as session:
        await create_member(
            session,
            node.box,
            username="marie",
            chamber_username=settings.chamber_username,
            status=MemberStatus.APPROVED,
        )
        await enqueue(
            session,
            "deliver",
            {"inbox": "https://gand.example/inbox", "actor": "lille"},
            give_up_after=timedelta(days=3),
            now=node.worker.clock() + timedelta(days=1),
        )
        failed = await enqueue(session, "deliver", {"inbox": "x", "actor": "lille"})
        failed.state = JobState.FAILED

    after = await _scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("archipel_http_requests_total", method="GET", status="2xx") >= 2  # incl. scrape
    assert moved("archipel_http_requests_total", method="GET", status="4xx") == 1
    assert moved("archipel_http_requests_total", method="POST", status="4xx") == 2
    assert moved("archipel_inbox_rejections_total", reason="invalidJson") == 1
    assert moved("archipel_inbox_rejections_total", reason="noSignature") == 1
    assert moved("archipel_http_request_duration_seconds_count", method="POST") == 2
    assert value(
        after, "archipel_http_request_duration_seconds_bucket", method="POST", le="+Inf"
    ) == value(after, "archipel_http_request_duration_seconds_count", method="POST")
    assert value(after, "archipel_deliveries_pending") == 1
    assert value(after, "archipel_deliveries_failed") == 1
    assert value(after, "archipel_jobs", kind="deliver", state="pending") == 1
    assert value(after, "archipel_members") == 1
    assert value(after, "archipel_members_by_status", status="approved") == 1
    assert value(after, "archipel_database_up") == 1


async def test_a_metrics_token_is_required_when_configured(settings: Settings) -> None:
    app = create_app(replace(settings, metrics_token="s3cret-token"), run_worker=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=settings.url) as http:
            refused = await http.get("/metrics")
            wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
            allowed = await http.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert refused.status_code == 401 and wrong.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert allowed.status_code == 200
    parse(allowed.text)


async def test_a_registered_collector_is_scraped(client: httpx.AsyncClient) -> None:
    from node.ops.metrics import REGISTRY, ledger_postings_family

    async def postings(session: object) -> list[Family]:
        return [ledger_postings_family({"transfer": 3, "levy": 1})]

    REGISTRY.add_collector("test-ledger", postings)
    try:
        samples = await _scrape(client)
    finally:
        REGISTRY._collectors.pop("test-ledger")
    assert value(samples, "archipel_ledger_postings", kind="transfer") == 3


def test_the_registry_renders_labels_buckets_and_escapes() -> None:
    registry = Registry()
    counter = registry.counter("x_total", "X things.", ("path",))
    counter.inc(path='a"b\\c\nd')
    counter.inc(2, path="plain")
    assert isinstance(counter, Counter) and counter.value(path="plain") == 2
    histogram = registry.histogram("d_seconds", "Durations.", (), buckets=(0.1, 1))
    assert isinstance(histogram, Histogram)
    for seconds in (0.05, 0.1, 0.5, 3):
        histogram.observe(seconds)
    text = registry.render(registry.families())
    samples = parse(text)
    assert value(samples, "x_total", path='a\\"b\\\\c\\nd') == 1
    assert value(samples, "d_seconds_bucket", le="0.1") == 2
    assert value(samples, "d_seconds_bucket", le="1") == 3
    assert value(samples, "d_seconds_bucket", le="+Inf") == 4
    assert value(samples, "d_seconds_count") == 4
    assert value(samples, "d_seconds_sum") == pytest.approx(3.65)
    with pytest.raises(ValueError):
        counter.inc(path="a", extra="b")
    with pytest.raises(ValueError):
        registry.histogram("x_total", "again", ("path",))
    assert Family("g", "gauge", "G.", [Sample({}, 1.5)]).render().endswith("g 1.5\n")
