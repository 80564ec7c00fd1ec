"""Real processes, a redelivering sender and the ledger model the reliability tests share.

Everything here runs the service as NewStore and an ERP would see it: `inventory-sync serve`
and `inventory-sync worker` subprocesses on loopback ports, killed with SIGKILL, a sender that
posts over several connections and redelivers anything not answered 200, and a check of the
database against a model built from the distinct events alone.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import func, select

from inventory_sync.storage import migrate
from inventory_sync.storage.database import Database
from inventory_sync.storage.store import open_database
from inventory_sync.storage.tables import inbound_event, ledger_movement, outbox_message
from tests import factories

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
BIN = Path(sys.executable).parent / "inventory-sync"

# Secrets of the processes under test; the security tests grep every log for them.
WEBHOOK_KEY = "rel-webhook-" + uuid.uuid4().hex
ADMIN_TOKEN = "rel-admin-" + uuid.uuid4().hex
READ_TOKEN = "rel-read-" + uuid.uuid4().hex
SECRETS = (WEBHOOK_KEY, ADMIN_TOKEN, READ_TOKEN)

PRODUCTS = [f"P-{n:03d}" for n in range(40)]
STORES = ["US-NYC-01", "US-BOS-02"]


# -- databases ---------------------------------------------------------------------------------


def postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else the reason."""
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=5):
            return None
    except psycopg.OperationalError as error:
        return str(error).splitlines()[0]


@contextmanager
def fresh_postgres(label: str) -> Iterator[str]:
    """A new, migrated PostgreSQL database of our own, dropped afterwards."""
    name = f"invsync_rel_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_URL.rpartition("/")
    url = f"{base}/{name}"
    db = open_database(url, pool_size=1)
    migrate.upgrade(db)
    db.dispose()
    try:
        yield url
    finally:
        for attempt in range(10):
            try:
                with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except psycopg.OperationalError:
                time.sleep(0.5 * (attempt + 1))


def fresh_sqlite(directory: Path) -> str:
    url = f"sqlite:///{directory / 'invsync.db'}"
    db = open_database(url)
    migrate.upgrade(db)
    db.dispose()
    return url


# -- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVSYNC_")}
    env.update(
        INVSYNC_DATABASE_URL=database_url,
        INVSYNC_WEBHOOK_KEYS=WEBHOOK_KEY,
        INVSYNC_ADMIN_TOKENS=ADMIN_TOKEN,
        INVSYNC_OPS_TOKENS=READ_TOKEN,
        INVSYNC_LOG_FORMAT="json",
        INVSYNC_LOG_LEVEL="info",
    )
    env.update(extra)
    return env


