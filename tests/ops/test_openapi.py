"""The OpenAPI document as a contract: a valid document, and every answer the API really gives
(with data present, on both backends) matches what it declares for that operation and status."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from inventory_sync.api import app as app_module
from inventory_sync.api.problems import PROBLEM_TYPES, TYPES_PATH
from inventory_sync.errors import ServiceError
from inventory_sync.newstore.payloads import HANDLED
from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from inventory_sync.views import events as events_view
from tests import factories as f
from tests.erp_sync.conftest import FakeErp, Reply, erp_settings, make_worker, run
from tests.erp_sync.conftest import erp as erp  # the fixture: a real local ERP server

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
DOCS = Path(__file__).parents[2] / "docs" / "problems.md"


def accepted(client: TestClient, body: dict[str, Any]) -> int:
    answer = f.post(client, body)
    assert answer["status"] == "accepted", answer
    event_id: int = answer["event_id"]
    return event_id


def seed(client: TestClient, settings: Settings, db: Database, erp: FakeErp) -> dict[str, Any]:
    """Something for every listing and every kind of answer: a transfer partly received, a
    receipt naming an unknown ASN, an anchored count line, every other handled event, a chunk
    set missing a chunk, quarantined (text and binary), ignored, and ERP messages delivered,
    dead and pending with their attempts."""
    shipped = f.asn(("A", 5), ("B", 2))
    identified = [{"product_id": "E", "quantity": 2, "external_identifiers": {"ean13": "1"}}]
    events = [
        accepted(client, body)
        for body in (
            shipped,
            f.received(("A", 3), asn_id=shipped["payload"]["id"]),
            f.received(("Z", 1), asn_id="ASN-NEVER-SEEN"),
            f.received(items=identified),
            f.counted(("A", 7, 6)),
            f.counted(("A", 8, 9), completed_at="2024-05-21T10:00:00Z"),
            f.adjustment(("A", 1)),
            f.handover(("B", 1)),
            f.returned({"product_id": "A", "quantity": 1, "condition_code": "2"}),
            f.sold("A", "B"),
            f.received(("C", 1), chunk_number=1, total_chunks=3),
        )
    ]
    quarantined = f.post(client, f.received(("NEG", -1)))["event_id"]
    binary = f.post(client, b"\xff\xfe not utf-8")["event_id"]
    ignored = f.post(client, f.envelope("order.created", {"id": "o1"}))
    assert ignored["status"] == "ignored"

    messages = [
        item["id"]
        for item in client.get(
            "/v1/sync/messages", params={"limit": 1000}, headers=f.read_headers()
        ).json()["items"]
    ]
    dead, pending = messages[0], messages[1]
    erp.by_key[dead] = Reply(422, body="unknown product")
    erp.by_key[pending] = Reply(503)
    run(make_worker(erp_settings(settings, erp.url), db).run_once())
    dismissed = client.post(
        f"/v1/events/{binary}/dismiss", json={"reason": "not JSON"}, headers=f.admin_headers()
    )
    assert dismissed.status_code == 200, dismissed.text
    return {
        "event_id": [*events, quarantined, binary, ignored["event_id"]],
        "message_id": messages,
        "quarantined": quarantined,
        "dead": dead,
        "delivered": messages[2],
    }


def document(client: TestClient) -> dict[str, Any]:
    answer: dict[str, Any] = client.get("/openapi.json").json()
    return answer


def operations(spec: dict[str, Any], method: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        if method in item:
            yield path, item[method]


class Checker:
    """Sends a request for one declared operation through the app and checks the answer
    against the document, as schemathesis checks its generated requests."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.schema = schemathesis.openapi.from_dict(document(client))

    def check(
        self,
        method: str,
        path: str,
        *,
        path_parameters: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        operation = self.schema[path][method]
        options: dict[str, Any] = {"path_parameters": path_parameters or {}, "query": query}
        if body is not None:
            options["body"] = body
            options["media_type"] = "application/json"
        case = operation.Case(**options)
        kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers or {})
        kwargs.pop("cookies", None)
        response = self.client.request(**kwargs)
        case.validate_response(response, checks=CHECKS)
        return response


