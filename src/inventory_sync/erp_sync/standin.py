"""A local ERP stand-in for demos and docker-compose: `inventory-sync erp-standin`.

Accepts every POSTed document and prints it on one line, checks Standard Webhooks signatures
when given the secret (401 when they do not verify), reports redelivered Idempotency-Keys as
duplicates (and answers 200, as a deduping ERP would), and can be told to fail.
"""

from __future__ import annotations

import json
import random
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TextIO

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Behaviour:
    secret: str | None = None
    fail_rate: float = 0.0
    fail_status: int = 503
    fail_first: int = 0
    out: TextIO = field(default_factory=lambda: sys.stdout)
    rng: random.Random = field(default_factory=random.Random)
    seen: set[str] = field(default_factory=set)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def say(self, line: str) -> None:
        with self.lock:
            self.out.write(line + "\n")
            self.out.flush()


class StandinServer(ThreadingHTTPServer):
    daemon_threads = True
    # Do not join handler threads on close: a demo server must stop at once.
    block_on_close = False
    # The default backlog of 5 would drop connections from a worker with a higher
    # INVSYNC_ERP_CONCURRENCY, which then time out.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], behaviour: Behaviour) -> None:
        super().__init__(address, _Handler)
        self.behaviour = behaviour


class _Handler(BaseHTTPRequestHandler):
    server: StandinServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        behaviour = self.server.behaviour
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with behaviour.lock:
            behaviour.requests += 1
            number = behaviour.requests
        if behaviour.secret is not None:
            try:
                Webhook(behaviour.secret).verify(body, dict(self.headers), json_parse=False)
            except (WebhookVerificationError, ValueError) as error:
                behaviour.say(f"rejected bad signature: {error}")
                self._answer(401, {"error": "invalid signature"})
                return
        if number <= behaviour.fail_first or behaviour.rng.random() < behaviour.fail_rate:
            behaviour.say(f"failing request {number} with {behaviour.fail_status}")
            self._answer(behaviour.fail_status, {"error": "told to fail"})
            return
        key = self.headers.get("Idempotency-Key") or ""
        with behaviour.lock:
            duplicate = key in behaviour.seen
            behaviour.seen.add(key)
        if duplicate:
            behaviour.say(f"duplicate {key}")
            self._answer(200, {"status": "duplicate"})
            return
        try:
            document = json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":"))
        except ValueError:
            self._answer(400, {"error": "body is not JSON"})
            return
        behaviour.say(f"received {document}")
        self._answer(200, {"status": "accepted"})

    def _answer(self, status: int, body: dict[str, str]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request access log; `say` prints what matters."""


def serve(host: str, port: int, behaviour: Behaviour) -> StandinServer:
    """A stand-in listening on host:port (port 0 picks a free one); call `serve_forever`."""
    return StandinServer((host, port), behaviour)
