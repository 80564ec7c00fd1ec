"""The netsuite adapter's pure parts: signatures, records, answers, settings."""

from __future__ import annotations

import pytest
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256, Client

from inventory_sync.erp_sync import oauth1
from inventory_sync.erp_sync.client import Outcome
from inventory_sync.erp_sync.mapping import Mapping
from inventory_sync.erp_sync.netsuite import answer
from inventory_sync.erp_sync.netsuite_records import Books, record
from inventory_sync.settings import ConfigurationError, load_settings
from tests.netsuite.conftest import BUSY, TOO_MANY, Answer, netsuite_environment

CREDENTIALS = oauth1.Credentials("1234567_SB1", "ck", "c s/+=&", "tk", "t~s%")


@pytest.mark.parametrize(
    "url",
    [
        "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest/record/v1/"
        "inventoryAdjustment/eid:2b0c1d0e-6f0e-5a8e",
        "HTTPS://Host.example:443/a%20b/c?z=1&a=%2F&a=2&empty=",
        "http://127.0.0.1:8080/x?q=caf%C3%A9",
    ],
)
def test_the_signature_is_the_one_oauthlib_makes(url: str) -> None:
    ours = oauth1.authorization("PUT", url, CREDENTIALS, timestamp=1716800000, nonce="abc123")
    theirs = Client(
        "ck",
        client_secret="c s/+=&",
        resource_owner_key="tk",
        resource_owner_secret="t~s%",
        signature_method=SIGNATURE_HMAC_SHA256,
        realm="1234567_SB1",
        timestamp="1716800000",
        nonce="abc123",
    ).sign(url, "PUT")[1]["Authorization"]
    assert _fields(ours) == _fields(theirs)


def _fields(header: str) -> dict[str, str]:
    assert header.startswith("OAuth ")
    pairs = (part.split("=", 1) for part in header.removeprefix("OAuth ").split(", "))
    return dict(pairs)


def test_the_realm_of_a_sandbox_account() -> None:
    assert oauth1.realm("1234567-sb1") == "1234567_SB1"
    assert oauth1.realm("1234567") == "1234567"


def _document(document_type: str, *lines: tuple[str, str, int], chunks: int | None = 1) -> dict:
    return {
        "id": "m-1",
        "type": document_type,
        "location_id": "US-NYC-01",
        "occurred_at": "2024-05-15T11:19:41.866000Z",
        "source": {"event_id": "e-1", "chunk_number": 2, "total_chunks": chunks},
        "lines": [{"product_id": p, "stock_location": s, "quantity_delta": q} for p, s, q in lines],
    }


class TestRecords:
    def test_nothing_to_book_for_lines_without_a_difference(self) -> None:
        books = Books("212")
        shipped = _document("inventory.transfer_shipped", ("A", "main", 0))
        assert record(shipped, Mapping(), books) is None
        assert record(_document("inventory.count"), Mapping(), books) is None

    def test_lines_of_one_item_and_location_are_one_line(self) -> None:
        document = _document(
            "inventory.adjustment", ("A", "main", -1), ("A", "main", -1), ("A", "damaged", 2)
        )
        booked = record(document, Mapping(stock_locations={"US-NYC-01/damaged": "9"}), Books("1"))
        assert booked is not None
        assert booked.body["inventory"]["items"] == [
            {"item": {"id": "A"}, "location": {"id": "US-NYC-01"}, "adjustQtyBy": -2},
            {"item": {"id": "A"}, "location": {"id": "9"}, "adjustQtyBy": 2},
        ]
        assert "subsidiary" not in booked.body

    def test_a_chunk_says_which_in_its_memo(self) -> None:
        chunked = record(
            _document("inventory.receipt", ("A", "main", 1), chunks=3), Mapping(), Books("1")
        )
        single = record(
            _document("inventory.receipt", ("A", "main", 1), chunks=None), Mapping(), Books("1")
        )
        assert chunked is not None
        assert single is not None
        assert chunked.body["memo"] == "NewStore inventory.receipt e-1 (2/3)"
        assert single.body["memo"] == "NewStore inventory.receipt e-1"


class TestAnswers:
    @pytest.mark.parametrize(
        ("reply", "outcome"),
        [
            (Answer(204), Outcome.DELIVERED),
            (TOO_MANY, Outcome.THROTTLED),
            (BUSY, Outcome.THROTTLED),
            (Answer(503, "UNEXPECTED_ERROR", "try later"), Outcome.RETRY),
            (Answer(401, "INVALID_LOGIN", "Invalid login attempt."), Outcome.DEAD),
            (Answer(400, "INVALID_CONTENT", "bad item"), Outcome.DEAD),
        ],
    )
    def test_outcomes(self, reply: Answer, outcome: Outcome) -> None:
        assert answer(reply.status, reply.body())[0] is outcome

    def test_the_reason_is_netsuites_error_code_and_detail(self) -> None:
        reply = Answer(
            400, "INVALID_CONTENT", "Invalid Field Value 99 for the following field: item"
        )
        assert answer(reply.status, reply.body())[1] == (
            "HTTP 400: INVALID_CONTENT: Invalid Field Value 99 for the following field: item"
        )
        assert answer(502, b"<html>Bad gateway</html>")[1] == "HTTP 502: <html>Bad gateway</html>"


@pytest.mark.parametrize(
    "missing", ["INVSYNC_NETSUITE_TOKEN_SECRET", "INVSYNC_NETSUITE_ADJUSTMENT_ACCOUNT"]
)
def test_a_missing_setting_is_named(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    for name, value in netsuite_environment(
        "https://1234567.suitetalk.api.netsuite.com/", 2
    ).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(missing)
    with pytest.raises(ConfigurationError) as error:
        load_settings(_env_file=None)
    assert str(error.value).startswith(f"{missing}:")
