"""Prometheus metrics. Labels carry only bounded values: never secrets, event ids or tenants.
Store ids label the completeness gauges: NewStore caps a tenant's locations at 2000, and so do
we (`MAX_STORES`).

Two sources, on purpose:

- counters and the latency histogram of this process (webhook outcomes), which only this
  process can know;
- figures read from the database at scrape time (`DatabaseCollector`): stored events, ledger
  movements, the outbox backlog and delivery outcomes. They are global, so several API processes
  and workers report the same truth, and they survive restarts. Ledger rows and delivery
  attempts are append-only, so their row counts are true counters.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.engine import Connection

from inventory_sync.clock import parse_timestamp, utcnow
from inventory_sync.errors import DatabaseUnavailable, InputRefused
from inventory_sync.newstore.payloads import HANDLED
from inventory_sync.storage.database import Database
from inventory_sync.views import events as events_view
from inventory_sync.views import ledger as ledger_view
from inventory_sync.views import outbox as outbox_view
from inventory_sync.views import workers as workers_view
from inventory_sync.views.reconciliation import completeness

log = logging.getLogger("inventory_sync.metrics")

# prometheus_client's multiprocess mode: `serve --workers N` sets it before any process loads
# prometheus_client, which then keeps its values in files there.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

WEBHOOK_EVENTS = Counter("invsync_webhook_events_total", "Webhook events by outcome.", ["status"])
WEBHOOK_EVENTS_BY_NAME = Counter(
    "invsync_events_total",
    "Webhook answers of this process by handled event name and status.",
    ["name", "status"],
)
WEBHOOK_REJECTED = Counter(
    "invsync_webhook_rejected_total", "Webhook requests refused before storage.", ["reason"]
)
CONNECTIONS_REFUSED = Counter(
    "invsync_http_connections_refused_total",
    "Connections the server closed before the app saw a request, by reason (api/server.py).",
    ["reason"],
)
WEBHOOK_LATENCY = Histogram(
    "invsync_webhook_seconds",
    "Webhook latency from request to committed answer.",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# Several scrapers (or a fast one) must not turn /metrics into a database load.
CACHE_SECONDS = 5.0
# Completeness reads every count line of 30 days with its anchor: a minute old is fresh enough.
COMPLETENESS_SECONDS = 60.0
MAX_STORES = 2000


def event_label(name: str | None) -> str:
    return name if name in HANDLED else "other"


IGNORED_EVENTS = Counter(
    "invsync_ignored_events_total",
    "Webhook events answered ignored (names the service does not handle), by name.",
    ["name"],
)
# Names come from the sender: only NewStore-shaped ones become labels, and only so many.
_EVENT_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
MAX_IGNORED_NAMES = 200
_ignored_names: set[str] = set()


def ignored_label(name: str | None) -> str:
    if name in _ignored_names:
        return name
    if (
        name is None
        or len(_ignored_names) >= MAX_IGNORED_NAMES
        or len(name) > 64
        or not _EVENT_NAME.fullmatch(name)
    ):
        return "other"
    _ignored_names.add(name)
    return name


@functools.cache
def _intake_counters(label: str, status: str) -> tuple[Counter, Counter]:
    # Resolving labelled children takes a lock and two lookups; there are a few dozen pairs.
    return WEBHOOK_EVENTS.labels(status), WEBHOOK_EVENTS_BY_NAME.labels(label, status)


def observe_intake(status: str, started: float, name: str | None = None) -> None:
    by_status, by_name = _intake_counters(event_label(name), status)
    by_status.inc()
    by_name.inc()
    if status == "ignored":
        IGNORED_EVENTS.labels(ignored_label(name)).inc()
    WEBHOOK_LATENCY.observe(time.perf_counter() - started)


def _database_metrics(conn: Connection) -> list[Metric]:
    stored = GaugeMetricFamily(
        "invsync_stored_events",
        "Events in the inbox by handled name and status (all processes).",
        labels=["name", "status"],
    )
    for name, status, number in events_view.count_by_name_and_status(conn, HANDLED):
        stored.add_metric([name, status], number)

    movements = CounterMetricFamily(
        "invsync_ledger_movements", "Ledger movements recorded, by kind.", labels=["kind"]
    )
    for kind, number in ledger_view.count_by_kind(conn).items():
        movements.add_metric([kind], number)

    backlog = outbox_view.backlog(conn)
    messages = GaugeMetricFamily(
        "invsync_outbox_messages", "ERP outbox messages by status.", labels=["status"]
    )
    for status in ("pending", "delivered", "dead"):
        messages.add_metric([status], backlog[status])
    oldest = GaugeMetricFamily(
        "invsync_outbox_oldest_pending_age_seconds",
        "Age of the oldest pending ERP message; 0 when none is pending.",
    )
    oldest.add_metric([], backlog["oldest_pending_age_seconds"] or 0.0)

    deliveries = CounterMetricFamily(
        "invsync_erp_deliveries",
        "ERP delivery attempts by outcome (delivered, retry, throttled, dead).",
        labels=["outcome"],
    )
    for outcome, number in outbox_view.attempts_by_outcome(conn).items():
        deliveries.add_metric([outcome], number)

    found = workers_view.workers(conn)
    by_state = workers_view.count_by_state(found)
    workers = GaugeMetricFamily(
        "invsync_erp_workers",
        "ERP sync workers heard of in the last day by state; lost: stopped beating unannounced.",
        labels=["state"],
    )
    for state in workers_view.STATES:
        workers.add_metric([state], by_state.get(state, 0))
    breaker = GaugeMetricFamily(
        "invsync_erp_breaker_open", "Running ERP sync workers whose breaker to the ERP is open."
    )
    breaker.add_metric([], sum(1 for w in found if w["breaker_open"] and w["state"] in RUNNING))
    return [stored, movements, messages, oldest, deliveries, workers, breaker]


RUNNING = ("delivering", "idle", "misconfigured")

_COMPLETENESS = {
    "counted_lines": "Anchored count lines of the last 30 days, by store.",
    "lines_with_drift": "Of those, lines whose drift is not 0: units NewStore booked that we have "
    "no event for.",
    "drift_units": "Sum of the absolute drift of those lines.",
    "stale_incomplete_chunk_sets": "Chunk sets of the last 30 days still incomplete after "
    "NewStore's 15-minute delivery window.",
    "quarantined_events": "Quarantined events of the last 30 days whose store could be read.",
}


def _completeness_metrics(conn: Connection) -> list[Metric]:
    """The figures of /v1/reconciliation/completeness over 30 days, by store (tenants
    together: a tenant is not a label)."""
    now = utcnow()
    where = completeness.CompletenessFilter(since=now - completeness.WINDOW)
    by_store: dict[str, dict[str, int]] = {}
    last_counted: dict[str, datetime] = {}
    for item in completeness.by_location(conn, where, now):
        location_id = item["location_id"]
        store = by_store.setdefault(location_id, dict.fromkeys(_COMPLETENESS, 0))
        for name in _COMPLETENESS:
            store[name] += item[name]
        if item["last_counted_at"] is not None:
            counted_at = parse_timestamp(item["last_counted_at"])
            last_counted[location_id] = max(counted_at, last_counted.get(location_id, counted_at))
    families = {
        name: GaugeMetricFamily(f"invsync_completeness_{name}", text, labels=["location_id"])
        for name, text in _COMPLETENESS.items()
    }
    score = GaugeMetricFamily(
        "invsync_completeness_score",
        "Share of a store's counted lines of the last 30 days with zero drift; absent without "
        "any. 1 when every event arrives.",
        labels=["location_id"],
    )
    last_count = GaugeMetricFamily(
        "invsync_completeness_last_count_timestamp_seconds",
        "When a store was last counted (Unix time); absent if never.",
        labels=["location_id"],
    )
    for location_id in sorted(by_store)[:MAX_STORES]:
        store = by_store[location_id]
        for name, family in families.items():
            family.add_metric([location_id], store[name])
        if store["counted_lines"]:
            exact = store["counted_lines"] - store["lines_with_drift"]
            score.add_metric([location_id], exact / store["counted_lines"])
        if location_id in last_counted:
            last_count.add_metric([location_id], last_counted[location_id].timestamp())
    return [*families.values(), score, last_count]


class DatabaseCollector(Collector):
    """Reads the database figures at scrape time, at most once per `CACHE_SECONDS`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._cached_at = float("-inf")
        self._completeness: list[Metric] = []
        self._completeness_at = float("-inf")

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("invsync_database_up", "1 when the last scrape read the database.")
        with self._lock:
            if time.monotonic() - self._cached_at >= CACHE_SECONDS:
                try:
                    with self.db.snapshot() as conn:
                        self._cached = _database_metrics(conn)
                        if time.monotonic() - self._completeness_at >= COMPLETENESS_SECONDS:
                            self._completeness = _completeness_metrics(conn)
                            self._completeness_at = time.monotonic()
                    self._cached_at = time.monotonic()
                except (DatabaseUnavailable, InputRefused) as error:
                    # Away, or a schema not yet migrated: the process metrics still matter most
                    # then, and a scrape must never fail.
                    log.warning("metrics.database_unreadable", extra={"error": str(error)[:200]})
                    self._cached, self._cached_at = [], float("-inf")
                    self._completeness, self._completeness_at = [], float("-inf")
            metrics = list(self._cached) + (self._completeness if self._cached else [])
        up.add_metric([], 1.0 if metrics else 0.0)
        yield up
        yield from metrics


def exposition(collector: DatabaseCollector) -> tuple[bytes, str]:
    """The service's metrics and the database's, in Prometheus' text format. Under
    `serve --workers N` (PROMETHEUS_MULTIPROC_DIR set) the counters are every API process's
    together, whichever process answers the scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if MULTIPROCESS_DIR in os.environ:
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return _generate_latest(registry), CONTENT_TYPE_LATEST
    return _generate_latest(REGISTRY) + _generate_latest(registry), CONTENT_TYPE_LATEST
