"""`docker-compose.yml` and the `Dockerfile`, read as Docker would read them: no engine runs in
the tests, so what they ask of the product is checked against the product itself."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from inventory_sync.cli.main import SERVE_GRACEFUL_SECONDS, cli
from inventory_sync.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SECRETS = re.compile(
    r"\$\{((?:INVSYNC_\w*(?:KEYS|TOKENS?|SECRET|AUTHORIZATION))|POSTGRES_PASSWORD)(:\?|:-\}|.?)"
)


def test_every_secret_must_be_set_and_none_has_a_default() -> None:
    references = SECRETS.findall(COMPOSE_TEXT)
    names = {name for name, _ in references}
    assert {"INVSYNC_WEBHOOK_KEYS", "INVSYNC_ADMIN_TOKENS", "POSTGRES_PASSWORD"} <= names
    # Required (`:?`), or optional and then unset (`:-}`): never a value to fall back on.
    assert [name for name, operator in references if operator not in (":?", ":-}")] == []
    assert "${" + "POSTGRES_PASSWORD:?" in COMPOSE_TEXT
    assert not re.search(r"demo-|whsec_[A-Za-z0-9+/]", COMPOSE_TEXT)


def test_published_ports_are_on_loopback_unless_the_operator_says_otherwise() -> None:
    for name, service in COMPOSE["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("${INVSYNC_BIND:-127.0.0.1}:"), (name, port)


def commands() -> list[tuple[str, list[str]]]:
    found = [(name, s["command"]) for name, s in COMPOSE["services"].items() if "command" in s]
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert cmd is not None
    found.append(("Dockerfile CMD", yaml.safe_load(cmd.group(1))))
    return found


@pytest.mark.parametrize(("service", "command"), commands())
def test_each_command_and_option_exists(service: str, command: list[str]) -> None:
    words = [w for w in command if not w.startswith("${")]
    groups: dict[str, Any] = typer.main.get_command(cli).commands  # type: ignore[attr-defined]
    is_group = hasattr(groups.get(words[0]), "commands")
    subcommand = words[:2] if is_group else words[:1]
    result = CliRunner().invoke(cli, [*subcommand, "--help"], terminal_width=200)
    assert result.exit_code == 0, (service, result.output)
    for option in (w for w in words if w.startswith("--")):
        assert option in result.output, (service, option)


def environment(service: str) -> dict[str, str]:
    return dict(COMPOSE["services"][service].get("environment", {}))


def test_the_image_is_built_once_and_every_service_runs_it() -> None:
    services = COMPOSE["services"]
    built = [name for name, service in services.items() if "build" in service]
    assert built == ["migrate", "tryton"]  # the demo ERP of the `tryton` profile is its own
    ours = [name for name, service in services.items() if name not in ("postgres", "tryton")]
    assert {services[name]["image"] for name in ours} == {"newstore-inventory-sync:latest"}
    assert all(services[name]["pull_policy"] == "never" for name in ours if name != "migrate")


def test_each_service_gets_only_the_secrets_it_uses() -> None:
    def secrets(service: str) -> set[str]:
        names = set(environment(service))
        return {n for n in names if SECRETS.search("${" + n)} | (
            {"POSTGRES_PASSWORD"} if "INVSYNC_DATABASE_URL" in names else set()
        )

    assert secrets("migrate") == {"POSTGRES_PASSWORD"}
    assert secrets("api") == {
        "POSTGRES_PASSWORD",
        "INVSYNC_WEBHOOK_KEYS",
        "INVSYNC_OPS_TOKENS",
        "INVSYNC_ADMIN_TOKENS",
        "INVSYNC_METRICS_TOKEN",
    }
    assert secrets("worker") == {
        "POSTGRES_PASSWORD",
        "INVSYNC_ERP_SIGNING_SECRET",
        "INVSYNC_ERP_AUTHORIZATION",
    }
    assert secrets("erp") == set()  # its one secret is on its command line


def test_stop_grace_outlasts_the_processes_own_draining() -> None:
    settings = Settings(_env_file=None)
    for service, own in (
        ("api", SERVE_GRACEFUL_SECONDS),
        ("worker", settings.erp_timeout_seconds + 10),
    ):
        grace = COMPOSE["services"][service]["stop_grace_period"]
        assert int(grace.removesuffix("s")) > own, service


def test_the_healthcheck_follows_the_port_serve_listens_on() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    healthcheck = dockerfile.split("HEALTHCHECK", 1)[1].split("ENTRYPOINT", 1)[0]
    assert "INVSYNC_PORT" in healthcheck
    assert "8000/" not in healthcheck
    assert environment("api")["INVSYNC_PORT"] == 8000


def test_the_tryton_profile_is_a_worker_setting_away() -> None:
    tryton = COMPOSE["services"]["tryton"]
    assert tryton["profiles"] == ["tryton"]
    assert "profiles" not in COMPOSE["services"]["worker"]  # `up` alone keeps the JSON stand-in
    assert environment("tryton")["TRYTON_PASSWORD"] == "${TRYTON_PASSWORD:-}"
    worker = environment("worker")
    assert worker["INVSYNC_ERP_ADAPTER"] == "${INVSYNC_ERP_ADAPTER:-json}"
    assert worker["INVSYNC_ERP_PASSWORD"] == "${INVSYNC_ERP_PASSWORD:-${TRYTON_PASSWORD:-}}"
    start = (ROOT / "docker" / "tryton" / "start.sh").read_text()
    assert ': "${TRYTON_PASSWORD:?' in start  # the container refuses to start without it
    assert "setup_db.py" in start
