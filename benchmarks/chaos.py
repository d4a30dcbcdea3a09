"""Chaos: a supervised tree under steady load while faults are injected, against the same
load without faults, in one run.

    python -m benchmarks.chaos [--size smoke|full] [--json FILE] [--cpu N|auto|none]
                               [--workers N] [--rate R] [--faults F] [--duration D] [--seed S]

The tree: ``workers`` echo guests (``examples/components/echo.wat``) named
``workers/<i>``, in groups of ``group`` under one_for_one sub-supervisors under a
one_for_one root, every supervisor with a high intensity limit (10^6 restarts per
second), every worker with a kept mailbox (``mailbox="keep"``, the default), as a real
tree would be.

The load: ``callers`` tasks share one open-loop schedule of ``rate`` calls per second
(message i is due at ``t0 + i / rate``; a caller that is behind sends at once; a caller
never sends a message after the window ends, so an overloaded generator shows up as
"sent" below "offered"). Each call goes to a worker picked by a seeded random sequence,
carries ``[tag, i, 16 bytes]`` and must come back equal, or fail with a typed error.

Each run (first without faults, then with them) lasts ``duration`` seconds of steady
load followed by ``recovery`` seconds of the same load. In the faulty run the chaos
scheduler (``airssys_actors.faults.ChaosScheduler``, default fault mix, seeded) injects
``faults`` faults per second into ``workers/*`` during the steady part only. When the
steady part ends (faults stop), a sweep calls every worker until each has answered: the
time until the last one answers is the time to recover (in the no-fault run the same
sweep is the floor). Every worker exit during the faulty run also starts a probe that
calls that worker until it answers again: crash -> answer latency.

Accounting, per load message (exactly one of):
  answered   the reply came back, equal to the request;
  failed     the call raised a typed error that says what happened to the message:
             CallFailed (the worker exited before replying: it died on this message, or
             the message was dropped by a fault; reason kinds are counted) or
             NoSuchProcess (it was never delivered);
  dead-lettered only
             the call timed out (CallTimeout) but the message is in the dead letters
             (handled late, or died on) - counted once, here, not as an error;
  lost       anything else: a timeout with no trace, a wrong reply, an unexpected error.
  lost = sent - (answered + failed + dead-lettered only); the target is 0.
Dead letters are cross-checked by the [tag, i] they carry: every failed call that a
worker died on is a dead letter, and no answered message may be one.

Targets (one core; reported, never asserted): lost = 0; answered throughput under
faults >= 80 % of the no-fault run; p99 call latency under faults < 5x the no-fault
p99; every worker answering within 1 s after the faults stop. The offered rate is a
precondition: when this machine cannot send ``rate`` calls per second the report says
what it achieved (offered vs sent), and the latencies are those of a saturated node.

The chart (``FILE.png`` next to ``--json FILE``): answered throughput and latency per
0.25 s bucket for both runs with the fault instants marked, and the restart latency
distribution.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import random
import sys
import time
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from . import _report as R
import trio.lowlevel

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "examples" / "components" / "echo.wat"
PAD = bytes(16)

SIZES: dict[str, dict[str, Any]] = {
    "full": {"workers": 1000, "group": 50, "rate": 20_000, "faults": 100, "duration": 30.0,
             "recovery": 2.0, "warmup": 2.0, "callers": 32, "sweepers": 16, "calibration": 100},
    "smoke": {"workers": 20, "group": 10, "rate": 500, "faults": 10, "duration": 3.0,
              "recovery": 1.0, "warmup": 0.5, "callers": 8, "sweepers": 4, "calibration": 10},
}
BUCKET = 0.25
CALL_TIMEOUT = 2.0
SWEEP_LIMIT = 10.0
"""Seconds after the faults stop after which a worker that never answered is reported
as not recovered."""
TARGET_THROUGHPUT = 0.80
TARGET_P99 = 5.0
TARGET_RECOVERY = 1.0
CONTENDED = 0.05
"""Run-queue wait fraction (time runnable but not running) above which a run is flagged."""

# Outcome codes of a load message.
UNSENT, ANSWERED, FAILED, NOPROC, TIMEOUT, WRONG, UNEXPECTED = range(7)
OUTCOMES = ("unsent", "answered", "call_failed", "no_such_process", "timeout", "wrong_reply", "unexpected")

# Message tags: [tag, i, PAD]. Load messages carry the run's tag; sweeps and probes others.
TAGS = {"warmup": 1, "baseline": 2, "faults": 3}
SWEEP_TAG = 10
PROBE_TAG = 20


def build_tree(echo: Any, workers: int, group: int) -> Any:
    from supervisors import Child, Supervisor

    groups = []
    for g, start in enumerate(range(0, workers, group)):
        children = [Child(f"w{i}", echo, name=f"workers/{i}") for i in range(start, min(workers, start + group))]
        groups.append(Supervisor(f"group{g}", strategy="one_for_one", max_restarts=10 ** 6, within=1.0,
                                 children=children))
    return Supervisor("chaos", strategy="one_for_one", max_restarts=10 ** 6, within=1.0, children=groups)


class Bench:
    """One node, one tree, the event recorder and the probes; runs the phases."""

    def __init__(self, node: Any, cfg: dict[str, Any], progress: R.Progress) -> None:
        self.node = node
        self.cfg = cfg
        self.progress = progress
        self.names = [f"workers/{i}" for i in range(cfg["workers"])]
        self.phase = "setup"
        self.events: list[tuple[str, Any]] = []
        # Probes: crash -> answer, per outage of a worker.
        self.probing: set[str] = set()
        self.probe_samples: list[float] = []
        self.probe_calls = Counter[str]()
        self.probe_unrecovered = 0
        self.nursery: trio.Nursery | None = None

    # -- events and probes --------------------------------------------------------------

    async def record_events(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with self.node.subscribe({"exit", "restart", "escalation", "give_up"}, maxlen=1_000_000) as sub:
            task_status.started()
            async for event in sub:
                self.events.append((self.phase, event))
                if (event.kind == "exit" and self.phase == "faults" and event.name
                        and event.name.startswith("workers/") and event.name not in self.probing):
                    self.probing.add(event.name)
                    assert self.nursery is not None
                    self.nursery.start_soon(self.probe, event.name, event.time)

    async def probe(self, name: str, exited_at: float) -> None:
        """Call ``name`` until it answers; crash (exit event) -> answer, wall clock."""
        from airssys_actors import ActorError

        node = self.node
        deadline = trio.current_time() + SWEEP_LIMIT + self.cfg["duration"]
        i = 0
        try:
            while True:
                i += 1
                value = [PROBE_TAG, i, PAD]
                try:
                    reply = await node.call(name, value, timeout=CALL_TIMEOUT)
                except ActorError as exc:
                    self.probe_calls[type(exc).__name__] += 1
                    if trio.current_time() > deadline:
                        self.probe_unrecovered += 1
                        return
                    await trio.sleep(0 if i < 5 else 0.001)
                    continue
                self.probe_calls["answered" if reply == value else "wrong_reply"] += 1
                self.probe_samples.append(time.time() - exited_at)
                return
        finally:
            self.probing.discard(name)

    # -- one run ------------------------------------------------------------------------

    async def run(self, tag: str, duration: float, recovery: float, faults: float) -> dict[str, Any]:
        from airssys_actors import CallFailed, CallTimeout, NoSuchProcess
        from airssys_actors.faults import ChaosScheduler

        cfg = self.cfg
        node = self.node
        names = self.names
        rate = float(cfg["rate"])
        period = 1.0 / rate
        total = int(rate * (duration + recovery))
        rnd = random.Random(cfg["seed"] * 100 + TAGS[tag])
        n_workers = len(names)
        targets = array("i", (rnd.randrange(n_workers) for _ in range(total)))
        sent_at = array("d", bytes(8 * total))
        done_at = array("d", bytes(8 * total))
        outcome = array("b", bytes(total))
        fail_kinds: Counter[str] = Counter()
        unexpected: list[str] = []
        code = TAGS[tag]
        now = trio.current_time
        slots = itertools.count()
        gc.collect()
        gc_pauses = GcPauses()
        gc.callbacks.append(gc_pauses)
        handle_before = handle_seconds(node)

        t0 = now() + 0.05
        t_stop = t0 + duration
        t_end = t_stop + recovery
        sweep: dict[str, Any] = {}
        faults_stopped = trio.Event()
        scheduler = (ChaosScheduler(node, "workers/*", faults, seed=cfg["seed"], mix=cfg.get("mix"))
                     if faults > 0 else None)
        chaos_window: list[float] = []
        step_seconds: list[float] = []

        async def caller() -> None:
            while True:
                i = next(slots)
                due = t0 + i * period
                if due >= t_end:
                    return
                t = now()
                if t >= t_end:
                    return  # behind schedule past the window: left unsent
                if due > t:
                    await trio.sleep_until(due)
                value = [code, i, PAD]
                ts = now()
                try:
                    reply = await node.call(names[targets[i]], value, timeout=CALL_TIMEOUT)
                    result = ANSWERED if reply == value else WRONG
                except CallFailed as exc:
                    result = FAILED
                    fail_kinds[exc.reason.kind] += 1
                except NoSuchProcess:
                    result = NOPROC
                except CallTimeout:
                    result = TIMEOUT
                except Exception as exc:  # counted as lost, and shown
                    result = UNEXPECTED
                    if len(unexpected) < 20:
                        unexpected.append(repr(exc))
                done_at[i] = now()
                sent_at[i] = ts
                outcome[i] = result

        async def chaos() -> None:
            # ChaosScheduler.run(duration), with the time each step takes measured.
            assert scheduler is not None
            await trio.sleep_until(t0)
            chaos_window.append(now())
            step_period = 1.0 / scheduler.rate
            n = 0
            while now() - t0 < duration:
                t = time.perf_counter()
                scheduler.step()
                step_seconds.append(time.perf_counter() - t)
                n += 1
                await trio.sleep_until(min(t0 + n * step_period, t_stop))
            chaos_window.append(now())
            node.faults.clear()  # faults stop: disarm what was armed but has not fired
            faults_stopped.set()

        async def sweeper(order: Any, answered_at: list[float], counts: Counter[str], limit: float) -> None:
            from airssys_actors import ActorError

            for w in order:
                attempt = 0
                while True:
                    attempt += 1
                    value = [SWEEP_TAG + code, w, PAD]
                    try:
                        reply = await node.call(names[w], value, timeout=CALL_TIMEOUT)
                    except ActorError as exc:
                        counts[type(exc).__name__] += 1
                        if now() > limit:
                            break
                        await trio.sleep(0 if attempt < 5 else 0.001)
                        continue
                    counts["answered" if reply == value else "wrong_reply"] += 1
                    answered_at[w] = now()
                    break

        async def do_sweep() -> None:
            if scheduler is not None:
                await faults_stopped.wait()
            else:
                await trio.sleep_until(t_stop)
            start = now()
            answered_at = [math.nan] * n_workers
            counts: Counter[str] = Counter()
            order = iter(range(n_workers))
            async with trio.open_nursery() as nursery:
                for _ in range(cfg["sweepers"]):
                    nursery.start_soon(sweeper, order, answered_at, counts, start + SWEEP_LIMIT)
            got = [t - start for t in answered_at if not math.isnan(t)]
            sweep.update(
                started_after_steady_s=start - t_stop,
                workers=n_workers, answered=len(got), not_recovered=n_workers - len(got),
                all_answered_s=max(got) if len(got) == n_workers else math.inf,
                per_worker_ms=R.latency_stats(got, 1e3), calls=dict(counts),
            )

        async def ticker() -> None:
            while now() < t_end:
                await trio.sleep(BUCKET)
                elapsed = min(now(), t_end) - t0
                injected = len(scheduler.injections) if scheduler is not None else 0
                self.progress.update(elapsed, note=f"faults {injected}")

        self.phase = tag
        self.progress.phase(f"{tag}: {rate:,.0f} calls/s" + (f", {faults:g} faults/s" if faults else ""),
                            duration + recovery)
        with R.Contention() as contention:
            async with trio.open_nursery() as nursery:
                for _ in range(cfg["callers"]):
                    nursery.start_soon(caller)
                if scheduler is not None:
                    nursery.start_soon(chaos)
                if recovery > 0:
                    nursery.start_soon(do_sweep)
                nursery.start_soon(ticker)
        self.progress.update(duration + recovery, force=True)
        gc.callbacks.remove(gc_pauses)
        handle_after = handle_seconds(node)
        return {
            "tag": tag, "code": code, "t0": t0, "t_stop": t_stop, "t_end": t_end,
            "duration": duration, "recovery": recovery, "rate": rate, "faults_per_s": faults,
            "sent_at": sent_at, "done_at": done_at, "outcome": outcome, "targets": targets,
            "fail_kinds": fail_kinds, "unexpected": unexpected, "sweep": sweep,
            "scheduler": scheduler, "chaos_window": chaos_window, "step_seconds": step_seconds,
            "contention": contention.result, "gc": gc_pauses.summary(),
            "handle_seconds": {k: handle_after.get(k, 0.0) - handle_before.get(k, 0.0) for k in handle_after},
        }


class GcPauses:
    """Collections of the cyclic GC and their pauses while installed."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._start)

    def summary(self) -> dict[str, Any]:
        return {f"gen{g}": {"count": len(v), "total_ms": sum(v) * 1e3, "max_ms": max(v, default=0.0) * 1e3}
                for g, v in self.pauses.items()}


