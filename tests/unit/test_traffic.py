"""The periodic traffic line: what an operator sees of webhooks at the default log level."""

from __future__ import annotations

import asyncio
import logging

import pytest

from inventory_sync.observability.traffic import Traffic


def test_one_line_per_interval_with_the_counts_and_none_when_quiet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    traffic = Traffic()

    async def scenario() -> None:
        task = asyncio.create_task(traffic.summarise(every=0.05))
        for status in ("accepted", "accepted", "duplicate"):
            traffic.count(status)
        await asyncio.sleep(0.08)  # one line
        await asyncio.sleep(0.1)  # quiet: none
        traffic.count("quarantined")
        await asyncio.sleep(0.05)
        task.cancel()

    with caplog.at_level(logging.INFO, logger="inventory_sync.webhooks"):
        asyncio.run(scenario())
    lines = [r for r in caplog.records if r.getMessage() == "webhook.summary"]
    assert [
        (r.levelno, getattr(r, "accepted", 0), getattr(r, "quarantined", 0)) for r in lines
    ] == [
        (logging.INFO, 2, 0),
        (logging.INFO, 0, 1),
    ]
    assert getattr(lines[0], "duplicate", None) == 1
