"""Core performance figures of airssys-actors, each next to its floor, in one run.

    python -m benchmarks.core [--size smoke|full] [--json FILE] [--markdown FILE]
    python -m benchmarks.core --render FILE.json [--markdown FILE]   # re-print a saved run

Floors are what the same work costs without the runtime, measured in this run on this
machine: a trio memory-channel hop, a trio ping-pong, one raw call into the echo guest
through the host layer (``GuestInstance.handle``), one raw instantiate, msgpack, a trio
task with its own channel. The stock wasmtime-py path (``Func.__call__``) is measured too,
as a reference. Runtime figures go through the public ``Node`` API only.

Every measurement warms up first, runs ``repeats`` times and reports the median; the
JSON report keeps every run. Ratios matter, not absolute numbers: the machines this runs
on are small, shared and noisy. Speed targets are reported (PASS/MISS), never asserted.
See docs/benchmarks.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

import msgpack
import trio

from . import _report
from ._report import pin_to_one_core
import trio.lowlevel

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "examples" / "components" / "echo.wat"

#: Every message payload in these benchmarks is 32 bytes of msgpack: ``bytes(30)``
#: encodes as a bin8 header (2 bytes) + 30 bytes.
MESSAGE = bytes(30)
PAYLOAD = msgpack.packb(MESSAGE, use_bin_type=True)
assert len(PAYLOAD) == 32
SMALL_VALUE = {"op": "put", "key": "user:42", "value": [1, 2.5, "x"], "ok": True}

clock = time.perf_counter

# -- sizes ----------------------------------------------------------------------------

SIZES: dict[str, dict[str, int]] = {
    # Iteration counts per repeat. "full" takes well under three minutes on a 2-core VM;
    # "smoke" (for the test suite) well under twenty seconds.
    "full": {
        "repeats": 5,
        "hop": 100_000,
        "roundtrip": 30_000,
        "raw_call": 30_000,
        "raw_instantiate": 1_000,
        "msgpack": 100_000,
        "task_spawn": 1_000,  # as many live tasks as "spawn" has live processes
        "stock_call": 400,
        "stock_instantiate": 500,
        "spawn": 1_000,
        "send": 50_000,
        "fanin_senders": 8,
        "fanin_guests": 4,
        "fanin_messages": 50_000,
        "calls": 20_000,
        "processes": 10_000,
        "mailbox_capacity": 1000,
    },
    "smoke": {
        "repeats": 3,
        "hop": 5_000,
        "roundtrip": 2_000,
        "raw_call": 2_000,
        "raw_instantiate": 100,
        "msgpack": 5_000,
        "task_spawn": 100,
        "stock_call": 30,
        "stock_instantiate": 30,
        "spawn": 100,
        "send": 3_000,
        "fanin_senders": 4,
        "fanin_guests": 2,
        "fanin_messages": 3_000,
        "calls": 2_000,
        "processes": 200,
        "mailbox_capacity": 1000,
    },
}

TARGET_PROCESSES = 10_000


# -- helpers --------------------------------------------------------------------------


def _sched_wait_ns() -> int | None:
    """Nanoseconds this (main) thread has spent runnable but waiting for a CPU."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None


#: figure -> how much of its wall time this process spent waiting for the CPU (others'
#: load on the pinned core) and what share of a CPU it got.
CONTENTION: dict[str, dict[str, float | None]] = {}


class contention:
    """``with contention("figure"):`` records run-queue wait and CPU share of a block."""

    def __init__(self, figure: str) -> None:
        self.figure = figure

    def __enter__(self) -> contention:
        self.wall, self.cpu, self.wait = clock(), time.process_time(), _sched_wait_ns()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = clock() - self.wall
        cpu = time.process_time() - self.cpu
        wait = _sched_wait_ns()
        CONTENTION[self.figure] = {
            "wall_seconds": wall,
            "cpu_share": cpu / wall if wall > 0 else None,
            "runqueue_wait_fraction": None if wait is None or self.wait is None or wall <= 0
            else (wait - self.wait) / 1e9 / wall,
        }


def summarize(runs: list[float], unit: str, **extra: Any) -> dict[str, Any]:
    return {"median": statistics.median(runs), "runs": runs, "min": min(runs), "max": max(runs),
            "unit": unit, **extra}


def repeat(fn: Callable[[], float], repeats: int, figure: str | None = None) -> list[float]:
    runs = []
    with contention(figure or "?"):
        for _ in range(repeats):
            gc.collect()
            runs.append(fn())
    return runs


def machine_info() -> dict[str, Any]:
    """The shared machine description, plus the Python build and the commit measured."""
    return {**_report.machine_info(), "python_build": platform.python_build(), "git": git_state()}


