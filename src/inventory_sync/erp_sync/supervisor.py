"""`serve`'s ERP sync worker: `inventory-sync worker` as a child process, restarted if it dies.

A process of its own rather than a task on the API's event loop: deliveries then run beside
intake on another core instead of taking turns with it for the API process's GIL, which cost
intake a quarter to two fifths of its rate (docs/performance.md).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("inventory_sync.erp_sync")

# Set in the child: the pid of the `serve` that started it. The child stops once that process is
# gone (even after a SIGKILL, which leaves it no chance to stop the child itself).
PARENT_PID_ENV = "INVSYNC_SERVE_PID"
CONFIGURATION_ERROR = 2  # the exit status of `inventory-sync worker` for bad settings
# The worker shares `serve`'s machine: under peak intake it yields the CPU to the API and its
# database, and delivers what waits in the outbox once intake calms down. Acknowledging events
# is what NewStore waits on; the ERP is told a few seconds later (docs/performance.md).
NICENESS = 10
_RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
_STEADY_SECONDS = 60.0  # a child that ran this long restarts after the shortest delay
_DELIBERATE = (0, -signal.SIGTERM, -signal.SIGINT)  # exit statuses of a worker told to stop


class WorkerProcess:
    """Runs `inventory-sync worker` in a thread-supervised child until `stop()`."""

    def __init__(self, stop_grace_seconds: float) -> None:
        self._grace = stop_grace_seconds
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._supervise, name="erp-sync-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def begin_stop(self) -> None:
        """SIGTERM: the worker stops claiming and finishes or releases what is in flight."""
        with self._lock:
            self._stopping.set()
            child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """`begin_stop()`, then wait for the worker; SIGKILL after the grace period."""
        self.begin_stop()
        child = self._child
        if child is not None:
            try:
                child.wait(self._grace)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self._thread.join(5)

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self._stopping.is_set():
                return None
            self._child = subprocess.Popen(
                [sys.executable, "-m", "inventory_sync", "worker"],
                env={**os.environ, PARENT_PID_ENV: str(os.getpid())},
                # Its own session: a Ctrl-C in the terminal reaches `serve` only, which then
                # stops the worker in order instead of seeing it die and restarting it.
                start_new_session=True,
            )
            log.info("erp_sync.worker_process_started", extra={"pid": self._child.pid})
            return self._child

    def _supervise(self) -> None:
        failures = 0
        while True:
            started = time.monotonic()
            try:
                child = self._spawn()
            except OSError as error:  # no memory or processes left, say: try again later
                code: int | str = f"{type(error).__name__}: {error}"
                pid = None
            else:
                if child is None:
                    return
                code, pid = child.wait(), child.pid
                if self._stopping.is_set():
                    return
                if code in _DELIBERATE:
                    # Stopped by a signal sent to it directly (systemd signals every process of
                    # the unit), handled (0) or not yet: deliberate, so not restarted.
                    log.info("erp_sync.worker_process_stopped", extra={"pid": pid})
                    return
                if code == CONFIGURATION_ERROR:
                    log.error("erp_sync.worker_process_misconfigured", extra={"pid": pid})
                    return
            failures = 1 if time.monotonic() - started > _STEADY_SECONDS else failures + 1
            delay = _RESTART_DELAYS[min(failures, len(_RESTART_DELAYS)) - 1]
            log.error(
                "erp_sync.worker_process_exited",
                extra={"pid": pid, "returncode": code, "restart_in_s": delay},
            )
            if self._stopping.wait(delay):
                return


@contextmanager
def running(stop_grace_seconds: float) -> Iterator[WorkerProcess]:
    """A supervised worker process for the duration of the block."""
    worker = WorkerProcess(stop_grace_seconds)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def yield_to_the_api() -> None:
    """In a worker started by `serve`: run at a lower CPU priority than the API."""
    if os.environ.get(PARENT_PID_ENV) is not None:
        os.nice(NICENESS)


def parent_gone() -> bool:
    """In a worker started by `serve`: True once that `serve` process has exited."""
    expected = os.environ.get(PARENT_PID_ENV)
    return expected is not None and os.getppid() != int(expected)
