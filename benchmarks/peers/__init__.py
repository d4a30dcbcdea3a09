"""airssys-actors next to its peers: the same shapes on a plain trio baseline (tasks and
memory channels, no sandbox, no runtime) and on pykka (one thread per actor, no sandbox),
measured in the same run, pinned to the same core.

    python -m benchmarks.peers [--size smoke|full] [--json FILE] [--cpu N|auto|none] [--only SHAPE,...]

Shapes (32-byte message payloads; medians of ``repeats`` runs where a run gives one
number, percentiles over all samples where it gives many):

  spawn       start one actor that stays alive, ``spawn`` in a row. airssys: ``await
              node.spawn(echo.wat)`` (returns after init); trio: ``start_soon`` of a task
              with its own memory channel + one checkpoint; pykka: ``Echo.start()`` (a
              new thread; on_start runs in it).
  send 1->1   one sender, ``send`` messages to one echo actor, then one call/ask so the
              time covers handling them all. airssys: ``await node.send``; trio: ``await
              channel.send`` into a task's channel (buffer 1000) that hands each message
              to a handler; pykka: ``ref.tell``.
  call        sequential request/reply round trips, p50/p99. airssys: ``await node.call``
              (msgpack both ways); trio: the request carries a one-shot reply slot (an
              Event), as a call does; pykka: ``ref.ask`` (blocking).
  restart     crash -> the restarted actor answers, p50/p99. airssys: one_for_one
              supervisor, ``crasher.wat`` child with a kept mailbox (call "crash" ->
              CallFailed, then call "ping" until answered); trio: a hand-written
              supervisor task that starts a new worker task on the same channel when one
              raises; pykka has no supervisors: ``tell("crash")`` kills the actor, its
              ``on_failure`` starts a new one (hand-rolled), the caller asks the new one.

Every ratio is a *time* ratio: airssys time per operation / peer time per operation
(throughput is turned into µs per message), so > 1 means airssys takes longer. The
peers have no isolation at all: the ratios are the price of a sandboxed WebAssembly
process per actor (plus the runtime's bookkeeping) against doing without.

A chaos-like run (faults under load) has no peer: neither baseline has supervision trees
or fault injection; the restart shape is the comparable part. pykka's parts are skipped
(reported as missing) when pykka is not installed (``pip install airssys-actors[bench]``).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

import msgpack
import trio

from .. import _report as R

ROOT = Path(__file__).resolve().parent.parent.parent
ECHO = ROOT / "examples" / "components" / "echo.wat"
CRASHER = ROOT / "examples" / "components" / "crasher.wat"
MESSAGE = bytes(30)
PAYLOAD = msgpack.packb(MESSAGE, use_bin_type=True)  # 32 bytes
clock = time.perf_counter

SIZES: dict[str, dict[str, int]] = {
    "full": {"repeats": 5, "spawn": 1000, "send": 50_000, "calls": 20_000, "crashes": 1000, "warmup": 50},
    "smoke": {"repeats": 3, "spawn": 100, "send": 3_000, "calls": 1_000, "crashes": 50, "warmup": 5},
}
SHAPES = ("spawn", "send", "call", "restart")
PEERS = ("airssys", "trio", "pykka")


def median_of(fn: Callable[[], float], repeats: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeats):
        gc.collect()
        runs.append(fn())
    return {"median": statistics.median(runs), "runs": runs}


# -- airssys -----------------------------------------------------------------------------


async def airssys_spawn(n: int) -> float:
    from airssys_actors import Component, Node

    echo = Component.load(ECHO)
    async with Node() as node:
        for _ in range(max(1, n // 10)):
            await node.spawn(echo)
        start = clock()
        for _ in range(n):
            await node.spawn(echo)
        return (clock() - start) / n * 1e6


async def airssys_send(n: int) -> float:
    from airssys_actors import Component, Node

    echo = Component.load(ECHO)
    async with Node() as node:
        pid = await node.spawn(echo)
        send = node.send
        for _ in range(max(100, n // 10)):
            await send(pid, MESSAGE)
        await node.call(pid, 0)
        start = clock()
        for _ in range(n):
            await send(pid, MESSAGE)
        await node.call(pid, 0)
        return (clock() - start) / n * 1e6


async def airssys_call(n: int) -> list[float]:
    from airssys_actors import Component, Node

    echo = Component.load(ECHO)
    async with Node() as node:
        pid = await node.spawn(echo)
        call = node.call
        for _ in range(max(100, n // 10)):
            await call(pid, MESSAGE)
        samples = [0.0] * n
        for i in range(n):
            t = clock()
            await call(pid, MESSAGE)
            samples[i] = clock() - t
        return samples


async def airssys_restart(n: int, warmup: int) -> list[float]:
    import supervisors
    from airssys_actors import CallFailed, Component, Node, NoSuchProcess
    from supervisors import Child, Supervisor

    crasher = Component.load(CRASHER)
    tree = Supervisor("peers", strategy="one_for_one", max_restarts=10 ** 9, within=1.0,
                      children=[Child("c", crasher, name="c", mailbox="keep")])
    samples = []
    async with Node() as node:
        root = await supervisors.start(node, tree)
        await node.call("c", "ping")
        for i in range(warmup + n):
            t0 = clock()
            try:
                await node.call("c", "crash")
            except CallFailed:
                pass
            else:
                raise AssertionError("crash was answered")
            while True:
                try:
                    await node.call("c", "ping")
                    break
                except (CallFailed, NoSuchProcess):
                    await trio.lowlevel.checkpoint()
            if i >= warmup:
                samples.append(clock() - t0)
        await root.stop()
    return samples


# -- trio --------------------------------------------------------------------------------


class _Reply:
    """A one-shot reply slot, as a call needs: an Event and the value (or an error)."""

    __slots__ = ("error", "event", "value")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.value: Any = None
        self.error: str | None = None


def _handler(message: Any) -> Any:
    return message  # the echo actor's whole job


async def trio_spawn(n: int) -> float:
    """The core benchmark's task-spawn floor, after a warm-up of a tenth as many."""
    from ..core import trio_task_spawn

    await trio_task_spawn(max(1, n // 10), 1000, False)
    return await trio_task_spawn(n, 1000, False)


async def _trio_echo(recv: Any) -> None:
    async for message, reply in recv:
        value = _handler(message)
        if reply is not None:
            reply.value = value
            reply.event.set()


async def trio_send(n: int) -> float:
    send, recv = trio.open_memory_channel[Any](1000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_trio_echo, recv)

        async def flush() -> None:
            reply = _Reply()
            await send.send((0, reply))
            await reply.event.wait()

        for _ in range(max(100, n // 10)):
            await send.send((PAYLOAD, None))
        await flush()
        start = clock()
        for _ in range(n):
            await send.send((PAYLOAD, None))
        await flush()
        elapsed = clock() - start
        nursery.cancel_scope.cancel()
    return elapsed / n * 1e6


async def trio_call(n: int) -> list[float]:
    send, recv = trio.open_memory_channel[Any](1000)
    samples = [0.0] * n
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_trio_echo, recv)

        async def call(message: Any) -> Any:
            reply = _Reply()
            await send.send((message, reply))
            await reply.event.wait()
            return reply.value

        for _ in range(max(100, n // 10)):
            await call(PAYLOAD)
        for i in range(n):
            t = clock()
            await call(PAYLOAD)
            samples[i] = clock() - t
        nursery.cancel_scope.cancel()
    return samples


class _Crash(Exception):
    pass


async def trio_restart(n: int, warmup: int) -> list[float]:
    """A hand-written one_for_one supervisor: a worker task that raises on "crash"
    tells the supervisor (which fails the call it died on) and the supervisor starts a
    new worker task on the same channel (the kept mailbox)."""
    mailbox_send, mailbox_recv = trio.open_memory_channel[Any](1000)
    exits_send, exits_recv = trio.open_memory_channel[Any](100)
    samples = []

    async def worker() -> None:
        current = None
        try:
            async for message, reply in mailbox_recv:
                current = reply
                if message == "crash":
                    raise _Crash("crashed on purpose")
                reply.value = "pong" if message == "ping" else message
                reply.event.set()
                current = None
        except _Crash as exc:
            await exits_send.send((current, exc))

    async def supervisor(nursery: trio.Nursery) -> None:
        async for reply, exc in exits_recv:
            if reply is not None:
                reply.error = repr(exc)
                reply.event.set()
            nursery.start_soon(worker)  # restart

    async def call(message: Any) -> Any:
        reply = _Reply()
        await mailbox_send.send((message, reply))
        await reply.event.wait()
        if reply.error is not None:
            raise _Crash(reply.error)
        return reply.value

    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor, nursery)
        nursery.start_soon(worker)
        await call("ping")
        for i in range(warmup + n):
            t0 = clock()
            try:
                await call("crash")
            except _Crash:
                pass
            else:
                raise AssertionError("crash was answered")
            assert await call("ping") == "pong"
            if i >= warmup:
                samples.append(clock() - t0)
        nursery.cancel_scope.cancel()
    return samples


# -- pykka -------------------------------------------------------------------------------


def pykka_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pykka") is not None


def _pykka_classes() -> tuple[Any, Any]:
    import logging

    import pykka

    # A crash logs an error with its traceback: keep that out of the measurement and the
    # output (a real deployment would log it somewhere).
    logging.getLogger("pykka").setLevel(logging.CRITICAL)

    class Echo(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> Any:
            return _handler(message)

    class Crasher(pykka.ThreadingActor):
        def __init__(self, holder: Any) -> None:
            super().__init__()
            self.holder = holder

        def on_receive(self, message: Any) -> Any:
            if message == "crash":
                raise RuntimeError("crashed on purpose")
            return "pong"

        def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
            # The hand-rolled supervisor: start a new one and hand it to the caller.
            self.holder.restart()

    return Echo, Crasher


def pykka_spawn(n: int) -> float:
    Echo, _ = _pykka_classes()
    refs = [Echo.start() for _ in range(max(1, n // 10))]
    start = clock()
    for _ in range(n):
        refs.append(Echo.start())
    elapsed = clock() - start
    for ref in refs:
        ref.stop(block=False)
    _stop_all()
    return elapsed / n * 1e6


def _stop_all() -> None:
    import pykka

    pykka.ActorRegistry.stop_all(block=True, timeout=30)


def pykka_send(n: int) -> float:
    Echo, _ = _pykka_classes()
    ref = Echo.start()
    try:
        for _ in range(max(100, n // 10)):
            ref.tell(MESSAGE)
        ref.ask(0)
        start = clock()
        for _ in range(n):
            ref.tell(MESSAGE)
        ref.ask(0)
        return (clock() - start) / n * 1e6
    finally:
        ref.stop()


def pykka_call(n: int) -> list[float]:
    Echo, _ = _pykka_classes()
    ref = Echo.start()
    samples = [0.0] * n
    try:
        for _ in range(max(100, n // 10)):
            ref.ask(MESSAGE)
        for i in range(n):
            t = clock()
            ref.ask(MESSAGE)
            samples[i] = clock() - t
    finally:
        ref.stop()
    return samples


def pykka_restart(n: int, warmup: int) -> list[float]:
    _, Crasher = _pykka_classes()

    class Holder:
        def __init__(self) -> None:
            self.ref: Any = None
            self.ready = threading.Event()

        def restart(self) -> None:
            self.ref = Crasher.start(self)
            self.ready.set()

    holder = Holder()
    holder.ref = Crasher.start(holder)
    samples = []
    try:
        holder.ref.ask("ping")
        for i in range(warmup + n):
            t0 = clock()
            holder.ready.clear()
            holder.ref.tell("crash")
            if not holder.ready.wait(10):
                raise RuntimeError("pykka actor was not restarted")
            assert holder.ref.ask("ping") == "pong"
            if i >= warmup:
                samples.append(clock() - t0)
    finally:
        _stop_all()
    return samples


# -- the run -----------------------------------------------------------------------------


def measure(size: dict[str, int], shapes: tuple[str, ...], progress: R.Progress) -> dict[str, Any]:
    reps = size["repeats"]
    have_pykka = pykka_available()
    results: dict[str, dict[str, Any]] = {shape: {} for shape in shapes}
    steps = [(shape, peer) for shape in shapes for peer in PEERS]
    progress.phase("peers", len(steps))
    done = 0

    for shape, peer in steps:
        progress.update(done, note=f"{shape} / {peer}", force=True)
        done += 1
        if peer == "pykka" and not have_pykka:
            results[shape][peer] = None
            continue
        if shape == "spawn":
            fn = {"airssys": lambda: trio.run(airssys_spawn, size["spawn"]),
                  "trio": lambda: trio.run(trio_spawn, size["spawn"]),
                  "pykka": lambda: pykka_spawn(size["spawn"])}[peer]
            got = median_of(fn, reps)
            results[shape][peer] = {"us_per_op": got["median"], "runs": got["runs"], "n": size["spawn"]}
        elif shape == "send":
            fn = {"airssys": lambda: trio.run(airssys_send, size["send"]),
                  "trio": lambda: trio.run(trio_send, size["send"]),
                  "pykka": lambda: pykka_send(size["send"])}[peer]
            got = median_of(fn, reps)
            results[shape][peer] = {"us_per_op": got["median"], "msgs_per_s": 1e6 / got["median"],
                                    "runs": got["runs"], "n": size["send"]}
        elif shape == "call":
            fn = {"airssys": lambda: trio.run(airssys_call, size["calls"]),
                  "trio": lambda: trio.run(trio_call, size["calls"]),
                  "pykka": lambda: pykka_call(size["calls"])}[peer]
            samples: list[float] = []
            for _ in range(reps):
                gc.collect()
                samples.extend(fn())
            stats = R.latency_stats(samples)
            results[shape][peer] = {"us_per_op": stats["p50"], **stats}
        elif shape == "restart":
            fn = {"airssys": lambda: trio.run(airssys_restart, size["crashes"], size["warmup"]),
                  "trio": lambda: trio.run(trio_restart, size["crashes"], size["warmup"]),
                  "pykka": lambda: pykka_restart(size["crashes"], size["warmup"])}[peer]
            gc.collect()
            stats = R.latency_stats(fn())
            results[shape][peer] = {"us_per_op": stats["p50"], **stats}
    progress.update(len(steps), force=True)
    for shape, by_peer in results.items():
        base = by_peer.get("airssys")
        by_peer["ratios"] = {
            peer: (base["us_per_op"] / by_peer[peer]["us_per_op"]) if base and by_peer.get(peer) else None
            for peer in ("trio", "pykka")
        }
        if shape in ("call", "restart") and base:
            by_peer["ratios_p99"] = {
                peer: (base["p99"] / by_peer[peer]["p99"]) if by_peer.get(peer) else None
                for peer in ("trio", "pykka")
            }
    return results


LABELS = {
    "spawn": "spawn (µs per actor, kept alive)",
    "send": "send 1->1 (µs per message)",
    "call": "call round trip p50",
    "call_p99": "call round trip p99",
    "restart": "crash -> restarted answers p50",
    "restart_p99": "crash -> restarted answers p99",
}


def rows(results: dict[str, Any]) -> list[list[str]]:
    out = []

    def ratio(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}x"

    def cell(d: dict[str, Any] | None, key: str = "us_per_op") -> str:
        if d is None:
            return "(not installed)"
        return R.fmt_us(d[key])

    for shape, by_peer in results.items():
        extra = ""
        if shape == "send":
            extra = " ".join(f"{p}={by_peer[p]['msgs_per_s']:,.0f}/s" for p in PEERS if by_peer.get(p))
        out.append([LABELS[shape], cell(by_peer.get("airssys")), cell(by_peer.get("trio")), cell(by_peer.get("pykka")),
                    ratio(by_peer["ratios"]["trio"]), ratio(by_peer["ratios"]["pykka"]), extra])
        if shape in ("call", "restart"):
            r99 = by_peer.get("ratios_p99", {})
            out.append([LABELS[f"{shape}_p99"], cell(by_peer.get("airssys"), "p99"), cell(by_peer.get("trio"), "p99"),
                        cell(by_peer.get("pykka"), "p99"), ratio(r99.get("trio")), ratio(r99.get("pykka")), ""])
    return out


HEADERS = ["shape", "airssys", "trio (raw)", "pykka (threads)", "airssys/trio", "airssys/pykka", "note"]


def draw(results: dict[str, Any]) -> Any:
    def _draw(plt: Any) -> Any:
        fig, ax = plt.subplots(figsize=(10, 4.5))
        shapes = list(results)
        width = 0.27
        colors = {"airssys": "tab:red", "trio": "tab:blue", "pykka": "tab:green"}
        for j, peer in enumerate(PEERS):
            xs, ys = [], []
            for i, shape in enumerate(shapes):
                d = results[shape].get(peer)
                if d:
                    xs.append(i + (j - 1) * width)
                    ys.append(d["us_per_op"])
            ax.bar(xs, ys, width=width, color=colors[peer], label=peer)
            for x, y in zip(xs, ys, strict=False):
                ax.text(x, y * 1.08, f"{y:,.0f}" if y >= 10 else f"{y:.1f}", ha="center", fontsize=7)
        ax.set_xticks(range(len(shapes)))
        ax.set_xticklabels([LABELS[s] for s in shapes], fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("µs per operation (log)")
        ax.set_title("airssys-actors vs a raw trio baseline and pykka, same core, same run")
        ax.legend()
        return fig

    return _draw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON (and FILE.png next to it)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    parser.add_argument("--cpu", default="auto", help="CPU to pin to: a number, 'auto' (default) or 'none'")
    parser.add_argument("--only", help=f"comma-separated shapes ({', '.join(SHAPES)})")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    shapes = tuple(s for s in (args.only.split(",") if args.only else SHAPES))
    unknown = set(shapes) - set(SHAPES)
    if unknown:
        parser.error(f"unknown shapes: {', '.join(sorted(unknown))}")

    size = SIZES[args.size]
    pin = R.pin_to_one_core(args.cpu)
    report = R.base_report("peers", "benchmarks.peers", argv, args.size, pin)
    started = clock()
    with R.Contention() as contention, R.Progress(enabled=not args.no_progress) as progress:
        results = measure(size, shapes, progress)
    report.update({
        "sizes": size,
        "pykka_installed": pykka_available(),
        "results": results,
        "contention": contention.result,
        "ratio_meaning": "airssys time per operation / peer time per operation (> 1: airssys takes longer)",
        "targets": [
            R.target("peers", f"{LABELS[shape]}: airssys/{peer}",
                     "-" if results[shape]["ratios"][peer] is None else f"{results[shape]['ratios'][peer]:.1f}x",
                     "(informational)", None, key=f"{shape}.{peer}")
            for shape in shapes for peer in ("trio", "pykka")
        ],
        "seconds": clock() - started,
    })
    title = (f"peers ({args.size}), same run, pinned to cpu {pin.get('cpu')}; ratios are time per operation, "
             f"airssys / peer (> 1: airssys takes longer)")
    table_rows = rows(results)
    R.print_table(title, HEADERS, table_rows, right={1, 2, 3, 4, 5})
    if args.json:
        R.write_json(args.json, report)
        chart = R.write_chart(args.json, draw(results), size=(10, 4.5))
        if chart is not None:
            report["chart"] = str(chart)
            R.write_json(args.json, report)
            print(f"chart: {chart}")
    if args.markdown:
        Path(args.markdown).write_text(f"{title}\n\n" + R.markdown_table(HEADERS, table_rows, {1, 2, 3, 4, 5}))
    print(f"total {report['seconds']:.1f} s", file=sys.stderr)
    return 0