def git_state() -> dict[str, Any]:
    """The commit measured, and whether the runtime had uncommitted changes."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.rstrip() if out.returncode == 0 else None  # keep porcelain's leading column

    changed = git("status", "--porcelain", "--", "airssys_actors")
    return {"commit": git("rev-parse", "HEAD"),
            "runtime_dirty": None if changed is None else bool(changed),
            "runtime_changed_files": None if not changed else [line[3:] for line in changed.splitlines()]}


def load_echo():  # type: ignore[no-untyped-def]
    from airssys_actors import Component

    return Component.load(ECHO)


# -- floors: trio ---------------------------------------------------------------------


async def trio_hop(n: int, buffer: int) -> float:
    """µs per message through one trio memory channel, ``await send`` / ``receive``."""
    send, recv = trio.open_memory_channel[bytes](buffer)

    async def sender() -> None:
        for _ in range(n):
            await send.send(PAYLOAD)

    async def receiver() -> None:
        for _ in range(n):
            await recv.receive()

    start = clock()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        nursery.start_soon(sender)
    return (clock() - start) / n * 1e6


async def trio_roundtrip(n: int) -> list[float]:
    """Per-round-trip µs of ping-pong over two unbuffered trio channels."""
    ping_s, ping_r = trio.open_memory_channel[bytes](0)
    pong_s, pong_r = trio.open_memory_channel[bytes](0)
    samples = [0.0] * n

    async def ponger() -> None:
        async for msg in ping_r:
            await pong_s.send(msg)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ponger)
        for i in range(n):
            t = clock()
            await ping_s.send(PAYLOAD)
            await pong_r.receive()
            samples[i] = (clock() - t) * 1e6
        await ping_s.aclose()
    return samples


async def trio_task_spawn(n: int, buffer: int, use_start: bool) -> float:
    """µs per task that opens its own memory channel and waits on it (staying alive, as a
    process does), started one at a time.

    The floor (``use_start=False``) is the cheapest way trio has: ``start_soon`` and one
    checkpoint, so that the new task runs up to its first wait before the next is
    started. ``use_start=True`` uses ``nursery.start`` and ``task_status.started()``, the
    handshake ``Node.spawn`` uses today (informational)."""

    async def started_task(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        send, recv = trio.open_memory_channel[bytes](buffer)
        task_status.started(send)
        await recv.receive()

    async def task() -> None:
        _send, recv = trio.open_memory_channel[bytes](buffer)
        await recv.receive()

    checkpoint = trio.lowlevel.checkpoint
    async with trio.open_nursery() as nursery:
        start = clock()
        if use_start:
            for _ in range(n):
                await nursery.start(started_task)
        else:
            for _ in range(n):
                nursery.start_soon(task)
                await checkpoint()
        elapsed = clock() - start
        nursery.cancel_scope.cancel()
    return elapsed / n * 1e6


def run_trio_floors(size: dict[str, int]) -> dict[str, Any]:
    reps = size["repeats"]
    cap = size["mailbox_capacity"]
    out: dict[str, Any] = {}

    def hop(buffer: int, n: int) -> Callable[[], float]:
        return lambda: trio.run(trio_hop, n, buffer)

    trio.run(trio_hop, size["hop"] // 10, 0)  # warm-up
    out["trio_hop_buffer0_us"] = summarize(repeat(hop(0, size["hop"]), reps, "trio_hop_buffer0_us"), "us",
                                           what="one await send + receive, unbuffered channel")
    out["trio_hop_bufferN_us"] = summarize(repeat(hop(cap, size["hop"]), reps, "trio_hop_bufferN_us"), "us",
                                           what=f"one await send + receive, channel buffer {cap}",
                                           buffer=cap)

    trio.run(trio_roundtrip, size["roundtrip"] // 10)
    p50s, p99s, p999s, means = [], [], [], []
    with contention("trio_roundtrip_us"):
        samples_runs = []
        for _ in range(reps):
            gc.collect()
            samples_runs.append(sorted(trio.run(trio_roundtrip, size["roundtrip"])))
    for samples in samples_runs:
        p50s.append(_report.percentile(samples, 0.50))
        p99s.append(_report.percentile(samples, 0.99))
        p999s.append(_report.percentile(samples, 0.999))
        means.append(statistics.fmean(samples))
    out["trio_roundtrip_us"] = summarize(p50s, "us", what="ping-pong over two unbuffered channels, p50",
                                         p99=statistics.median(p99s), p999=statistics.median(p999s),
                                         p99_runs=p99s, p999_runs=p999s, mean_runs=means)

    trio.run(trio_task_spawn, size["task_spawn"] // 10, cap, False)
    out["trio_task_spawn_us"] = summarize(
        repeat(lambda: trio.run(trio_task_spawn, size["task_spawn"], cap, False), reps, "trio_task_spawn_us"), "us",
        what="start_soon + checkpoint of a task that opens its own channel and waits on it")
    trio.run(trio_task_spawn, size["task_spawn"] // 10, cap, True)
    out["trio_task_start_us"] = summarize(
        repeat(lambda: trio.run(trio_task_spawn, size["task_spawn"], cap, True), reps, "trio_task_start_us"), "us",
        what="same with nursery.start + task_status.started, as Node.spawn does (informational)")
    return out


# -- floors: host layer, wasmtime, msgpack -------------------------------------------


class _BenchHost:
    """The least a guest's host needs for echo: its own address and ``send``."""

    def self_address(self) -> str:
        return "<bench.1>"

    def send(self, to: str, payload: bytes) -> None:
        return None