def handle_seconds(node: Any) -> dict[str, float]:
    """Seconds live processes spent in their handlers, by component (a restarted worker
    starts again from 0, so under faults this undercounts the workers)."""
    out: Counter[str] = Counter()
    for info in node.processes():
        out[str(info.get("component") or "?")] += info.get("handle_seconds", 0.0)
    return dict(out)


# -- analysis ---------------------------------------------------------------------------


def analyse_run(raw: dict[str, Any], dead: dict[tuple[int, int], list[str]]) -> dict[str, Any]:
    """Accounting, throughput, latency and the timeline of one run."""
    t0, t_stop = raw["t0"], raw["t_stop"]
    duration, recovery = raw["duration"], raw["recovery"]
    sent_at, done_at, outcome = raw["sent_at"], raw["done_at"], raw["outcome"]
    code = raw["code"]
    total = len(outcome)
    counts = Counter(outcome)
    sent = total - counts[UNSENT]
    answered = counts[ANSWERED]
    failed = counts[FAILED] + counts[NOPROC]
    dl_by_outcome: Counter[str] = Counter()
    dl_reasons: Counter[str] = Counter()
    timeout_dead = 0
    failed_without_dl = 0
    for i in range(total):
        o = outcome[i]
        reasons = dead.get((code, i))
        if reasons:
            dl_by_outcome[OUTCOMES[o]] += 1
            for r in reasons:
                dl_reasons[r.split(":")[0]] += 1
            if o == TIMEOUT:
                timeout_dead += 1
        elif o == FAILED:
            failed_without_dl += 1
    lost = sent - (answered + failed + timeout_dead)

    steady_lat: list[float] = []
    steady_lag: list[float] = []
    steady_sent = steady_answered = steady_errors = 0
    tail_sent = tail_answered = 0
    nb = math.ceil((duration + recovery) / BUCKET)
    b_answered = [0] * nb
    b_errors = [0] * nb
    b_lat: list[list[float]] = [[] for _ in range(nb)]
    period = 1.0 / raw["rate"]
    for i in range(total):
        o = outcome[i]
        if o == UNSENT:
            continue
        s, d = sent_at[i], done_at[i]
        b = min(nb - 1, max(0, int((d - t0) / BUCKET)))
        if o == ANSWERED:
            b_answered[b] += 1
            b_lat[b].append(d - s)
        else:
            b_errors[b] += 1
        if s < t_stop:
            steady_sent += 1
            if o == ANSWERED:
                steady_lat.append(d - s)
                steady_lag.append(d - (t0 + i * period))
                if d < t_stop:
                    steady_answered += 1
            elif d < t_stop:
                steady_errors += 1
        else:
            tail_sent += 1
            if o == ANSWERED:
                tail_answered += 1
    steady = {
        "offered_per_s": raw["rate"],
        "sent_per_s": steady_sent / duration,
        "answered_per_s": steady_answered / duration,
        "errors_per_s": steady_errors / duration,
        "latency_us": R.latency_stats(steady_lat),
        "schedule_lag_us": R.latency_stats(steady_lag),
    }
    timeline = {
        "bucket_s": BUCKET,
        "answered_per_s": [c / BUCKET for c in b_answered],
        "errors_per_s": [c / BUCKET for c in b_errors],
        "p50_us": [R.percentile(sorted(v), 0.5) * 1e6 if v else None for v in b_lat],
        "p99_us": [R.percentile(sorted(v), 0.99) * 1e6 if v else None for v in b_lat],
    }
    return {
        "accounting": {
            "scheduled": total, "sent": sent, "unsent_generator_behind": counts[UNSENT],
            "answered": answered,
            "failed": failed, "failed_call_failed": counts[FAILED], "failed_no_such_process": counts[NOPROC],
            "failed_by_reason": dict(raw["fail_kinds"]),
            "timed_out": counts[TIMEOUT], "timed_out_dead_lettered": timeout_dead,
            "wrong_reply": counts[WRONG], "unexpected_errors": counts[UNEXPECTED],
            "unexpected_examples": raw["unexpected"],
            "dead_lettered": sum(dl_by_outcome.values()),
            "dead_lettered_by_outcome": dict(dl_by_outcome),
            "dead_letter_reasons": dict(dl_reasons),
            "dead_lettered_but_answered": dl_by_outcome.get("answered", 0),
            "failed_without_dead_letter": failed_without_dl,
            "lost": lost,
        },
        "steady": steady,
        "recovery_window": {"seconds": recovery, "sent_per_s": tail_sent / recovery if recovery else 0.0,
                            "answered_per_s": tail_answered / recovery if recovery else 0.0},
        "sweep": raw["sweep"],
        "timeline": timeline,
        "contention": raw["contention"],
        "gc": raw["gc"],
        "handle_seconds": raw["handle_seconds"],
    }


