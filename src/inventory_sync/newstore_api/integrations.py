"""Our Event Stream integration on NewStore's side, through its configuration API.

Paths and bodies follow NewStore's "Event stream configuration API (1.0)" and the integration
code NewStore's own teams published: list, register, get, update (PATCH), `_start`, `_stop`.
The delete path is not in the material we could read; `DELETE .../{id}` is inferred
(docs/operations.md, "Setting up a retailer", lists what is documented and what is not).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from inventory_sync.clock import iso, utcnow
from inventory_sync.newstore.payloads import HANDLED
from inventory_sync.newstore_api.client import Client, NotFound

INTEGRATIONS = "/api/v1/org/integrations/eventstream"
RUNNING, STOPPED = "running", "stopped"
PERMANENT, TEMPORARY = "permanent", "temporary"
# Exactly the events the service handles, never a copy of the list: NewStore sends every
# event to an integration without a filter, and each would be stored as `ignored`.
EVENT_FILTER = sorted(HANDLED)


@dataclass(frozen=True)
class Integration:
    """An integration as NewStore describes it. NewStore returns the `api_key` it sends us:
    it is kept to compare, never shown (`public()` leaves it out)."""

    id: str
    status: str | None
    integration_type: str | None
    callback_url: str | None
    event_filter: list[str] | None
    starts_at: str | None
    ends_at: str | None
    api_key: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, data: Any) -> Integration:
        data = data if isinstance(data, dict) else {}
        callback = data.get("callback_parameters") or {}
        filters = data.get("filter_conditions") or {}
        names = filters.get("event_filter") if isinstance(filters, dict) else None
        return cls(
            id=str(data.get("id", "")),
            status=data.get("status"),
            integration_type=data.get("integration_type"),
            callback_url=callback.get("callback_url") if isinstance(callback, dict) else None,
            event_filter=[str(n) for n in names] if isinstance(names, list) else None,
            starts_at=data.get("starts_at"),
            ends_at=data.get("ends_at"),
            api_key=callback.get("api_key") if isinstance(callback, dict) else None,
        )

    def filter_difference(self) -> tuple[list[str], list[str]]:
        """(handled names the filter lacks, names it has that we do not handle). Without a
        filter NewStore sends everything: every handled name is there, and all others too."""
        if not self.event_filter:
            return [], ["(every event: no filter)"]
        have = set(self.event_filter)
        return sorted(HANDLED - have), sorted(have - HANDLED)

    def public(self) -> dict[str, Any]:
        missing, extra = self.filter_difference()
        return {
            "id": self.id,
            "status": self.status,
            "integration_type": self.integration_type,
            "callback_url": self.callback_url,
            "event_filter": self.event_filter,
            "filter_missing": missing,
            "filter_extra": extra,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
        }


def _path(integration_id: str) -> str:
    return f"{INTEGRATIONS}/{integration_id}"


def get(client: Client, integration_id: str) -> Integration | None:
    try:
        return Integration.parse(client.call("GET", _path(integration_id)))
    except NotFound:
        return None


def list_all(client: Client) -> list[Integration]:
    answer = client.call("GET", INTEGRATIONS) or {}
    return [Integration.parse(item) for item in answer.get("integrations") or []]


def _parameters(callback_url: str, api_key: str) -> dict[str, Any]:
    return {
        "callback_parameters": {"callback_url": callback_url, "api_key": api_key},
        "filter_conditions": {"event_filter": EVENT_FILTER, "entity_filter": []},
    }


class MissingCallbackUrl(ValueError):
    """Registering needs a callback URL that neither the command nor NewStore has."""


@dataclass(frozen=True)
class Registered:
    action: str
    """`created`, `updated` or `unchanged`."""
    integration: Integration


def register(
    client: Client, integration_id: str, callback_url: str | None, api_key: str
) -> Registered:
    """Our permanent integration with this callback, key and filter: created when NewStore
    has none by that id, else updated in place (PATCH) when anything differs. A new
    integration starts by itself; an existing one keeps its running or stopped state."""
    found = get(client, integration_id)
    if found is None:
        if callback_url is None:
            raise MissingCallbackUrl(
                f"no integration {integration_id} yet: give its --callback-url"
            )
        body = {"id": integration_id, "integration_type": PERMANENT}
        client.call("POST", INTEGRATIONS, body=body | _parameters(callback_url, api_key))
        return Registered("created", get(client, integration_id) or Integration.parse(body))
    url = callback_url or found.callback_url
    if url is None:
        raise MissingCallbackUrl(
            f"integration {integration_id} has no callback URL: give --callback-url"
        )
    missing, extra = found.filter_difference()
    if url == found.callback_url and api_key == found.api_key and not missing and not extra:
        return Registered("unchanged", found)
    client.call("PATCH", _path(integration_id), body=_parameters(url, api_key))
    return Registered("updated", get(client, integration_id) or found)


def start(client: Client, integration_id: str) -> None:
    client.call("POST", f"{_path(integration_id)}/_start")


def stop(client: Client, integration_id: str) -> None:
    client.call("POST", f"{_path(integration_id)}/_stop")


def delete(client: Client, integration_id: str) -> None:
    """Removes the integration, and with it NewStore's logs and rejected events of it."""
    client.call("DELETE", _path(integration_id))


