"""Three counters under one supervisor: the tree of the hot deployment guide.

    counters (one_for_one)
    |-- c1   counter.wat v1, registered as counter/1, starts at 10
    |-- c2   counter.wat v1, registered as counter/2, starts at 20
    `-- c3   counter.wat v1, registered as counter/3, starts at 30

Serve it and deploy new versions from another terminal (docs/hot-deployment.md):

    airssys run examples/trees/counters.py
    airssys deploy counter examples/components/counter_v2.wat --version v2

or run this file (``.venv/bin/python examples/trees/counters.py``): it starts the tree on
its own node and walks through the same changes with the Python API, checking each one:
v1 -> v2 (atomic), a refused upgrade (counter_reject.wat) that leaves every count as it
was, a downgrade to v1, a rolling change, and a canary change with a probe.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import trio

import supervisors
from airssys_actors import Node, UpgradeFailed
from supervisors import Child, Supervisor, SupervisorRef

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ROOT / "examples" / "components"
COUNTER = COMPONENTS / "counter.wat"
COUNTER_V2 = COMPONENTS / "counter_v2.wat"
COUNTER_REJECT = COMPONENTS / "counter_reject.wat"

tree = Supervisor("counters", strategy="one_for_one", max_restarts=5, within=10, children=[
    Child(f"c{i}", str(COUNTER), args={"start": 10 * i}, name=f"counter/{i}", version="v1")
    for i in (1, 2, 3)
])
NAMES = [f"counter/{i}" for i in (1, 2, 3)]


def check(condition: bool, what: str) -> None:
    print(f"  [{'ok' if condition else 'FAILED'}] {what}")
    if not condition:
        raise SystemExit(f"check failed: {what}")


async def show(root: SupervisorRef) -> list[Any]:
    rows = await root.which_children()
    for r in rows:
        print(f"    {r.id:<4} {r.pid!s:<11} {r.name:<10} {r.component}@{r.version}")
    return rows


async def counts(node: Node) -> list[int]:
    return [await node.call(name, "get") for name in NAMES]


async def main() -> None:
    async with Node() as node:
        root = await supervisors.start(node, tree)
        print("1. the tree is up, every counter at v1")
        before = await show(root)
        for name in NAMES:
            await node.call(name, 1)  # each counts one update
        check(await counts(node) == [11, 21, 31], "counts 11, 21, 31")

        print("\n2. deploy counter_v2 to every process of component 'counter' (atomic)")
        report = await root.upgrade("counter", COUNTER_V2, version="v2")
        for p in report.processes:
            print(f"    {p.child}: {p.from_version} -> {p.to_version}, pause {p.pause * 1e3:.3f} ms, "
                  f"{p.state_bytes} state bytes")
        after = await show(root)
        check([r.pid for r in after] == [r.pid for r in before], "same pids")
        stats = await node.call("counter/1", "stats")
        print(f"    counter/1 stats: {stats}")
        check(stats == {"count": 11, "updates": 0, "version": "v2"}, "v2 took over v1's count")

        print("\n3. a version that refuses the state: nothing changes")
        await node.call("counter/2", "incr")  # v2 counts this update
        try:
            await root.upgrade("counter", COUNTER_REJECT, version="v3")
        except UpgradeFailed as exc:
            print(f"    UpgradeFailed: process={exc.process} cause={exc.cause}: {exc.detail}")
            check(exc.cause == "error", "cause 'error' (upgrade returned err)")
        else:
            check(False, "the upgrade was refused")
        check([r.version for r in await root.which_children()] == ["v2"] * 3, "every process still at v2")
        check((await node.call("counter/2", "stats"))["updates"] == 1, "counter/2's state is untouched")

        print("\n4. downgrade: back to v1 (v1's upgrade reads v2's map)")
        report = await root.downgrade("counter")
        check([(p.from_version, p.to_version) for p in report.processes] == [("v2", "v1")] * 3, "v2 -> v1")
        check(await counts(node) == [11, 22, 31], "counts kept: 11, 22, 31")

        print("\n5. rolling: one process at a time")
        report = await root.upgrade("counter", COUNTER_V2, version="v2", strategy="rolling")
        check([p.child for p in report.processes] == ["c1", "c2", "c3"], "c1, c2, c3 in turn")

        print("\n6. canary: change c1 first, probe it, then the rest")
        await root.downgrade("counter")
        report = await root.upgrade("counter", COUNTER_V2, version="v2", canary=1, probe="stats")
        check(report.processes[0].child == "c1" and len(report.processes) == 3, "c1 first, then c2 and c3")
        await show(root)
        check(await counts(node) == [11, 22, 31], "no count lost across five changes")
        await root.stop()


if __name__ == "__main__":
    trio.run(main)
    sys.exit(0)
