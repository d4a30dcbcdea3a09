"""``airssys demo``: a guided tour in under a minute.

A realistic tree (WASM counters and echo workers under nested supervisors, a Python
ledger), steady traffic, injected faults, and a hot upgrade of the counters from v1 to v2
while traffic flows, with a live view of the tree and the events, then a summary in
which every message is accounted for.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import deque
from pathlib import Path
from typing import Any

import trio
from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

import supervisors
from airssys_actors import Actor, CallFailed, CallTimeout, Capabilities, Component, Node, NoSuchProcess
from supervisors import Child, Supervisor

from . import render
from .treewalk import walk

COMPONENTS = Path(__file__).resolve().parent.parent / "examples" / "components"
WORKERS = 4
DURATION = 12.0
RATE = 1500  # calls per second offered


class Ledger(Actor):
    """A Python process that tallies what the counters acknowledged."""

    async def init(self, ctx: Any, args: Any) -> None:
        self.total = 0

    async def handle(self, ctx: Any, msg: Any) -> Any:
        value = msg.value
        if value == "total":
            return self.total
        self.total += value
        return None


def demo_tree() -> Supervisor:
    counter_v1 = Component.load(COMPONENTS / "counter.wat", version="v1")
    echo = Component.load(COMPONENTS / "echo.wat", version="v1")
    return Supervisor("root", strategy="one_for_one", max_restarts=50, within=10, children=[
        Child("ledger", Ledger, name="ledger"),
        Supervisor("counters", strategy="one_for_one", max_restarts=50, within=10, children=[
            Child(f"counter-{i}", counter_v1, name=f"counter/{i}") for i in range(1, WORKERS + 1)
        ]),
        Supervisor("echoes", strategy="one_for_one", max_restarts=50, within=10, children=[
            Child(f"echo-{i}", echo, name=f"echo/{i}", capabilities=Capabilities(send=["ledger"]))
            for i in range(1, WORKERS + 1)
        ]),
    ])


class Tally:
    def __init__(self) -> None:
        self.sent = self.answered = self.failed = 0
        self.latencies: list[float] = []


async def traffic(node: Node, tally: Tally, stop: trio.Event) -> None:
    """Calls at a steady rate; each is answered or fails with a typed error."""
    period = 1.0 / RATE
    start = trio.current_time()
    n = 0

    async def one(target: str, message: Any) -> None:
        began = time.perf_counter()
        tally.sent += 1
        try:
            await node.call(target, message, timeout=5)
            tally.answered += 1
            tally.latencies.append(time.perf_counter() - began)
        except (CallFailed, CallTimeout, NoSuchProcess):
            tally.failed += 1

    async with trio.open_nursery() as nursery:
        while not stop.is_set():
            i = (n // 2) % WORKERS + 1
            if n % 2:
                nursery.start_soon(one, f"counter/{i}", 1)
            else:
                nursery.start_soon(one, f"echo/{i}", {"n": n})
            n += 1
            await trio.sleep_until(start + n * period)


def view(tree: dict[str, Any], tally: Tally, events: deque[str], phase: str, elapsed: float) -> Group:
    stats = Table.grid(padding=(0, 2))
    stats.add_row("phase", f"[bold]{phase}[/bold]", "elapsed", f"{elapsed:4.1f} s")
    stats.add_row("sent", str(tally.sent), "answered", str(tally.answered))
    stats.add_row("failed (typed error)", str(tally.failed), "in flight", str(tally.sent - tally.answered - tally.failed))
    log = "\n".join(events) or "(no events yet)"
    return Group(
        Panel(render.tree_view(tree), title="live tree"),
        Panel(stats, title="traffic"),
        Panel(log, title="events"),
    )


async def run(out: Any, as_json: bool) -> dict[str, Any]:
    tree_spec = demo_tree()
    tally = Tally()
    events: deque[str] = deque(maxlen=8)
    summary: dict[str, Any] = {}
    async with Node("demo") as node:
        root = await supervisors.start(node, tree_spec)
        sub = node.subscribe({"exit", "restart", "upgrade", "give_up", "escalation"})
        stop = trio.Event()
        phase = "warming up"
        began = trio.current_time()
        upgrade_report = None
        live = Live(console=out, refresh_per_second=4, transient=False) if not as_json else None

        async def refresh() -> None:
            while True:
                for event in sub.drain():
                    events.append(render.event_line(event.to_dict()))
                if live is not None:
                    live.update(view(await walk(node, root), tally, events, phase, trio.current_time() - began))
                await trio.sleep(0.25)

        async def script() -> None:
            nonlocal phase, upgrade_report
            phase = "steady traffic"
            await trio.sleep(DURATION * 0.2)
            phase = "injecting faults"
            for i, kind in enumerate(["trap", "kill", "fuel", "deadline", "drop", "trap"]):
                target = f"echo/{i % WORKERS + 1}" if i % 2 else f"counter/{i % WORKERS + 1}"
                try:
                    node.faults.inject(target, kind)
                except NoSuchProcess:
                    pass
                await trio.sleep(0.3)
            await trio.sleep(DURATION * 0.15)
            phase = "hot upgrade counter v1 -> v2"
            upgrade_report = await root.upgrade("counter", COMPONENTS / "counter_v2.wat", version="v2")
            await trio.sleep(DURATION * 0.25)
            phase = "draining"
            stop.set()

        if live is not None:
            live.start()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(refresh)
                async with trio.open_nursery() as work:
                    work.start_soon(traffic, node, tally, stop)
                    work.start_soon(script)
                await trio.sleep(0.3)
                for event in sub.drain():
                    events.append(render.event_line(event.to_dict()))
                phase = "done"
                if live is not None:
                    live.update(view(await walk(node, root), tally, events, phase, trio.current_time() - began))
                nursery.cancel_scope.cancel()
        finally:
            if live is not None:
                live.stop()
        final_tree = await walk(node, root)
        restarts = sum(c.get("restarts", 0) for sup in final_tree["children"] for c in sup.get("children", []))
        versions = sorted({c["version"] for c in final_tree["children"][1]["children"]})
        latencies = sorted(tally.latencies)
        summary = {
            "sent": tally.sent,
            "answered": tally.answered,
            "failed_with_typed_error": tally.failed,
            "lost": tally.sent - tally.answered - tally.failed,
            "dead_letters": node.dead_letter_count,
            "faults_injected": sum(node.faults.injected.values()),
            "restarts": restarts,
            "counter_versions": versions,
            "upgrade_max_pause_ms": round(upgrade_report.max_pause * 1000, 3) if upgrade_report else None,
            "upgrade_processes": len(upgrade_report.processes) if upgrade_report else 0,
            "call_p50_ms": round(latencies[len(latencies) // 2] * 1000, 3) if latencies else None,
            "call_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3) if latencies else None,
        }
    return summary


def run_demo(args: argparse.Namespace) -> int:
    out = render.console()
    if not args.json:
        out.print("[bold]airssys demo[/bold]: a supervision tree of WASM components under load, "
                  "faults, and a hot upgrade. About 10 seconds.\n")
    summary = trio.run(run, out, args.json)
    if args.json:
        print(json.dumps(summary))
    else:
        table = Table(title="summary", show_header=False)
        labels = {
            "sent": "calls sent", "answered": "answered", "failed_with_typed_error": "failed with a typed error",
            "lost": "lost", "dead_letters": "dead letters (recorded, not lost)", "faults_injected": "faults injected",
            "restarts": "restarts", "counter_versions": "counter versions now",
            "upgrade_processes": "processes upgraded", "upgrade_max_pause_ms": "upgrade pause (max, ms)",
            "call_p50_ms": "call latency p50 (ms)", "call_p99_ms": "call latency p99 (ms)",
        }
        for key, label in labels.items():
            value = summary[key]
            table.add_row(label, ", ".join(value) if isinstance(value, list) else str(value))
        out.print(table)
        out.print("\nNext: docs/getting-started.md, then `airssys run examples/trees/kv_service.py`.")
    return 0 if summary["lost"] == 0 else 1