def raw_call(instance: Any, kind: int, n: int) -> float:
    handle = instance.handle
    for _ in range(n // 10):
        handle(kind, 1, None, PAYLOAD)
    start = clock()
    for i in range(n):
        handle(kind, i, None, PAYLOAD)
    return (clock() - start) / n * 1e6


def raw_instantiate(compiled: Any, n: int, init: bool) -> float:
    from airssys_actors import Limits
    from airssys_actors._host._instance import GuestInstance

    host, limits = _BenchHost(), Limits()

    def once() -> None:
        inst = GuestInstance(compiled, host, limits)
        if init:
            inst.init(b"\xc0")
        inst.close()

    for _ in range(max(1, n // 10)):
        once()
    start = clock()
    for _ in range(n):
        once()
    return (clock() - start) / n * 1e6


def msgpack_roundtrip(n: int) -> float:
    from airssys_actors import decode, encode

    for _ in range(n // 10):
        decode(encode(SMALL_VALUE))
    start = clock()
    for _ in range(n):
        decode(encode(SMALL_VALUE))
    return (clock() - start) / n * 1e6


def msgpack_raw_roundtrip(n: int) -> float:
    packb, unpackb = msgpack.packb, msgpack.unpackb
    for _ in range(n // 10):
        unpackb(packb(SMALL_VALUE))
    start = clock()
    for _ in range(n):
        unpackb(packb(SMALL_VALUE))
    return (clock() - start) / n * 1e6


class _Stock:
    """The echo guest through wasmtime-py's own component API: a ``Linker`` with a
    Python ``add_func`` and ``Func.__call__`` (the reference, not a floor)."""

    def __init__(self, compiled: Any) -> None:
        import wasmtime
        from wasmtime import component as cm

        from airssys_actors._host._component import HOST_INTERFACE, TYPES_INTERFACE
        from airssys_actors._host._engine import engine_host

        self.cm = cm
        self.wasmtime = wasmtime
        self.engine = engine_host().engine
        self.compiled = compiled
        self.linker = cm.Linker(self.engine)
        with self.linker.root() as root:
            with root.add_instance(TYPES_INTERFACE):
                pass
            with root.add_instance(HOST_INTERFACE) as host:
                host.add_func("send", lambda store, to, payload: None)
                host.add_func("self", lambda store: "<bench.1>")

    def instantiate(self) -> tuple[Any, Any]:
        store = self.wasmtime.Store(self.engine)
        store.set_fuel(1_000_000_000)
        store.set_epoch_deadline(1 << 40)
        instance = self.linker.instantiate(store, self.compiled)
        return store, instance

    def envelope(self, kind: str) -> Any:
        rec = self.cm.Record()
        rec.kind = self.cm.Variant(kind, 1 if kind == "call" else None)
        rec.sender = None
        rec.payload = PAYLOAD
        return rec


def stock_call(stock: _Stock, n: int) -> float:
    store, instance = stock.instantiate()
    handle = instance.get_func(store, "handle")
    env = stock.envelope("call")
    out = handle(store, env)
    handle.post_return(store)
    assert bytes(out) == PAYLOAD, out
    for _ in range(max(1, n // 10)):
        handle(store, env)
        handle.post_return(store)
    start = clock()
    for _ in range(n):
        handle(store, env)
        handle.post_return(store)
    return (clock() - start) / n * 1e6


def stock_instantiate(stock: _Stock, n: int) -> float:
    for _ in range(max(1, n // 10)):
        stock.instantiate()
    start = clock()
    for _ in range(n):
        stock.instantiate()
    return (clock() - start) / n * 1e6


def run_host_floors(size: dict[str, int]) -> dict[str, Any]:
    from airssys_actors import Limits
    from airssys_actors._host._instance import GuestInstance

    reps = size["repeats"]
    component = load_echo()
    compiled = component._compiled
    out: dict[str, Any] = {}

    instance = GuestInstance(compiled, _BenchHost(), Limits())
    instance.init(b"\xc0")
    assert instance.handle(1, 7, None, PAYLOAD) == PAYLOAD
    try:
        out["raw_call_cast_us"] = summarize(
            repeat(lambda: raw_call(instance, 0, size["raw_call"]), reps, "raw_call_cast_us"), "us",
            what="GuestInstance.handle(cast, 32-byte payload) on echo: no reply")
        out["raw_call_call_us"] = summarize(
            repeat(lambda: raw_call(instance, 1, size["raw_call"]), reps, "raw_call_call_us"), "us",
            what="GuestInstance.handle(call, 32-byte payload) on echo: 32-byte reply")
    finally:
        instance.close()
    out["raw_instantiate_us"] = summarize(
        repeat(lambda: raw_instantiate(compiled, size["raw_instantiate"], False), reps, "raw_instantiate_us"), "us",
        what="new GuestInstance (store, limits, instantiate, exports, envelope) + close")
    out["raw_instantiate_init_us"] = summarize(
        repeat(lambda: raw_instantiate(compiled, size["raw_instantiate"], True), reps, "raw_instantiate_init_us"), "us",
        what="new GuestInstance + init + close (informational)")
    out["msgpack_us"] = summarize(
        repeat(lambda: msgpack_roundtrip(size["msgpack"]), reps, "msgpack_us"), "us",
        what="airssys encode + decode of a small dict")
    out["msgpack_raw_us"] = summarize(
        repeat(lambda: msgpack_raw_roundtrip(size["msgpack"]), reps, "msgpack_raw_us"), "us",
        what="msgpack.packb + unpackb of the same dict, no wrapper (informational)")

    stock = _Stock(compiled)
    out["stock_call_us"] = summarize(
        repeat(lambda: stock_call(stock, size["stock_call"]), reps, "stock_call_us"), "us",
        what="wasmtime-py Func.__call__(handle, call, 32 bytes) + post_return (reference)")
    out["stock_instantiate_us"] = summarize(
        repeat(lambda: stock_instantiate(stock, size["stock_instantiate"]), reps, "stock_instantiate_us"), "us",
        what="wasmtime-py new Store + Linker.instantiate (reference)")
    return out


# -- runtime figures ------------------------------------------------------------------


async def bench_spawn(echo: Any, n: int, capacity: int, gc_off: bool = False) -> float:
    """µs per ``await node.spawn(echo)``, n in a row on one node (they stay alive)."""
    from airssys_actors import Node

    async with Node(mailbox_capacity=capacity) as node:
        for _ in range(max(1, n // 10)):  # warm-up, same node
            await node.spawn(echo)
        gc.collect()
        if gc_off:
            gc.disable()
        try:
            start = clock()
            for _ in range(n):
                await node.spawn(echo)
            elapsed = clock() - start
        finally:
            gc.enable()
    return elapsed / n * 1e6


async def bench_send(echo: Any, n: int, repeats: int, capacity: int) -> list[float]:
    """msgs/s of one sender doing ``await node.send`` n times to one echo guest, then one
    ``call`` so that the time includes handling every message."""
    from airssys_actors import Node

    async with Node(mailbox_capacity=capacity) as node:
        pid = await node.spawn(echo)
        send = node.send
        for _ in range(max(1000, n // 10)):
            await send(pid, MESSAGE)
        await node.call(pid, 0)
        runs = []
        for _ in range(repeats):
            gc.collect()
            start = clock()
            for _ in range(n):
                await send(pid, MESSAGE)
            await node.call(pid, 0)
            runs.append(n / (clock() - start))
        stats = node.process_info(pid)
        assert stats["messages_in"] >= n * repeats, stats
    return runs


async def bench_fanin(echo: Any, senders: int, guests: int, total: int, repeats: int,
                      capacity: int) -> list[float]:
    """msgs/s of ``senders`` tasks each sending total/senders messages round-robin over
    ``guests`` echo guests, then one call to each guest."""
    from airssys_actors import Node

    per_sender = total // senders

    async with Node(mailbox_capacity=capacity) as node:
        pids = [await node.spawn(echo) for _ in range(guests)]

        async def sender(j: int, count: int) -> None:
            send = node.send
            for i in range(count):
                await send(pids[(i + j) % guests], MESSAGE)

        async def once(count: int) -> float:
            start = clock()
            async with trio.open_nursery() as nursery:
                for j in range(senders):
                    nursery.start_soon(sender, j, count)
            for pid in pids:
                await node.call(pid, 0)
            return count * senders / (clock() - start)

        await once(max(100, per_sender // 10))
        runs = []
        for _ in range(repeats):
            gc.collect()
            runs.append(await once(per_sender))
    return runs


async def bench_send_nowait(echo: Any, n: int, repeats: int, capacity: int) -> list[float]:
    """msgs/s of one sender doing ``node.send_nowait`` n times (on MailboxFull it yields
    until there is room), then one call: what a sender that does not pass through the
    scheduler per message gets, as the receiver drains its mailbox in batches."""
    from airssys_actors import MailboxFull, Node

    async with Node(mailbox_capacity=capacity) as node:
        pid = await node.spawn(echo)
        send_nowait = node.send_nowait

        async def once(count: int) -> float:
            start = clock()
            for _ in range(count):
                try:
                    send_nowait(pid, MESSAGE)
                except MailboxFull:
                    while True:
                        await trio.lowlevel.checkpoint()
                        try:
                            send_nowait(pid, MESSAGE)
                            break
                        except MailboxFull:
                            pass
            await node.call(pid, 0)
            return count / (clock() - start)

        await once(max(1000, n // 10))
        runs = []
        for _ in range(repeats):
            gc.collect()
            runs.append(await once(n))
    return runs


async def bench_call(echo: Any, n: int, repeats: int, capacity: int, raw_bytes: bool) -> list[list[float]]:
    """Per-call µs of ``node.call`` (or ``call_bytes``) to one echo guest, sequentially."""
    from airssys_actors import Node

    async with Node(mailbox_capacity=capacity) as node:
        pid = await node.spawn(echo)
        if raw_bytes:
            call: Callable[..., Any] = node.call_bytes
            arg: Any = PAYLOAD
        else:
            call, arg = node.call, MESSAGE
        assert await call(pid, arg) == arg
        for _ in range(max(500, n // 10)):
            await call(pid, arg)
        all_runs = []
        for _ in range(repeats):
            gc.collect()
            samples = [0.0] * n
            for i in range(n):
                t = clock()
                await call(pid, arg)
                samples[i] = (clock() - t) * 1e6
            all_runs.append(samples)
    return all_runs


SECTIONS = ("spawn", "throughput", "latency")
"""What ``--only`` can pick; the floors are always measured."""


def run_runtime(size: dict[str, int], only: set[str] | frozenset[str] = frozenset(SECTIONS)) -> dict[str, Any]:
    reps = size["repeats"]
    cap = size["mailbox_capacity"]
    echo = load_echo()
    out: dict[str, Any] = {}

    if "spawn" in only:
        _run_spawn(out, echo, size, reps, cap)
    if "throughput" in only:
        _run_throughput(out, echo, size, reps, cap)
    if "latency" in only:
        _run_latency(out, echo, size, reps, cap)
    return out


def _run_spawn(out: dict[str, Any], echo: Any, size: dict[str, int], reps: int, cap: int) -> None:
    out["spawn_us"] = summarize(
        repeat(lambda: trio.run(bench_spawn, echo, size["spawn"], cap), reps, "spawn_us"), "us",
        what=f"await node.spawn(echo), {size['spawn']} in a row on one node, per spawn",
        n=size["spawn"])

    out["spawn_gc_off_us"] = summarize(
        repeat(lambda: trio.run(bench_spawn, echo, size["spawn"], cap, True), reps, "spawn_gc_off_us"), "us",
        what="same with the cyclic GC disabled while timing (informational)", n=size["spawn"])


def _run_throughput(out: dict[str, Any], echo: Any, size: dict[str, int], reps: int, cap: int) -> None:
    with contention("send_1to1_msgs_per_s"):
        runs = trio.run(bench_send, echo, size["send"], reps, cap)
    out["send_1to1_msgs_per_s"] = summarize(
        runs, "msg/s",
        what=f"{size['send']} x await node.send(pid, 32-byte msg) + 1 call, one echo guest",
        n=size["send"])

    with contention("send_nowait_1to1_msgs_per_s"):
        runs = trio.run(bench_send_nowait, echo, size["send"], reps, cap)
    out["send_nowait_1to1_msgs_per_s"] = summarize(
        runs, "msg/s",
        what=f"{size['send']} x node.send_nowait (yield only when full) + 1 call (informational)",
        n=size["send"])

    s, m = size["fanin_senders"], size["fanin_guests"]
    with contention("send_NtoM_msgs_per_s"):
        runs = trio.run(bench_fanin, echo, s, m, size["fanin_messages"], reps, cap)
    out["send_NtoM_msgs_per_s"] = summarize(
        runs, "msg/s",
        what=f"{s} sender tasks -> {m} echo guests, round-robin, then 1 call each",
        senders=s, guests=m, n=size["fanin_messages"])


def _run_latency(out: dict[str, Any], echo: Any, size: dict[str, int], reps: int, cap: int) -> None:
    for key, raw in (("call_us", False), ("call_bytes_us", True)):
        with contention(key):
            runs = trio.run(bench_call, echo, size["calls"], reps, cap, raw)
        p50, p99, p999, mean = [], [], [], []
        for samples in runs:
            samples.sort()
            p50.append(_report.percentile(samples, 0.50))
            p99.append(_report.percentile(samples, 0.99))
            p999.append(_report.percentile(samples, 0.999))
            mean.append(statistics.fmean(samples))
        what = ("await node.call(pid, 30-byte bytes) -> echo, msgpack both ways" if not raw
                else "await node.call_bytes(pid, 32 bytes) -> echo, no msgpack (informational)")
        out[key] = summarize(p50, "us", what=what + ", p50", n=size["calls"],
                             p50=statistics.median(p50), p99=statistics.median(p99),
                             p999=statistics.median(p999), mean=statistics.median(mean),
                             p99_runs=p99, p999_runs=p999, mean_runs=mean)


# -- many processes (in a child process, for a clean memory baseline) --------------------


class _GcPauses:
    """Collections of the cyclic GC and their pauses, per generation, while installed."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = clock()
        else:
            self.pauses[info["generation"]].append((clock() - self._start) * 1e6)

    def take(self) -> dict[str, Any]:
        out = {f"gen{g}": {"count": len(v), "total_us": sum(v), "max_us": max(v, default=0.0)}
               for g, v in self.pauses.items()}
        for v in self.pauses.values():
            v.clear()
        return out


async def _many(n: int, capacity: int) -> dict[str, Any]:
    from airssys_actors import Node

    echo = load_echo()
    result: dict[str, Any] = {"n": n}
    pauses = _GcPauses()
    gc.callbacks.append(pauses)
    async with Node(mailbox_capacity=capacity, shutdown_timeout=30.0) as node:
        # One process first, so that one-time costs (ticker thread, first instance,
        # code paths) are in the baseline, not spread over the N.
        first = await node.spawn(echo)
        await node.call(first, 0)
        gc.collect()
        before = _report.proc_status()
        start = clock()
        pids = []
        for _ in range(n):
            pids.append(await node.spawn(echo))
        result["spawn_seconds"] = clock() - start
        result["gc_during_spawn"] = pauses.take()
        gc.collect()
        pauses.take()
        after = _report.proc_status()
        start = clock()
        answered = 0
        samples = []
        for pid in pids:
            t = clock()
            if await node.call(pid, MESSAGE, timeout=30.0) == MESSAGE:
                answered += 1
            samples.append((clock() - t) * 1e6)
        result["call_all_seconds"] = clock() - start
        result["gc_during_calls"] = pauses.take()
        samples.sort()
        result["call_us"] = {"p50": _report.percentile(samples, 0.5), "p99": _report.percentile(samples, 0.99),
                             "p999": _report.percentile(samples, 0.999), "max": samples[-1]}
        result["spawn_us_per_process"] = result["spawn_seconds"] / n * 1e6
        result["gc_tracked_objects"] = len(gc.get_objects())
        try:
            result["memory_mappings"] = len(Path("/proc/self/maps").read_text().splitlines())  # noqa: ASYNC240
            result["max_map_count"] = int(Path("/proc/sys/vm/max_map_count").read_text())  # noqa: ASYNC240
        except OSError:
            pass
        result["answered"] = answered
        result["alive"] = node.statistics().processes - 1
        result["status_before"] = before
        result["status_after"] = after
        gc.collect()
        result["status_after_calls"] = _report.proc_status()
        start = clock()
    result["shutdown_seconds"] = clock() - start
    gc.callbacks.remove(pauses)
    for key in ("VmRSS", "VmSize", "RssAnon"):
        if key in before and key in after:
            result[f"{key}_delta_bytes"] = after[key] - before[key]
            result[f"{key}_per_process_bytes"] = (after[key] - before[key]) / n
    return result


def run_many_child(n: int, capacity: int, pin: bool) -> None:
    info = pin_to_one_core() if pin else {"requested": False, "pinned": False, "cpu": None}
    with contention("processes"):
        out = trio.run(_many, n, capacity)
    out["pin"] = info
    out["contention"] = CONTENTION["processes"]
    sys.stdout.write(json.dumps(out))


def run_many(size: dict[str, int], pin: bool) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.core", "--memory-child", str(size["processes"]),
           "--mailbox-capacity", str(size["mailbox_capacity"])]
    if not pin:
        cmd.append("--no-pin")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout)
    result["command"] = shlex.join(cmd)
    CONTENTION["processes"] = result.get("contention", {})
    return result


# -- report ---------------------------------------------------------------------------


def fmt_us(v: float) -> str:
    return f"{v:,.2f} µs"


def fmt_wait(v: float | None) -> str:
    """Share of a measurement's wall time spent waiting for the CPU (others' load)."""
    return "-" if v is None else f"{v * 100:.1f}%"


def fmt_rate(v: float) -> str:
    return f"{v / 1000:,.1f} k msg/s"


def fmt_bytes(v: float) -> str:
    if abs(v) >= 1 << 20:
        return f"{v / (1 << 20):,.2f} MiB"
    return f"{v / 1024:,.1f} KiB"


def build_targets(floors: dict[str, Any], runtime: dict[str, Any], many: dict[str, Any]) -> list[dict[str, Any]]:
    f = {k: v["median"] for k, v in floors.items()}
    rows: list[dict[str, Any]] = []

    def wait_of(key: str) -> float | None:
        figure = "processes" if key.startswith("processes") else key.split(".")[0]
        return (CONTENTION.get(figure) or {}).get("runqueue_wait_fraction")

    def row(figure: str, measured: float, floor: float, ratio: float, target: str,
            ok: bool | None, fmt: Callable[[float], str], floor_is: str, key: str) -> None:
        rows.append({
            "cpu_wait": wait_of(key),
            "figure": figure, "key": key, "measured": measured, "floor": floor, "ratio": ratio,
            "target": target, "status": "n/a" if ok is None else ("PASS" if ok else "MISS"),
            "measured_text": fmt(measured), "floor_text": fmt(floor), "floor_is": floor_is,
        })

    spawn_floor = f["raw_instantiate_us"] + f["trio_task_spawn_us"]
    send_floor = 1e6 / (f["trio_hop_bufferN_us"] + f["raw_call_cast_us"])
    call_floor = f["trio_roundtrip_us"] + f["raw_call_call_us"]
    if "spawn_us" in runtime:
        spawn = runtime["spawn_us"]["median"]
        row("spawn (per process)", spawn, spawn_floor, spawn / spawn_floor, "<= 2x floor",
            spawn / spawn_floor <= 2.0, fmt_us, "raw instantiate + trio task spawn", "spawn_us")

        sg = runtime["spawn_gc_off_us"]["median"]
        row("spawn, cyclic GC off", sg, spawn_floor, sg / spawn_floor, "(informational)", None, fmt_us,
            "raw instantiate + trio task spawn", "spawn_gc_off_us")

    if "send_1to1_msgs_per_s" in runtime:
        send = runtime["send_1to1_msgs_per_s"]["median"]
        row("send throughput 1 -> 1", send, send_floor, send / send_floor, ">= 50% of floor",
            send / send_floor >= 0.5, fmt_rate, "1 / (trio hop, buffered + raw cast call)",
            "send_1to1_msgs_per_s")
        fan = runtime["send_NtoM_msgs_per_s"]
        row(f"send throughput {fan['senders']} -> {fan['guests']}", fan["median"], send_floor,
            fan["median"] / send_floor, ">= 50% of floor", fan["median"] / send_floor >= 0.5, fmt_rate,
            "same as 1 -> 1 (one core)", "send_NtoM_msgs_per_s")

        nm = runtime["send_nowait_1to1_msgs_per_s"]["median"]
        row("send_nowait throughput 1 -> 1", nm, send_floor, nm / send_floor, "(informational)", None,
            fmt_rate, "same as 1 -> 1", "send_nowait_1to1_msgs_per_s")
    if "call_us" in runtime:
        call = runtime["call_us"]
        for q in ("p50", "p99", "p999"):
            # Each percentile against the same percentile of the trio round trip (+ raw call).
            qf = call_floor if q == "p50" else floors["trio_roundtrip_us"][q] + f["raw_call_call_us"]
            ok: bool | None = call[q] / qf <= 2.0 if q == "p50" else None
            row(f"call round trip {q}", call[q], qf, call[q] / qf,
                "<= 2x floor" if q == "p50" else "(informational)", ok, fmt_us,
                f"trio round trip {q} + raw call", "call_us." + q)
        cb = runtime["call_bytes_us"]
        row("call_bytes round trip p50", cb["p50"], call_floor, cb["p50"] / call_floor,
            "(informational)", None, fmt_us, "trio round trip p50 + raw call", "call_bytes_us.p50")

    if many:
        n = many["n"]
        for q in ("p50", "p99", "max"):
            v = many["call_us"][q]
            row(f"call {q} with {n:,} processes alive", v, call_floor, v / call_floor, "(informational)",
                None, fmt_us, "trio round trip p50 + raw call", f"processes.call_us.{q}")
        v = many["spawn_us_per_process"]
        row(f"spawn, {n:,} in a row", v, spawn_floor, v / spawn_floor, "(informational)", None, fmt_us,
            "raw instantiate + trio task spawn", "processes.spawn_us_per_process")
        fits = many["answered"] == n and many["alive"] == n
        rss = many.get("VmRSS_per_process_bytes", float("nan"))
        rows.append({
            "cpu_wait": wait_of("processes"),
            "figure": f"{n:,} live echo processes", "key": "processes",
            "measured": rss, "floor": None, "ratio": None,
            "target": f"{TARGET_PROCESSES:,} fit",
            "status": ("PASS" if fits else "MISS") if n >= TARGET_PROCESSES else ("n/a" if fits else "MISS"),
            "measured_text": f"{fmt_bytes(rss)} RSS/proc, "
                             f"{fmt_bytes(many.get('VmSize_per_process_bytes', float('nan')))} virtual/proc, "
                             f"{many['answered']:,}/{n:,} answered",
            "floor_text": "-", "floor_is": "-",
        })
    return rows


def floor_rows(floors: dict[str, Any], waits: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    for key, v in floors.items():
        spread = f"{fmt_us(v['min'])} .. {fmt_us(v['max'])}"
        wait = fmt_wait((waits.get(key) or {}).get("runqueue_wait_fraction"))
        rows.append((key, fmt_us(v["median"]), f"{spread}  (cpu wait {wait})  {v.get('what', '')}"))
    return rows


def render(report: dict[str, Any]) -> str:
    targets = report["targets"]
    headers = ["figure", "measured", "floor", "ratio", "target", "cpu wait", "status"]
    body = [[t["figure"], t["measured_text"], t["floor_text"],
             "-" if t["ratio"] is None else f"{t['ratio']:.2f}x", t["target"], fmt_wait(t.get("cpu_wait")),
             t["status"]]
            for t in targets]
    floors = floor_rows(report["floors"], report.get("contention", {}))
    pin = report["pin"]
    title = (f"airssys-actors core benchmarks ({report['size']}), {report['date']}, "
             f"{report['machine']['cpu_count']} CPUs, pinned to one core: "
             f"{'yes (cpu {})'.format(pin['cpu']) if pin['pinned'] else 'no'}")
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        pass
    else:
        import io

        buf = io.StringIO()
        console = Console(file=buf, width=140)
        table = Table(title=title)
        for h in headers:
            table.add_column(h, justify="right" if h in ("measured", "floor", "ratio", "cpu wait") else "left")
        for r in body:
            style = {"PASS": "green", "MISS": "red"}.get(r[-1])
            table.add_row(*r[:-1], f"[{style}]{r[-1]}[/]" if style else r[-1])
        console.print(table)
        ft = Table(title="floors (medians)")
        for h in ("floor", "median", "min .. max, what"):
            ft.add_column(h)
        for r in floors:
            ft.add_row(*r)
        console.print(ft)
        return buf.getvalue()

    def aligned(rows: list[list[str]], right: set[int]) -> list[str]:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = []
        for k, r in enumerate(rows):
            cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)]
            lines.append("  ".join(cells).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        return lines

    lines = [title, ""]
    lines += aligned([headers, *body], {1, 2, 3, 5})
    lines += ["", "floors (medians)", ""]
    lines += aligned([["floor", "median", "min .. max, what"]] + [list(r) for r in floors], {1})
    return "\n".join(lines) + "\n"


def markdown(report: dict[str, Any]) -> str:
    """The results as Markdown tables (for docs/benchmarks.md)."""
    m = report["machine"]
    pin = report["pin"]
    lines = [
        f"Run {report['date']}, size `{report['size']}`, `{report['command']}`",
        f"on {m['cpu_count']} CPUs ({m['cpu_model']}), Python {m['python']}, wasmtime-py {m['wasmtime']}, "
        f"trio {m['trio']}, msgpack {m['msgpack']}; commit {str((m.get('git') or {}).get('commit'))[:12]}"
        f"{' + uncommitted runtime changes' if (m.get('git') or {}).get('runtime_dirty') else ''}; pinned to one core: "
        f"{'yes (cpu {})'.format(pin['cpu']) if pin.get('pinned') else 'no'}. Medians of {report['sizes']['repeats']} runs.",
        "",
        "| figure | measured | floor | ratio | target | cpu wait | status |",
        "| --- | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for t in report["targets"]:
        ratio = "-" if t["ratio"] is None else f"{t['ratio']:.2f}x"
        status = f"**{t['status']}**" if t["status"] in ("PASS", "MISS") else t["status"]
        lines.append(f"| {t['figure']} | {t['measured_text']} | {t['floor_text']} | {ratio} | {t['target']} "
                     f"| {fmt_wait(t.get('cpu_wait'))} | {status} |")
    contention_of = report.get("contention", {})
    lines += ["", "| floor | median | min .. max | cpu wait | what |", "| --- | ---: | --- | ---: | --- |"]
    for key, v in report["floors"].items():
        wait = fmt_wait((contention_of.get(key) or {}).get("runqueue_wait_fraction"))
        spread = f"{fmt_us(v['min'])} .. {fmt_us(v['max'])}"
        lines.append(f"| `{key}` | {fmt_us(v['median'])} | {spread} | {wait} | {v.get('what', '')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.core", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--json", metavar="FILE", help="write the full report (every run) as JSON")
    parser.add_argument("--repeats", type=int, help="override the number of repeats")
    parser.add_argument("--processes", type=int, help="override the number of live processes")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one core")
    parser.add_argument("--only", choices=SECTIONS, action="append",
                        help="measure only this (repeatable): spawn (with the live-process figure), "
                             "throughput, latency; the floors are always measured")
    parser.add_argument("--markdown", metavar="FILE", help="also write the tables as Markdown")
    parser.add_argument("--render", metavar="JSON", help="render a saved JSON report instead of running")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mailbox-capacity", type=int, default=1000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_child is not None:
        run_many_child(args.memory_child, args.mailbox_capacity, not args.no_pin)
        return 0

    if args.render:
        saved = json.loads(Path(args.render).read_text())
        print(render(saved), end="")
        if args.markdown:
            Path(args.markdown).write_text(markdown(saved))
        return 0

    size = dict(SIZES[args.size])
    if args.repeats:
        size["repeats"] = args.repeats
    if args.processes:
        size["processes"] = args.processes
    pin = pin_to_one_core() if not args.no_pin else {"requested": False, "pinned": False, "cpu": None}

    started = clock()
    load_echo()  # compile (or load from the on-disk cache) outside every measurement
    phases: dict[str, float] = {}

    def phase(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        print(f"[{clock() - started:6.1f} s] {name} ...", file=sys.stderr, flush=True)
        t = clock()
        result = fn()
        phases[name] = clock() - t
        return result

    floors = phase("trio floors", lambda: run_trio_floors(size))
    floors.update(phase("host-layer floors", lambda: run_host_floors(size)))
    only = set(args.only or SECTIONS)
    runtime = phase("runtime", lambda: run_runtime(size, only))
    many = (phase(f"{size['processes']} live processes", lambda: run_many(size, not args.no_pin))
            if "spawn" in only else {})

    report: dict[str, Any] = {
        "command": shlex.join([sys.executable, "-m", "benchmarks.core", *(argv if argv is not None else sys.argv[1:])]),
        "cwd": os.getcwd(),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "size": args.size,
        "sizes": size,
        "message_payload_bytes": len(PAYLOAD),
        "machine": machine_info(),
        "pin": pin,
        "floors": floors,
        "runtime": runtime,
        "processes": many,
        "derived_floors": {
            "spawn_us": floors["raw_instantiate_us"]["median"] + floors["trio_task_spawn_us"]["median"],
            "send_us_per_msg": floors["trio_hop_bufferN_us"]["median"] + floors["raw_call_cast_us"]["median"],
            "send_msgs_per_s": 1e6 / (floors["trio_hop_bufferN_us"]["median"] + floors["raw_call_cast_us"]["median"]),
            "call_us": floors["trio_roundtrip_us"]["median"] + floors["raw_call_call_us"]["median"],
        },
        "targets": build_targets(floors, runtime, many),
        "phase_seconds": phases,
        "contention": CONTENTION,
    }
    report["total_seconds"] = clock() - started
    print(render(report), end="")
    print(f"total {report['total_seconds']:.1f} s", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
