"""Malformed, hostile and oversized bodies: never a 5xx, never a ledger change, and each
authenticated one quarantined with an error naming what is wrong and its raw bytes kept.

Plus property tests of the pure parts: the timestamp parser, the payload models and
`domain.translate`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from inventory_sync.api.app import create_app
from inventory_sync.clock import parse_timestamp
from inventory_sync.intake.classify import Rules, classify, sha256
from inventory_sync.ledger import documents, effects
from inventory_sync.newstore import payloads
from inventory_sync.settings import LINES_LIMIT, Settings
from tests import factories as f

RECEIPT = "inventory_transaction.items_received"


def receipt(**payload: Any) -> dict[str, Any]:
    return f.received(("A", 1), **payload)


def with_line(**line: Any) -> dict[str, Any]:
    body = receipt()
    body["payload"]["items"][0].update(line)
    return body


def without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    target = body
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return body


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def dumps(body: Any) -> bytes:
    return json.dumps(body).encode()


# (case id, body, text the quarantine reason must contain)
CORPUS: list[tuple[str, bytes, str]] = [
    ("empty body", b"", "not valid JSON"),
    ("not json", b"hello, world", "not valid JSON"),
    ("truncated json", dumps(receipt())[:-5], "not valid JSON"),
    ("raw control character", dumps(receipt()).replace(b'"A"', b'"A\x01"'), "not valid JSON"),
    ("raw nul byte", dumps(receipt()).replace(b'"A"', b'"A\x00"'), "not valid JSON"),
    ("invalid utf-8", dumps(receipt()).replace(b'"A"', b'"\xff\xfe"'), "not valid JSON"),
    ("array", b"[1, 2]", "JSON object"),
    ("string", b'"inventory"', "JSON object"),
    ("null", b"null", "JSON object"),
    ("number", b"42", "JSON object"),
    ("deeply nested body", nested(100_000).encode(), "not valid JSON"),
    (
        "deeply nested items",
        dumps(receipt()).replace(b'"items": [', b'"items": [' + nested(800).encode() + b", "),
        "payload.items.0",
    ),
    ("no tenant", dumps(without(receipt(), "tenant")), "tenant"),
    ("null tenant", dumps({**receipt(), "tenant": None}), "tenant"),
    ("empty tenant", dumps({**receipt(), "tenant": ""}), "tenant"),
    ("numeric tenant", dumps({**receipt(), "tenant": 5}), "tenant"),
    ("no name", dumps(without(receipt(), "name")), "name"),
    ("list name", dumps({**receipt(), "name": [RECEIPT]}), "name"),
    ("no payload", dumps(without(receipt(), "payload")), "payload"),
    ("null payload", dumps({**receipt(), "payload": None}), "payload"),
    ("list payload", dumps({**receipt(), "payload": [1]}), "payload"),
    ("no payload id", dumps(without(receipt(), "payload", "id")), "payload.id"),
    ("empty payload id", dumps(receipt(id="")), "payload.id"),
    ("object payload id", dumps(receipt(id={"a": 1})), "payload.id"),
    ("boolean payload id", dumps(receipt(id=True)), "payload.id"),
    ("no items", dumps(without(receipt(), "payload", "items")), "payload.items"),
    ("items not a list", dumps(receipt(items={"product_id": "A"})), "payload.items"),
    ("items a string", dumps(receipt(items="A")), "payload.items"),
    ("item not an object", dumps(receipt(items=[1])), "payload.items.0"),
    ("no location", dumps(without(receipt(), "payload", "fulfillment_location_id")), "location"),
    ("no product", dumps(without(receipt(), "payload", "items", 0, "product_id")), "product_id"),  # type: ignore[arg-type]
    ("empty product", dumps(with_line(product_id="")), "payload.items.0.product_id"),
    ("null product", dumps(with_line(product_id=None)), "payload.items.0.product_id"),
    ("no quantity", dumps(without(receipt(), "payload", "items", 0, "quantity")), "quantity"),  # type: ignore[arg-type]
    ("null quantity", dumps(with_line(quantity=None)), "payload.items.0.quantity"),
    ("negative quantity", dumps(with_line(quantity=-1)), "payload.items.0.quantity"),
    ("huge quantity", dumps(with_line(quantity=10**30)), "payload.items.0.quantity"),
    ("huge negative", dumps(with_line(quantity=-(10**30))), "payload.items.0.quantity"),
    ("fractional quantity", dumps(with_line(quantity=1.5)), "payload.items.0.quantity"),
    (
        "infinite quantity",
        dumps(receipt()).replace(b'"quantity": 1', b'"quantity": 1e400'),
        "quantity",
    ),
    ("nan quantity", dumps(receipt()).replace(b'"quantity": 1', b'"quantity": NaN'), "quantity"),
    ("boolean quantity", dumps(with_line(quantity=True)), "payload.items.0.quantity"),
    ("string quantity", dumps(with_line(quantity="three")), "payload.items.0.quantity"),
    ("list quantity", dumps(with_line(quantity=[1])), "payload.items.0.quantity"),
    ("nul in tenant", dumps({**receipt(), "tenant": "ac\u0000me"}), "tenant"),
    ("nul in payload id", dumps(receipt(id="x\u0000y")), "payload.id"),
    ("nul in product", dumps(with_line(product_id="A\u0000")), "payload.items.0.product_id"),
    ("nul in location", dumps(receipt(fulfillment_location_id="S\u0000")), "location"),
    ("surrogate in tenant", dumps({**receipt(), "tenant": "\ud800"}), "tenant"),
    ("surrogate in payload id", dumps(receipt(id="\udfff")), "payload.id"),
    ("surrogate in product", dumps(with_line(product_id="\ud800x")), "payload.items.0.product_id"),
    ("surrogate in reference", dumps(receipt(order_ref="\ud800")), "payload.order_ref"),
    (
        "surrogate in identifiers",
        dumps(with_line(external_identifiers={"upc": "\ud800"})),
        "payload.items.0.external_identifiers",
    ),
    (
        "nul in identifiers",
        dumps(with_line(external_identifiers={"sku\u0000": "1"})),
        "payload.items.0.external_identifiers",
    ),
    (
        "identifiers not an object",
        dumps(with_line(external_identifiers=[1])),
        "external_identifiers",
    ),
    (
        "nan in identifiers",
        dumps(with_line(external_identifiers={"upc": 1})).replace(b'"upc": 1', b'"upc": NaN'),
        "payload.items.0.external_identifiers: NaN is not allowed",
    ),
    (
        "nan in an unknown field",
        dumps(receipt()).replace(b'"items"', b'"x": NaN, "items"'),
        "payload.x: NaN is not a JSON value",
    ),
    (
        "negative infinity in the envelope",
        dumps(receipt()).replace(b'"payload"', b'"x": -Infinity, "payload"'),
        "x: -Infinity is not a JSON value",
    ),
    ("long product", dumps(with_line(product_id="P" * 5000)), "payload.items.0.product_id"),
    ("long payload id", dumps(receipt(id="i" * 100_000)), "payload.id"),
    ("payload id of two million characters", dumps(receipt(id="i" * 2_000_000)), "payload.id"),
    ("tenant of a million characters", dumps({**receipt(), "tenant": "t" * 1_000_000}), "tenant"),
    ("long tenant", dumps({**receipt(), "tenant": "t" * 20_000}), "tenant"),
    ("chunk zero", dumps(receipt(chunk_number=0)), "payload.chunk_number"),
    ("negative chunk", dumps(receipt(chunk_number=-1)), "payload.chunk_number"),
    ("chunk above total", dumps(receipt(chunk_number=3, total_chunks=2)), "payload.chunk_number"),
    ("huge chunk", dumps(receipt(chunk_number=10**30)), "payload.chunk_number"),
    ("huge total", dumps(receipt(total_chunks=10**30)), "payload.total_chunks"),
    ("zero total", dumps(receipt(total_chunks=0)), "payload.total_chunks"),
    ("fractional chunk", dumps(receipt(chunk_number=1.5)), "payload.chunk_number"),
    ("boolean chunk", dumps(receipt(chunk_number=True)), "payload.chunk_number"),
    ("bad timestamp", dumps(receipt(processed_at="not a time")), "payload.processed_at"),
    ("numeric timestamp", dumps(receipt(processed_at=1715678000)), "payload.processed_at"),
    ("month 13", dumps(receipt(processed_at="2024-13-01T00:00:00Z")), "payload.processed_at"),
    (
        "bad offset",
        dumps(receipt(processed_at="2024-05-01T00:00:00+25:00")),
        "payload.processed_at",
    ),
    ("bad published_at", dumps({**receipt(), "published_at": "soon"}), "published_at"),
    ("before year 1", dumps(receipt(processed_at="0001-01-01T00:00:00+01:00")), "processed_at"),
    ("after year 9999", dumps(receipt(processed_at="9999-12-31T23:59:59-01:00")), "processed_at"),
    (
        "huge stock_on_hand",
        dumps(f.counted(("A", 1, 10**30))),
        "payload.items.0.stock_on_hand",
    ),
    (
        "adjustment without locations",
        dumps(
            f.adjustment(
                ("A", 1), origin_stock_location_name=None, destination_stock_location_name=""
            )
        ),
        "origin_stock_location_name",
    ),
    (
        "infinity in identifiers",
        dumps(with_line(external_identifiers={"upc": 1})).replace(b'"upc": 1', b'"upc": 1e400'),
        "payload.items.0.external_identifiers: inf: a number out of range",
    ),
    (
        "return without location",
        dumps(
            without(f.returned({"product_id": "A", "quantity": 1}), "payload", "return_location_id")
        ),
        "location",
    ),
]


@pytest.fixture
def baseline(client: TestClient) -> list[dict[str, Any]]:
    """One accepted event, so "the ledger is unchanged" is not trivially true."""
    assert f.post(client, f.received(("BASE", 4)))["status"] == "accepted"
    return f.ledger(client)


class TestCorpus:
    def test_each_is_quarantined_precisely_with_its_raw_bytes(
        self, client: TestClient, baseline: list[dict[str, Any]]
    ) -> None:
        # One loop rather than one test per case keeps this fast; every broken case is listed.
        problems = []
        for case, body, names in CORPUS:
            response = f.post_raw(client, body)
            if response.status_code != 200:
                problems.append(f"{case}: HTTP {response.status_code} {response.text[:200]}")
                continue
            answer = response.json()
            detail = answer["detail"] or ""
            if answer["status"] != "quarantined":
                problems.append(f"{case}: {answer['status']}, not quarantined")
            elif names not in detail or "could not be processed" in detail:
                problems.append(f"{case}: reason {detail[:200]!r} does not name {names!r}")
            elif f.raw(client, answer["event_id"]).content != body:
                problems.append(f"{case}: raw body not kept byte for byte")
            elif f.event(client, answer["event_id"])["error"] != answer["detail"]:
                problems.append(f"{case}: stored error differs from the answer")
            else:
                again = f.post_raw(client, body).json()
                if again["event_id"] != answer["event_id"] or again["status"] == "accepted":
                    problems.append(f"{case}: redelivery stored again: {again}")
        assert problems == []
        assert f.ledger(client) == baseline
        quarantined = f.events(client, status="quarantined")
        assert len(quarantined) == len({body for _, body, _ in CORPUS})

    def test_unauthenticated_bad_bodies_are_401_and_not_stored(self, client: TestClient) -> None:
        headers = {"Content-Type": "application/json"}
        for _, body, _ in CORPUS[:10]:
            assert f.post_raw(client, body, headers).status_code == 401
        assert f.events(client) == []


class TestSizes:
    """What one body may cost is bounded before it is stored, whatever it holds."""

    def test_more_lines_than_the_cap_are_quarantined_whole(
        self, settings: Settings, baseline: list[dict[str, Any]]
    ) -> None:
        capped = settings.model_copy(update={"max_lines_per_event": 3})
        with TestClient(create_app(capped)) as client:
            answer = f.post(client, receipt(items=f.lines(*[("A", 1)] * 4)))
            assert answer["status"] == "quarantined"
            assert answer["detail"] == (
                "payload.items: 4 lines, more than INVSYNC_MAX_LINES_PER_EVENT (3)"
            )
            assert f.post(client, receipt(items=f.lines(*[("A", 1)] * 3)))["status"] == "accepted"
            assert len(f.ledger(client)) == len(baseline) + 3

    def test_the_first_bad_line_ends_validation(self) -> None:
        # A body of bad lines costs no more to refuse than one bad line: one error, not thousands.
        lines = b"[" + b",".join([b"0"] * (LINES_LIMIT - 1)) + b"]"
        body = dumps(receipt()).replace(b'[{"product_id"', lines + b', "x": [{"product_id"', 1)
        with pytest.raises(ValidationError) as raised:
            payloads.HANDLED_EVENT.validate_json(body)
        assert raised.value.error_count() == 1

    def test_lines_beyond_the_limit_are_not_read(self) -> None:
        items = b"[" + b",".join([b'{"product_id": "A", "quantity": 1}'] * (LINES_LIMIT + 1))
        body = dumps(receipt()).replace(b'[{"product_id"', items + b', {"product_id"', 1)
        with pytest.raises(ValidationError) as raised:
            payloads.HANDLED_EVENT.validate_json(body)
        assert raised.value.errors()[0]["type"] == "too_long"

    def test_unhandled_event_with_an_overlong_id_is_known_by_its_bytes(
        self, client: TestClient
    ) -> None:
        body = dumps(f.envelope("order.created", {"id": "i" * 5000}))
        answer = f.post(client, body)
        assert answer["status"] == "ignored"
        assert f.event(client, answer["event_id"])["payload_id"] is None
        assert f.post(client, body)["event_id"] == answer["event_id"]


class TestHostileButValid:
    """Odd yet legal text is stored literally, never interpreted."""

    @pytest.mark.parametrize(
        "text",
        [
            "'; DROP TABLE inbound_event; --",
            "1 OR 1=1",
            '" OR ""="',
            "Ünïcødé-ß-✓-漢字-🙂",
            "tab\tnew\nline\u0007bell",
            "\u202etxt.exe",
        ],
    )
    def test_ids_round_trip_verbatim(self, client: TestClient, text: str) -> None:
        body = f.received((text, 2), id=text, fulfillment_location_id=text, order_ref=text)
        answer = f.post(client, body)
        assert answer["status"] == "accepted"
        [movement] = f.ledger(client)
        assert (movement["product_id"], movement["location_id"]) == (text, text)
        assert movement["references"]["order_ref"] == text
        assert f.event(client, answer["event_id"])["payload_id"] == text
        assert f.post(client, body)["status"] == "duplicate"

    def test_unknown_fields_may_hold_anything(self, client: TestClient) -> None:
        body = f.received(("A", 1), junk={"deep": json.loads(nested(500)), "big": 10**40})
        assert f.post(client, body)["status"] == "accepted"

    def test_whole_float_quantity_is_a_whole_number(self, client: TestClient) -> None:
        assert f.post(client, with_line(quantity=3.0))["status"] == "accepted"
        assert [m["quantity"] for m in f.ledger(client)] == [3]

    def test_nan_and_infinity_inside_text_are_text(self, client: TestClient) -> None:
        assert f.post(client, f.received(("NaN-Infinity", 1)))["status"] == "accepted"
        assert [m["product_id"] for m in f.ledger(client)] == ["NaN-Infinity"]

    def test_numeric_payload_id_is_text(self, client: TestClient) -> None:
        body = receipt(id=12345)
        assert f.post(client, body)["status"] == "accepted"
        assert f.events(client)[0]["payload_id"] == "12345"
        assert f.post(client, body)["status"] == "duplicate"

    def test_a_payload_id_beyond_floats_is_refused_not_read_as_inf(
        self, client: TestClient
    ) -> None:
        answers = []
        for product in ("A", "B"):
            text = json.dumps(receipt(id="ID", items=[{"product_id": product, "quantity": 1}]))
            answers.append(f.post(client, text.replace('"id": "ID"', '"id": 1e400')))
        assert [a["status"] for a in answers] == ["quarantined", "quarantined"]
        assert all(a["detail"].startswith("payload.id") for a in answers), answers
        assert f.ledger(client) == []

    def test_largest_allowed_quantities_fit_the_columns(self, client: TestClient) -> None:
        top = payloads.MAX_QUANTITY
        assert f.post(client, with_line(quantity=top))["status"] == "accepted"
        assert f.post(client, f.counted(("A", top, -top)))["status"] == "accepted"
        quantities = sorted(m["quantity"] for m in f.ledger(client))
        assert quantities == [top, 2 * top]


# ---------------------------------------------------------------------------------------------
# Properties of the pure parts.

OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@st.composite
def timestamps(draw: st.DrawFn) -> tuple[str, datetime]:
    """An ISO-8601 text with 0-9 fractional digits and Z, an offset or none; its UTC value."""
    moment = draw(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2999, 1, 1)))
    nanos = draw(st.integers(min_value=0, max_value=999))
    digits = draw(st.integers(min_value=0, max_value=9))
    zone = draw(st.one_of(st.none(), st.just("Z"), OFFSETS))
    fraction = f"{moment.microsecond:06d}{nanos:03d}"[:digits]
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if digits else "")
    local = moment.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    if zone is None:
        expected = local.replace(tzinfo=UTC)
    elif zone == "Z":
        text += "Z"
        expected = local.replace(tzinfo=UTC)
    else:
        text += local.replace(tzinfo=zone).strftime("%z")
        expected = local.replace(tzinfo=zone).astimezone(UTC)
    return text, expected


class TestParseTimestamp:
    @given(timestamps())
    def test_utc_with_microseconds_and_extra_digits_dropped(
        self, case: tuple[str, datetime]
    ) -> None:
        text, expected = case
        parsed = parse_timestamp(text)
        assert parsed == expected
        assert parsed.utcoffset() == timedelta(0)

    @given(timestamps())
    def test_colon_offsets_and_lowercase_z_agree(self, case: tuple[str, datetime]) -> None:
        text, expected = case
        if text[-5] in "+-" and text[-4:].isdigit():
            text = f"{text[:-2]}:{text[-2:]}"
        elif text.endswith("Z"):
            text = text[:-1] + "z"
        assert parse_timestamp(text) == expected

    @pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-00:01"])
    def test_out_of_range_after_conversion_is_a_value_error(self, text: str) -> None:
        with pytest.raises(ValueError, match="out of range"):
            parse_timestamp(text)

    @given(st.text(max_size=40))
    def test_any_text_parses_or_raises_value_error(self, text: str) -> None:
        try:
            parsed = parse_timestamp(text)
        except ValueError:
            return
        assert parsed.tzinfo is not None


lines_strategy = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=8).filter(lambda s: "\x00" not in s),
        st.integers(min_value=0, max_value=payloads.MAX_QUANTITY),
    ),
    min_size=0,
    max_size=6,
)
WHEN = "2024-05-14T09:31:55.117Z"


def validated(name: str, payload: dict[str, Any]) -> payloads.HandledEvent:
    return payloads.HANDLED_EVENT.validate_python({"tenant": "t", "name": name, "payload": payload})


class TestTranslate:
    @given(lines_strategy)
    def test_receipt_total_is_the_quantity_total(self, lines: list[tuple[str, int]]) -> None:
        payload = f.received(*lines, processed_at=WHEN)["payload"]
        effect = effects.translate(validated(RECEIPT, payload), {})
        assert sum(m.quantity for m in effect.movements) == sum(q for _, q in lines)
        assert effect.movements is not None
        assert effect.movements.kind is effects.Kind.RECEIPT
        assert [m.product_id for m in effect.movements] == [p for p, _ in lines]

    @given(lines_strategy)
    def test_handover_total_is_minus_the_quantity_total(self, lines: list[tuple[str, int]]) -> None:
        payload = f.handover(*lines, processed_at=WHEN)["payload"]
        name = "inventory_transaction.items_ready_for_handover"
        effect = effects.translate(validated(name, payload), {})
        assert sum(m.quantity for m in effect.movements) == -sum(q for _, q in lines)

    @given(
        lines_strategy,
        st.sampled_from([("main", "damaged"), ("main", None), (None, "main"), ("a", "a")]),
    )
    def test_adjustment_moves_conserve_stock(
        self, lines: list[tuple[str, int]], ends: tuple[str | None, str | None]
    ) -> None:
        origin, destination = ends
        payload = f.adjustment(
            *lines,
            processed_at=WHEN,
            origin_stock_location_name=origin,
            destination_stock_location_name=destination,
        )["payload"]
        name = "inventory_transaction.adjustment_created"
        effect = effects.translate(validated(name, payload), {})
        total = sum(q for _, q in lines)
        by_location: dict[str, int] = {}
        for m in effect.movements:
            by_location[m.stock_location] = by_location.get(m.stock_location, 0) + m.quantity
        assert sum(m.quantity for m in effect.movements) == (
            0 if origin and destination else (total if destination else -total)
        )
        if origin and destination and origin != destination:
            assert by_location == ({origin: -total, destination: total} if lines else {})
        assert len(effect.movements) == len(lines) * (2 if origin and destination else 1)
        source = documents.Source("t", name, "p", 1, None, None)
        lines = json.loads(documents.build(source, effect).body)["lines"]
        assert [(line["stock_location"], line["quantity_delta"]) for line in lines] == [
            (m.stock_location, m.quantity) for m in effect.movements
        ]

    @given(
        st.lists(
            st.tuples(
                st.text(min_size=1, max_size=5).filter(lambda s: "\x00" not in s),
                st.integers(0, payloads.MAX_QUANTITY),
                st.integers(-payloads.MAX_QUANTITY, payloads.MAX_QUANTITY),
            ),
            max_size=6,
        )
    )
    def test_count_variance_is_count_minus_stock_on_hand(
        self, triples: list[tuple[str, int, int]]
    ) -> None:
        payload = f.counted(*triples, completed_at=WHEN)["payload"]
        effect = effects.translate(validated("inventory_count.items_counted", payload), {})
        assert [m.quantity for m in effect.movements] == [c - s for _, c, s in triples]
        assert effect.counts is not None
        assert list(zip(effect.counts.counted, effect.counts.stock_on_hand, strict=True)) == [
            (c, s) for _, c, s in triples
        ]

    @given(
        st.lists(
            st.tuples(
                st.integers(0, 1000),
                st.one_of(st.none(), st.integers(0, 4), st.sampled_from(["1", "2", "x"])),
            ),
            max_size=6,
        )
    )
    def test_returns_land_where_the_condition_code_maps(
        self, lines: list[tuple[int, int | str | None]]
    ) -> None:
        mapping = {"2": "damaged", "x": "quarantine"}
        items = [
            {"product_id": f"P{n}", "quantity": q, "condition_code": code}
            for n, (q, code) in enumerate(lines)
        ]
        payload = f.returned(*items)["payload"]
        effect = effects.translate(validated("return.processed", payload), mapping)
        assert [(m.stock_location, m.quantity) for m in effect.movements] == [
            (mapping.get(str(code), "main") if code is not None else "main", q) for q, code in lines
        ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


class TestClassify:
    RULES = Rules(frozenset(), {"2": "damaged"})

    @settings(suppress_health_check=[HealthCheck.too_slow])
    @given(st.binary(max_size=200))
    def test_any_bytes_are_classified(self, body: bytes) -> None:
        result = classify(body, self.RULES, sha256(body))
        assert result.status in ("accepted", "ignored", "quarantined")

    @settings(suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.sampled_from([*payloads.PAYLOAD_MODELS, "order.created"]),
        st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "items",
                    "chunk_number",
                    "total_chunks",
                    "fulfillment_location_id",
                    "fulfillment_node_id",
                    "origin_id",
                    "return_location_id",
                    "processed_at",
                    "origin_stock_location_name",
                    "destination_stock_location_name",
                ]
            ),
            json_values,
        ),
    )
    def test_any_payload_is_classified_with_a_reason(
        self, name: str, payload: dict[str, Any]
    ) -> None:
        body = json.dumps(f.envelope(name, payload)).encode()
        result = classify(body, self.RULES, sha256(body))
        if result.status == "quarantined":
            assert result.error
            assert "could not be processed" not in result.error
        elif result.status == "accepted":
            assert result.write is not None
            assert result.key is not None
