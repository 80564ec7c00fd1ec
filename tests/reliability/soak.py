"""The long reliability run: `python3 dev.py soak [--minutes N]`.

Runs, on loopback against the local PostgreSQL, for roughly the given time:
1. crash: thousands of events through one API that is SIGKILLed several times, with a worker
   SIGKILLed mid-delivery;
2. outage: a real `pg_ctlcluster --skip-systemctl-redirect 15 main restart` during load (this
   briefly interrupts every user of that server);
3. scale-out: two APIs and two workers on one database.
Each phase checks what the CI tests check and prints its figures; the exit status is non-zero
when any check fails.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from tests.reliability import harness as h
from tests.reliability import scenarios

RESTART = ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart"]


def restart_postgres() -> None:
    subprocess.run(RESTART, check=True, timeout=120)
    h.wait_until(lambda: h.postgres_reachable() is None, 60, "PostgreSQL back after restart")


def phase(name: str, run: Callable[[Path], scenarios.Figures]) -> bool:
    print(f"== {name}", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"soak-{name}-") as workdir:
        try:
            figures = run(Path(workdir))
        except Exception:
            traceback.print_exc()
            print(f"== {name}: FAILED", flush=True)
            return False
    print(f"   {figures.line()}", flush=True)
    if isinstance(figures, scenarios.OutageFigures):
        answers = dict(figures.answers_during_outage)
        print(f"   outage {figures.outage_seconds:.1f} s; reads meanwhile: {answers}", flush=True)
    print(f"== {name}: ok", flush=True)
    return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="rough total duration")
    parser.add_argument(
        "--no-restart", action="store_true", help="skip the real PostgreSQL restart phase"
    )
    args = parser.parse_args(argv)
    reason = h.postgres_reachable()
    if reason is not None:
        print(f"PostgreSQL unreachable at {h.POSTGRES_URL}: {reason}", file=sys.stderr)
        return 2
    # The load rate is fixed; the event counts follow from the time budget
    # (about 45 % crash, 20 % outage, 35 % scale-out, at 25 events per second).
    seconds = args.minutes * 60
    crash_events = max(300, int(seconds * 0.45 * 25))
    outage_events = max(200, int(seconds * 0.20 * 25))
    scale_events = max(300, int(seconds * 0.35 * 25 / 2))
    kills = max(3, int(args.minutes * 2))
    started = time.monotonic()
    results = []

    def crash(workdir: Path) -> scenarios.Figures:
        with h.fresh_postgres("soak_crash") as url:
            return scenarios.crash(
                url,
                workdir,
                events=crash_events,
                api_kills=kills,
                worker_kills=max(2, kills // 2),
                connections=6,
                rate=25,
            )

    def scale(workdir: Path) -> scenarios.Figures:
        with h.fresh_postgres("soak_scale") as url:
            return scenarios.scale_out(url, workdir, events=scale_events)

    def outage(workdir: Path) -> scenarios.Figures:
        with h.fresh_postgres("soak_outage") as url:
            return scenarios.outage(
                url, url, workdir, events=outage_events, interrupt=restart_postgres, rate=25
            )

    results.append(phase("crash", crash))
    results.append(phase("scale-out", scale))
    if not args.no_restart:
        results.append(phase("outage", outage))
    print(f"soak: {sum(results)}/{len(results)} phases ok in {time.monotonic() - started:.0f} s")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
