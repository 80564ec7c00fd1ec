"""A real Tryton server for the tests, and a small client of its own to look inside it.

The server (`trytond` and `trytond-stock` from the package index) gets a SQLite database in a
temporary folder, initialised by `trytond-admin`, set up by `docker/tryton/setup_db.py` (a
company, the NewStore party, one warehouse per store) and served on a free loopback port. The
client reads Tryton's stock through Tryton's own API, independently of the adapter under test.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import itertools
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent
DATABASE = "invsync"
LOGIN = "admin"
STORES = ("US-NYC-01", "US-BOS-02")
# The same set-up as the `tryton` profile of docker-compose.yml.
SETUP = Path(__file__).resolve().parents[2] / "docker" / "tryton" / "setup_db.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT/DATABASE/, as INVSYNC_ERP_URL takes it
    password: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start(directory: Path, cache: Path | None = None) -> Server:
    """Serve a database set up in `directory`: about ten seconds to initialise it, or a copy
    of the one kept in `cache` by an earlier run of the same Tryton and set-up."""
    port = free_port()
    conf = directory / "trytond.conf"
    conf.write_text(
        f"[database]\nuri = sqlite://\npath = {directory}\n[web]\nlisten = 127.0.0.1:{port}\n"
    )
    database = directory / f"{DATABASE}.sqlite"
    passfile = directory / "password"
    env = {**os.environ, "TRYTONPASSFILE": str(passfile)}
    log = directory / "trytond.log"
    kept = cache / f"{_set_up_key()}.sqlite" if cache is not None else None
    if kept is not None and kept.exists() and kept.with_suffix(".password").exists():
        _copy(kept, database)
        password = kept.with_suffix(".password").read_text()
    else:
        password = uuid.uuid4().hex
        passfile.write_text(password)
        database.touch()  # trytond-admin needs the file to exist

        def run(*args: str) -> None:
            with log.open("ab") as out:
                subprocess.run(
                    args, env=env, input=b"\n", stdout=out, stderr=subprocess.STDOUT,
                    check=True, timeout=300,
                )  # fmt: skip

        # The empty line answers the administrator's e-mail prompt of the first initialisation.
        run(str(BIN / "trytond-admin"), "-c", str(conf), "-d", DATABASE, "-u", "stock",
            "--activate-dependencies")  # fmt: skip
        run(sys.executable, str(SETUP), str(conf), DATABASE, "--stores", *STORES)
        if kept is not None:
            _copy(database, kept)
            kept.with_suffix(".password").write_text(password)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(BIN / "trytond"), "-c", str(conf), "-d", DATABASE],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}/{DATABASE}/", password, process, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            Client(server).login()
            return server
        except (httpx.HTTPError, RuntimeError):
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"trytond did not start; see {log}") from None
            time.sleep(0.2)


def _set_up_key() -> str:
    """What a kept database depends on: Tryton's versions, the set-up script, the stores."""
    parts = [importlib.metadata.version(p) for p in ("trytond", "trytond-stock")]
    parts += [SETUP.read_text(), *STORES]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _copy(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database, whatever its journal holds."""
    partial = target.with_suffix(".partial")
    with sqlite3.connect(source) as origin, sqlite3.connect(partial) as copy:
        origin.backup(copy)
    origin.close()
    copy.close()
    partial.replace(target)


class Client:
    """Tryton's JSON-RPC, synchronously, for set-up and checks."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.http = httpx.Client(timeout=30)
        self.ids = itertools.count(1)
        self.headers: dict[str, str] = {}
        self.context: dict[str, Any] = {}

    def login(self) -> None:
        uid, session, *_ = self._post(
            "common.db.login", [LOGIN, {"password": self.server.password}]
        )
        token = base64.b64encode(f"{LOGIN}:{uid}:{session}".encode()).decode()
        self.headers = {"Authorization": f"Session {token}"}
        self.context = self._post("model.res.user.get_preferences", [True, {}])

    def call(self, model: str, method: str, *params: Any, **context: Any) -> Any:
        if not self.headers:
            self.login()
        return self._post(f"model.{model}.{method}", [*params, {**self.context, **context}])

    def _post(self, method: str, params: list[Any]) -> Any:
        answer = self.http.post(
            f"{self.server.url}rpc/",
            json={"id": next(self.ids), "method": method, "params": params},
            headers=self.headers,
        )
        answer.raise_for_status()
        reply = answer.json()
        if reply.get("error"):
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def new_products(self, count: int) -> list[str]:
        """`count` new goods with codes no other test uses."""
        prefix = uuid.uuid4().hex[:8].upper()
        codes = [f"{prefix}-{n}" for n in range(count)]
        (unit,) = self.call("product.uom", "search", [("symbol", "=", "u")], 0, 1, None)
        self.call(
            "product.template",
            "create",
            [
                {"name": code, "code": code, "type": "goods", "default_uom": unit,
                 "products": [["create", [{}]]]}
                for code in codes
            ],
        )  # fmt: skip
        return codes

    def location(self, store: str, stock_location: str) -> int:
        """Tryton's location of a store's stock location, found by its codes."""
        if stock_location == "main":
            (warehouse,) = self.call(
                "stock.location", "search_read", [("code", "=", store)], 0, 1, None,
                ["storage_location"],
            )  # fmt: skip
            return int(warehouse["storage_location"])
        (found,) = self.call(
            "stock.location", "search", [("code", "=", f"{store}/{stock_location}")], 0, 1, None
        )
        return int(found)

    def quantities(self, store: str, stock_location: str, codes: list[str]) -> dict[str, int]:
        """Tryton's quantity of each product at that location, its children not counted."""
        rows = self.call(
            "product.product", "search_read", [("code", "in", codes)], 0, None, None,
            ["code", "quantity"],
            locations=[self.location(store, stock_location)], with_childs=False,
        )  # fmt: skip
        return {row["code"]: round(row["quantity"]) for row in rows}

    def find_more(self, store: str, stock_location: str, code: str, quantity: int) -> None:
        """Book `quantity` found in lost-and-found into that location, behind our back."""
        (lost_found,) = self.call(
            "stock.location", "search", [("type", "=", "lost_found")], 0, 1, None
        )
        (product,) = self.call(
            "product.product", "search_read", [("code", "=", code)], 0, 1, None, ["default_uom"]
        )
        moves = self.call(
            "stock.move", "create",
            [{"product": product["id"], "unit": product["default_uom"], "quantity": float(quantity),
              "from_location": lost_found, "to_location": self.location(store, stock_location)}],
        )  # fmt: skip
        self.call("stock.move", "do", moves)

    def shipments(self, model: str, reference: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.call(
            model, "search_read", [("reference", "=", reference)], 0, None, None, ["state"]
        )
        return rows

    def close(self) -> None:
        self.http.close()
