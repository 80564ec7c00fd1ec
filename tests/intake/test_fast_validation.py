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


def encode(data: dict[str, Any]) -> bytes:
    # surrogatepass: bodies with lone surrogates exist on the wire as raw bytes too
    return json.dumps(data, ensure_ascii=False).encode("utf-8", "surrogatepass")


def check(model: type[schemas.HandledPayload], field: str, value: Any, ascii_body: bool) -> None:
    data = payload(line(), line(**{field: value}))
    body = json.dumps(data).encode() if ascii_body else encode(data)
    got, want = outcome(model, data, body), expected(model, data)
    assert got[0] == want[0], (model, field, value)
    if want[0] == "error":
        assert got == want
    else:
        assert model in got[1]  # a subclass of the model asked for, whichever path
        assert got[2] == want[1]


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_same_result_or_same_error_as_the_full_models(model: type[schemas.HandledPayload]) -> None:
    for field in FIELDS:
        for value in AWKWARD:
            for ascii_body in (True, False):
                check(model, field, value, ascii_body)


@settings(max_examples=200, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    field=st.sampled_from(FIELDS),
    value=st.one_of(st.integers(), st.floats(), st.text(max_size=8)),
    ascii_body=st.booleans(),
)
def test_random_values_too(
    model: type[schemas.HandledPayload], field: str, value: Any, ascii_body: bool
) -> None:
    check(model, field, value, ascii_body)


def test_a_plain_body_takes_the_fast_path() -> None:
    data = payload(line(), line(product_id="SKU-é", quantity=7))
    validated = schemas.validate_payload(schemas.ItemsReceived, data, encode(data))
    assert type(validated) is not schemas.ItemsReceived
    assert isinstance(validated, schemas.ItemsReceived)


@pytest.mark.parametrize(
    "body",
    [b'{"product_id": "\\u0000"}', b'{"product_id": "\\uD83D"}', b'{"p": "\xed\xa0\x80"}'],
)
def test_a_body_that_may_hide_nul_or_a_surrogate_takes_the_full_models(body: bytes) -> None:
    data = payload(line())
    assert type(schemas.validate_payload(schemas.ItemsReceived, data, body)) is (
        schemas.ItemsReceived
    )


def test_an_ordinary_escape_does_not_leave_the_fast_path() -> None:
    data = payload(line(product_id="é"))
    body = json.dumps(data).encode()  # ASCII: é is sent as \u00e9
    assert b"\\u00e9" in body
    assert type(schemas.validate_payload(schemas.ItemsReceived, data, body)) is not (
        schemas.ItemsReceived
    )
