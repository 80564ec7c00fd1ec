"""A snapshot sees one state of the database from its first statement to its last, on both
backends: a CSV export's pages and the totals of one scrape never mix two states."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from inventory_sync.storage.database import Database
from inventory_sync.storage.tables import inbound_event
from tests import factories as f


def test_a_snapshot_does_not_see_what_commits_during_it(client: TestClient, db: Database) -> None:
    f.post(client, f.received(("A", 1)))
    count = select(func.count()).select_from(inbound_event)
    with db.snapshot() as conn:
        before = conn.execute(count).scalar_one()
        assert f.post(client, f.received(("B", 1)))["status"] == "accepted"
        assert conn.execute(count).scalar_one() == before == 1
    with db.snapshot() as conn:
        assert conn.execute(count).scalar_one() == 2
