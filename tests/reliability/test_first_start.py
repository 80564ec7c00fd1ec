"""The operator's first start, on the real processes: credentials generated once and usable,
a database that is wrong, away or not migrated, a port in use. Each is one clear line (or
one log line per attempt), never a traceback and never a service that answers 503 forever."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import select

from inventory_sync.api.auth import CREDENTIALS_FILE
from inventory_sync.storage.store import open_database
from inventory_sync.storage.tables import generated_credential
from tests import factories
from tests.reliability import harness as h
from tests.reliability.proxy import TcpProxy

CONFIGURED = ("INVSYNC_WEBHOOK_KEYS", "INVSYNC_OPS_TOKENS", "INVSYNC_ADMIN_TOKENS")


def bare_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a first start: a database and nothing else configured."""
    env = {k: v for k, v in h.service_env(database_url).items() if k not in CONFIGURED}
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(h.BIN), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(params=["sqlite", "postgres"])
def any_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        # Not migrated: the embedded default creates its own schema.
        yield f"sqlite:///{tmp_path / 'first.db'}"
    else:
        yield request.getfixturevalue("own_postgres")


def deliver(api: h.Api, key: str, body: dict[str, object]) -> str:
    """The webhook's status for `body` posted with `key`."""
    headers = {"Authorization": f"Bearer {key}"}
    answer = httpx.post(f"{api.url}/webhooks/newstore", json=body, headers=headers, timeout=10)
    status: str = answer.json()["status"]
    return status


def credentials_in(workdir: Path) -> dict[str, str]:
    lines = (workdir / CREDENTIALS_FILE).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


