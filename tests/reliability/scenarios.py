"""The fault scenarios, sized by their callers: small in CI, large in the soak run."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from inventory_sync.storage.database import Database
from inventory_sync.storage.store import open_database
from tests.erp_sync.conftest import FakeErp, Reply
from tests.reliability import harness as h


@dataclass
class Figures:
    events: int = 0  # distinct event bodies (chunks count one each)
    posts: int = 0  # HTTP requests the sender made, redeliveries included
    acknowledged: int = 0
    api_kills: int = 0
    worker_kills: int = 0
    documents: int = 0
    erp_requests: int = 0
    erp_redelivered: int = 0  # documents the ERP received more than once
    refused: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)  # intake answers with HTTP 200
    max_answer_seconds: float = 0.0
    seconds: float = 0.0

    def line(self) -> str:
        refused = ", ".join(f"{k}: {v}" for k, v in sorted(self.refused.items())) or "none"
        return (
            f"{self.events} events, {self.posts} posts, {self.acknowledged} acknowledged; "
            f"{self.api_kills} API kills, {self.worker_kills} worker kills; "
            f"{self.documents} ERP documents in {self.erp_requests} requests "
            f"({self.erp_redelivered} delivered more than once); refused answers: {refused}; "
            f"slowest answer {self.max_answer_seconds:.2f} s; {self.seconds:.1f} s"
        )


def start_erp(delay: float = 0.02) -> FakeErp:
    erp = FakeErp()
    erp.default = Reply(delay=delay)
    # A worker killed mid-request resets its connection; that is the point, not an error.
    erp.server.handle_error = lambda *_: None  # type: ignore[method-assign]
    erp.thread.start()
    return erp


def stop_erp(erp: FakeErp) -> None:
    erp.server.shutdown()
    erp.server.server_close()


def wait_delivered(db: Database, erp: FakeErp, timeout: float) -> None:
    """Every outbox message delivered, and the ERP has seen each at least once."""

    def done() -> bool:
        ids = h.outbox_ids(db)
        return all(s == "delivered" for s in ids.values()) and set(ids) <= set(erp.keys())

    h.wait_until(done, timeout, "every ERP document delivered")
    statuses = Counter(h.outbox_ids(db).values())
    assert statuses.keys() == {"delivered"}, statuses


def fill(figures: Figures, sender: h.Sender, erp: FakeErp, db: Database, started: float) -> None:
    figures.posts = sender.stats.posts
    figures.acknowledged = sender.stats.acknowledged
    figures.refused = sender.stats.refused
    figures.statuses = sender.stats.statuses
    figures.max_answer_seconds = sender.stats.max_answer_seconds
    keys = Counter(erp.keys())
    figures.documents = len(h.outbox_ids(db))
    figures.erp_requests = sum(keys.values())
    figures.erp_redelivered = sum(1 for n in keys.values() if n > 1)
    figures.seconds = time.monotonic() - started


def crash(
    database_url: str,
    workdir: Path,
    *,
    events: int,
    api_kills: int,
    worker_kills: int,
    connections: int = 4,
    rate: float | None = None,
    seed: int = 7,
) -> Figures:
    """Load through one API while it and the worker are SIGKILLed and restarted."""
    started = time.monotonic()
    rng = random.Random(seed)
    planned = h.plan_events(events, seed)
    bodies = h.all_bodies(planned)
    figures = Figures(events=len(bodies))
    erp = start_erp()
    api = h.Api(database_url, workdir)
    worker = h.WorkerProcess(database_url, erp.url, workdir)
    db = open_database(database_url, pool_size=2)
    try:
        api.start()
        worker.start()
        sender = h.Sender([api.url], bodies, connections=connections, rate=rate, seed=seed).start()
        kills: list[Callable[[], None]] = [lambda: kill_api(api, rng)] * api_kills
        kills += [lambda: kill_worker_mid_delivery(worker, erp)] * worker_kills
        rng.shuffle(kills)
        for n, kill in enumerate(kills, start=1):
            goal = sender.total * n // (len(kills) + 1)
            h.wait_until(lambda g=goal: sender.sent >= g, 120, "sender progress")
            kill()
        sender.join(timeout=180)
        h.assert_exact(db, planned, sender)
        # A killed worker's claims come back when their lease (2 x 1 s + 10 s) runs out.
        wait_delivered(db, erp, timeout=60)
        figures.api_kills, figures.worker_kills = api.kills, worker.kills
        fill(figures, sender, erp, db, started)
    finally:
        api.stop()
        worker.stop()
        stop_erp(erp)
        db.dispose()
    for log in (api.log, worker.log):
        assert not h.secrets_in(log), f"a secret appears in {log}"
    return figures


def kill_api(api: h.Api, rng: random.Random) -> None:
    api.kill()
    time.sleep(rng.uniform(0.0, 0.5))  # the sender meets refused connections meanwhile
    api.start()


def kill_worker_mid_delivery(worker: h.WorkerProcess, erp: FakeErp) -> None:
    """Kill the worker while the ERP holds at least one of its requests."""

    def in_flight() -> bool:
        with erp.lock:
            return bool(erp.in_flight)

    h.wait_until(in_flight, 60, "a delivery in flight", poll=0.002)
    worker.kill()
    worker.start()


def scale_out(
    database_url: str,
    workdir: Path,
    *,
    events: int,
    apis: int = 2,
    workers: int = 2,
    connections: int = 6,
    seed: int = 11,
) -> Figures:
    """Several APIs and workers on one database; the same events reach every API at once."""
    started = time.monotonic()
    planned = h.plan_events(events, seed)
    bodies = h.all_bodies(planned)
    figures = Figures(events=len(bodies))
    erp = start_erp(delay=0.01)
    api_list = [h.Api(database_url, workdir, name=f"api{n}") for n in range(apis)]
    worker_list = [
        h.WorkerProcess(database_url, erp.url, workdir, name=f"worker{n}") for n in range(workers)
    ]
    db = open_database(database_url, pool_size=2)
    try:
        for process in [*api_list, *worker_list]:
            process.start()
        urls = [a.url for a in api_list]
        # Every body is also sent a second time through the other API, concurrently.
        sender = h.Sender(urls, bodies, connections=connections, duplicate_share=1.0, seed=seed)
        sender.start().join(timeout=300)
        h.assert_exact(db, planned, sender)
        wait_delivered(db, erp, timeout=120)
        assert erp.overlaps == [], f"delivered concurrently: {erp.overlaps[:5]}"
        fill(figures, sender, erp, db, started)
    finally:
        for process in [*api_list, *worker_list]:
            process.stop()
        stop_erp(erp)
        db.dispose()
    return figures


@dataclass
class OutageFigures(Figures):
    outage_seconds: float = 0.0
    answers_during_outage: Counter[str] = field(default_factory=Counter)


def outage(
    database_url: str,
    service_url: str,
    workdir: Path,
    *,
    events: int,
    interrupt: Callable[[], None],
    rate: float = 40,
    seed: int = 13,
) -> OutageFigures:
    """Load through an API and a worker reaching the database at `service_url`, while
    `interrupt()` takes the database away and brings it back (it returns once it is back).
    `database_url` reaches the database directly, for the checks."""
    started = time.monotonic()
    planned = h.plan_events(events, seed)
    bodies = h.all_bodies(planned)
    figures = OutageFigures(events=len(bodies))
    erp = start_erp()
    api = h.Api(service_url, workdir)
    worker = h.WorkerProcess(service_url, erp.url, workdir)
    db = open_database(database_url, pool_size=2)
    try:
        api.start()
        worker.start()
        sender = h.Sender([api.url], bodies, connections=4, rate=rate, seed=seed).start()
        h.wait_until(lambda: sender.sent >= sender.total // 3, 120, "load before the outage")
        probe = Probe(api.url)
        probe.start()
        cut_at = time.monotonic()
        interrupt()
        figures.outage_seconds = time.monotonic() - cut_at
        probe.stop()
        figures.answers_during_outage = probe.answers
        sender.join(timeout=300)
        h.assert_exact(db, planned, sender)
        wait_delivered(db, erp, timeout=90)
        assert api.alive(), "the API died during the outage"
        assert worker.alive(), "the worker died during the outage"
        fill(figures, sender, erp, db, started)
        figures.refused = sender.stats.refused
    finally:
        api.stop()
        worker.stop()
        stop_erp(erp)
        db.dispose()
    return figures


class Probe:
    """Reads an ops endpoint and /readyz in a loop, recording every answer: during an outage
    they must be 503 with Retry-After, never a 500 or a hang."""

    def __init__(self, url: str, bound_seconds: float = 12.0) -> None:
        self.url = url
        self.bound = bound_seconds
        self.answers: Counter[str] = Counter()
        self.problems: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)
        assert not self.problems, self.problems[:5]

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {h.READ_TOKEN}"}
        with httpx.Client(timeout=self.bound) as client:
            while not self.stopping.is_set():
                for path in ("/v1/stock", "/readyz", "/v1/events"):
                    try:
                        response = client.get(self.url + path, headers=headers)
                    except httpx.TimeoutException:
                        self.problems.append(f"{path}: no answer within {self.bound} s")
                        continue
                    code = response.status_code
                    self.answers[str(code)] += 1
                    if code == 503 and "retry-after" not in response.headers:
                        self.problems.append(f"{path}: 503 without Retry-After")
                    if code not in (200, 503):
                        self.problems.append(f"{path}: {code} {response.text[:200]}")
                time.sleep(0.05)
