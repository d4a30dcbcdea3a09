"""A guest that logs in a flood: its lines reach the event stream and the host's Python
logging at most NOISY_PER_SECOND a second (the rest are only counted), each capped, and
the node serves on."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from airssys_actors import Node
from airssys_actors._events import NOISY_PER_SECOND

MOUTHPIECE = str(Path(__file__).parent / "guests" / "mouthpiece.wat")


async def test_a_log_flood_reaches_python_logging_only_within_the_event_rate(node: Node, caplog: pytest.LogCaptureFixture):
    guest = await node.spawn(MOUTHPIECE)
    lines = 3 * NOISY_PER_SECOND
    with caplog.at_level(logging.DEBUG, logger="airssys_actors"):
        start = time.time()
        for i in range(lines):
            assert await node.call(guest, f"lflood {i}") is None
        end = time.time()
    written = [r for r in caplog.records if "flood" in r.getMessage()]
    emitted = [e for e in node.events.history if e.kind == "log"]
    suppressed = node.events.suppressed.get("log", 0)
    # Every line is accounted for: written (and an event) or counted as suppressed.
    assert len(written) == len(emitted)
    assert len(written) + suppressed == lines
    # The rate is per wall-clock second: at most NOISY_PER_SECOND in each second touched.
    assert len(written) <= NOISY_PER_SECOND * (int(end) - int(start) + 1)
    echo = await node.spawn(MOUTHPIECE)
    assert await node.call(echo, "r" + "a3796573") == "yes"
