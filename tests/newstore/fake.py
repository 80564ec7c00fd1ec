"""A local NewStore for the `inventory-sync newstore` commands: a real HTTP server following the
paths, bodies and errors of NewStore's configuration, observability and subscription APIs and
of its token endpoint, that records every call and really delivers events to a callback URL.

Errors are NewStore's problem documents (`application/problem+json`: type, title, detail,
status, request_id); a missing integration is a 404 whose title is `resource_not_found`. Knobs
make it misbehave as a proxy or a careless server might: echo each request back in an error,
or answer a page that is not JSON.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from inventory_sync.clock import iso, parse_timestamp

INTEGRATIONS = "/api/v1/org/integrations/eventstream"
OBSERVABILITY = "/api/v1/org/eventstream/observability/events"
SUBSCRIPTIONS = "/api/v1/org/eventstream/subscriptions/"
TOKEN_PATH = "/auth/realms/acme/protocol/openid-connect/token"
CLIENT_ID = "inventory-sync-client"
CLIENT_SECRET = "ns-client-secret-7f3a9c"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw: str
    """The body as sent, before any decoding."""


@dataclass
class Stored:
    """An event in NewStore's stream: when it was created and its webhook body."""

    created_at: datetime
    envelope: dict[str, Any]


class FakeNewStore:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.integrations: dict[str, dict[str, Any]] = {}
        self.stream: list[Stored] = []
        self.attempts: list[dict[str, Any]] = []
        self.publications: dict[str, tuple[str, dict[str, Any]]] = {}
        self.tokens: set[str] = set()
        # Knobs: the next N API calls answer 429; the next API call finds its token expired;
        # payload ids whose delivery "fails" (NewStore records a FAILURE and sends nothing).
        self.rate_limited = 0
        self.expire_next = False
        self.undeliverable: set[str] = set()
        # API calls of a method answer this status (401, 500...) with the whole request in the
        # detail; the token endpoint refuses and echoes its form; `echo_padding` characters
        # come first, to move what is echoed to where a message is cut; 2xx pages not JSON.
        self.echo: dict[str, int] = {}
        self.echo_token = False
        self.echo_padding = 0
        self.not_json = False
        # Whether each attempt NewStore records carries the event's payload.
        self.attempt_payloads = False
        self.lock = threading.RLock()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.fake = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def api_calls(self) -> list[Call]:
        return [c for c in self.calls if c.path != TOKEN_PATH]

    def changes(self) -> list[Call]:
        return [c for c in self.api_calls() if c.method != "GET"]

    def issue_token(self) -> str:
        token = f"ns-token-{uuid.uuid4().hex}"
        with self.lock:
            self.tokens.add(token)
        return token

    def add_integration(self, **fields: Any) -> None:
        with self.lock:
            self.integrations[fields["id"]] = {"status": "running"} | fields

    # -- the stream -------------------------------------------------------------------------

    def emit(self, envelope: dict[str, Any], created_at: datetime) -> None:
        """An event NewStore created (a replay window may send it)."""
        with self.lock:
            self.stream.append(Stored(created_at, envelope))

    def publish(self, integration_id: str, envelope: dict[str, Any]) -> dict[str, Any]:
        """Publish one event to an integration as NewStore does, recording the attempt."""
        with self.lock:
            integration = self.integrations[integration_id]
        publication = str(uuid.uuid4())
        status = "FAILURE"
        if envelope["payload"]["id"] not in self.undeliverable:
            params = integration["callback_parameters"]
            answer = httpx.post(
                params["callback_url"],
                json=envelope,
                headers={"Authorization": f"Bearer {params['api_key']}"},
                timeout=30,
            )
            status = "SUCCESS" if answer.is_success else "FAILURE"
        attempt = {
            "publication_id": publication,
            "integration_id": integration_id,
            "integration_type": integration.get("integration_type", "permanent"),
            "target": "webhook",
            "status": status,
            "attempted_at": iso(datetime.now(UTC)),
            "retries_remaining": 9 if status == "FAILURE" else 10,
            "entity_id": envelope["payload"]["id"],
            "domain_entity_id": envelope["payload"]["id"],
            "domain_entity_type": envelope["name"].split(".")[0],
            "event_name": envelope["name"],
            "response_time_ms": 12,
        } | ({"payload": envelope["payload"]} if self.attempt_payloads else {})
        with self.lock:
            self.attempts.append(attempt)
            self.publications[publication] = (integration_id, envelope)
        return attempt

    def _replay(self, integration_id: str) -> None:
        """A temporary integration: every event created in its window that its filter lets
        through, then it stops itself."""
        with self.lock:
            integration = self.integrations[integration_id]
            since = parse_timestamp(integration["starts_at"])
            until = parse_timestamp(integration["ends_at"])
            names = set(integration["filter_conditions"]["event_filter"])
            window = [
                s.envelope
                for s in self.stream
                if since <= s.created_at < until and s.envelope["name"] in names
            ]
        for envelope in window:
            self.publish(integration_id, envelope)
        with self.lock:
            integration["status"] = "stopped"

    # -- the HTTP side ----------------------------------------------------------------------

    def answer(self, call: Call) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            self.calls.append(call)
        if call.path == TOKEN_PATH:
            return self._token(call)
        if call.method in self.echo:
            return _problem(self.echo[call.method], "echo", self._echoed(call))
        if self.not_json:
            return (
                200,
                b"<html><body>Sign in to the proxy</body></html>",
                {"Content-Type": "text/html"},
            )
        presented = call.headers.get("authorization", "").removeprefix("Bearer ")
        with self.lock:
            if self.expire_next:
                self.expire_next = False
                self.tokens.clear()
            known = presented in self.tokens
        if not known:
            return _problem(401, "unauthorized", "invalid or expired access token")
        with self.lock:
            if self.rate_limited > 0:
                self.rate_limited -= 1
                status, body, _ = _problem(429, "too_many_requests", "rate limit exceeded")
                return status, body, {"Retry-After": "0"}
        return self._route(call)

    def _echoed(self, call: Call) -> str:
        authorization = call.headers.get("authorization", "")
        return f"{'x' * self.echo_padding}{call.raw} {authorization} {call.method} {call.path}"

    def _token(self, call: Call) -> tuple[int, Any, dict[str, str]]:
        if self.echo_token:
            body = {"error": "invalid_client", "error_description": self._echoed(call)}
            return 401, body, {}
        form = call.body or {}
        if form.get("grant_type") != "client_credentials" or (
            form.get("client_id"),
            form.get("client_secret"),
        ) != (CLIENT_ID, CLIENT_SECRET):
            # Keycloak's answer, which echoes nothing it was sent.
            body = {"error": "unauthorized_client", "error_description": "Invalid client"}
            return 401, body, {}
        body = {"access_token": self.issue_token(), "expires_in": 300, "token_type": "Bearer"}
        return 200, body, {}

    def _route(self, call: Call) -> tuple[int, Any, dict[str, str]]:
        path, method = call.path, call.method
        if path == INTEGRATIONS and method == "GET":
            with self.lock:
                return 200, {"integrations": list(self.integrations.values())}, {}
        if path == INTEGRATIONS and method == "POST":
            return self._register(call.body)
        if path.startswith(INTEGRATIONS + "/"):
            integration_id, _, action = path.removeprefix(INTEGRATIONS + "/").partition("/")
            return self._integration(method, integration_id, action, call.body)
        if path == OBSERVABILITY and method == "GET":
            return 200, self._attempts(call.query), {}
        if path.startswith(SUBSCRIPTIONS) and method == "POST":
            parts = path.removeprefix(SUBSCRIPTIONS).split("/")
            if len(parts) == 4 and parts[1] == "publications" and parts[3] == "_retry":
                return self._retry(parts[0], parts[2])
        return _problem(404, "resource_not_found", f"no route {method} {path}")

    def _register(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict) or not body.get("id") or "callback_parameters" not in body:
            return _problem(400, "bad_request", "id and callback_parameters are required")
        with self.lock:
            if body["id"] in self.integrations:
                return _problem(409, "conflict", f"integration {body['id']} exists")
            self.integrations[body["id"]] = body | {"status": "running"}
        if body.get("ends_at"):
            threading.Thread(target=self._replay, args=(body["id"],), daemon=True).start()
        return 201, body | {"status": "running"}, {}

    def _integration(
        self, method: str, integration_id: str, action: str, body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            integration = self.integrations.get(integration_id)
            if integration is None:
                return _problem(404, "resource_not_found", f"integration {integration_id}")
            if method == "GET" and not action:
                return 200, dict(integration), {}
            if method == "PATCH" and not action:
                for part in ("callback_parameters", "filter_conditions"):
                    if part in body:
                        integration[part] = integration.get(part, {}) | body[part]
                return 200, dict(integration), {}
            if method == "DELETE" and not action:
                del self.integrations[integration_id]
                return 204, None, {}
            if method == "POST" and action in ("_start", "_stop"):
                integration["status"] = "running" if action == "_start" else "stopped"
                return 204, None, {}
        return _problem(405, "method_not_allowed", f"{method} {action}")

    def _attempts(self, query: dict[str, str]) -> list[dict[str, Any]]:
        since = parse_timestamp(query["from"]) if "from" in query else None
        until = parse_timestamp(query["to"]) if "to" in query else None
        with self.lock:
            found = list(self.attempts)
        return [
            a
            for a in found
            if a["integration_id"] == query.get("integration_id", a["integration_id"])
            and a["status"].lower() == query.get("status", a["status"]).lower()
            and (since is None or parse_timestamp(a["attempted_at"]) >= since)
            and (until is None or parse_timestamp(a["attempted_at"]) < until)
        ]

    def _retry(self, subscription: str, publication: str) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            found = self.publications.get(publication)
        if found is None or found[0] != subscription:
            return _problem(404, "resource_not_found", f"publication {publication}")
        self.publish(subscription, found[1])
        return 204, None, {}


def _problem(status: int, title: str, detail: str) -> tuple[int, Any, dict[str, str]]:
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": "",
        "request_id": uuid.uuid4().hex[:12],
    }
    return status, body, {"Content-Type": "application/problem+json"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeNewStore


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            body: Any = dict(parse_qsl(raw.decode()))
        else:
            body = json.loads(raw) if raw else None
        call = Call(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw=raw.decode(),
        )
        status, answer, headers = self.server.fake.answer(call)
        if isinstance(answer, bytes):
            data = answer
        else:
            data = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def running() -> Iterator[FakeNewStore]:
    fake = FakeNewStore()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()