def test_the_document_is_valid_openapi(client: TestClient) -> None:
    spec = document(client)
    validate(spec)  # type: ignore[arg-type]
    assert spec["openapi"].startswith("3.1")
    text = json.dumps(spec)
    unused = [name for name in spec["components"]["schemas"] if f'/schemas/{name}"' not in text]
    assert unused == []


def test_every_ops_answer_is_a_named_schema(client: TestClient) -> None:
    for method in ("get", "post"):
        for path, operation in operations(document(client), method):
            if not path.startswith("/v1"):
                continue
            content = operation["responses"]["200"]["content"]
            if path.endswith("/raw"):  # the body as it came, of any type
                assert list(content) == ["*/*"]
                continue
            assert "$ref" in content["application/json"]["schema"], (method, path)


def test_real_answers_of_every_get_match_their_declaration(
    client: TestClient, settings: Settings, db: Database, erp: FakeErp
) -> None:
    ids = seed(client, settings, db, erp)
    checker = Checker(client)
    spec = document(client)
    read = f.read_headers()
    gets = [path for path, _ in operations(spec, "get") if path.startswith("/v1")]
    assert len(gets) >= 12
    for path in gets:
        names = re.findall(r"{(\w+)}", path)
        if not names:
            answer = checker.check("GET", path, headers=read)
            # The ERP's stock needs a Tryton (tests/tryton reads it, through this declaration);
            # with the json adapter it is refused, as declared.
            assert answer.status_code == (409 if path.endswith("/erp") else 200), path
            page = answer.json()
            if "items" in page:  # a listing: full, then one item a page with a cursor
                assert page["items"], path
                first = checker.check("GET", path, query={"limit": 1}, headers=read).json()
                if len(page["items"]) > 1:
                    assert first["next_cursor"], path
                    cursor = {"limit": 1, "cursor": first["next_cursor"]}
                    checker.check("GET", path, query=cursor, headers=read)
            continue
        (name,) = names  # a new kind of path parameter needs ids above
        statuses = {
            checker.check("GET", path, path_parameters={name: value}, headers=read).status_code
            for value in ids[name]
        }
        assert 200 in statuses, path
    ledger = checker.check("GET", "/v1/ledger", query={"format": "csv"}, headers=read)
    assert ledger.headers["content-type"].startswith("text/csv")
    checker.check("GET", "/healthz")
    checker.check("GET", "/readyz")
    checker.check("GET", "/metrics")


def test_answers_that_change_state_match_their_declaration(
    client: TestClient, settings: Settings, db: Database, erp: FakeErp
) -> None:
    ids = seed(client, settings, db, erp)
    checker = Checker(client)
    admin = f.admin_headers()
    replay = "/v1/events/{event_id}/replay"
    answer = checker.check("POST", replay, path_parameters={"event_id": ids["quarantined"]})
    assert answer.status_code == 401
    answer = checker.check(
        "POST", replay, path_parameters={"event_id": ids["quarantined"]}, headers=admin
    )
    assert answer.json()["status"] == "quarantined"
    retry = "/v1/sync/messages/{message_id}/retry"
    for message_id, status in ((ids["dead"], 200), (ids["delivered"], 409)):
        answer = checker.check(
            "POST", retry, path_parameters={"message_id": message_id}, headers=admin
        )
        assert answer.status_code == status, answer.text
    answer = checker.check(
        "POST", retry, path_parameters={"message_id": ids["dead"]}, headers=f.read_headers()
    )
    assert answer.status_code == 403
    assert checker.check("POST", "/v1/sync/messages/retry", headers=admin).status_code == 200
    assert checker.check("POST", "/v1/events/replay", headers=admin).status_code == 200
    dismiss = "/v1/events/{event_id}/dismiss"
    reason = {"reason": "a test event"}
    for event_id, status in ((ids["quarantined"], 200), (ids["event_id"][0], 409)):
        answer = checker.check(
            "POST", dismiss, path_parameters={"event_id": event_id}, headers=admin, body=reason
        )
        assert answer.status_code == status, answer.text
    answer = checker.check("POST", replay, path_parameters={"event_id": ids["quarantined"]})
    assert answer.status_code == 401
    answer = checker.check(
        "POST", replay, path_parameters={"event_id": ids["quarantined"]}, headers=admin
    )
    assert answer.status_code == 409
    bulk = checker.check("POST", "/v1/events/dismiss", headers=admin, body={"reason": "x"})
    assert bulk.status_code == 422
    bulk = {"reason": "x", "all": True}
    assert checker.check("POST", "/v1/events/dismiss", headers=admin, body=bulk).status_code == 200
    webhook = "/webhooks/newstore"
    key = f.webhook_headers()
    assert checker.check("POST", webhook, body=f.received(("W", 1)), headers=key).status_code == 200
    assert checker.check("POST", webhook, body=f.received(("W", 1))).status_code == 401


