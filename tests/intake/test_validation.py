"""What the one model set makes of awkward line values, whichever parser reads the body.

A usual body is read in one pass from its bytes; an unusual one (another encoding, lone
surrogates, invalid input) by the careful path from `json.loads`. Both must give the same
verdict for every body, and the verdicts are fixed here as regression cases.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inventory_sync.newstore import payloads, validation

MAX_QUANTITY, MAX_TEXT = payloads.MAX_QUANTITY, payloads.MAX_TEXT
NAMES = list(payloads.PAYLOAD_MODELS)
FIELDS = ["product_id", "quantity", "count", "stock_on_hand", "condition_code", "return_reason"]
AWKWARD: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    MAX_QUANTITY,
    MAX_QUANTITY + 1,
    -MAX_QUANTITY - 1,
    10**30,
    3.0,
    -2.0,
    1.5,
    1e300,
    float("inf"),
    float("-inf"),
    float("nan"),
    "3",
    "",
    "x" * MAX_TEXT,
    "x" * (MAX_TEXT + 1),
    "é",
    "\x00",
    "\ud800",
    "A\u2028",
    [1],
    {"a": 1},
]
REFUSED = object()
ABSENT = object()


def storable_text(value: Any, *, required: bool) -> Any:
    """A text field: text as it is, a number as Python writes it; nothing else."""
    if value is None:
        return REFUSED if required else None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return REFUSED
    text = value if isinstance(value, str) else str(value)
    if (required and not text) or len(text) > MAX_TEXT or "\x00" in text:
        return REFUSED
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return REFUSED
    return text


def whole(value: Any, low: int, high: int) -> Any:
    """A number field: a whole number in [low, high], however it is written."""
    if isinstance(value, bool) or value is None:
        return REFUSED
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            return REFUSED
    if not isinstance(value, int) or not low <= value <= high:
        return REFUSED
    return value


def expected(name: str, field: str, value: Any) -> Any:
    """What the model set makes of `value` in `field` of a line of event `name`."""
    if isinstance(value, float) and not math.isfinite(value):
        return REFUSED  # written as NaN or Infinity, which JSON has not: refused in any field
    counted = name == "inventory_count.items_counted"
    if field == "product_id":
        return storable_text(value, required=True)
    if field in ("count", "stock_on_hand") and not counted:
        return ABSENT
    if field == "quantity" and (counted or name == payloads.SALE):
        return ABSENT  # a count line has count and stock_on_hand; a sale line is one unit
    if field in ("condition_code", "return_reason"):
        return storable_text(value, required=False) if name == "return.processed" else ABSENT
    if field == "quantity" and value is None and name.endswith("items_ready_for_handover"):
        return None  # a handover line without quantity: one unit (ledger.effects)
    if field == "stock_on_hand":
        return whole(value, -MAX_QUANTITY, MAX_QUANTITY)
    return whole(value, 0, MAX_QUANTITY)


def body(name: str, field: str, value: Any) -> dict[str, Any]:
    base = {"product_id": "SKU-1", "quantity": 1, "count": 2, "stock_on_hand": 1}
    line = {**base, "condition_code": "A", field: value}
    payload = {
        "id": "p-1",
        "fulfillment_location_id": "L1",
        "origin_id": "L1",
        "return_location_id": "L1",
        "logical_timestamp": 1,
        "items": [base, line],
    }
    return {"tenant": "acme", "name": name, "payload": payload}


ENCODINGS = ["ascii", "utf-8", "utf-16", "utf-32"]


def encode(data: dict[str, Any], encoding: str) -> bytes:
    """The body as a sender could put it on the wire; json.loads reads every one of these."""
    if encoding == "ascii":
        return json.dumps(data).encode()
    # surrogatepass: lone surrogates can arrive as raw bytes too
    return json.dumps(data, ensure_ascii=False).encode(encoding, "surrogatepass")


def verdict(raw: bytes, field: str) -> Any:
    read = validation.read(raw)
    if isinstance(read, validation.Refused):
        assert f"payload.items.1.{field}: " in read.reason, read.reason
        assert read.reason.count("payload.") == 1, read.reason  # one reason for the one field
        return REFUSED
    assert isinstance(read, validation.Handled), read
    return read.event.payload.items[1].model_dump().get(field, ABSENT)


@pytest.mark.parametrize("name", NAMES)
def test_each_awkward_value_gets_its_verdict_whichever_parser(name: str) -> None:
    for field in FIELDS:
        for value in AWKWARD:
            for encoding in ENCODINGS:
                got = verdict(encode(body(name, field, value), encoding), field)
                assert got == expected(name, field, value), (name, field, value, encoding)


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    field=st.sampled_from(FIELDS),
    value=st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=8)),
    encoding=st.sampled_from(ENCODINGS),
)
def test_random_values_too(name: str, field: str, value: Any, encoding: str) -> None:
    assert verdict(encode(body(name, field, value), encoding), field) == expected(
        name, field, value
    )


def test_a_usual_body_is_read_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    careful: list[bytes] = []
    monkeypatch.setattr(validation, "_careful", lambda raw: careful.append(raw))
    data = body(NAMES[0], "product_id", "SKU-é")
    assert isinstance(validation.read(encode(data, "utf-8")), validation.Handled)
    assert isinstance(validation.read(encode(data, "ascii")), validation.Handled)  # é as \u00e9
    assert careful == []


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_a_body_that_is_not_utf_8_takes_the_careful_path(encoding: str) -> None:
    read = validation.read(encode(body(NAMES[0], "quantity", 7), encoding))
    assert isinstance(read, validation.Handled)
    assert read.event.payload.items[1].model_dump()["quantity"] == 7


def test_nul_outside_the_models_is_no_reason_to_refuse() -> None:
    data = body(NAMES[0], "note", "\x00")
    assert isinstance(validation.read(encode(data, "ascii")), validation.Handled)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_nul_in_a_line_is_refused_in_any_encoding(encoding: str) -> None:
    read = validation.read(encode(body(NAMES[0], "product_id", "A\x00"), encoding))
    assert isinstance(read, validation.Refused)
    assert read.reason == "payload.items.1.product_id: NUL characters are not allowed"
    assert validation.lenient_key(read.document or {}) == ("acme", NAMES[0], "p-1", 1)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (-1, "negative quantity -1 is not allowed"),
        (10**30, f"quantity {10**30} exceeds {MAX_QUANTITY}"),
        (True, "expected a whole number, not a boolean"),
        (1.5, "expected a whole number"),
    ],
)
def test_a_quantity_is_refused_in_words(value: Any, reason: str) -> None:
    read = validation.read(encode(body(NAMES[0], "quantity", value), "ascii"))
    assert isinstance(read, validation.Refused)
    assert read.reason == f"payload.items.1.quantity: {reason}"


@pytest.mark.parametrize(
    ("value", "key_part"),
    [(1715871761377, 1715871761377), (5.0, 5), ("6", 6), (-1, REFUSED), (True, REFUSED)],
)
@pytest.mark.parametrize("encoding", ["ascii", "utf-16"])
def test_a_sale_is_keyed_by_its_logical_timestamp_whichever_parser(
    value: Any, key_part: Any, encoding: str
) -> None:
    data = body(payloads.SALE, "product_id", "SKU-1")
    data["payload"]["logical_timestamp"] = value
    read = validation.read(encode(data, encoding))
    if key_part is REFUSED:
        assert isinstance(read, validation.Refused)
        assert read.reason.startswith("payload.logical_timestamp: "), read.reason
        return
    assert isinstance(read, validation.Handled), read
    assert validation.key_of(read.event) == ("acme", payloads.SALE, "p-1", key_part)


def test_a_refused_sale_keeps_its_key_by_logical_timestamp() -> None:
    data = body(payloads.SALE, "product_id", "A\x00")
    data["payload"]["logical_timestamp"] = 77
    read = validation.read(encode(data, "ascii"))
    assert isinstance(read, validation.Refused)
    key = validation.lenient_key(read.document or {})
    assert key == ("acme", payloads.SALE, "p-1", 77)
    assert validation.chunk_of(key) is None
    del data["payload"]["logical_timestamp"]
    assert validation.lenient_key(data) is None  # no default: the key is unknown