KIND_ORDER = ("none", "kill", "trap", "fuel", "deadline", "memory", "init", "drop", "delay")


async def fault_cost(node: Any, name: str, n: int, progress: R.Progress) -> dict[str, Any]:
    """What one fault of each kind costs with nothing else running: inject it into one
    worker of the tree, call that worker until it answers again (the call it dies on
    fails, its supervisor restarts it). CPU time of this process per iteration (the
    delay here is 1 ms, not the chaos run's 50 ms: waiting costs no CPU but the engine's
    epoch ticker thread's), and the wall time p50."""
    from airssys_actors import ActorError

    out: dict[str, Any] = {}
    for j, kind in enumerate(KIND_ORDER):
        progress.update(j, note=kind, force=True)
        wall: list[float] = []
        gc.collect()
        cpu0 = time.process_time()
        for i in range(n):
            t = time.perf_counter()
            if kind != "none":
                node.faults.inject(name, kind, seconds=0.001)
            while True:
                try:
                    await node.call(name, [PROBE_TAG + 1, i, PAD], timeout=CALL_TIMEOUT)
                    break
                except ActorError:
                    await trio.lowlevel.checkpoint()
            wall.append(time.perf_counter() - t)
        cpu = (time.process_time() - cpu0) / n
        out[kind] = {"cpu_us": cpu * 1e6, "wall_p50_us": R.percentile(sorted(wall), 0.5) * 1e6, "n": n}
    base = out["none"]["cpu_us"]
    for kind in KIND_ORDER[1:]:
        out[kind]["extra_cpu_us"] = out[kind]["cpu_us"] - base
    return out