def test_problem_answers_match_their_declaration(client: TestClient) -> None:
    """Every ops operation without a token, and the usual mistakes of each kind."""
    checker = Checker(client)
    spec = document(client)
    for method in ("get", "post"):
        for path, _ in operations(spec, method):
            if not path.startswith("/v1"):
                continue
            values = dict.fromkeys(re.findall(r"{(\w+)}", path), "1")
            answer = checker.check(method.upper(), path, path_parameters=values)
            assert answer.status_code == 401, (method, path)
            assert answer.json()["type"] == f"{TYPES_PATH}/unauthorized"
    read = f.read_headers()
    mistakes = [
        ("/v1/events", {"cursor": "not-a-cursor"}, 400),
        ("/v1/events", {"limit": 0}, 422),
        ("/v1/ledger", {"since": "yesterday"}, 422),
        ("/v1/reconciliation", {"format": "csv"}, 400),
    ]
    for path, query, status in mistakes:
        assert checker.check("GET", path, query=query, headers=read).status_code == status
    missing = checker.check("GET", "/v1/events/{event_id}", path_parameters={"event_id": 99})
    assert missing.status_code == 401
    missing = checker.check(
        "GET", "/v1/events/{event_id}", path_parameters={"event_id": 99}, headers=read
    )
    assert missing.status_code == 404
    assert missing.json()["type"] == f"{TYPES_PATH}/not_found"
    webhook = checker.check(
        "POST",
        "/webhooks/newstore",
        body=f.received(("W", 1)),
        headers={**f.webhook_headers(), "Content-Type": "text/plain"},
    )
    assert webhook.status_code == 415


def test_each_operation_names_the_credentials_it_takes(client: TestClient) -> None:
    spec = document(client)
    schemes = spec["components"]["securitySchemes"]
    assert set(schemes) == {"WebhookKey", "OpsToken", "AdminToken", "MetricsToken"}
    assert all(s == {**s, "type": "http", "scheme": "bearer"} for s in schemes.values())
    assert spec["paths"]["/webhooks/newstore"]["post"]["security"] == [{"WebhookKey": []}]
    # Optional: asked for only when INVSYNC_METRICS_TOKEN is set.
    assert spec["paths"]["/metrics"]["get"]["security"] == [{"MetricsToken": []}, {}]
    for method in ("get", "post"):
        for path, operation in operations(spec, method):
            if path.startswith("/v1"):
                takes = [{"OpsToken": []}, {"AdminToken": []}] if method == "get" else []
                assert operation["security"] == (takes or [{"AdminToken": []}]), path


