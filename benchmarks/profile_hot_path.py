"""Where the time of a send, a call and a spawn goes.

    python -m benchmarks.profile_hot_path [--n N] [--top K] [--section NAME ...]

Three views, pinned to one core like ``benchmarks.core``:

* ``breakdown``: each step on the hot path timed alone in a tight loop (no profiler
  overhead), so the steps can be added up and compared with the end-to-end figures.
  It reaches into private runtime internals on purpose; if they change, a step prints
  ``n/a`` instead of failing the whole run.
* ``gc``: garbage-collector-tracked objects per live process and the cost of spawning
  as the node grows, with the cyclic GC on and off.
* ``cprofile``: cProfile of N ``send`` + 1 call, and of N ``call``, top K by own time.
  cProfile inflates Python-level calls relative to C calls: read it for *which* code
  runs, and the breakdown for *how much* each step costs.

Diagnostics, not a test: nothing here asserts anything.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import ctypes
import gc
import io
import pstats
import sys
import time
from ctypes import byref
from typing import Any
from collections.abc import Callable

import trio

from .core import MESSAGE, PAYLOAD, _BenchHost, load_echo, pin_to_one_core

clock = time.perf_counter


def per_op(fn: Callable[[], Any], n: int) -> float:
    """µs per call of ``fn`` (best of 3 loops of n, after a warm-up)."""
    for _ in range(max(1, n // 10)):
        fn()
    best = float("inf")
    for _ in range(3):
        start = clock()
        for _ in range(n):
            fn()
        best = min(best, (clock() - start) / n * 1e6)
    return best


def trio_per_op(make: Callable[[], Any], n: int) -> float:
    """µs per iteration of an async step, inside trio (best of 3)."""

    async def main() -> float:
        step = make()
        for _ in range(max(1, n // 10)):
            await step()
        best = float("inf")
        for _ in range(3):
            start = clock()
            for _ in range(n):
                await step()
            best = min(best, (clock() - start) / n * 1e6)
        return best

    return trio.run(main)


def breakdown(n: int) -> list[tuple[str, str, float | None]]:
    """(group, step, µs) for every step a send or a call goes through."""
    from airssys_actors import Limits, Pid, decode, encode
    from airssys_actors._host import _abi
    from airssys_actors._host._instance import GuestInstance
    from airssys_actors._mailbox import Mailbox
    from airssys_actors._message import Envelope, Kind

    rows: list[tuple[str, str, float | None]] = []

    def add(group: str, step: str, fn: Callable[[], float]) -> None:
        try:
            rows.append((group, step, fn()))
        except Exception as exc:  # internals moved: say so, go on
            rows.append((group, f"{step}  [n/a: {type(exc).__name__}: {exc}]", None))

    echo = load_echo()
    inst = GuestInstance(echo._compiled, _BenchHost(), Limits())
    inst.init(b"\xc0")

    # -- the guest call, piece by piece ---------------------------------------------
    add("guest call", "GuestInstance.handle(cast, 32 B), whole", lambda: per_op(lambda: inst.handle(0, 0, None, PAYLOAD), n))
    add("guest call", "GuestInstance.handle(call, 32 B), whole", lambda: per_op(lambda: inst.handle(1, 1, None, PAYLOAD), n))
    add("guest call", "handle(cast) with a sender string (guest calls host send)",
        lambda: per_op(lambda: inst.handle(0, 0, "<local.2>", PAYLOAD), n))

    def bare_call() -> float:
        from airssys_actors._host import _instance as host_instance

        func, ctx, env = inst._handle_func, inst._key, inst._env_addr
        result = inst._result_addr
        call, post, free = host_instance._func_call, host_instance._post_return, inst._free_result
        inst.handle(0, 0, None, PAYLOAD)  # leave a 32-byte payload and a cast kind in env

        def once() -> None:
            call(func, ctx, env, 1, result, 1)
            post(func, ctx)
            free()

        return per_op(once, n)

    add("guest call", "  func_call + post_return + free(result), args prepared (wasmtime floor)", bare_call)
    add("guest call", "  _arm: set fuel + set epoch deadline (2 ctypes calls)", lambda: per_op(inst._arm, n))
    add("guest call", "  _account: read fuel left (c_uint64 + ctypes call)", lambda: per_op(inst._account, n))

    def set_payload() -> float:
        where = inst._payload_list_addr

        def once() -> None:
            _abi.vallist_delete_at(where)
            _abi.set_list_at(where, PAYLOAD)

        return per_op(once, n)

    add("guest call", "  free_list + set_bytes(32 B): payload into a list<u8> value", set_payload)

    def read_reply() -> float:
        tmp = _abi.Val()
        _abi.set_bytes(tmp, PAYLOAD)
        try:
            return per_op(lambda: _abi.get_bytes(tmp), n)
        finally:
            _abi.free(tmp)

    add("guest call", "  get_bytes(32 B): reply list<u8> back to bytes", read_reply)
    scratch = _abi.Val()
    add("guest call", "  one ctypes.byref()", lambda: per_op(lambda: byref(scratch), n))

    def binding_cost(own: bool) -> float:
        # One ctypes call (set fuel) through wasmtime-py's binding (a Python wrapper and a
        # POINTER(wasmtime_error_t) result object) or through a binding of our own with
        # a void* result and the context passed as an address.
        from wasmtime import _bindings

        address = inst._key  # the store context's address
        if not own:
            fn = _bindings.wasmtime_context_set_fuel
            ctx = ctypes.cast(address, ctypes.POINTER(_bindings.wasmtime_context_t))
            return per_op(lambda: fn(ctx, 1_000_000_000), n)
        lib = ctypes.CDLL(_bindings.dll._name)
        raw = lib.wasmtime_context_set_fuel
        raw.restype = ctypes.c_void_p
        raw.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
        return per_op(lambda: raw(address, 1_000_000_000), n)

    add("guest call", "  one ctypes call via wasmtime-py's binding (set_fuel)", lambda: binding_cost(False))
    add("guest call", "  same via an own binding: void* result, context as address", lambda: binding_cost(True))

    # -- runtime bookkeeping (plain Python) ----------------------------------------------
    pid = Pid("local", 2)
    procs = {pid: object()}
    add("runtime", "encode(bytes(30)) (airssys _codec.encode)", lambda: per_op(lambda: encode(MESSAGE, 1 << 20), n))
    add("runtime", "decode(32 B) (airssys _codec.decode)", lambda: per_op(lambda: decode(PAYLOAD), n))
    add("runtime", "Envelope(...)", lambda: per_op(lambda: Envelope(Kind.CAST, 0, None, PAYLOAD), n))
    add("runtime", "dict lookup by Pid (attrs hash)", lambda: per_op(lambda: procs.get(pid), n))
    add("runtime", "str(Pid) (done per message from a process sender)", lambda: per_op(lambda: str(pid), n))
    add("runtime", "Pid.parse('<local.2>') (done for every guest send to an address)",
        lambda: per_op(lambda: Pid.parse("<local.2>"), n))
    def local_import() -> float:
        def with_import() -> None:
            from airssys_actors._process import ProcessExit  # noqa: F401

        return per_op(with_import, n) - per_op(lambda: None, n)

    add("runtime", "a function-level 'from ._process import ProcessExit' (extra cost per run)", local_import)
    add("runtime", "time.perf_counter() x2 (process loop handle_seconds)",
        lambda: per_op(lambda: (clock(), clock()), n))

    def mailbox_pair() -> float:
        async def main() -> float:
            box = Mailbox(1000)
            env = Envelope(Kind.CAST, 0, None, PAYLOAD)

            def once() -> None:
                box.put_nowait(env)
                box.get_nowait()

            return per_op(once, n)

        return trio.run(main)

    add("runtime", "Mailbox.put_nowait + get_nowait (no waiting task)", mailbox_pair)

    def node_steps() -> list[tuple[str, float]]:
        from airssys_actors import Node

        out: list[tuple[str, float]] = []

        async def main() -> None:
            async with Node() as node:
                target = await node.spawn(echo)
                out.append(("Node._sender() (contextvar lookup)", per_op(node._sender, n)))
                out.append(("Node._mailbox_for(pid) (resolve + alive check)", per_op(lambda: node._mailbox_for(target), n)))
                out.append(("Node._count_out() (contextvar lookup)", per_op(node._count_out, n)))

        trio.run(main)
        return out

    try:
        for step, us in node_steps():
            rows.append(("runtime", step, us))
    except Exception as exc:
        rows.append(("runtime", f"node steps [n/a: {exc!r}]", None))

    # -- trio costs the runtime pays per message ------------------------------------------
    def checkpoint() -> Callable[[], Any]:
        return trio.lowlevel.checkpoint

    add("trio", "trio.lowlevel.checkpoint() alone (one scheduler pass, one task)", lambda: trio_per_op(checkpoint, n))

    def cancel_scope() -> Callable[[], Any]:
        async def step() -> None:
            with trio.move_on_after(5.0):  # noqa: ASYNC100 - entering and leaving is what is timed
                pass

        return step

    add("trio", "with trio.move_on_after(5): pass (Node.call_bytes per call)", lambda: trio_per_op(cancel_scope, n))

    def event() -> Callable[[], Any]:
        async def step() -> None:
            ev = trio.Event()
            ev.set()
            await ev.wait()

        return step

    add("trio", "trio.Event() + set() + await wait() (set already: a checkpoint)", lambda: trio_per_op(event, n))
    inst.close()
    return rows


def gc_section(batches: int, batch: int) -> list[str]:
    """Tracked objects per process, and spawn cost per batch as the node grows."""
    from airssys_actors import Node

    echo = load_echo()
    lines: list[str] = []

    async def objects_per_process() -> None:
        async with Node() as node:
            await node.spawn(echo)
            gc.collect()
            before = collections.Counter(type(o).__name__ for o in gc.get_objects())
            for _ in range(1000):
                await node.spawn(echo)
            gc.collect()
            after = collections.Counter(type(o).__name__ for o in gc.get_objects())
            diff = after - before
            lines.append(f"GC-tracked objects per live process: {sum(diff.values()) / 1000:.1f}")
            lines.append("  " + ", ".join(f"{k} {v / 1000:g}" for k, v in diff.most_common(16)))

    trio.run(objects_per_process)

    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = clock()
        else:
            pauses[info["generation"]].append(clock() - started[0])

    async def grow(label: str) -> None:
        async with Node() as node:
            for b in range(batches):
                for v in pauses.values():
                    v.clear()
                t = clock()
                for _ in range(batch):
                    await node.spawn(echo)
                us = (clock() - t) / batch * 1e6
                full = pauses[2]
                lines.append(f"  {label}: processes {(b + 1) * batch:>6,}: {us:7.1f} µs/spawn; "
                             f"full collections {len(full)}, longest {max(full, default=0) * 1e3:6.1f} ms")

    gc.callbacks.append(on_gc)
    try:
        lines.append(f"Spawn cost per batch of {batch} as the node grows (cyclic GC on):")
        trio.run(grow, "gc on ")
        gc.disable()
        lines.append("Same with gc.disable():")
        trio.run(grow, "gc off")
    finally:
        gc.enable()
        gc.callbacks.remove(on_gc)
    return lines


def cprofile_section(n: int, top: int) -> str:
    from airssys_actors import Node

    echo = load_echo()
    out = io.StringIO()

    async def main() -> None:
        async with Node() as node:
            pid = await node.spawn(echo)
            for _ in range(2000):
                await node.send(pid, MESSAGE)
            await node.call(pid, 0)
            for what in ("send", "call"):
                prof = cProfile.Profile()
                start = clock()
                prof.enable()
                if what == "send":
                    for _ in range(n):
                        await node.send(pid, MESSAGE)
                    await node.call(pid, 0)
                else:
                    for _ in range(n):
                        await node.call(pid, MESSAGE)
                prof.disable()
                took = clock() - start
                out.write(f"\n=== cProfile: {n} x await node.{what}(pid, 32-byte msg)"
                          f"{' + 1 call' if what == 'send' else ''}: {took / n * 1e6:.1f} µs per op under the profiler ===\n")
                buf = io.StringIO()
                stats = pstats.Stats(prof, stream=buf)
                stats.sort_stats("tottime").print_stats(top)
                text = buf.getvalue()
                for prefix in sorted({p for p in sys.path if p}, key=len, reverse=True):
                    text = text.replace(prefix + "/", "")
                out.write(text[text.find("   ncalls"):] if "   ncalls" in text else text)

    trio.run(main)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_hot_path", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="iterations per step / profiled ops")
    parser.add_argument("--top", type=int, default=30, help="rows of each cProfile listing")
    parser.add_argument("--section", action="append", choices=["breakdown", "gc", "cprofile"],
                        help="run only these sections (default: all)")
    parser.add_argument("--gc-batches", type=int, default=10)
    parser.add_argument("--gc-batch", type=int, default=1000)
    args = parser.parse_args(argv)
    sections = args.section or ["breakdown", "gc", "cprofile"]
    pin = pin_to_one_core()
    print(f"pinned to one core: {pin['pinned']} (cpu {pin['cpu']})\n")

    if "breakdown" in sections:
        rows = breakdown(args.n)
        width = max(len(r[1]) for r in rows)
        group = None
        print("Hot-path steps, each timed alone (best of 3 loops):")
        for g, step, us in rows:
            if g != group:
                print(f"\n[{g}]")
                group = g
            print(f"  {step.ljust(width)}  {'n/a' if us is None else f'{us:8.3f} µs'}")
        print()
    if "gc" in sections:
        for line in gc_section(args.gc_batches, args.gc_batch):
            print(line)
        print()
    if "cprofile" in sections:
        print(cprofile_section(args.n, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
