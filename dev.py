#!/usr/bin/env python3
"""One entry point for a fresh clone: installs into .venv on first use, then runs.

python3 dev.py serve [options]   run the service (embedded SQLite unless configured)
python3 dev.py test [pytest args] run the whole test suite
python3 dev.py check             ruff, mypy and the import contracts
python3 dev.py soak [--minutes N] the long reliability run (kills, a PostgreSQL restart)
python3 dev.py hostile           what hostile clients cost a running service
python3 dev.py bench [--quick]   the intake benchmark (bench/README.md; needs wrk)
python3 dev.py cli ARGS...       any `inventory-sync` command
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"


def ensure_installed(test_tools: bool) -> None:
    """The service in .venv, with the test and lint tools only for the commands that use them;
    again whenever pyproject.toml changes."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = STAMP.read_text().split() if STAMP.exists() else []
    installed = bool(stamp) and stamp[0] == wanted and (BIN / "inventory-sync").exists()
    if installed and (not test_tools or "test" in stamp[1:]):
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    what = "and its test tools " if test_tools else ""
    print(f"installing newstore-inventory-sync {what}into .venv ...", file=sys.stderr)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    target = f"{ROOT}[test]" if test_tools else str(ROOT)
    subprocess.run([*pip, "--editable", target], check=True)
    STAMP.write_text(f"{wanted} test" if test_tools else wanted)


def run(*argv: str) -> int:
    return subprocess.run(list(argv), cwd=ROOT).returncode


def main(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    command, rest = args[0], args[1:]
    ensure_installed(test_tools=command not in ("serve", "cli"))
    if command == "serve":
        os.execv(BIN / "inventory-sync", ["inventory-sync", "serve", *rest])
    if command == "cli":
        os.execv(BIN / "inventory-sync", ["inventory-sync", *rest])
    if command == "test":
        return run(str(BIN / "python"), "-m", "pytest", "-n", "auto", *rest)
    if command == "soak":
        return run(str(BIN / "python"), "-m", "tests.reliability.soak", *rest)
    if command == "hostile":
        return run(str(BIN / "python"), "-m", "tests.reliability.hostile", *rest)
    if command == "bench":
        return run(str(BIN / "python"), str(ROOT / "bench" / "run.py"), *rest)
    if command == "check":
        return (
            run(str(BIN / "ruff"), "check", ".")
            or run(str(BIN / "ruff"), "format", "--check", ".")
            or run(str(BIN / "mypy"))
            or run(str(BIN / "lint-imports"))
        )
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