def restart_latencies(events: list[tuple[str, Any]]) -> dict[str, Any]:
    """exit -> restart of the same child, from the event stream (wall clock)."""
    exits: dict[str, float] = {}
    samples: list[float] = []
    exit_kinds: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for phase, e in events:
        if phase not in ("faults",):
            if e.kind in ("exit", "restart", "escalation", "give_up"):
                counts[f"{phase}:{e.kind}"] += 1
            continue
        if e.kind == "exit" and e.name and e.name.startswith("workers/"):
            if "init failed" in (e.reason or ""):
                counts["faults:init_failure"] += 1  # a restart attempt that failed; retried
                continue
            counts["faults:exit"] += 1
            exits[str(e.pid)] = e.time
            exit_kinds[(e.reason or "?").split(":")[0]] += 1
            continue
        counts[f"{phase}:{e.kind}"] += 1
        if e.kind == "restart":
            old = e.data.get("old_pid")
            if old in exits:
                samples.append(e.time - exits.pop(old))
    return {"samples_s": samples, "exit_reasons": dict(exit_kinds), "event_counts": dict(counts),
            "unmatched_exits": len(exits)}


async def run_all(cfg: dict[str, Any], progress: R.Progress) -> dict[str, Any]:
    import supervisors
    from airssys_actors import Component, Node

    echo = Component.load(ECHO)
    out: dict[str, Any] = {}
    async with Node(dead_letter_capacity=2_000_000, dead_letter_bytes=None, shutdown_timeout=5.0) as node:
        bench = Bench(node, cfg, progress)
        async with trio.open_nursery() as nursery:
            bench.nursery = nursery
            await nursery.start(bench.record_events)
            progress.phase(f"start tree: {cfg['workers']} workers", 1)
            t = time.perf_counter()
            root = await supervisors.start(node, build_tree(echo, cfg["workers"], cfg["group"]))
            out["startup_s"] = time.perf_counter() - t
            if cfg.get("gc_freeze"):
                gc.collect()
                gc.freeze()  # the tree's long-lived objects leave the cyclic GC's generations
                out["gc_frozen_objects"] = gc.get_freeze_count()
            raws = {}
            if cfg["warmup"] > 0:
                raws["warmup"] = await bench.run("warmup", cfg["warmup"], 0.0, 0.0)
            raws["baseline"] = await bench.run("baseline", cfg["duration"], cfg["recovery"], 0.0)
            raws["faults"] = await bench.run("faults", cfg["duration"], cfg["recovery"], float(cfg["faults"]))
            # Let probes still running finish (they are bounded).
            with trio.move_on_after(SWEEP_LIMIT):
                while bench.probing:
                    await trio.sleep(0.01)
            bench.phase = "calibration"
            progress.phase("fault cost, unloaded", len(KIND_ORDER))
            out["fault_cost"] = await fault_cost(node, bench.names[0], cfg["calibration"], progress)
            bench.phase = "after"
            progress.phase("analysis", 1)
            out["root_alive"] = root.alive
            restarts_by_tree = 0
            children_alive = 0
            for row in await root.which_children():
                if row.type == "supervisor" and row.pid is not None:
                    sub = await root.child(row.id)
                    for w in await sub.which_children():
                        restarts_by_tree += w.restarts
                        children_alive += w.pid is not None
            out["tree"] = {"supervisor_restarts": sum(r.restarts for r in await root.which_children()),
                           "worker_restarts": restarts_by_tree, "workers_running": children_alive}
            out["dead_letters_total"] = node.dead_letter_count
            letters = node.dead_letters()
            out["dead_letters_kept"] = len(letters)
            nursery.cancel_scope.cancel()
        dead: dict[tuple[int, int], list[str]] = {}
        other: Counter[str] = Counter()
        for letter in letters:
            value = letter.value
            if isinstance(value, list) and len(value) == 3 and value[2] == PAD and isinstance(value[0], int):
                dead.setdefault((value[0], value[1]), []).append(letter.reason)
                if value[0] >= SWEEP_TAG:
                    other["sweep" if value[0] < PROBE_TAG else "probe"] += 1
            else:
                other[letter.reason.split(":")[0]] += 1
        out["dead_letters_other"] = dict(other)
        out["runs"] = {tag: analyse_run(raw, dead) for tag, raw in raws.items()}
        sched = raws["faults"]["scheduler"]
        t0 = raws["faults"]["t0"]
        out["injections"] = {
            "by_kind": dict(sched.counts), "total": len(sched.injections), "skipped": sched.skipped,
            "rate_achieved_per_s": len(sched.injections) / cfg["duration"],
            "step_us": R.latency_stats(raws["faults"]["step_seconds"]),
            "injector_cpu_share": sum(raws["faults"]["step_seconds"]) / cfg["duration"],
            "node_faults_injected": dict(node.faults.injected),
            "instants": [[round(i.time - t0, 4), i.kind] for i in sched.injections],
        }
        out["restarts"] = restart_latencies(bench.events)
        out["probes"] = {"samples_s": bench.probe_samples, "calls": dict(bench.probe_calls),
                         "unrecovered": bench.probe_unrecovered}
    return out


