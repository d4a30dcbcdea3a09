"""What the capability check and the limit bookkeeping cost: send throughput with and
without them, measured in one run.

A Python process casts to an echo guest, which sends every message back to it: each
round is one ``send`` host call by the guest (the capability check) and one guest call
(the fuel and deadline bookkeeping). The variants differ only in what is checked:

* ``unchecked``: the guest may send anywhere (``send=["*"]``, a short-circuit) and has no
  fuel or deadline, so no per-call bookkeeping at all;
* ``checked``: the guest may send to exactly the sink (its pid, the address the echo
  answers), and has the default limits (fuel and deadline armed and read on every call);
* ``pattern``: the same, with the grant last after three patterns that do not match.

Target (isolation issue): the checks cost at most 10 % of the throughput.

It also times a guest that allocates without end (crasher's ``alloc``: ``memory.grow``
1 MiB at a time until it fails, then a trap) with ``Limits.memory`` at 64, 128 and
256 MiB: how long from the call to its failure. Target (hardening issue): linear in the
limit (256 MiB takes at most 2.5x as long as 128 MiB) and well under a second at 256 MiB.

Run: ``python -m benchmarks.isolation [--size smoke|full] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import trio

from . import _report

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"smoke": {"messages": 2_000, "repeats": 2}, "full": {"messages": 20_000, "repeats": 5}}


async def one_run(variant: str, messages: int) -> float:
    from airssys_actors import Actor, Capabilities, Component, Kind, Limits, Node

    done = trio.Event()

    class Sink(Actor):
        """Casts ``messages`` numbers to the echo when called; counts them coming back."""

        async def init(self, ctx: Any, args: Any) -> None:
            self.left = messages

        async def handle(self, ctx: Any, msg: Any) -> Any:
            if msg.kind == Kind.CALL:
                for i in range(messages):
                    await ctx.send("echo", i)  # the echo sends each back to its sender
                return "sent"
            self.left -= 1
            if self.left == 0:
                done.set()
            return None

    echo = Component.load(ROOT / "examples" / "components" / "echo.wat")
    async with Node(mailbox_capacity=1000) as node:
        sink = str(await node.spawn(Sink, name="sinks/1", mailbox_capacity=messages + 10))
        # The echo answers the sender's address, which is the sink's pid text.
        grants = {
            "unchecked": (Capabilities(send=["*"]), Limits(fuel=None, deadline=None)),
            "checked": (Capabilities(send=[sink]), Limits()),
            "pattern": (Capabilities(send=["logs/*", "metrics/*", "sinks/*", sink]), Limits()),
        }
        caps, limits = grants[variant]
        await node.spawn(echo, name="echo", capabilities=caps, limits=limits)
        started = trio.current_time()
        await node.call("sinks/1", "go", timeout=120)
        with trio.fail_after(120):
            await done.wait()
        return messages / (trio.current_time() - started)


GROWTH_LIMITS_MIB = (64, 128, 256)


async def growth_run(limit_mib: int) -> float:
    """Seconds from ``alloc`` to the failed call, for a crasher limited to ``limit_mib``."""
    from airssys_actors import CallFailed, Limits, Node

    async with Node() as node:
        pid = await node.spawn(ROOT / "examples" / "components" / "crasher.wat",
                               limits=Limits(memory=limit_mib << 20))
        started = trio.current_time()
        try:
            await node.call(pid, "alloc", timeout=120)
        except CallFailed:
            pass
        return trio.current_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.isolation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON")
    parser.add_argument("--cpu", default="auto", help="CPU to pin to, 'auto' or 'none'")
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    pin = _report.pin_to_one_core(args.cpu) if args.cpu != "none" else {"pinned": False}
    trio.run(one_run, "unchecked", 500)  # warm up: compile cache, code paths
    rates: dict[str, list[float]] = {v: [] for v in ("unchecked", "checked", "pattern")}
    for _ in range(size["repeats"]):
        for variant in rates:  # interleaved, so machine noise hits every variant alike
            rates[variant].append(trio.run(one_run, variant, size["messages"]))
    medians = {v: statistics.median(r) for v, r in rates.items()}
    base = medians["unchecked"]
    rows, targets = [], []
    for variant, rate in medians.items():
        ratio = rate / base
        ok = None if variant == "unchecked" else ratio >= 0.9
        rows.append([variant, _report.fmt_rate(rate), f"{ratio:.3f}", "-" if ok is None else ("PASS" if ok else "MISS")])
        if ok is not None:
            targets.append(_report.target("isolation", f"send throughput, {variant} vs unchecked",
                                          f"{ratio:.1%}", ">= 90 % (checks cost <= 10 %)", ok))
    _report.print_table(f"capability check and limit bookkeeping ({args.size}, {size['messages']} messages, "
                        f"median of {size['repeats']})", ["variant", "round trips/s", "vs unchecked", "target"],
                        rows, right=(1, 2))
    growth: dict[int, list[float]] = {mib: [] for mib in GROWTH_LIMITS_MIB}
    trio.run(growth_run, 16)  # warm up
    for _ in range(size["repeats"] + 1):
        for mib in GROWTH_LIMITS_MIB:
            growth[mib].append(trio.run(growth_run, mib))
    grown = {mib: statistics.median(t) for mib, t in growth.items()}
    ratio = grown[256] / grown[128]
    linear = ratio <= 2.5 and grown[256] < 0.5
    _report.print_table(f"a guest that allocates without end, to its Limits.memory (median of {size['repeats'] + 1})",
                        ["limit", "ms to memory.grow failing"],
                        [[f"{mib} MiB", f"{grown[mib] * 1000:.1f}"] for mib in GROWTH_LIMITS_MIB], right=(1,))
    targets.append(_report.target("isolation", "allocation to the limit: 256 MiB vs 128 MiB, and at 256 MiB",
                                  f"{ratio:.2f}x, {grown[256] * 1000:.0f} ms", "<= 2.5x and < 500 ms", linear))
    report = _report.base_report("isolation", "benchmarks.isolation", argv, args.size, pin)
    report.update({"sizes": size, "rates": rates, "medians": medians, "targets": targets,
                   "growth_seconds": {str(k): v for k, v in growth.items()},
                   "growth_medians": {str(k): v for k, v in grown.items()}})
    _report.write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