class Process:
    """One `inventory-sync` subprocess, restartable, its output appended to a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, cwd: Path) -> None:
        self.args, self.env, self.log, self.cwd = args, env, log, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(BIN), *self.args],
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, no warning: what a crash, an OOM kill or a pulled plug does."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.kills += 1

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        except ProcessLookupError:
            pass


class Api(Process):
    """`inventory-sync serve`; `with_worker` lets it start its ERP sync worker process."""

    def __init__(
        self,
        database_url: str,
        workdir: Path,
        name: str = "api",
        *,
        with_worker: bool = False,
        **env: str,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            ["serve", "--port", str(self.port), *([] if with_worker else ["--no-worker"])],
            service_env(database_url, **env),
            workdir / f"{name}.log",
            workdir,
        )

    def start(self, timeout: float = 60.0) -> None:
        super().start()
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise RuntimeError(f"{self.args} exited; see {self.log}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"API did not start in {timeout} s; see {self.log}")
            time.sleep(0.05)


class WorkerProcess(Process):
    def __init__(
        self, database_url: str, erp_url: str, workdir: Path, name: str = "worker", **env: str
    ) -> None:
        settings = {
            "INVSYNC_ERP_URL": erp_url,
            # The lease is 2 x timeout + 10 s (erp_sync.worker.default_lease_seconds): a small
            # timeout keeps recovery after a kill at about ten seconds.
            "INVSYNC_ERP_TIMEOUT_SECONDS": "1",
            "INVSYNC_ERP_RETRY_BASE_SECONDS": "0.05",
            "INVSYNC_ERP_RETRY_MAX_SECONDS": "0.5",
            "INVSYNC_ERP_CONCURRENCY": "4",
            "INVSYNC_ERP_MAX_ATTEMPTS": "1000",
        }
        settings.update(env)
        super().__init__(
            ["worker"], service_env(database_url, **settings), workdir / f"{name}.log", workdir
        )


# -- events and the model ----------------------------------------------------------------------

Position = tuple[str, str, str]  # (location_id, stock_location, product_id)


@dataclass
class Planned:
    """One distinct event (all its chunks) and the ledger effect it must have."""

    bodies: list[dict[str, Any]]
    effect: Counter[Position]


def _pairs(rng: random.Random) -> list[tuple[str, int]]:
    chosen = rng.sample(PRODUCTS, rng.randint(1, 4))
    return [(p, rng.randint(1, 50)) for p in chosen]


def plan_events(count: int, seed: int) -> list[Planned]:
    """`count` distinct events of the handled kinds that move stock, some in two chunks."""
    rng = random.Random(seed)
    planned = []
    for _ in range(count):
        store = rng.choice(STORES)
        kind = rng.random()
        effect: Counter[Position] = Counter()
        if kind < 0.45:
            pairs = _pairs(rng)
            if len(pairs) > 1 and rng.random() < 0.3:
                # One transaction, two chunks with the same payload id.
                first = factories.received(*pairs[:1], fulfillment_location_id=store)
                payload_id = first["payload"]["id"]
                first["payload"]["total_chunks"] = 2
                second = factories.received(
                    *pairs[1:],
                    fulfillment_location_id=store,
                    id=payload_id,
                    chunk_number=2,
                    total_chunks=2,
                )
                bodies = [first, second]
            else:
                bodies = [factories.received(*pairs, fulfillment_location_id=store)]
            for product, quantity in pairs:
                effect[(store, "main", product)] += quantity
        elif kind < 0.7:
            pairs = _pairs(rng)
            bodies = [factories.handover(*pairs, fulfillment_location_id=store)]
            for product, quantity in pairs:
                effect[(store, "main", product)] -= quantity
        else:
            pairs = _pairs(rng)
            bodies = [factories.adjustment(*pairs, fulfillment_node_id=store)]
            for product, quantity in pairs:
                effect[(store, "main", product)] -= quantity
                effect[(store, "damaged", product)] += quantity
        planned.append(Planned(bodies, effect))
    return planned


def expected_ledger(planned: list[Planned]) -> dict[Position, int]:
    total: Counter[Position] = Counter()
    for item in planned:
        total.update(item.effect)
    return {k: v for k, v in total.items() if v != 0}


def actual_ledger(db: Database) -> dict[Position, int]:
    m = ledger_movement.c
    query = select(m.location_id, m.stock_location, m.product_id, func.sum(m.quantity)).group_by(
        m.location_id, m.stock_location, m.product_id
    )
    with db.snapshot() as conn:
        rows = conn.execute(query).all()
    return {(r[0], r[1], r[2]): int(r[3]) for r in rows if int(r[3]) != 0}


# -- the sender --------------------------------------------------------------------------------


@dataclass
class SenderStats:
    posts: int = 0
    acknowledged: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # status or error -> count
    max_answer_seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)


class Sender:
    """Posts every body over `connections` threads, redelivering until answered 200.

    Like NewStore: anything but a 200 (a 503, a reset connection, a timeout, a refused
    connection while the API restarts) is sent again after a short pause. A share of the
    bodies is sent twice on purpose, so duplicates are part of the load.
    """

    def __init__(
        self,
        urls: list[str],
        bodies: list[dict[str, Any]],
        *,
        connections: int = 4,
        duplicate_share: float = 0.1,
        timeout: float = 15.0,
        rate: float | None = None,
        seed: int = 1,
    ) -> None:
        rng = random.Random(seed)
        work = list(bodies) + [b for b in bodies if rng.random() < duplicate_share]
        rng.shuffle(work)
        self.urls = urls
        self.queues = [work[i::connections] for i in range(connections)]
        self.timeout = timeout
        # Events per second over all connections; None = as fast as the API answers.
        self.pause = connections / rate if rate else 0.0
        self.stats = SenderStats()
        self.acknowledged: set[tuple[str, int, str]] = set()  # (payload id, chunk, name)
        self.unexpected: list[str] = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(i, q), daemon=True)
            for i, q in enumerate(self.queues)
        ]
        self._sent = 0
        self.total = len(work)

    @property
    def sent(self) -> int:
        with self.lock:
            return self._sent

    def start(self) -> Sender:
        for thread in self.threads:
            thread.start()
        return self

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self.threads):
            raise AssertionError(f"sender still busy after {timeout} s: {self.stats}")

    def _run(self, index: int, queue: list[dict[str, Any]]) -> None:
        headers = {"Authorization": f"Bearer {WEBHOOK_KEY}", "Content-Type": "application/json"}
        with httpx.Client(timeout=self.timeout) as client:
            for n, body in enumerate(queue):
                url = self.urls[(index + n) % len(self.urls)] + "/webhooks/newstore"
                while not self._deliver(client, url, body, headers):
                    time.sleep(0.05)
                with self.lock:
                    self._sent += 1
                time.sleep(self.pause)

    def _deliver(
        self, client: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str]
    ) -> bool:
        started = time.monotonic()
        try:
            response = client.post(url, json=body, headers=headers)
        except httpx.HTTPError as error:
            with self.lock:
                self.stats.posts += 1
                self.stats.refused[type(error).__name__] += 1
            return False
        elapsed = time.monotonic() - started
        with self.lock:
            self.stats.posts += 1
            self.stats.max_answer_seconds = max(self.stats.max_answer_seconds, elapsed)
            if response.status_code != 200:
                self.stats.refused[str(response.status_code)] += 1
                if response.status_code != 503 or "retry-after" not in response.headers:
                    self.unexpected.append(f"{response.status_code}: {response.text[:200]}")
                return False
            answer = response.json()
            self.stats.statuses[answer["status"]] += 1
            if answer["status"] not in ("accepted", "duplicate"):
                self.unexpected.append(f"200 {answer}")
            self.stats.acknowledged += 1
            payload = body["payload"]
            self.acknowledged.add((payload["id"], payload.get("chunk_number", 1), body["name"]))
        return True


def all_bodies(planned: list[Planned]) -> list[dict[str, Any]]:
    return [body for item in planned for body in item.bodies]


# -- end-state checks --------------------------------------------------------------------------


def stored_keys(db: Database) -> set[tuple[str, int, str]]:
    e = inbound_event.c
    with db.snapshot() as conn:
        rows = conn.execute(
            select(e.payload_id, e.chunk_number, e.name).where(e.status == "accepted")
        ).all()
    return {(r[0], r[1], r[2]) for r in rows}


def outbox_ids(db: Database) -> dict[str, str]:
    """Message id -> status."""
    with db.snapshot() as conn:
        rows = conn.execute(select(outbox_message.c.id, outbox_message.c.status)).all()
    return {r[0]: r[1] for r in rows}


def assert_exact(db: Database, planned: list[Planned], sender: Sender) -> None:
    """Every acknowledged event stored and applied once; the ledger equals the model."""
    assert not sender.unexpected, sender.unexpected[:5]
    expected_keys = {
        (b["payload"]["id"], b["payload"].get("chunk_number", 1), b["name"])
        for b in all_bodies(planned)
    }
    assert sender.acknowledged == expected_keys
    stored = stored_keys(db)
    missing = sender.acknowledged - stored
    assert not missing, f"{len(missing)} acknowledged events are not in the database"
    assert stored == expected_keys
    assert actual_ledger(db) == expected_ledger(planned)
    assert len(outbox_ids(db)) == len(expected_keys)


def wait_until(predicate: Any, timeout: float, what: str, poll: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(poll)


def secrets_in(path: Path) -> list[str]:
    text = path.read_text(errors="replace") if path.exists() else ""
    return [s for s in SECRETS if s in text]