# -- report -----------------------------------------------------------------------------


def build_report(cfg: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    base = result["runs"]["baseline"]
    chaos = result["runs"]["faults"]
    restarts = result["restarts"]
    events = restarts["event_counts"]
    restart_lat = R.latency_stats(restarts["samples_s"])
    crash_answer = R.latency_stats(result["probes"]["samples_s"])
    base_rate = base["steady"]["answered_per_s"]
    thr_ratio = chaos["steady"]["answered_per_s"] / base_rate if base_rate else math.nan
    p99_ratio = chaos["steady"]["latency_us"]["p99"] / base["steady"]["latency_us"]["p99"]
    recovery = chaos["sweep"].get("all_answered_s", math.inf)
    sweep_floor = base["sweep"].get("all_answered_s", math.inf)
    lost = base["accounting"]["lost"] + chaos["accounting"]["lost"]
    sent_ratio = base["steady"]["sent_per_s"] / base["steady"]["offered_per_s"]
    escalations = events.get("faults:escalation", 0) + events.get("faults:give_up", 0)
    # Where the time goes: CPU seconds this process used in each run (both runs have the
    # same length, load and sweep). No-fault: CPU per answered call. Faulty: what is left
    # after its answered calls are paid at that price is the cost of the faults.
    saturated = sent_ratio < 0.99

    def cpu_seconds(run: dict[str, Any]) -> float:
        c = run["contention"]
        return (c.get("cpu_share") or math.nan) * (c.get("wall_seconds") or math.nan)

    cpu_per_call = cpu_seconds(base) / base["accounting"]["answered"]
    injected = result["injections"]["total"]
    per_fault = ((cpu_seconds(chaos) - chaos["accounting"]["answered"] * cpu_per_call) / injected * 1e6
                 if injected else math.nan)
    inj = result["injections"]
    cost = result.get("fault_cost", {})
    by_kind = inj["by_kind"]
    unloaded = (sum(cost[k]["extra_cpu_us"] * n for k, n in by_kind.items() if k in cost) / max(1, sum(by_kind.values()))
                if cost else math.nan)
    wall = base["contention"].get("wall_seconds") or math.nan
    time_goes = {
        "saturated": saturated,
        "baseline_guest_handle_share": base["handle_seconds"].get("echo", 0.0) / wall,
        "cpu_us_per_answered_call": cpu_per_call * 1e6,
        "cpu_seconds": {"baseline": cpu_seconds(base), "faults": cpu_seconds(chaos)},
        "effective_cpu_us_per_fault": per_fault,
        "injector_us_per_fault": inj["step_us"]["mean"],
        "unloaded_fault_cost_us": unloaded,
        "unexplained_us_per_fault": per_fault - inj["step_us"]["mean"] - unloaded,
        "gc_ms": {tag: sum(g["total_ms"] for g in result["runs"][tag]["gc"].values()) for tag in ("baseline", "faults")},
        "gc_max_pause_ms": {tag: max(g["max_ms"] for g in result["runs"][tag]["gc"].values()) for tag in ("baseline", "faults")},
        "runqueue_wait_fraction": {tag: result["runs"][tag]["contention"].get("runqueue_wait_fraction")
                                   for tag in ("baseline", "faults")},
    }
    waits = [result["runs"][tag]["contention"].get("runqueue_wait_fraction") for tag in ("baseline", "faults")]
    contended = any(w is not None and w > CONTENDED for w in waits)
    name = "chaos"
    targets = [
        R.target(name, "offered load sent (no-fault run)",
                 f"{base['steady']['sent_per_s']:,.0f}/s of {cfg['rate']:,}/s offered ({sent_ratio:.0%})",
                 ">= 99% of offered (precondition)", sent_ratio >= 0.99, key="offered"),
        R.target(name, "messages lost (both runs)", f"{lost}", "= 0", lost == 0, key="lost"),
        R.target(name, "answered throughput under faults", f"{chaos['steady']['answered_per_s']:,.0f}/s vs "
                 f"{base['steady']['answered_per_s']:,.0f}/s = {thr_ratio:.1%}", ">= 80% of no-fault",
                 thr_ratio >= TARGET_THROUGHPUT, key="throughput"),
        R.target(name, "p99 call latency under faults", f"{R.fmt_us(chaos['steady']['latency_us']['p99'])} vs "
                 f"{R.fmt_us(base['steady']['latency_us']['p99'])} = {p99_ratio:.2f}x", "< 5x no-fault p99",
                 p99_ratio < TARGET_P99, key="p99"),
        R.target(name, "every worker answers after faults stop",
                 f"{recovery:.3f} s (no-fault sweep {sweep_floor:.3f} s)", "<= 1 s",
                 recovery <= TARGET_RECOVERY, key="recovery"),
        R.target(name, "escalations / give-ups", f"{escalations}", "0 (informational)", None, key="escalations"),
    ]
    return {
        "config": cfg,
        "targets": targets,
        "summary": {
            "lost": lost, "throughput_ratio": thr_ratio, "p99_ratio": p99_ratio,
            "recovery_s": recovery, "recovery_floor_s": sweep_floor,
            "restart_latency_us": restart_lat, "crash_to_answer_us": crash_answer,
            "restarts": events.get("faults:restart", 0), "escalations": escalations,
            "exits": events.get("faults:exit", 0),
        },
        "where_the_time_goes": time_goes,
        "contended": contended,
        "contended_note": (f"another process took the pinned CPU for more than {CONTENDED:.0%} of a run's wall time "
                           "(run-queue wait): the throughput and latency comparisons are not trustworthy; run again "
                           "on a quiet machine") if contended else None,
        **{k: v for k, v in result.items() if k not in ("restarts", "probes")},
        "restarts": {k: v for k, v in restarts.items()},
        "probes": result["probes"],
    }


def tables(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]], set[int]]]:
    runs = report["runs"]
    cfg = report["config"]
    out = []
    rows = []
    for tag in ("baseline", "faults"):
        r = runs[tag]
        a, s = r["accounting"], r["steady"]
        rows.append([
            "no faults" if tag == "baseline" else f"{cfg['faults']} faults/s",
            f"{s['offered_per_s']:,.0f}", f"{s['sent_per_s']:,.0f}", f"{s['answered_per_s']:,.0f}",
            f"{s['errors_per_s']:,.1f}",
            R.fmt_us(s["latency_us"]["p50"]), R.fmt_us(s["latency_us"]["p99"]), R.fmt_us(s["latency_us"]["p999"]),
            R.fmt_us(s["schedule_lag_us"]["p99"]),
            f"{r['sweep'].get('all_answered_s', math.nan) * 1e3:,.0f} ms",
        ])
    out.append((f"chaos: {cfg['workers']} workers, {cfg['duration']:g} s per run (steady part), pinned cpu "
                f"{report['pin'].get('cpu')}",
                ["run", "offered/s", "sent/s", "answered/s", "errors/s", "p50", "p99", "p999",
                 "sched lag p99", "all answer after"], rows, set(range(1, 10))))
    rows = []
    for tag in ("baseline", "faults"):
        a = runs[tag]["accounting"]
        rows.append([tag, f"{a['sent']:,}", f"{a['answered']:,}", f"{a['failed']:,}",
                     f"{a['timed_out']:,}", f"{a['dead_lettered']:,}", f"{a['timed_out_dead_lettered']:,}",
                     f"{a['dead_lettered_but_answered']:,}", f"{a['unsent_generator_behind']:,}", f"{a['lost']:,}"])
    out.append(("messages (every load message counted once: lost = sent - answered - failed - timed out but dead-lettered)",
                ["run", "sent", "answered", "failed (typed)", "timed out", "dead-lettered",
                 "timed out + DL", "DL but answered", "unsent (behind)", "lost"], rows, set(range(1, 10))))
    s = report["summary"]
    inj = report["injections"]
    rows = [
        ["faults injected", f"{inj['total']:,} ({inj['rate_achieved_per_s']:.1f}/s), skipped {inj['skipped']}",
         ", ".join(f"{k} {v}" for k, v in sorted(inj["by_kind"].items()))],
        ["worker exits / restarts / escalations", f"{s['exits']:,} / {s['restarts']:,} / {s['escalations']}",
         "exit reasons: " + ", ".join(f"{k} {v}" for k, v in sorted(report["restarts"]["exit_reasons"].items()))],
        ["restart latency (exit -> restart event)",
         f"p50 {R.fmt_us(s['restart_latency_us']['p50'])}, p99 {R.fmt_us(s['restart_latency_us']['p99'])}",
         f"n={s['restart_latency_us']['n']}"],
        ["crash -> answer (probe)",
         f"p50 {R.fmt_us(s['crash_to_answer_us']['p50'])}, p99 {R.fmt_us(s['crash_to_answer_us']['p99'])}",
         f"n={s['crash_to_answer_us']['n']}, probe calls {report['probes']['calls']}"],
        ["failed calls by reason", ", ".join(f"{k} {v}" for k, v in
                                             sorted(runs["faults"]["accounting"]["failed_by_reason"].items())), ""],
        ["injector (ChaosScheduler.step)", f"{R.fmt_us(inj['step_us']['mean'])} per fault",
         f"{inj['injector_cpu_share']:.1%} of the core during the faulty run"],
        ["dead letters (node total)", f"{report['dead_letters_total']:,}",
         "not load messages: " + ", ".join(f"{k} {v}" for k, v in sorted(report["dead_letters_other"].items()))],
    ]
    out.append(("faults and restarts", ["figure", "value", "detail"], rows, set()))
    w = report["where_the_time_goes"]
    cost = report.get("fault_cost", {})
    rows = [
        ["no-fault run: CPU per answered call", R.fmt_us(w["cpu_us_per_answered_call"]),
         f"{w['baseline_guest_handle_share']:.0%} of the wall time inside the echo guests' handle "
         "(host layer + wasm); the rest is trio scheduling, call bookkeeping and the load generator"],
        ["faulty run: CPU per fault", R.fmt_us(w["effective_cpu_us_per_fault"]),
         f"CPU {w['cpu_seconds']['baseline']:.2f} s -> {w['cpu_seconds']['faults']:.2f} s per run, less the faulty "
         "run's answered calls at the no-fault price, per fault injected"
         + ("; saturated, so this CPU came out of the answered rate" if w["saturated"]
            else "; NOT saturated: idle costs (timers, wake-ups) dominate, read it as noise")],
        ["  of which: injector step", R.fmt_us(w["injector_us_per_fault"]), "ChaosScheduler.step: scans every registered name"],
        ["  of which: crash + restart, unloaded", R.fmt_us(w["unloaded_fault_cost_us"]),
         "mix-weighted: " + ", ".join(f"{k} {R.fmt_us(v['extra_cpu_us'])}" for k, v in cost.items() if k != "none")],
        ["  unexplained (scheduling, GC, contention)", R.fmt_us(w["unexplained_us_per_fault"]),
         f"GC {w['gc_ms']['baseline']:.0f} ms -> {w['gc_ms']['faults']:.0f} ms per run, max pause "
         f"{w['gc_max_pause_ms']['baseline']:.0f} -> {w['gc_max_pause_ms']['faults']:.0f} ms; run-queue wait "
         + " -> ".join("-" if v is None else f"{v:.1%}" for v in w["runqueue_wait_fraction"].values())],
    ]
    out.append(("where the time goes", ["figure", "value", "detail"], rows, set()))
    rows = [[t["figure"], t["measured"], t["target"], t["status"]] for t in report["targets"]]
    out.append(("targets (one core)", ["target", "measured", "goal", "status"], rows, set()))
    return out