class TestCredentials:
    def test_a_first_start_yields_a_key_and_a_token_that_work_and_only_once(
        self, any_database: str, tmp_path: Path
    ) -> None:
        api = h.Api(any_database, tmp_path)
        api.env = bare_env(any_database)
        api.start()
        try:
            generated = credentials_in(tmp_path)
            assert set(generated) == {"INVSYNC_WEBHOOK_KEYS", "INVSYNC_ADMIN_TOKENS"}
            key, token = generated["INVSYNC_WEBHOOK_KEYS"], generated["INVSYNC_ADMIN_TOKENS"]
            log = api.log.read_text()
            assert key not in log
            assert token not in log
            # No terminal colours in a log that is no terminal, raw or JSON-escaped.
            assert "\x1b[" not in log
            assert "\\u001b" not in log
            assert "color_message" not in log
            body = factories.received(("A", 1))
            assert deliver(api, key, body) == "accepted"
            events = httpx.get(
                f"{api.url}/v1/events", headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
            assert [e["status"] for e in events.json()["items"]] == ["accepted"]
        finally:
            api.stop()
        api.start()  # a second start mints nothing new, and the first key still works
        try:
            assert credentials_in(tmp_path) == generated
            assert deliver(api, key, body) == "duplicate"
        finally:
            api.stop()

    def test_two_processes_starting_at_once_generate_one_set(
        self, own_postgres: str, tmp_path: Path
    ) -> None:
        apis = [h.Api(own_postgres, tmp_path, name=f"api{n}") for n in range(2)]
        for api in apis:
            api.env = bare_env(own_postgres)
            super(h.Api, api).start()  # both at once, without waiting for the first
        try:
            for api in apis:
                h.wait_until(lambda api=api: _healthy(api), 60, f"{api.args} started")
            generated = credentials_in(tmp_path)
            assert len((tmp_path / CREDENTIALS_FILE).read_text().splitlines()) == 2
            db = open_database(own_postgres, pool_size=1)
            with db.snapshot() as conn:
                stored = conn.execute(select(generated_credential.c.kind)).scalars().all()
            db.dispose()
            assert sorted(stored) == ["admin_token", "webhook_key"]
            for api in apis:
                token = generated["INVSYNC_ADMIN_TOKENS"]
                response = httpx.get(
                    f"{api.url}/v1/events", headers={"Authorization": f"Bearer {token}"}
                )
                assert response.status_code == 200
        finally:
            for api in apis:
                api.stop()


def _healthy(api: h.Api) -> bool:
    try:
        return httpx.get(f"{api.url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class TestDatabase:
    @pytest.mark.parametrize(
        "command",
        [
            ["status"],
            ["sync", "list"],
            ["events", "replay", "--all"],
            ["events", "list", "--json"],
            ["purge", "--dry-run"],
        ],
    )
    def test_a_schema_not_migrated_is_one_line_and_exit_4(
        self, command: list[str], tmp_path: Path
    ) -> None:
        name = f"invsync_rel_bare_{os.getpid()}_{'_'.join(command[:2]).strip('-')}"
        with psycopg.connect(h.POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            url = h.POSTGRES_URL.rpartition("/")[0] + "/" + name
            for database in (url, f"sqlite:///{tmp_path / 'bare.db'}"):
                done = run(command, bare_env(database), tmp_path)
                assert done.returncode == 4, done.stderr
                [line] = done.stderr.strip().splitlines()
                assert line.startswith("the database schema is behind this version (")
                assert line.endswith("run `inventory-sync db upgrade`")
        finally:
            with psycopg.connect(h.POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def test_the_webhook_says_the_schema_is_behind_and_logs_it_once(self, tmp_path: Path) -> None:
        name = f"invsync_rel_unmigrated_{os.getpid()}"
        with psycopg.connect(h.POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        api = h.Api(h.POSTGRES_URL.rpartition("/")[0] + "/" + name, tmp_path)
        try:
            api.start()
            for _ in range(3):
                response = httpx.post(
                    f"{api.url}/webhooks/newstore",
                    json=factories.received(("A", 1)),
                    headers={"Authorization": f"Bearer {h.WEBHOOK_KEY}"},
                    timeout=10,
                )
                assert response.status_code == 503
                assert response.headers["retry-after"]
                assert "run `inventory-sync db upgrade`" in response.json()["detail"]
            logged = [json.loads(line) for line in api.log.read_text().splitlines() if "{" in line]
            events = [entry.get("event") for entry in logged]
            assert events.count("webhook.schema_behind") == 1
            assert events.count("app.schema_behind") >= 1
        finally:
            api.stop()
            with psycopg.connect(h.POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @pytest.mark.parametrize(
        ("database", "says"),
        [("nope_never_created", 'database "nope_never_created" does not exist'), ("", "")],
    )
    def test_a_database_that_refuses_the_connection_stops_serve(
        self, database: str, says: str, tmp_path: Path
    ) -> None:
        base = h.POSTGRES_URL.rpartition("/")[0]
        url = f"{base}/{database}" if database else base.replace("postgres@", "nobody@") + "/test"
        done = run(["serve", "--port", str(h.free_port())], bare_env(url), tmp_path)
        assert done.returncode == 2
        assert "the database refuses the connection: " in done.stderr
        assert (says or 'role "nobody" does not exist') in done.stderr
        assert "Traceback" not in done.stderr

    @pytest.mark.parametrize(
        "command", [["db", "upgrade"], ["status"], ["events", "list"], ["worker"]]
    )
    @pytest.mark.parametrize(
        ("database", "says"),
        [("nope_never_created", 'database "nope_never_created" does not exist'), ("", "")],
    )
    def test_every_command_says_the_database_refuses_us_in_one_line(
        self, command: list[str], database: str, says: str, tmp_path: Path
    ) -> None:
        base = h.POSTGRES_URL.rpartition("/")[0]
        url = f"{base}/{database}" if database else base.replace("postgres@", "nobody@") + "/test"
        done = run(command, bare_env(url), tmp_path)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        line = done.stderr.strip().splitlines()[-1]  # the worker first says it has no ERP URL
        assert line.startswith("the database refuses the connection: ")
        assert (says or 'role "nobody" does not exist') in line

    def test_two_first_starts_at_once_on_a_new_sqlite_file_both_serve(self, tmp_path: Path) -> None:
        # Both migrate the new file at once: the second waits for the first's lock.
        database = f"sqlite:///{tmp_path / 'new.db'}"
        upgrades = [
            subprocess.Popen(
                [str(h.BIN), "db", "upgrade"],
                env=bare_env(database),
                cwd=tmp_path,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        for process in upgrades:
            _, err = process.communicate(timeout=120)
            assert process.returncode == 0, err

    def test_an_unreachable_database_is_waited_for_then_served(self, tmp_path: Path) -> None:
        url = h.POSTGRES_URL
        host_port = url.split("@", 1)[1].split("/", 1)[0]
        host, port = host_port.split(":")
        proxy = TcpProxy(host, int(port))
        proxy.cut()
        with h.fresh_postgres("wait") as fresh:
            through = fresh.replace(host_port, f"127.0.0.1:{proxy.port}")
            api = h.Api(through, tmp_path)
            super(h.Api, api).start()
            try:
                h.wait_until(
                    lambda: api.log.read_text().count("serve.database_unavailable") >= 2,
                    30,
                    "two attempts logged",
                )
                with pytest.raises(ConnectionRefusedError):  # bound, not listening: refused at once
                    socket.create_connection(("127.0.0.1", api.port), timeout=2).close()
                proxy.restore()
                h.wait_until(lambda: _healthy(api), 60, "served once the database is back")
            finally:
                api.stop()
                proxy.close()

    def test_a_port_in_use_is_one_line(self, own_sqlite: str, tmp_path: Path) -> None:
        with socket.create_server(("127.0.0.1", 0)) as taken:
            port = taken.getsockname()[1]
            done = run(["serve", "--port", str(port)], bare_env(own_sqlite), tmp_path)
        assert done.returncode == 2
        assert done.stderr.strip() == f"cannot listen on 127.0.0.1:{port}: Address already in use"
        assert not (tmp_path / CREDENTIALS_FILE).exists()  # nothing minted for a failed start

    def test_an_interrupted_wait_is_quiet(self, tmp_path: Path) -> None:
        env = bare_env("postgresql://postgres@127.0.0.1:1/none")
        proc = subprocess.Popen(
            [str(h.BIN), "serve", "--port", str(h.free_port())],
            env=env,
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        first = proc.stderr.readline()  # waiting, and saying so
        assert "serve.database_unavailable" in first
        proc.send_signal(2)  # SIGINT, as Ctrl-C
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 130
        assert "Traceback" not in stderr
