"""An ERP outage of any length dead-letters nothing and keeps the request rate low."""

from __future__ import annotations

import itertools
from collections import Counter

from fastapi.testclient import TestClient

from inventory_sync.settings import Settings
from inventory_sync.storage.database import Database
from tests.erp_sync.conftest import (
    FakeErp,
    Reply,
    accept,
    erp_settings,
    make_worker,
    message,
    run,
)

OUTAGE_SECONDS = 1.5
THRESHOLD = 3


class TestOutage:
    def test_long_outage_kills_nothing_and_recovers_on_its_own(
        self, client: TestClient, settings: Settings, db: Database, erp: FakeErp
    ) -> None:
        ids = accept(client, 3)
        erp.default = Reply(503, body="maintenance")
        config = erp_settings(
            settings,
            erp.url,
            erp_max_attempts=3,
            erp_concurrency=4,
            erp_retry_base_seconds=0.02,
            erp_retry_max_seconds=0.1,
        )
        worker = make_worker(config, db, breaker_threshold=THRESHOLD)

        run(worker.run_for(OUTAGE_SECONDS))

        assert worker.breaker.is_open
        failed = len(erp.received)
        # Far more failures than the budget of any single message...
        assert failed > 3 * config.erp_max_attempts
        # ...yet nothing is dead, and no attempt was counted against a message.
        items = [message(client, i) for i in ids]
        assert {i["status"] for i in items} == {"pending"}
        assert all(i["attempts"] == 0 for i in items)
        assert sum(len(i["attempt_log"]) for i in items) == failed
        # Every message failed several times over its budget, and was still kept.
        assert max(Counter(erp.keys()).values()) > config.erp_max_attempts
        # The first round opened the breaker; from then on it probes one request at a time.
        probes = erp.received[THRESHOLD:]
        assert len(probes) > 5
        for earlier, later in itertools.pairwise(probes):
            assert later.started >= earlier.ended
        assert failed <= THRESHOLD + config.erp_concurrency + OUTAGE_SECONDS / 0.02 + 1

        erp.default = Reply(200)  # the ERP is back
        run(worker.drain(10))

        assert not worker.breaker.is_open
        items = [message(client, i) for i in ids]
        assert {i["status"] for i in items} == {"delivered"}
        assert set(erp.keys()) == set(ids)
