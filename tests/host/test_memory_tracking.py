"""Memory tracking (``AIRSSYS_TRACK_MEMORY=1`` / ``track_memory()``): each WASM process's
linear memory size in ``process_info``.

The wasmtime engine is shared by the whole Python process and this test session runs
with tracking off, so the tracked mode is exercised in subprocesses: each runs a short
script on a node and prints what it saw as JSON, and the assertions are made here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from airssys_actors import Actor, memory_tracked, track_memory

from ..conftest import COMPONENTS, GUESTS, PYTHON_GUEST, ROOT

GROWER = GUESTS / "grower.wat"
PAGE = 65536

_PRELUDE = f"""
import json, os, sys, trio
from airssys_actors import *
from airssys_actors._host import _memory
COMPONENTS = {str(COMPONENTS)!r}
GROWER = {str(GROWER)!r}
PYTHON_GUEST = {str(PYTHON_GUEST)!r}

def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024

def mem(node, pid):
    return node.process_info(pid)["memory_bytes"]

async def live_memories(want):
    # _memory.live() once at most `want` memories are left, or after 5 s: a dead
    # process's store may only be freed when its node is next idle.
    for _ in range(500):
        if _memory.live()[0] <= want:
            break
        await trio.sleep(0.01)
    return _memory.live()

async def _main():
    async with Node(shutdown_timeout=1.0) as node:
        out = await main(node)
    print(json.dumps(out))