def replay_id(base: str, since: datetime, until: datetime) -> str:
    """One id per window, so that running the same replay again finds the replay already
    under way rather than starting a second one."""
    return f"{base}-replay-{since:%Y%m%dT%H%M%SZ}-{until:%Y%m%dT%H%M%SZ}"


def coverage_refusal(
    since: datetime, until: datetime, covered_from: datetime | None, bodies_from: datetime
) -> str | None:
    """Why a replay of [since, until) is refused, or None.

    A replay sends again every event NewStore created in the window; only those whose dedupe
    key the inbox holds are recognised as duplicates. The inbox keeps the key of every event
    it stored, so it covers the time since the first event it stored for the tenant: events
    from before that would all be applied again, as if new. And it recognises other bytes of
    the same event by comparing them with the stored body, which retention empties after
    INVSYNC_RETAIN_BODIES_DAYS: events received before `bodies_from` may be recognised only
    by the same bytes, and would otherwise be quarantined as conflicts.
    """
    if since >= until:
        return "--since must be before --until"
    if until > utcnow():
        return "--until is in the future: NewStore replays only events already created"
    if covered_from is None:
        return (
            "the inbox holds no event of this tenant yet, so it could recognise none of the "
            "replayed events; load history with `inventory-sync import` instead"
        )
    if since < covered_from:
        return (
            f"--since {iso(since)} is before {iso(covered_from)}, the first event the inbox "
            "holds for this tenant: earlier events would be applied again as new"
        )
    if since < bodies_from:
        return (
            f"--since {iso(since)} is before {iso(bodies_from)}: the bodies of events received "
            "earlier may be purged (INVSYNC_RETAIN_BODIES_DAYS), and a redelivery whose bytes "
            "differ from a purged one's would be quarantined as a conflict"
        )
    return None


def start_replay(
    client: Client,
    integration_id: str,
    callback_url: str,
    api_key: str,
    since: datetime,
    until: datetime,
) -> tuple[bool, Integration]:
    """The temporary integration of this window: registered (it starts by itself) unless it
    already exists. Returns (created, integration)."""
    found = get(client, integration_id)
    if found is not None:
        return False, found
    body = {
        "id": integration_id,
        "integration_type": TEMPORARY,
        "starts_at": iso(since),
        "ends_at": iso(until),
    } | _parameters(callback_url, api_key)
    client.call("POST", INTEGRATIONS, body=body)
    return True, get(client, integration_id) or Integration.parse(body)


def wait_until_stopped(
    client: Client,
    integration_id: str,
    *,
    poll_seconds: float,
    timeout_seconds: float,
    on_poll: Callable[[Integration], None] = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
) -> Integration | None:
    """The integration once NewStore has stopped it (a temporary one stops itself after the
    last event of its window), or None if it is still running after `timeout_seconds`."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        found = get(client, integration_id)
        if found is None:
            raise NotFound(f"integration {integration_id} is gone from NewStore", 404)
        on_poll(found)
        if found.status != RUNNING:
            return found
        if time.monotonic() + poll_seconds > deadline:
            return None
        sleep(poll_seconds)
