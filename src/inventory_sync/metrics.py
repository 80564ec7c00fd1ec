"""Prometheus metrics. Labels carry only bounded values: never secrets, ids or tenant input."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram

from inventory_sync.webhooks.schemas import PAYLOAD_MODELS

WEBHOOK_EVENTS = Counter("invsync_webhook_events_total", "Webhook events by outcome.", ["status"])
WEBHOOK_EVENTS_BY_NAME = Counter(
    "invsync_events_total", "Stored events by handled name and status.", ["name", "status"]
)
WEBHOOK_REJECTED = Counter(
    "invsync_webhook_rejected_total", "Webhook requests refused before storage.", ["reason"]
)
WEBHOOK_LATENCY = Histogram(
    "invsync_webhook_seconds",
    "Webhook latency from request to committed answer.",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LEDGER_MOVEMENTS = Counter("invsync_ledger_movements_total", "Ledger movements written.", ["kind"])


def event_label(name: str | None) -> str:
    return name if name in PAYLOAD_MODELS else "other"


def observe_intake(status: str, started: float, name: str | None = None) -> None:
    WEBHOOK_EVENTS.labels(status).inc()
    WEBHOOK_EVENTS_BY_NAME.labels(event_label(name), status).inc()
    WEBHOOK_LATENCY.observe(time.perf_counter() - started)
