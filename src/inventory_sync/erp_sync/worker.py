"""The ERP sync worker: claim due outbox messages, POST them, record every outcome.

One asyncio loop per worker. Database work runs in threads (the engine is synchronous), HTTP
runs on the loop, and at most INVSYNC_ERP_CONCURRENCY deliveries are in flight. Each claim is a
lease (`outbox.claim_due`) sized well above the hard bound on one request, so several workers on
several machines share one outbox, and a worker killed with -9 loses nothing: its leases run
out and another worker claims the messages again.

Attempt budget: a retryable failure counts toward INVSYNC_ERP_MAX_ATTEMPTS only when it cannot
be an outage, that is when the breaker was closed for the request and this worker has delivered
some other message since the failing one was last tried. During an outage nothing is delivered,
so no message spends its budget however long the outage lasts; a message the ERP keeps refusing
while others go through still ends up `dead`. Uncounted attempts are logged like any other.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import signal
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import httpx

from inventory_sync.db import Database, DatabaseUnavailable, utcnow
from inventory_sync.erp_sync import outbox
from inventory_sync.erp_sync.breaker import Breaker
from inventory_sync.erp_sync.client import ErpClient, Outcome, Result
from inventory_sync.erp_sync.retry import Backoff
from inventory_sync.settings import Settings

log = logging.getLogger("inventory_sync.erp_sync")

BREAKER_THRESHOLD = 5
POLL_SECONDS = 1.0


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def default_lease_seconds(timeout_seconds: float) -> float:
    """A request is cut off after `timeout_seconds`; the lease adds room for recording the
    result on a slow database, so a healthy worker never loses a claim it is working on."""
    return 2 * timeout_seconds + 10


class Worker:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        name: str | None = None,
        lease_seconds: float | None = None,
        poll_seconds: float = POLL_SECONDS,
        breaker_threshold: int = BREAKER_THRESHOLD,
        shutdown_grace_seconds: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.name = name or worker_id()
        self.concurrency = settings.erp_concurrency
        self.max_attempts = settings.erp_max_attempts
        self.lease = timedelta(
            seconds=lease_seconds or default_lease_seconds(settings.erp_timeout_seconds)
        )
        self.poll_seconds = poll_seconds
        # Deliveries are cut off after the request timeout, so this usually lets them finish.
        self.shutdown_grace_seconds = (
            settings.erp_timeout_seconds + 1
            if shutdown_grace_seconds is None
            else shutdown_grace_seconds
        )
        self._rng = rng or random.Random()
        self.backoff = Backoff(settings.erp_retry_base_seconds, settings.erp_retry_max_seconds)
        self.breaker = Breaker(breaker_threshold, self.backoff, self._rng)
        self._transport = transport
        self._inflight: dict[asyncio.Task[None], outbox.Claim] = {}
        self._last_delivery: datetime | None = None

    # -- public entry points ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, then finish or release what is in flight."""
        if self.settings.erp_url is None:
            # Messages wait as `pending` until an ERP is configured (PRODUCT.md section 3).
            log.info("erp_sync.idle", extra={"reason": "INVSYNC_ERP_URL is not set"})
            await stop.wait()
            return
        try:
            client = ErpClient.from_settings(self.settings, self._transport)
        except ValueError as error:
            # Bad ERP settings must not take the API down with them: messages wait instead.
            log.error("erp_sync.misconfigured", extra={"error": str(error)})
            await stop.wait()
            return
        log.info("erp_sync.worker_started", extra={"worker": self.name})
        stopping: asyncio.Task[object] = asyncio.create_task(stop.wait())
        try:
            async with client:
                try:
                    while not stop.is_set():
                        try:
                            await self._step(client, stopping)
                        except Exception:  # a bug here must not end deliveries for good
                            log.exception("erp_sync.loop_error")
                            await asyncio.wait({stopping}, timeout=self.poll_seconds)
                finally:
                    await self._shutdown()
        finally:
            stopping.cancel()
            log.info("erp_sync.worker_stopped", extra={"worker": self.name})

    async def run_once(self) -> int:
        """One round: claim what is due (up to the free slots) and deliver it. Returns how
        many messages were tried."""
        if self.settings.erp_url is None:
            return 0
        async with ErpClient.from_settings(self.settings, self._transport) as client:
            claims = await self._claim(client)
            await asyncio.gather(*self._inflight)
        return len(claims)

    async def run_for(self, seconds: float) -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        await self.run(stop)

    async def drain(self, timeout: float = 30.0) -> None:
        """Run until no message is pending and nothing is in flight (or raise TimeoutError)."""
        if self.settings.erp_url is None:
            return
        stop = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                if not self._inflight and not await asyncio.to_thread(self._any_pending):
                    stop.set()
                    return
                await asyncio.sleep(self.poll_seconds)

        async with asyncio.timeout(timeout):
            await asyncio.gather(self.run(stop), watch())

    # -- the loop -----------------------------------------------------------------------------

    async def _step(self, client: ErpClient, stopping: asyncio.Task[object]) -> None:
        claims = await self._claim(client)
        if claims and not self.breaker.is_open and len(self._inflight) < self.concurrency:
            wait = 0.0  # slots left over and maybe more is due
        else:
            # Woken earlier by a finished delivery (a free slot) or by `stop`.
            wait = self.poll_seconds
            if self.breaker.is_open and not self._inflight:
                to_probe = self.breaker.seconds_to_probe(time.monotonic())
                if to_probe > 0:
                    wait = min(wait, to_probe)
        wakers: set[asyncio.Task[object]] = {stopping, *self._inflight}
        await asyncio.wait(wakers, timeout=wait, return_when=asyncio.FIRST_COMPLETED)

    def _free_slots(self) -> int:
        if self.breaker.is_open:
            # One probe at a time, when it is due, keeps the request rate low during an outage.
            due = self.breaker.probe_due(time.monotonic())
            return 1 if due and not self._inflight else 0
        return self.concurrency - len(self._inflight)

    async def _claim(self, client: ErpClient) -> list[outbox.Claim]:
        slots = self._free_slots()
        if slots <= 0:
            return []
        probe = self.breaker.is_open
        try:
            claims = await asyncio.to_thread(self._claim_due, slots)
        except DatabaseUnavailable as error:
            log.warning("erp_sync.database_unavailable", extra={"error": str(error)[:200]})
            return []
        for claim in claims:
            task = asyncio.create_task(self._deliver(client, claim, probe=probe))
            self._inflight[task] = claim
            task.add_done_callback(self._forget)
        return claims

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("erp_sync.delivery_crashed", exc_info=task.exception())

    async def _deliver(self, client: ErpClient, claim: outbox.Claim, *, probe: bool) -> None:
        attempted_at = utcnow()
        # Decided before sending: a concurrent delivery finishing meanwhile proves nothing
        # about the ERP's state when this request went out.
        counts = not probe and self._delivered_since(claim.updated_at)
        try:
            result = await client.send(claim.id, claim.document)
        except Exception as error:  # one odd message must never stop the worker
            log.exception("erp_sync.send_crashed", extra={"message_id": claim.id})
            result = Result(Outcome.RETRY, 0, error=f"internal error: {type(error).__name__}")
        if result.outcome is Outcome.RETRY:
            if self.breaker.failed(time.monotonic(), probe=probe, retry_after=result.retry_after):
                log.warning("erp_sync.breaker_opened", extra={"error": result.error})
        else:
            if result.outcome is Outcome.DELIVERED:
                self._last_delivery = utcnow()
            if self.breaker.succeeded():
                log.info("erp_sync.breaker_closed")
        status, attempts, next_attempt_at = self._decide(claim, result, counts)
        attempt = outbox.Attempt(
            attempted_at=attempted_at,
            duration_ms=result.duration_ms,
            outcome=status if status != outbox.PENDING else Outcome.RETRY.value,
            status_code=result.status_code,
            error=result.error,
        )
        try:
            kept = await asyncio.to_thread(
                self._finish, claim, attempt, status, attempts, next_attempt_at
            )
        except DatabaseUnavailable as error:
            # The lease runs out and the message is tried again: at-least-once, never lost.
            log.warning(
                "erp_sync.record_failed", extra={"message_id": claim.id, "error": str(error)[:200]}
            )
            return
        fields = {
            "message_id": claim.id,
            "status_code": result.status_code,
            "duration_ms": result.duration_ms,
            "attempts": attempts,
        }
        if not kept:
            log.warning("erp_sync.lease_lost", extra=fields)
        elif status == outbox.DELIVERED:
            log.info("erp_sync.sent", extra=fields)
        elif status == outbox.DEAD:
            log.error("erp_sync.dead", extra={**fields, "error": result.error})
        else:
            log.info(
                "erp_sync.retry_scheduled",
                extra={**fields, "error": result.error, "next_attempt_at": str(next_attempt_at)},
            )

    def _delivered_since(self, moment: datetime) -> bool:
        return self._last_delivery is not None and self._last_delivery > moment

    def _decide(
        self, claim: outbox.Claim, result: Result, counts: bool
    ) -> tuple[str, int, datetime | None]:
        """The message's next status, attempt count and due time after `result`."""
        if result.outcome is Outcome.DELIVERED:
            return outbox.DELIVERED, claim.attempts + 1, None
        if result.outcome is Outcome.DEAD:
            return outbox.DEAD, claim.attempts + 1, None
        attempts = claim.attempts + 1 if counts else claim.attempts
        if counts and attempts >= self.max_attempts:
            return outbox.DEAD, attempts, None
        delay = self.backoff.delay(max(attempts, 1), retry_after=result.retry_after, rng=self._rng)
        return outbox.PENDING, attempts, utcnow() + timedelta(seconds=delay)

    async def _shutdown(self) -> None:
        """Stop claiming; let in-flight deliveries finish for a bounded time, release the rest."""
        if not self._inflight:
            return
        tasks = dict(self._inflight)
        _, unfinished = await asyncio.wait(tasks, timeout=self.shutdown_grace_seconds)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        ids = [tasks[task].id for task in unfinished]
        if ids:
            try:
                released = await asyncio.to_thread(self._release, ids)
            except DatabaseUnavailable:
                released = 0  # their leases run out instead
            log.info("erp_sync.claims_released", extra={"count": released})

    # -- database work, in threads ------------------------------------------------------------

    def _claim_due(self, limit: int) -> list[outbox.Claim]:
        now = utcnow()
        with self.db.transaction() as conn:
            return outbox.claim_due(
                conn, worker=self.name, limit=limit, now=now, lease_until=now + self.lease
            )

    def _finish(
        self,
        claim: outbox.Claim,
        attempt: outbox.Attempt,
        status: str,
        attempts: int,
        next_attempt_at: datetime | None,
    ) -> bool:
        with self.db.transaction() as conn:
            return outbox.finish(
                conn,
                claim,
                worker=self.name,
                attempt=attempt,
                status=status,
                attempts=attempts,
                next_attempt_at=next_attempt_at,
            )

    def _release(self, ids: list[str]) -> int:
        with self.db.transaction() as conn:
            return outbox.release(conn, ids, worker=self.name)

    def _any_pending(self) -> bool:
        with self.db.snapshot() as conn:
            return outbox.pending_count(conn) > 0


@asynccontextmanager
async def running(settings: Settings, db: Database) -> AsyncIterator[Worker]:
    """Run a worker on the current event loop for the duration of the block (the API's
    in-process worker); leaving the block stops it as SIGTERM would."""
    worker = Worker(settings, db)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await task


def run_until_signalled(settings: Settings, db: Database) -> None:
    """The `inventory-sync worker` process: run until SIGTERM or SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await Worker(settings, db).run(stop)

    asyncio.run(main())
