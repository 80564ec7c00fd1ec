"""The fast validation path gives exactly what the full models give, or defers to them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from inventory_sync.webhooks import schemas

MODELS = list(schemas.PAYLOAD_MODELS.values())

FIELDS = ["product_id", "quantity", "count", "stock_on_hand", "condition_code", "return_reason"]
# Values a line field may carry, awkward ones included: bools, whole and fractional floats,
# numeric strings, out-of-range numbers, empty, long, non-ASCII, NUL and lone surrogates.
AWKWARD = [
    None,
    True,
    False,
    0,
    1,
    -1,
    schemas.MAX_QUANTITY,
    schemas.MAX_QUANTITY + 1,
    -schemas.MAX_QUANTITY - 1,
    10**30,
    3.0,
    -2.0,
    1.5,
    1e300,
    "3",
    "",
    "x" * schemas.MAX_TEXT,
    "x" * (schemas.MAX_TEXT + 1),
    "é",
    "\x00",
    "\ud800",
    "A\u2028",
    [1],
    {"a": 1},
]


def line(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "product_id": "SKU-1",
        "quantity": 1,
        "count": 2,
        "stock_on_hand": 1,
        "condition_code": "A",
    }
    return {**base, **fields}


def payload(*lines: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "p-1",
        "fulfillment_location_id": "L1",
        "origin_id": "L1",
        "return_location_id": "L1",
        "items": list(lines),
    }


def outcome(model: type[schemas.HandledPayload], data: dict[str, Any], body: bytes) -> Any:
    try:
        validated = schemas.validate_payload(model, data, body)
    except ValidationError as error:
        return ("error", schemas.describe(error))
    return ("ok", type(validated).__mro__, validated.model_dump())


def expected(model: type[schemas.HandledPayload], data: dict[str, Any]) -> Any:
    try:
        validated = model.model_validate(data)
    except ValidationError as error:
        return ("error", schemas.describe(error))
    return ("ok", validated.model_dump())


ENCODINGS = ["ascii", "utf-8", "utf-16", "utf-32"]


def encode(data: dict[str, Any], encoding: str) -> bytes:
    """The body as a sender could put it on the wire; json.loads reads every one of these."""
    if encoding == "ascii":
        return json.dumps(data).encode()
    # surrogatepass: lone surrogates can arrive as raw bytes too
    return json.dumps(data, ensure_ascii=False).encode(encoding, "surrogatepass")


def check(model: type[schemas.HandledPayload], field: str, value: Any, encoding: str) -> None:
    data = payload(line(), line(**{field: value}))
    body = encode(data, encoding)
    got, want = outcome(model, data, body), expected(model, data)
    assert got[0] == want[0], (model, field, value, encoding)
    if want[0] == "error":
        assert got == want
    else:
        assert model in got[1]  # a subclass of the model asked for, whichever path
        assert got[2] == want[1]


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_same_result_or_same_error_as_the_full_models(model: type[schemas.HandledPayload]) -> None:
    for field in FIELDS:
        for value in AWKWARD:
            for encoding in ENCODINGS:
                check(model, field, value, encoding)


@settings(max_examples=200, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    field=st.sampled_from(FIELDS),
    value=st.one_of(st.integers(), st.floats(), st.text(max_size=8)),
    encoding=st.sampled_from(ENCODINGS),
)
def test_random_values_too(
    model: type[schemas.HandledPayload], field: str, value: Any, encoding: str
) -> None:
    check(model, field, value, encoding)


def fast(data: dict[str, Any], body: bytes) -> bool:
    return type(schemas.validate_payload(schemas.ItemsReceived, data, body)) is not (
        schemas.ItemsReceived
    )


def test_a_plain_body_takes_the_fast_path() -> None:
    data = payload(line(), line(product_id="SKU-é", quantity=7))
    assert fast(data, encode(data, "utf-8"))
    assert fast(data, encode(data, "ascii"))  # é as \u00e9: an ordinary escape


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_a_body_that_is_not_utf_8_takes_the_full_models(encoding: str) -> None:
    data = payload(line())
    assert not fast(data, encode(data, encoding))


def test_a_body_with_a_nul_escape_takes_the_full_models() -> None:
    data = payload(line(), {"product_id": "A", "quantity": 1, "note": "\x00"})
    body = encode(data, "ascii")
    assert b"\\u0000" in body
    assert not fast(data, body)


def test_nul_in_a_utf_16_body_is_refused_as_in_utf_8() -> None:
    data = payload(line(product_id="A\x00"))
    for encoding in ("utf-8", "utf-16"):
        assert outcome(schemas.ItemsReceived, data, encode(data, encoding)) == (
            "error",
            "items.0.product_id: NUL characters are not allowed",
        )
