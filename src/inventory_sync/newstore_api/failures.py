"""NewStore's failed publication attempts, matched against what the inbox stored.

The attempts come from NewStore's Event Stream Observability API (`status=failure`, our
integration, a time window), whose query parameters and answer fields NewStore documents; its
path is not in the material we could read, nor which attempt field names the publication that
the subscription API's single retry takes (`publication_id`, else `id`, is inferred). An
attempt's `entity_id` is taken to be the event's `payload.id` (inferred from NewStore's sample,
where it is the id of the entity that emitted the event).

A `fulfillment_request.items_completed` is one of several events per payload id, one per
`payload.logical_timestamp` (the end of its dedupe key): a failed one is matched on that
timestamp when the attempt carries it (its payload, or the field alone); without it, which of
the stored events it is cannot be told, and it is `unknown`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from inventory_sync.clock import iso
from inventory_sync.newstore.payloads import SALE
from inventory_sync.newstore_api.client import Client

OBSERVABILITY = "/api/v1/org/eventstream/observability/events"
RETRY = "/api/v1/org/eventstream/subscriptions/{subscription}/publications/{publication}/_retry"

# What a failed event is on our side.
MISSING = "missing"  # never reached us: retry it
PARTIAL = "partial"  # some of its chunks never reached us: retry it
QUARANTINED = "quarantined"  # reached us, refused: replay it here, not at NewStore
RECEIVED = "received"  # reached us since (a later attempt succeeded): nothing to do
# A sale whose attempt does not say which logical timestamp it had: retry it, since a retry
# of one that is stored is answered `duplicate`.
UNKNOWN = "unknown"
TO_RETRY = (MISSING, PARTIAL, UNKNOWN)

EventKey = tuple[str, str, int | None]
"""(event name, payload id, logical timestamp): one event, as NewStore failed to publish it;
the timestamp only for a sale, and None when its attempt does not carry it."""


@dataclass(frozen=True)
class Attempt:
    event_name: str
    entity_id: str
    attempted_at: str | None
    retries_remaining: int | None
    publication_id: str | None
    logical_timestamp: int | None = None

    @property
    def key(self) -> EventKey:
        stamp = self.logical_timestamp if self.event_name == SALE else None
        return (self.event_name, self.entity_id, stamp)

    @classmethod
    def parse(cls, data: Any) -> Attempt | None:
        if not isinstance(data, dict) or not data.get("event_name") or not data.get("entity_id"):
            return None
        remaining = data.get("retries_remaining")
        publication = data.get("publication_id") or data.get("id")
        payload = data.get("payload")
        stamp = data.get("logical_timestamp")
        if stamp is None and isinstance(payload, dict):
            stamp = payload.get("logical_timestamp")
        return cls(
            event_name=str(data["event_name"]),
            entity_id=str(data["entity_id"]),
            attempted_at=data.get("attempted_at"),
            retries_remaining=remaining if isinstance(remaining, int) else None,
            publication_id=str(publication) if publication else None,
            logical_timestamp=stamp if type(stamp) is int else None,
        )


def failed_attempts(
    client: Client, integration_id: str, since: datetime, until: datetime | None
) -> list[Attempt]:
    params = {"integration_id": integration_id, "status": "failure", "from": iso(since) or ""}
    if until is not None:
        params["to"] = iso(until) or ""
    answer = client.call("GET", OBSERVABILITY, params=params)
    # Documented as an array of attempts; the subscription API wraps the same in "events".
    items = answer.get("events", []) if isinstance(answer, dict) else answer or []
    return [a for a in (Attempt.parse(item) for item in items) if a is not None]


@dataclass(frozen=True)
class Stored:
    """One stored event of the failed event's key (one per chunk)."""

    chunk_number: int | None
    total_chunks: int | None
    status: str


@dataclass(frozen=True)
class Failure:
    """One event NewStore failed to publish to us, with all its failed attempts."""

    event_name: str
    entity_id: str
    logical_timestamp: int | None
    attempts: int
    last_attempted_at: str | None
    retries_remaining: int | None
    publication_id: str | None
    """Of the latest attempt: the one a retry re-publishes."""
    verdict: str
    stored: tuple[Stored, ...]

    @property
    def key(self) -> EventKey:
        return (self.event_name, self.entity_id, self.logical_timestamp)

    def json(self) -> dict[str, Any]:
        return {
            "event_name": self.event_name,
            "entity_id": self.entity_id,
            "logical_timestamp": self.logical_timestamp,
            "attempts": self.attempts,
            "last_attempted_at": self.last_attempted_at,
            "retries_remaining": self.retries_remaining,
            "publication_id": self.publication_id,
            "verdict": self.verdict,
            "stored": [
                {"chunk_number": s.chunk_number, "total_chunks": s.total_chunks, "status": s.status}
                for s in self.stored
            ],
        }


def verdict(stored: Iterable[Stored]) -> str:
    rows = list(stored)
    if not rows:
        return MISSING
    accepted = {r.chunk_number or 1 for r in rows if r.status != QUARANTINED}
    expected = max((r.total_chunks or 1 for r in rows), default=1)
    if not accepted.issuperset(range(1, expected + 1)):
        return QUARANTINED if any(r.status == QUARANTINED for r in rows) else PARTIAL
    return RECEIVED


def unknowable(key: EventKey) -> bool:
    """A sale without its logical timestamp: no stored event can be said to be it."""
    return key[0] == SALE and key[2] is None


def match(attempts: Iterable[Attempt], stored: Mapping[EventKey, list[Stored]]) -> list[Failure]:
    """One `Failure` per event (`EventKey`), oldest first, judged against `stored`: every
    stored event of that key, whatever its chunk."""
    grouped: dict[EventKey, list[Attempt]] = {}
    for attempt in attempts:
        grouped.setdefault(attempt.key, []).append(attempt)
    failures = []
    for key, group in grouped.items():
        group.sort(key=lambda a: a.attempted_at or "")
        latest = group[-1]
        rows = tuple(stored.get(key, ()))
        failures.append(
            Failure(
                event_name=key[0],
                entity_id=key[1],
                logical_timestamp=key[2],
                attempts=len(group),
                last_attempted_at=latest.attempted_at,
                retries_remaining=latest.retries_remaining,
                publication_id=latest.publication_id,
                verdict=UNKNOWN if unknowable(key) else verdict(rows),
                stored=rows,
            )
        )
    return sorted(failures, key=lambda f: f.last_attempted_at or "")


def retry(client: Client, integration_id: str, publication_id: str) -> None:
    """Asks NewStore to publish that attempt's event to us again (its subscription API);
    the outcome becomes a new attempt in NewStore's records."""
    path = RETRY.format(subscription=integration_id, publication=quote(publication_id, safe=""))
    client.call("POST", path)
