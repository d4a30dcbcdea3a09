"""Every benchmark in one go, one combined report, one summary of every target.

    python -m benchmarks.all [--size smoke|full] [--json FILE] [--only NAME,...] [--cpu N|auto|none]

Runs ``core``, ``restart``, ``upgrade`` (when ``benchmarks/upgrade.py`` exists), ``chaos``,
``peers``, ``isolation`` and ``cluster`` one after the other, each in its own Python
process (so that pinning, the cyclic GC's state and a crash stay with that benchmark),
each with its own ``--json``. With ``--size full`` the sizes are chosen so that the whole run takes under
five minutes on a 2-core VM (chaos runs 10 s per run instead of 30 s; use
``python -m benchmarks.chaos --size full`` for the 30-second run); ``--size smoke`` runs
every benchmark at its smoke size. ``--cpu`` is not passed to ``cluster``: its two node
processes and its nats-server are left unpinned (see ``benchmarks/cluster.py``).

``--json FILE`` writes the combined report to FILE; each benchmark's own JSON (and its
chart, when matplotlib is installed) goes next to it as ``FILE-<name>.json``. The final
table lists every target of every benchmark with its status: PASS, MISS, n/a
(informational) or ERROR (the benchmark did not finish).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import _report as R

ROOT = Path(__file__).resolve().parent.parent

#: name -> extra arguments per size. The order is the run order.
PLAN: dict[str, dict[str, list[str]]] = {
    "core": {"full": [], "smoke": []},
    "restart": {"full": [], "smoke": []},
    "upgrade": {"full": [], "smoke": []},
    "chaos": {"full": ["--duration", "10"], "smoke": []},
    "peers": {"full": [], "smoke": []},
    "isolation": {"full": [], "smoke": []},
    "cluster": {"full": [], "smoke": []},
}
TIMEOUT = {"full": 600, "smoke": 300}


def available(name: str) -> bool:
    return importlib.util.find_spec(f"benchmarks.{name}") is not None


def _text(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:,.4g}"
    return str(value)


def _label(row: dict[str, Any], section: str) -> str:
    parts = [section] if section not in ("", "rows") else []
    for key in ("figure", "name", "kind", "strategy"):
        if isinstance(row.get(key), str):
            parts.append(row[key])
    if isinstance(row.get("processes"), int):
        parts.append(f"{row['processes']} procs")
    if isinstance(row.get("state_bytes"), int):
        b = row["state_bytes"]
        parts.append(f"{b / 1048576:g} MiB" if b >= 1048576 else f"{b / 1024:g} KiB" if b >= 1024 else f"{b} B")
    return " ".join(parts) or section or "?"


def extract_targets(name: str, report: dict[str, Any]) -> list[dict[str, Any]]:
    """Target rows of one benchmark's report, whatever its shape: a ``targets`` list of
    rows with a ``status`` (core, chaos, peers); otherwise every dict in the report with a
    PASS/MISS ``status`` (upgrade's rows and drain) or ``status_<q>`` fields (restart's
    rows), the goal taken from the row's ``target`` or the report's ``targets`` map."""
    out: list[dict[str, Any]] = []
    targets = report.get("targets")
    if isinstance(targets, list) and targets and all(isinstance(t, dict) and "status" in t for t in targets):
        for t in targets:
            measured = t.get("measured_text") or t.get("measured")
            if t.get("ratio") is not None and t.get("floor_text") not in (None, "-"):
                measured = f"{t.get('measured_text')} ({t['ratio']:.2f}x floor {t['floor_text']})"
            out.append({"benchmark": name, "figure": t.get("figure", t.get("key", "?")),
                        "measured": _text(measured), "target": str(t.get("target", "")), "status": t["status"]})
        return out
    goals = targets if isinstance(targets, dict) else {}

    def measured_of(row: dict[str, Any], q: str | None) -> str:
        if q is not None:
            value, ratio = row.get(f"{q}_us"), row.get(f"ratio_{q}")
        else:
            value, ratio = row.get("measured_text") or row.get("measured"), row.get("ratio")
        text = f"{value:,.1f} µs" if isinstance(value, (int, float)) else (str(value) if value else "")
        if not text:
            for key, unit in (("pause_p50_ms", " ms pause p50"), ("after_upgrade_msgs_per_s", "/s after")):
                if isinstance(row.get(key), (int, float)):
                    v = row[key]
                    text = (f"{v:,.0f}" if v >= 100 else f"{v:.3g}") + unit
                    break
        if isinstance(ratio, (int, float)):
            text += f" ({ratio:.2f}x)"
        return text.strip() or "-"

    def walk(obj: Any, section: str) -> None:
        if isinstance(obj, dict):
            if obj.get("status") in ("PASS", "MISS", "n/a"):
                goal = obj.get("target") if isinstance(obj.get("target"), str) else goals.get(section, "")
                out.append({"benchmark": name, "figure": _label(obj, section), "measured": measured_of(obj, None),
                            "target": str(goal), "status": obj["status"]})
                return
            keyed = [k for k in obj if k.startswith("status_") and obj[k] in ("PASS", "MISS", "n/a")]
            if keyed:
                for key in keyed:
                    q = key.removeprefix("status_")
                    goal = next((v for k, v in goals.items() if k.startswith(q)), "")
                    out.append({"benchmark": name, "figure": f"{_label(obj, section)} {q}",
                                "measured": measured_of(obj, q), "target": str(goal), "status": obj[key]})
                return
            for k, v in obj.items():
                if k not in ("machine", "pin", "targets"):
                    walk(v, section or str(k))
        elif isinstance(obj, list):
            for v in obj:
                walk(v, section)

    walk(report, "")
    return out


def run_one(name: str, size: str, json_path: Path, cpu: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", f"benchmarks.{name}", "--size", size, "--json", str(json_path), *PLAN[name][size]]
    if name in ("chaos", "peers", "restart", "isolation"):
        cmd += ["--cpu", cpu]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, timeout=TIMEOUT[size])
        rc: int | None = proc.returncode
        error = None if rc == 0 else f"exit status {rc}"
    except subprocess.TimeoutExpired:
        rc, error = None, f"timed out after {TIMEOUT[size]} s"
    seconds = time.perf_counter() - started
    report = None
    if error is None:
        try:
            report = json.loads(json_path.read_text())
        except (OSError, ValueError) as exc:
            error = f"no JSON report: {exc}"
    return {"command": R.command_line(f"benchmarks.{name}", cmd[3:]), "returncode": rc, "error": error,
            "seconds": seconds, "json": str(json_path), "report": report}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.all", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("smoke", "full"), default="full")
    parser.add_argument("--json", metavar="FILE", help="write the combined report (parts go to FILE-<name>.json)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the summary table as Markdown")
    parser.add_argument("--only", help=f"comma-separated benchmarks ({', '.join(PLAN)})")
    parser.add_argument("--cpu", default="auto", help="passed on to the benchmarks that take it")
    args = parser.parse_args(argv)
    names = [n for n in PLAN if not args.only or n in args.only.split(",")]

    tmp = None
    if args.json:
        base = Path(args.json).resolve()  # the benchmarks run with the repository as cwd
        base.parent.mkdir(parents=True, exist_ok=True)
        stem = base.with_suffix("") if base.suffix == ".json" else base
    else:
        tmp = tempfile.TemporaryDirectory(prefix="airssys-bench-")
        stem = Path(tmp.name) / "all"

    report = R.base_report("all", "benchmarks.all", argv, args.size, {"requested": args.cpu, "pinned": False,
                                                                      "note": "each benchmark pins itself"})
    report["benchmarks"] = {}
    started = time.perf_counter()
    progress = R.Progress(live=False)
    summary: list[dict[str, Any]] = []
    for name in names:
        if not available(name):
            report["benchmarks"][name] = {"skipped": f"benchmarks/{name}.py is not present"}
            summary.append({"benchmark": name, "figure": "(not present)", "measured": "-", "target": "-",
                            "status": "n/a"})
            continue
        progress.phase(f"{name} ({args.size})", 1)
        part = run_one(name, args.size, Path(f"{stem}-{name}.json"), args.cpu)
        report["benchmarks"][name] = part
        if part["error"] is not None:
            summary.append({"benchmark": name, "figure": "(run)", "measured": part["error"], "target": "finishes",
                            "status": "ERROR"})
        else:
            rows = extract_targets(name, part["report"])
            summary.extend(rows or [{"benchmark": name, "figure": "(no targets reported)", "measured": "-",
                                     "target": "-", "status": "n/a"}])
    report["summary"] = summary
    report["seconds"] = time.perf_counter() - started
    report["seconds_by_benchmark"] = {n: b.get("seconds") for n, b in report["benchmarks"].items()}
    counts = {s: sum(1 for r in summary if r["status"] == s) for s in ("PASS", "MISS", "n/a", "ERROR")}
    report["counts"] = counts

    headers = ["benchmark", "figure", "measured", "target", "status"]
    table = [[r["benchmark"], r["figure"], r["measured"], r["target"], r["status"]] for r in summary]
    print()
    R.print_table(f"all benchmarks ({args.size}), {report['seconds']:.0f} s: "
                  + ", ".join(f"{v} {k}" for k, v in counts.items() if v), headers, table, width=160)
    for name, part in report["benchmarks"].items():
        if "seconds" in part:
            print(f"  {name:<8} {part['seconds']:6.1f} s  {part['command']}")
    if args.json:
        R.write_json(args.json, report)
        print(f"report: {args.json}")
    if args.markdown:
        Path(args.markdown).write_text(R.markdown_table(headers, table))
    if tmp is not None:
        tmp.cleanup()
    return 1 if counts["ERROR"] else 0


if __name__ == "__main__":
    sys.exit(main())
