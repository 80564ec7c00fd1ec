"""Prometheus metrics. Labels carry only bounded values: never secrets, ids or tenant input.

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
import threading
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, exc, func, literal, select
from sqlalchemy.engine import Connection

from inventory_sync.db import Database, DatabaseUnavailable
from inventory_sync.erp_sync import repository as erp_repository
from inventory_sync.erp_sync.models import sync_attempt
from inventory_sync.ledger.models import ledger_movement
from inventory_sync.webhooks.models import inbound_event
from inventory_sync.webhooks.schemas import PAYLOAD_MODELS

log = logging.getLogger("inventory_sync.metrics")

WEBHOOK_EVENTS = Counter("invsync_webhook_events_total", "Webhook events by outcome.", ["status"])
WEBHOOK_EVENTS_BY_NAME = Counter(
    "invsync_events_total",
    "Webhook answers of this process by handled event name and status.",
    ["name", "status"],
)
WEBHOOK_REJECTED = Counter(
    "invsync_webhook_rejected_total", "Webhook requests refused before storage.", ["reason"]
)
WEBHOOK_LATENCY = Histogram(
    "invsync_webhook_seconds",
    "Webhook latency from request to committed answer.",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# Several scrapers (or a fast one) must not turn /metrics into a database load.
CACHE_SECONDS = 5.0


def event_label(name: str | None) -> str:
    return name if name in PAYLOAD_MODELS else "other"


@functools.cache
def _intake_counters(label: str, status: str) -> tuple[Counter, Counter]:
    # Resolving labelled children takes a lock and two lookups; there are a few dozen pairs.
    return WEBHOOK_EVENTS.labels(status), WEBHOOK_EVENTS_BY_NAME.labels(label, status)


def observe_intake(status: str, started: float, name: str | None = None) -> None:
    by_status, by_name = _intake_counters(event_label(name), status)
    by_status.inc()
    by_name.inc()
    WEBHOOK_LATENCY.observe(time.perf_counter() - started)


def _database_metrics(conn: Connection) -> list[Metric]:
    e = inbound_event
    name = case((e.c.name.in_(sorted(PAYLOAD_MODELS)), e.c.name), else_=literal("other")).label(
        "name"
    )
    stored = GaugeMetricFamily(
        "invsync_stored_events",
        "Events in the inbox by handled name and status (all processes).",
        labels=["name", "status"],
    )
    for row in conn.execute(select(name, e.c.status, func.count()).group_by(name, e.c.status)):
        stored.add_metric([row[0], row[1]], int(row[2]))

    movements = CounterMetricFamily(
        "invsync_ledger_movements", "Ledger movements recorded, by kind.", labels=["kind"]
    )
    m = ledger_movement
    for kind, number in conn.execute(select(m.c.kind, func.count()).group_by(m.c.kind)):
        movements.add_metric([kind], int(number))

    backlog = erp_repository.backlog(conn)
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
        "ERP delivery attempts by outcome (delivered, retry, dead).",
        labels=["outcome"],
    )
    a = sync_attempt
    for outcome, number in conn.execute(select(a.c.outcome, func.count()).group_by(a.c.outcome)):
        deliveries.add_metric([outcome], int(number))
    return [stored, movements, messages, oldest, deliveries]


class DatabaseCollector(Collector):
    """Reads the database figures at scrape time, at most once per `CACHE_SECONDS`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._cached_at = float("-inf")

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("invsync_database_up", "1 when the last scrape read the database.")
        with self._lock:
            if time.monotonic() - self._cached_at >= CACHE_SECONDS:
                try:
                    with self.db.snapshot() as conn:
                        self._cached = _database_metrics(conn)
                    self._cached_at = time.monotonic()
                except (DatabaseUnavailable, exc.SQLAlchemyError) as error:
                    # Away, or a schema not yet migrated: the process metrics still matter most
                    # then, and a scrape must never fail.
                    log.warning("metrics.database_unreadable", extra={"error": str(error)[:200]})
                    self._cached, self._cached_at = [], float("-inf")
            metrics = list(self._cached)
        up.add_metric([], 1.0 if metrics else 0.0)
        yield up
        yield from metrics


router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def scrape(request: Request) -> Response:
    """Prometheus exposition. Needs no token: it names no secret, id or tenant."""
    state: Any = request.app.state
    collector: DatabaseCollector | None = getattr(state, "metrics_collector", None)
    if collector is None or collector.db is not state.db:
        collector = state.metrics_collector = DatabaseCollector(state.db)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    body = generate_latest(REGISTRY) + generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
