"""Supervisor restart latency: from a crash to the restarted child answering a call.

    python -m benchmarks.restart [--size smoke|full] [--json FILE] [--profile FILE] [--cpu N|auto|none]

For each child kind (a WAT guest, ``crasher.wat``, whose ``"crash"`` traps; a Python
``Actor`` whose ``"crash"`` raises) and each strategy (one_for_one, one_for_all,
rest_for_one; always three children ``a``, ``b``, ``c``, always crashing the middle one,
so one_for_one restarts 1 child, one_for_all 3 and rest_for_one 2), a caller task does,
``crashes`` times:

    t0 = perf_counter()                 # just before sending the crash
    call("b", "crash")                  # -> CallFailed, at once (t_failed)
    call("b", "ping")                   # queued in b's kept mailbox, answered by the
                                        # restarted b (retried on NoSuchProcess/CallFailed)
    t_ok = perf_counter()

and reports p50/p99 of ``t_ok - t0`` (the figure compared with the targets), of
``t_ok - t_failed`` (after the caller saw the failure: informational, since trio may run
the supervisor's whole restart before it resumes the caller) and of the time until every
restarted child has answered a ping (``group``; the same as the main figure for
one_for_one). The children are named, with ``mailbox="keep"``, as in a real tree.

The floor is one spawn of the same component (``await node.spawn(component)``, p50),
measured in the same run, half before the restart rows and half after. Targets, reported
and never asserted: restart p50 within 3x one spawn, restart p99 under 10x one spawn.
(Erlang/OTP's own ratio is worse: 10.3 µs restart for a 0.62 µs spawn; see
/work/shared/reference/performance-anchors.md.) The process is pinned to one CPU
when the OS allows it: ``--cpu auto`` (default) keeps CPU 0 unless another CPU is clearly
idler at start, so that two benchmarks pinned to CPU 0 on a shared VM do not share it;
the load average before and after is in the report, as other work shows up in the p99s.

``--profile FILE`` also runs the one_for_one rows under cProfile, prints the top
functions and writes the pstats file (FILE.wat / FILE.python).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import trio

from . import _report as R

ROOT = Path(__file__).resolve().parent.parent
CRASHER = ROOT / "examples" / "components" / "crasher.wat"

clock = time.perf_counter

SIZES: dict[str, dict[str, int]] = {
    # crashes per row (after warmup), spawns for the floor (half before, half after).
    "full": {"crashes": 1_000, "warmup": 50, "spawns": 1_000},
    "smoke": {"crashes": 50, "warmup": 5, "spawns": 50},
}
STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")
KINDS = ("wat", "python")
CHILDREN = ("a", "b", "c")
CRASHED = "b"
#: Which children each strategy restarts when ``b`` crashes.
RESTARTED = {"one_for_one": ("b",), "one_for_all": ("a", "b", "c"), "rest_for_one": ("b", "c")}
TARGET_P50 = 3.0
TARGET_P99 = 10.0


# -- the Python child ----------------------------------------------------------------

from airssys_actors import Actor, CallFailed, Component, Context, Message, Node, NoSuchProcess  # noqa: E402


class Crasher(Actor):
    """The Python twin of crasher.wat's two commands used here."""

    async def handle(self, ctx: Context, msg: Message) -> Any:
        value = msg.value
        if value == "crash":
            raise RuntimeError("crashed on purpose")
        return "pong"


# -- helpers -------------------------------------------------------------------------


def component_for(kind: str) -> Any:
    return Component.load(CRASHER) if kind == "wat" else Crasher


# -- measurements --------------------------------------------------------------------


