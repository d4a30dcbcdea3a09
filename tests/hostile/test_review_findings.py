"""Holes found by a hostile review of issue 13's merged work, each kept closed here.

Replies in the system lane: an answer to a guest's ``request`` leaves
``Limits.max_pending`` as soon as it is queued for the requester, so a threaded guest
that requests in a loop from a process that answers with large values piled up every
answer within one call (2000 answers of 256 KiB: 500 MiB, with ``max_pending=100``).
The lane is now bounded in bytes as well as in number: past it the process ends with
``system_limit`` and the answer that did not fit is a dead letter.

Scrapes in a loop: see below.
"""

from __future__ import annotations

import os
import struct

import trio

from airssys_actors import Actor, Capabilities, CallFailed, Limits, Node
from airssys_actors._mailbox import SYSTEM_BYTES

from ..isolation.guests import assert_serving
from .conftest import rss_of

FLOODER = os.path.join(os.path.dirname(__file__), "guests", "flooder.wat")
ANSWER = 512 << 10


class LargeAnswers(Actor):
    """Answers every call with 512 KiB (a file service, a cache: anything a guest may ask)."""

    async def handle(self, ctx, msg):
        return b"x" * ANSWER


def command(op: bytes, n: int, target: object = "") -> bytes:
    return op + struct.pack("<I", n) + str(target).encode()


async def test_queued_answers_to_a_guests_requests_are_bounded_in_bytes(node: Node):
    await node.spawn(LargeAnswers, name="large")
    # Enough requests that their answers pass the lane's byte bound by half again.
    requests = SYSTEM_BYTES * 3 // 2 // ANSWER
    flooder = await node.spawn(FLOODER, capabilities=Capabilities(send="large"), threaded=True,
                               limits=Limits(fuel=None, deadline=None, max_pending=100))
    before = rss_of(os.getpid())
    dead_before = node.dead_letter_count
    try:
        await node.call_bytes(flooder, command(b"q", requests, "large"), timeout=60)
    except CallFailed as exc:
        assert exc.reason.kind == "system_limit"
    with trio.fail_after(10):
        reason = await node.wait(flooder)
    assert reason.kind == "system_limit", reason
    assert node.dead_letter_count > dead_before
    assert rss_of(os.getpid()) - before < SYSTEM_BYTES + (128 << 20)
    await assert_serving(node)


# -- Scrapes in a loop --------------------------------------------------------------------
# Collecting the metrics page runs on the node's own thread without yielding, and for a
# large node takes long (about 2 s for 20,000 processes). Any client that reaches the
# metrics port (it has no authentication) scraping back to back held the node's thread
# nearly all the time; now a costly page is reused for ten times as long as it took.

class Idle(Actor):
    async def handle(self, ctx, msg):
        return msg.value


async def _scrape(port: int) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := await stream.receive_some(1 << 16):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_scraping_in_a_loop_does_not_hold_the_nodes_thread(node: Node, monkeypatch):
    from airssys_cli import metrics

    for _ in range(3000):
        await node.spawn(Idle)
    collecting = 0.0
    real_render = metrics.render_metrics

    async def timed_render(*args):
        nonlocal collecting
        started = trio.current_time()
        try:
            return await real_render(*args)
        finally:
            collecting += trio.current_time() - started

    monkeypatch.setattr(metrics, "render_metrics", timed_render)
    async with trio.open_nursery() as nursery:
        (listener, *_) = await nursery.start(metrics.serve_metrics, node, None, "127.0.0.1:0")
        port = listener.socket.getsockname()[1]

        async def scrape_in_a_loop() -> None:
            while True:
                page = await _scrape(port)
                assert page.startswith(b"HTTP/1.1 200"), page[:200]

        started = trio.current_time()
        for _ in range(4):
            nursery.start_soon(scrape_in_a_loop)
        await trio.sleep(4)
        elapsed = trio.current_time() - started
        nursery.cancel_scope.cancel()
    # Unpaced, collecting took nearly all of the 4 s; paced, about a tenth.
    assert collecting < elapsed / 2, (collecting, elapsed)
    await assert_serving(node)
