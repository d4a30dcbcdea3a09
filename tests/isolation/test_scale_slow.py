"""slow: 10,000 idle WASM processes on one node (each its own store, instance and linear
memory), and what one costs. Runs in the default test run; about 10 s.

Every memory reserves 16 MiB of address space (_host/_engine.py MEMORY_RESERVATION)
instead of wasmtime's default 4 GiB + guard, so 10,000 instances take ~160 GiB of the
47-bit address space (128 TiB) rather than 40 TiB; at 4 GiB each, about 30,000 would
fill it.
"""

from __future__ import annotations

import time

from airssys_actors import Component

from .guests import CRASHER, ECHO, assert_serving, rss

N = 10_000


async def test_slow_10k_idle_wasm_processes(node, record_property):
    echo = Component.load(ECHO)
    await node.call(await node.spawn(echo), "warm up")
    before = rss()
    started = time.perf_counter()
    pids = [await node.spawn(echo) for _ in range(N)]
    took = time.perf_counter() - started
    per_process = (rss() - before) / N
    record_property("rss_per_process_bytes", int(per_process))
    record_property("spawn_seconds", round(took, 2))
    print(f"\n{N} idle echo processes: {per_process / 1024:.1f} KiB RSS each, spawned in {took:.1f} s")
    assert len(node.pids()) >= N + 1
    assert per_process < 512 * 1024  # measured ~33 KiB resident (reservations are address space only)
    # every one of them answers, and the node still takes misbehaving guests
    for pid in pids[:: N // 100]:
        assert await node.call(pid, pid.id) == pid.id
    crasher = await node.spawn(CRASHER)
    assert await node.call(crasher, "ping") == "pong"
    await assert_serving(node)
    assert all(node.is_alive(p) for p in pids[-10:])
