from fastapi.testclient import TestClient

from tests import factories as f


def test_receipt_is_accepted_and_in_the_ledger(client: TestClient) -> None:
    answer = f.post(client, f.received(("A", 3)))
    assert answer["status"] == "accepted"
    [movement] = f.ledger(client)
    assert movement["quantity"] == 3
    assert movement["kind"] == "receipt"
