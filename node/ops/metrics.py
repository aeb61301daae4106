"""A small in-process metrics registry rendered in the Prometheus text format 0.0.4.

Pure: no I/O library. Counters and histograms live in the process that increments them
(``archipel serve``); what another process changes (``archipel worker`` finishing jobs) is
read from the database at scrape time by *collectors*, async functions given a read-only
database session that return metric families. Domains register theirs with
``REGISTRY.add_collector(name, collector)`` -- the clearing house adds its ledger postings
this way (see ``ledger_postings_family``).

We do not depend on ``prometheus_client``: these few kinds, with labels, are all we need,
and its multiprocess mode (files in a shared directory) would not fit a worker that runs
in another container anyway.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DELIVERY_ATTEMPTS",
    "DURATION_BUCKETS",
    "HTTP_DURATION",
    "HTTP_REQUESTS",
    "INBOX_RECEIVED",
    "INBOX_REJECTIONS",
    "JOBS_FINISHED",
    "REGISTRY",
    "Collector",
    "Counter",
    "Family",
    "Histogram",
    "Registry",
    "Sample",
    "escape_label_value",
    "format_value",
    "ledger_postings_family",
    "status_class",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Coarse request-duration buckets in seconds.
DURATION_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

LabelValues = tuple[str, ...]


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def status_class(status: int) -> str:
    """``200`` → ``"2xx"``: bounded label values."""
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


@dataclass(frozen=True)
class Sample:
    """One line: ``name{labels} value``; ``suffix`` is appended to the family's name."""

    labels: dict[str, str]
    value: float
    suffix: str = ""


@dataclass
class Family:
    """A metric family: ``# HELP``, ``# TYPE`` and its samples."""

    name: str
    kind: str  # counter | gauge | histogram | untyped
    help: str
    samples: list[Sample] = field(default_factory=list)

    def render(self) -> str:
        lines = [
            f"# HELP {self.name} {self.help.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}",
            f"# TYPE {self.name} {self.kind}",
        ]
        for sample in self.samples:
            labels = ",".join(
                f'{key}="{escape_label_value(str(value))}"' for key, value in sample.labels.items()
            )
            label_text = f"{{{labels}}}" if labels else ""
            lines.append(f"{self.name}{sample.suffix}{label_text} {format_value(sample.value)}")
        return "\n".join(lines) + "\n"


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {sorted(labels)}")
        return tuple(str(labels[name]) for name in self.labelnames)

    def _labels(self, key: LabelValues) -> dict[str, str]:
        return dict(zip(self.labelnames, key, strict=True))

    def family(self) -> Family:
        raise NotImplementedError


class Counter(_Metric):
    """A value that only goes up (``*_total``)."""

    kind = "counter"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self._values: dict[LabelValues, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def family(self) -> Family:
        with self._lock:
            items = sorted(self._values.items())
        return Family(
            self.name,
            self.kind,
            self.help,
            [Sample(self._labels(key), value) for key, value in items],
        )


class Histogram(_Metric):
    """Observations counted in cumulative buckets, with their sum and count."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = DURATION_BUCKETS,
    ) -> None:
        super().__init__(name, help, labelnames)
        self.buckets = tuple(sorted(buckets))
        # per label values: counts per bucket (non-cumulative, last one is +Inf), sum
        self._series: dict[LabelValues, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            counts, total = self._series.setdefault(key, ([0] * (len(self.buckets) + 1), [0.0]))
            counts[bisect.bisect_left(self.buckets, value)] += 1
            total[0] += value

    def count(self, **labels: str) -> int:
        series = self._series.get(self._key(labels))
        return sum(series[0]) if series else 0

    def family(self) -> Family:
        samples: list[Sample] = []
        with self._lock:
            items = sorted((key, (list(c), s[0])) for key, (c, s) in self._series.items())
        for key, (counts, total) in items:
            labels = self._labels(key)
            cumulative = 0
            for bound, count in zip((*self.buckets, math.inf), counts, strict=True):
                cumulative += count
                le = "+Inf" if math.isinf(bound) else format_value(bound)
                samples.append(Sample({**labels, "le": le}, cumulative, "_bucket"))
            samples.append(Sample(labels, total, "_sum"))
            samples.append(Sample(labels, cumulative, "_count"))
        return Family(self.name, self.kind, self.help, samples)


#: Given a read-only database session (typed ``Any``: this module imports no database
#: library), returns metric families read at scrape time.
Collector = Callable[[Any], Awaitable[Iterable[Family]]]


class Registry:
    """In-process metrics plus the collectors run at each scrape."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._collectors: dict[str, Collector] = {}

    def _add(self, metric: _Metric) -> Any:
        existing = self._metrics.get(metric.name)
        if existing is not None:
            if type(existing) is not type(metric) or existing.labelnames != metric.labelnames:
                raise ValueError(f"{metric.name} is already registered differently")
            return existing
        self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        metric: Counter = self._add(Counter(name, help, labelnames))
        return metric

    def histogram(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = DURATION_BUCKETS,
    ) -> Histogram:
        metric: Histogram = self._add(Histogram(name, help, labelnames, buckets))
        return metric

    def add_collector(self, name: str, collector: Collector) -> None:
        """Register (or replace: registering twice is harmless) a scrape-time collector."""
        self._collectors[name] = collector

    @property
    def collectors(self) -> list[Collector]:
        return list(self._collectors.values())

    def families(self) -> list[Family]:
        return [metric.family() for metric in self._metrics.values()]

    @staticmethod
    def render(families: Iterable[Family]) -> str:
        return "".join(family.render() for family in families)


def ledger_postings_family(counts: dict[str, int]) -> Family:
    """What the clearing house's collector returns: postings in the ledger by kind."""
    return Family(
        "archipel_ledger_postings",
        "gauge",
        "Postings in the clearing ledger, by kind.",
        [Sample({"kind": kind}, count) for kind, count in sorted(counts.items())],
    )


#: The process's registry. Module-level like ``logging``'s loggers: building it does no I/O.
REGISTRY = Registry()

HTTP_REQUESTS = REGISTRY.counter(
    "archipel_http_requests_total",
    "HTTP requests answered, by method and status class.",
    ("method", "status"),
)
HTTP_DURATION = REGISTRY.histogram(
    "archipel_http_request_duration_seconds",
    "Time to answer an HTTP request, by method.",
    ("method",),
)
INBOX_RECEIVED = REGISTRY.counter(
    "archipel_inbox_activities_total",
    "Inbox POSTs processed (202), by result: accepted, duplicate, ignored, unhandledType...",
    ("result",),
)
INBOX_REJECTIONS = REGISTRY.counter(
    "archipel_inbox_rejections_total",
    "Inbox POSTs refused, by reason (invalidSignature, blockedDomain, originMismatch...).",
    ("reason",),
)
DELIVERY_ATTEMPTS = REGISTRY.counter(
    "archipel_delivery_attempts_total",
    "Delivery attempts made by this process, by result (2xx, 4xx, 5xx, gone, network,"
    " paused, blocked).",
    ("result",),
)
JOBS_FINISHED = REGISTRY.counter(
    "archipel_jobs_runs_total",
    "Job runs by this process, by kind and outcome (done, retry, failed).",
    ("kind", "outcome"),
)