def draw(report: dict[str, Any]) -> Any:
    def _draw(plt: Any) -> Any:
        runs = report["runs"]
        cfg = report["config"]
        fig, axes = plt.subplots(4, 1, figsize=(11, 10), gridspec_kw={"height_ratios": [1.2, 3, 3, 2.5]})
        ax_f, ax_t, ax_l, ax_r = axes
        colors = {"baseline": "tab:blue", "faults": "tab:red"}
        labels = {"baseline": "no faults", "faults": f"{cfg['faults']:g} faults/s"}
        dur, rec = cfg["duration"], cfg["recovery"]
        # Fault instants, one row per kind.
        inst = report["injections"]["instants"]
        kinds = sorted({k for _, k in inst})
        ax_f.eventplot([[t for t, k in inst if k == kind] for kind in kinds], colors="tab:red",
                       linelengths=0.8, linewidths=0.5)
        ax_f.set_yticks(range(len(kinds)))
        ax_f.set_yticklabels(kinds, fontsize=7)
        ax_f.set_title(f"fault instants in the faulty run ({report['injections']['total']:,} injected)")
        for ax in (ax_f, ax_t, ax_l):
            ax.set_xlim(0, dur + rec)
            ax.axvspan(dur, dur + rec, color="0.92", zorder=0)
        for tag in ("baseline", "faults"):
            tl = runs[tag]["timeline"]
            xs = [(i + 0.5) * tl["bucket_s"] for i in range(len(tl["answered_per_s"]))]
            ax_t.plot(xs, tl["answered_per_s"], color=colors[tag], label=f"answered/s, {labels[tag]}")
            if tag == "faults":
                ax_t.plot(xs, tl["errors_per_s"], color="tab:orange", lw=0.8, label="failed calls/s (faulty run)")
            p99 = [v / 1e3 if v is not None else math.nan for v in tl["p99_us"]]
            p50 = [v / 1e3 if v is not None else math.nan for v in tl["p50_us"]]
            ax_l.plot(xs, p99, color=colors[tag], label=f"p99, {labels[tag]}")
            ax_l.plot(xs, p50, color=colors[tag], lw=0.8, ls="--", label=f"p50, {labels[tag]}")
        ax_t.axhline(cfg["rate"], color="0.5", ls=":", lw=0.8, label=f"offered ({cfg['rate']:,}/s)")
        ax_t.set_ylim(0, cfg["rate"] * 1.1)
        ax_t.set_ylabel("calls/s")
        ax_t.set_title("answered calls per second, 0.25 s buckets (grey: recovery window, faults stopped)")
        ax_t.legend(fontsize=7, ncol=4, loc="lower center")
        ax_l.set_yscale("log")
        from matplotlib.ticker import FormatStrFormatter, NullFormatter

        ax_l.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax_l.yaxis.set_minor_formatter(NullFormatter())
        ax_l.set_ylabel("ms")
        ax_l.set_xlabel("seconds since the run started")
        ax_l.set_title("call latency (send -> answer) per 0.25 s bucket")
        ax_l.legend(fontsize=7, ncol=4, loc="upper left")
        restart = [v * 1e3 for v in report["restarts"]["samples_s"]]
        probe = [v * 1e3 for v in report["probes"]["samples_s"]]
        if restart or probe:
            lo = max(1e-3, min(restart + probe))
            hi = max(restart + probe)
            bins = [lo * (hi / lo) ** (k / 50) for k in range(51)] if hi > lo else 20
            if restart:
                ax_r.hist(restart, bins=bins, alpha=0.6, label=f"exit -> restart event (n={len(restart)})")
            if probe:
                ax_r.hist(probe, bins=bins, alpha=0.6, label=f"crash -> answers again (n={len(probe)})")
            ax_r.set_xscale("log")
        ax_r.set_xlabel("ms (log)")
        ax_r.set_ylabel("restarts")
        ax_r.set_title("restart latency under load (faulty run)")
        ax_r.legend(fontsize=7)
        return fig

    return _draw