def test_the_webhook_body_is_one_of_the_handled_events(client: TestClient) -> None:
    spec = document(client)
    body = spec["paths"]["/webhooks/newstore"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HandledEvent"
    }
    handled = spec["components"]["schemas"]["HandledEvent"]
    assert set(handled["discriminator"]["mapping"]) == HANDLED
    assert len(handled["oneOf"]) == len(HANDLED)
    validator = Draft202012Validator(
        {"$ref": "urn:document#/components/schemas/HandledEvent"},
        registry=Registry().with_resource("urn:document", DRAFT202012.create_resource(spec)),
    )
    events = [
        f.received(("A", 1), asn_id="ASN-1"),
        f.adjustment(("A", 1)),
        f.handover(("A", 1)),
        f.asn(("A", 1)),
        f.counted(("A", 1, 0)),
        f.returned({"product_id": "A", "quantity": 1}),
        f.sold("A"),
        f.received(("A", "6"), chunk_number=2),  # a quantity written as text is taken too
        f.received(("A", 1), fulfillment_location_id=None, fulfillment_node_id="US-NYC-01"),
    ]
    for event in events:  # a location field's other name: no null in its place
        event["payload"] = {k: v for k, v in event["payload"].items() if v is not None}
    for event in events:
        errors = [e.message for e in validator.iter_errors(event)]
        assert errors == [], (event["name"], errors)
    assert list(validator.iter_errors(f.received(("A", -1))))
    assert list(validator.iter_errors(f.received(("A", 1), fulfillment_location_id=None)))
    assert list(validator.iter_errors(f.envelope("order.created", {})))


class TestProblemTypes:
    def test_a_defect_is_a_problem_too_without_its_text(
        self, client: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError("secret internals")

        monkeypatch.setattr(events_view, "list_events", broken)
        answering = TestClient(client.app, raise_server_exceptions=False)
        answer = answering.get("/v1/events", headers=f.read_headers())
        assert answer.status_code == 500
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"] == PROBLEM_TYPES["internal"].uri
        assert "secret" not in answer.text

    def test_every_type_is_served_and_documented(self, client: TestClient) -> None:
        documented = dict(re.findall(r"^### `(\w+)` \((\d{3})\)", DOCS.read_text(), re.M))
        assert {code: str(t.status) for code, t in PROBLEM_TYPES.items()} == documented
        for problem_type in PROBLEM_TYPES.values():
            page = client.get(problem_type.uri)
            assert page.status_code == 200
            assert problem_type.title in page.text
        assert client.get(f"{TYPES_PATH}/nothing").status_code == 404

    def test_every_error_of_the_service_has_a_type(self) -> None:
        # Every route's errors are defined: `app_module` imports every route.
        pending, seen = [ServiceError], []
        while pending:
            kind = pending.pop()
            seen.append(kind)
            pending.extend(kind.__subclasses__())
        assert len(seen) >= 6
        assert {kind.code for kind in seen} <= set(PROBLEM_TYPES)

    def test_the_document_names_only_types_that_exist(self, client: TestClient) -> None:
        text = str(document(client))
        named = set(re.findall(rf"{TYPES_PATH}/(\w+)", text))
        assert named
        assert named <= set(PROBLEM_TYPES)


class TestDocsPages:
    @pytest.mark.parametrize("page", ["/docs", "/redoc"])
    def test_they_load_everything_from_the_service(self, client: TestClient, page: str) -> None:
        html = client.get(page)
        assert html.status_code == 200
        assert "http://" not in html.text
        assert "https://" not in html.text
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
        assert len(assets) >= 2
        for asset in assets:
            answer = client.get(asset)
            assert answer.status_code == 200, asset
            assert len(answer.content) > 1000, asset
        assert "url: '/openapi.json'" in html.text or 'spec-url="/openapi.json"' in html.text

    def test_switched_off_they_are_gone(self, settings: Settings) -> None:
        hidden = settings.model_copy(update={"api_docs": False})
        with TestClient(app_module.create_app(hidden)) as client:
            for path in ("/docs", "/redoc", "/openapi.json", "/docs/assets/swagger-ui.css"):
                assert client.get(path).status_code == 404, path