async def measure_spawn(component: Any, n: int) -> dict[str, list[float]]:
    """``await node.spawn(component)`` n times (each killed again, untimed), and the same
    spawn followed by its first call answered."""
    spawn: list[float] = []
    spawn_call: list[float] = []
    async with Node() as node:
        for _ in range(max(3, n // 20)):  # warm up
            pid = await node.spawn(component)
            node.kill(pid)
            await node.wait(pid)
        for i in range(n):
            t0 = clock()
            pid = await node.spawn(component)
            t1 = clock()
            if i % 2:  # every other one also measures spawn + first call
                await node.call(pid, "ping")
                spawn_call.append(clock() - t0)
            spawn.append(t1 - t0)
            node.kill(pid)
            await node.wait(pid)
    return {"spawn": spawn, "spawn_call": spawn_call}


async def ping_until_answered(node: Node, name: str) -> int:
    """Call ``name`` with "ping" until the (restarted) child answers; the retries."""
    retries = 0
    while True:
        try:
            await node.call(name, "ping")
            return retries
        except (NoSuchProcess, CallFailed):
            retries += 1
            await trio.lowlevel.checkpoint()


async def measure_restarts(kind: str, strategy: str, component: Any, crashes: int, warmup: int) -> dict[str, Any]:
    import supervisors
    from supervisors import Child, Supervisor

    tree = Supervisor(
        "bench", strategy=strategy, max_restarts=10 ** 9, within=1.0,
        children=[Child(c, component, name=c, mailbox="keep") for c in CHILDREN],
    )
    others = [c for c in RESTARTED[strategy] if c != CRASHED]
    total: list[float] = []
    after_failure: list[float] = []
    group: list[float] = []
    retries = 0
    async with Node() as node:
        root = await supervisors.start(node, tree)
        for c in CHILDREN:
            await node.call(c, "ping")
        for i in range(warmup + crashes):
            t0 = clock()
            try:
                await node.call(CRASHED, "crash")
            except CallFailed:
                pass
            else:
                raise AssertionError("the crash call was answered")
            t_failed = clock()
            retries += await ping_until_answered(node, CRASHED)
            t_ok = clock()
            for other in others:
                retries += await ping_until_answered(node, other)
            t_group = clock()
            if i >= warmup:
                total.append(t_ok - t0)
                after_failure.append(t_ok - t_failed)
                group.append(t_group - t0)
        rows = await root.which_children()
        restarts = {r.id: r.restarts for r in rows}
        dead = node.dead_letter_count
        await root.stop()
    expected = warmup + crashes
    for c in CHILDREN:
        want = expected if c in RESTARTED[strategy] else 0
        if restarts[c] != want:
            raise AssertionError(f"{kind}/{strategy}: child {c} restarted {restarts[c]} times, expected {want}")
    return {
        "kind": kind, "strategy": strategy, "children": len(CHILDREN), "crashed": CRASHED,
        "restarted": list(RESTARTED[strategy]), "crashes": crashes, "warmup": warmup,
        "retries": retries, "dead_letters": dead, "restarts": restarts,
        "restart_us": R.latency_stats(total), "after_failure_us": R.latency_stats(after_failure),
        "group_us": R.latency_stats(group),
    }


async def run_all(size: dict[str, int]) -> dict[str, Any]:
    components = {kind: component_for(kind) for kind in KINDS}
    spawn_samples: dict[str, dict[str, list[float]]] = {k: {"spawn": [], "spawn_call": []} for k in KINDS}
    half = max(1, size["spawns"] // 2)

    async def spawn_floor() -> None:
        for kind in KINDS:
            gc.collect()
            got = await measure_spawn(components[kind], half)
            for key, values in got.items():
                spawn_samples[kind][key].extend(values)

    await spawn_floor()
    rows = []
    for kind in KINDS:
        for strategy in STRATEGIES:
            gc.collect()
            rows.append(await measure_restarts(kind, strategy, components[kind], size["crashes"], size["warmup"]))
    await spawn_floor()

    spawn = {kind: {"spawn_us": R.latency_stats(s["spawn"]), "spawn_call_us": R.latency_stats(s["spawn_call"])}
             for kind, s in spawn_samples.items()}
    for row in rows:
        floor = spawn[row["kind"]]["spawn_us"]["p50"]
        r50 = row["restart_us"]["p50"] / floor
        r99 = row["restart_us"]["p99"] / floor
        row.update(
            p50_us=row["restart_us"]["p50"], p99_us=row["restart_us"]["p99"], spawn_p50_us=floor,
            ratio_p50=r50, ratio_p99=r99,
            # informational: every restarted child answering, against one spawn per child
            group_p50_vs_spawns=row["group_us"]["p50"] / (floor * len(row["restarted"])),
            status_p50="PASS" if r50 <= TARGET_P50 else "MISS",
            status_p99="PASS" if r99 < TARGET_P99 else "MISS",
        )
    return {"spawn": spawn, "rows": rows}


# -- profile -------------------------------------------------------------------------


def profile(path: str, size: dict[str, int]) -> dict[str, str]:
    """cProfile the one_for_one rows; print the top functions; write pstats files."""
    import cProfile
    import io
    import pstats

    out = {}
    for kind in KINDS:
        component = component_for(kind)
        prof = cProfile.Profile()
        prof.enable()
        trio.run(measure_restarts, kind, "one_for_one", component, size["crashes"], size["warmup"])
        prof.disable()
        target = f"{path}.{kind}"
        prof.dump_stats(target)
        out[kind] = target
        for sort in ("tottime", "cumulative"):
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(sort).print_stats(30)
            print(f"\n== profile: {kind} child, one_for_one, {size['warmup'] + size['crashes']} crashes, by {sort} ==")
            print(buf.getvalue())
    return out


# -- report --------------------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    lines = [
        f"restart latency, crash -> restarted child answers ({report['size']}, "
        f"{report['rows'][0]['crashes']} crashes per row, pinned={report['pin']['pinned']} cpu={report['pin']['cpu']}, "
        f"load average {report['load_average']['before']})",
        "",
        "spawn floor (same component, same run):",
    ]
    for kind, s in report["spawn"].items():
        lines.append(f"  {kind:<7} spawn p50 {s['spawn_us']['p50']:8.1f} µs   p99 {s['spawn_us']['p99']:8.1f} µs"
                     f"   spawn+first call p50 {s['spawn_call_us']['p50']:8.1f} µs")
    lines.append("")
    header = ["child", "strategy", "restarts", "p50 µs", "p99 µs", "after fail p50", "group p50", "group p99",
              "p50/spawn", "target", "p99/spawn", "target"]
    table = [header]
    for row in report["rows"]:
        table.append([
            row["kind"], row["strategy"], str(len(row["restarted"])),
            f"{row['p50_us']:.1f}", f"{row['p99_us']:.1f}",
            f"{row['after_failure_us']['p50']:.1f}",
            f"{row['group_us']['p50']:.1f}", f"{row['group_us']['p99']:.1f}",
            f"{row['ratio_p50']:.2f}x", f"<=3x {row['status_p50']}",
            f"{row['ratio_p99']:.2f}x", f"<10x {row['status_p99']}",
        ])
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for j, r in enumerate(table):
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=False))))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    lines.append("restarts = children restarted per crash; group = until every restarted child answered;")
    lines.append("after fail = from the crash call's CallFailed to the answer.")
    lines.append("The targets are for a restart of one child (the one_for_one rows). Rows restarting N children")
    lines.append("include N spawns and are held to them against one spawn all the same; the JSON's")
    lines.append("group_p50_vs_spawns divides by N.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.restart", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON")
    parser.add_argument("--profile", metavar="FILE", help="also cProfile the one_for_one rows (pstats to FILE.<kind>)")
    parser.add_argument("--cpu", default="auto",
                        help="CPU to pin to: a number, 'auto' (CPU 0 unless another is clearly idler now; default) or 'none'")
    args = parser.parse_args(argv)

    size = SIZES[args.size]
    pin = {"requested": "none", "pinned": False} if args.cpu == "none" else R.pin_to_one_core(args.cpu)
    load_before = R.load_average()
    started = clock()
    result = trio.run(run_all, size)
    report: dict[str, Any] = {
        "benchmark": "restart",
        "size": args.size,
        "command": "python -m benchmarks.restart " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": R.machine_info(),
        "pin": pin,
        "load_average": {"before": load_before, "after": R.load_average()},
        "targets": {"p50_vs_spawn_p50": f"<= {TARGET_P50}x", "p99_vs_spawn_p50": f"< {TARGET_P99}x"},
        **result,
        "seconds": clock() - started,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(render(report), flush=True)
    if args.profile:
        report["profile"] = profile(args.profile, size)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