def markdown(report: dict[str, Any]) -> str:
    parts = [f"**Warning:** {report['contended_note']}\n"] if report.get("contended") else []
    for title, headers, rows, right in tables(report):
        parts.append(f"{title}\n\n" + R.markdown_table(headers, rows, right))
    return "\n".join(parts)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON (and FILE.png next to it)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the tables as Markdown")
    parser.add_argument("--cpu", default="auto", help="CPU to pin to: a number, 'auto' (default: CPU 0 unless "
                                                        "another is clearly idler) or 'none'")
    parser.add_argument("--workers", type=int)
    parser.add_argument("--group", type=int, help="workers per sub-supervisor")
    parser.add_argument("--rate", type=int, help="offered calls per second")
    parser.add_argument("--faults", type=float, help="faults per second")
    parser.add_argument("--duration", type=float, help="seconds of steady load per run")
    parser.add_argument("--recovery", type=float, help="seconds of load after the faults stop")
    parser.add_argument("--callers", type=int, help="load generator tasks")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mix", help="fault mix, e.g. kill=1,trap=3 (default: the scheduler's DEFAULT_MIX)")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() once the tree is up (an experiment: full collections get cheaper)")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    cfg = dict(SIZES[args.size])
    for key in ("workers", "group", "rate", "faults", "duration", "recovery", "callers"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    cfg["seed"] = args.seed
    cfg["gc_freeze"] = args.gc_freeze
    if args.mix:
        cfg["mix"] = {k: float(v) for k, v in (item.split("=") for item in args.mix.split(","))}
    else:
        from airssys_actors.faults import DEFAULT_MIX

        cfg["mix"] = dict(DEFAULT_MIX)
    cfg["call_timeout_s"] = CALL_TIMEOUT
    pin = R.pin_to_one_core(args.cpu)
    report = R.base_report("chaos", "benchmarks.chaos", argv, args.size, pin)
    started = time.perf_counter()
    with R.Progress(enabled=not args.no_progress) as progress:
        result = trio.run(run_all, cfg, progress)
    report.update(build_report(cfg, result))
    report["seconds"] = time.perf_counter() - started
    for title, headers, rows, right in tables(report):
        R.print_table(title, headers, rows, right)
    if report["contended"]:
        print(f"WARNING: {report['contended_note']}")
    a = report["runs"]["faults"]["accounting"]
    if a["unexpected_examples"]:
        print("unexpected errors:", *a["unexpected_examples"], sep="\n  ")
    if args.json:
        R.write_json(args.json, report)
        chart = R.write_chart(args.json, draw(report), size=(11, 10), dpi=72)
        if chart is not None:
            report["chart"] = str(chart)
            R.write_json(args.json, report)
            print(f"chart: {chart}")
    if args.markdown:
        Path(args.markdown).write_text(markdown(report))
    print(f"total {report['seconds']:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