"""


def run_tracked(body: str, *, track: bool = True, timeout: float = 180) -> dict[str, Any]:
    """Run ``async def main(node) -> dict`` (in ``body``) on a node in a fresh Python
    process with memory tracking on; return its dict."""
    script = _PRELUDE + textwrap.dedent(body) + "\ntrio.run(_main)\n"
    env = {**os.environ, "AIRSSYS_TRACK_MEMORY": "1" if track else "0"}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- tracking off (this process) --------------------------------------------------------


class Quiet(Actor):
    pass


#: For a whole test run with AIRSSYS_TRACK_MEMORY=1, where these do not hold.
default_engine = pytest.mark.skipif(memory_tracked(), reason="this test run tracks memory")


@default_engine
async def test_off_by_default_memory_bytes_is_none(node):
    assert memory_tracked() is False
    echo = await node.spawn(str(COMPONENTS / "echo.wat"))
    actor = await node.spawn(Quiet)
    assert node.process_info(echo)["memory_bytes"] is None
    assert node.process_info(actor)["memory_bytes"] is None
    assert {row["memory_bytes"] for row in node.processes()} == {None}


@default_engine
async def test_switching_once_the_engine_exists_is_refused(node):
    track_memory(False)  # the setting it already has: fine
    with pytest.raises(RuntimeError, match="already off"):
        track_memory(True)
    assert memory_tracked() is False


def test_the_default_mode_is_the_same_without_the_variable():
    out = run_tracked("""
        async def main(node):
            pid = await node.spawn(GROWER)
            await node.call(pid, b"1234")
            return {"tracked": memory_tracked(), "memory": mem(node, pid), "live": _memory.live()[0]}
    """, track=False)
    assert out == {"tracked": False, "memory": None, "live": 0}


# -- tracking on (subprocesses) ---------------------------------------------------------


def test_wat_guest_memory_is_reported_and_follows_growth():
    out = run_tracked("""
        async def main(node):
            out = {"tracked": memory_tracked()}
            for threaded in (False, True):
                pid = await node.spawn(GROWER, threaded=threaded)
                start = mem(node, pid)
                payload = b"x" * 10
                assert await node.call(pid, payload) == payload
                out[f"threaded={threaded}"] = [start, mem(node, pid), len(encode(payload))]
            echo = await node.spawn(os.path.join(COMPONENTS, "echo.wat"))
            small = mem(node, echo)
            await node.call(echo, b"y" * 500_000)
            out["echo"] = [small, mem(node, echo)]
            blob = await node.spawn(os.path.join(COMPONENTS, "blob.wat"), args={"size": 4 << 20})
            out["blob"] = mem(node, blob)
            out["rows"] = {row["pid"]: row["memory_bytes"] for row in node.processes()}
            out["blob_pid"] = str(blob)
            class Quiet(Actor):
                pass
            out["python_actor"] = mem(node, await node.spawn(Quiet))
            return out
    """)
    assert out["tracked"] is True
    for threaded in (False, True):
        start, grown, pages = out[f"threaded={threaded}"]
        assert start == 2 * PAGE  # libc's 2 pages; the 64-bit memory starts empty
        assert grown == start + pages * PAGE  # one page per payload byte
    small, big = out["echo"]
    # grown to take the payload, which the allocator puts above its first 64 KiB
    assert small == 2 * PAGE and big >= PAGE + 500_000
    assert 4 << 20 < out["blob"] < (4 << 20) + 4 * PAGE
    assert out["rows"][out["blob_pid"]] == out["blob"]
    assert out["python_actor"] is None


def test_growth_past_the_limit_or_the_reservation_fails_cleanly():
    """memory.grow returns -1 (the guests then trap with `unreachable`): at the memory
    limit (the creator's total: reason memory_limit), and, with no limit, past the 4 GiB reserved for a
    memory (the creator refuses). The node goes on."""
    out = run_tracked("""
        async def main(node):
            out = {}
            cases = [("crasher", os.path.join(COMPONENTS, "crasher.wat"), "alloc", Limits(memory=8 << 20)),
                     ("grower-limit", GROWER, b"\\0" * 300, Limits(memory=16 << 20)),
                     ("grower-4gib", GROWER, b"\\0" * 70_000, Limits(memory=None))]
            for name, path, message, limits in cases:
                for threaded in (False, True):
                    pid = await node.spawn(path, limits=limits, threaded=threaded)
                    try:
                        await node.call(pid, message, timeout=30)
                        reason = None
                    except CallFailed as exc:
                        reason = [exc.reason.kind, exc.reason.detail]
                    out[f"{name} threaded={threaded}"] = reason
            echo = await node.spawn(os.path.join(COMPONENTS, "echo.wat"))
            out["serving"] = await node.call(echo, "still here") == "still here"
            out["live"] = (await live_memories(1))[0]
            return out
    """)
    # At the limit the host saw the refusal: memory_limit (hardening issue, item 9);
    # past the reservation with no limit, the guest's own trap.
    for name, want in (("crasher", "memory_limit"), ("grower-limit", "memory_limit"), ("grower-4gib", "trap")):
        for threaded in (False, True):
            kind, detail = out[f"{name} threaded={threaded}"]
            assert kind == want and "unreachable" in detail, (name, threaded, detail)
    assert out["serving"] is True
    assert out["live"] == 1  # the echo's; the trapped guests' memories are gone


def test_out_of_bounds_access_traps_within_the_reservation():
    """A memory with a small declared maximum gets no bounds checks (wasmtime relies on
    its 16 MiB reservation plus guard being unmapped): a load 8 MB in must land on the
    creator's PROT_NONE pages and trap, inline or in a worker thread."""
    out = run_tracked("""
        async def main(node):
            text = open(os.path.join(COMPONENTS, "echo.wat")).read()
            text = text.replace('(memory (export "memory") 2)', '(memory (export "memory") 2 4)', 1)
            call = ';; call: reply with the payload\\n        (then'
            assert text.count(call) == 1
            text = text.replace(call, call + ' (drop (i32.load (i32.add (local.get $len) (i32.const 8000000))))')
            oob = Component.load(text.encode())
            out = {}
            for threaded in (False, True):
                pid = await node.spawn(oob, threaded=threaded)
                try:
                    await node.call(pid, "x")
                    out[f"threaded={threaded}"] = None
                except CallFailed as exc:
                    out[f"threaded={threaded}"] = [exc.reason.kind, exc.reason.detail]
            return out
    """)
    assert out == {f"threaded={t}": ["trap", "out of bounds memory access"] for t in (False, True)}


def test_memories_are_freed_when_processes_exit():
    """2,000 spawn/exit cycles of a guest that touches 256 KiB: no memory outlives its
    process and resident memory stays flat."""
    out = run_tracked("""
        async def main(node):
            blob = Component.load(os.path.join(COMPONENTS, "blob.wat"))
            async def cycles(n):
                for i in range(n):
                    pid = await node.spawn(blob, args={"size": 256 << 10})
                    if i % 2:
                        node.kill(pid)
                    else:
                        await node.exit(pid)
                    await node.wait(pid)
            await cycles(200)  # warm up allocator and caches
            live_before = await live_memories(0)
            before = rss()
            await cycles(2000)
            live_after = await live_memories(0)
            return {"growth": rss() - before, "live_before": live_before, "live_after": live_after}
    """)
    assert out["live_before"] == out["live_after"] == [0, 0]
    # A leak would be >= 2000 x 256 KiB = 500 MiB (and the regions would still be live).
    assert out["growth"] < 32 << 20, out


@pytest.mark.skipif(not PYTHON_GUEST.exists(), reason="build the Python guest first: make python-guest")
def test_python_guest_runs_tracked():
    out = run_tracked("""
        async def main(node):
            kv = Component.load(PYTHON_GUEST, version="py1")
            out = {}
            for threaded in (False, True):
                pid = await node.spawn(kv, args={"data": {"a": 1}}, threaded=threaded)
                ok = (await node.call(pid, ["get", "a"]) == 1
                      and await node.call(pid, ["put", "b", "x" * 100_000]) == "ok"
                      and await node.call(pid, ["get", "b"]) == "x" * 100_000
                      and await node.call(pid, "size") == 2)
                out[f"threaded={threaded}"] = [ok, mem(node, pid)]
                await node.exit(pid)
                await node.wait(pid)
            out["live"] = (await live_memories(0))[0]
            return out
    """, timeout=300)
    for threaded in (False, True):
        ok, size = out[f"threaded={threaded}"]
        assert ok
        assert 8 << 20 < size < 256 << 20  # CPython in wasm: ~14 MiB
    assert out["live"] == 0


def test_a_grow_the_creator_refuses_leaves_the_memory_as_it_was():
    """The creator's grow callback, called directly past a memory's reservation: an
    error back to wasmtime, nothing changed."""
    out = run_tracked("""
        import ctypes
        from wasmtime import _ffi as ffi
        async def main(node):
            pid = await node.spawn(GROWER, limits=Limits(memory=32 << 20))
            (key, region), = [(k, r) for k, r in _memory._REGIONS.items() if r.size == 0]
            before = [region.size, region.accessible, region.capacity]
            err = _memory._grow_memory(key, region.capacity + 65536)
            if err:
                ffi.wasmtime_error_delete(ctypes.cast(err, ctypes.POINTER(ffi.wasmtime_error_t)))
            after = [region.size, region.accessible, region.capacity]
            return {"error": bool(err), "before": before, "after": after,
                    "still_answers": await node.call(pid, b"ab") == b"ab"}
    """)
    assert out["error"] is True
    assert out["before"] == out["after"] and out["before"][2] == 32 << 20
    assert out["still_answers"] is True
