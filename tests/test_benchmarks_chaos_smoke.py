"""The chaos and peers benchmarks run end to end at smoke size.

Speed targets are reported by the benchmarks (PASS/MISS), never asserted here. This
checks what must hold whatever the machine: under chaos no message is lost (each is
answered, failed with a typed error or dead-lettered), every figure is there and
finite, and the peers report every shape they can run.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def run(module: str, out: Path, *extra: str) -> tuple[dict, str]:
    proc = subprocess.run(
        [sys.executable, "-m", module, "--size", "smoke", "--json", str(out), "--no-progress", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text()), proc.stdout


def numbers(obj: object, path: str = ""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from numbers(v, f"{path}[{i}]")
    else:
        yield path, obj


def test_chaos_smoke_loses_nothing_and_reports_finite_figures(tmp_path: Path) -> None:
    report, stdout = run("benchmarks.chaos", tmp_path / "chaos.json")

    assert report["size"] == "smoke" and "benchmarks.chaos" in report["command"]
    assert report["machine"]["python"] and "pinned" in report["pin"]
    # JSON never carries NaN; a non-finite figure would show up as null or "inf".
    for path, value in numbers(report):
        assert value not in ("inf", "-inf"), path

    for tag in ("baseline", "faults"):
        run_ = report["runs"][tag]
        acc = run_["accounting"]
        assert acc["lost"] == 0, (tag, acc)
        assert acc["sent"] > 0 and acc["answered"] > 0, (tag, acc)
        # Every message counted exactly once.
        assert acc["sent"] == acc["answered"] + acc["failed"] + acc["timed_out"] + acc["wrong_reply"] + acc["unexpected_errors"]
        assert acc["dead_lettered_but_answered"] == 0
        assert acc["scheduled"] == acc["sent"] + acc["unsent_generator_behind"]
        steady = run_["steady"]
        for key in ("offered_per_s", "sent_per_s", "answered_per_s", "errors_per_s"):
            assert finite(steady[key]), (tag, key)
        for q in ("p50", "p99", "p999", "mean"):
            assert finite(steady["latency_us"][q]) and steady["latency_us"][q] > 0, (tag, q)
        assert run_["sweep"]["not_recovered"] == 0, tag
        assert finite(run_["sweep"]["all_answered_s"]), tag
        assert run_["timeline"]["answered_per_s"], tag

    summary = report["summary"]
    for key in ("throughput_ratio", "p99_ratio", "recovery_s", "recovery_floor_s"):
        assert finite(summary[key]), key
    assert summary["lost"] == 0
    # Faults were injected and the tree restarted what they killed.
    injections = report["injections"]
    assert injections["total"] > 0 and sum(injections["by_kind"].values()) == injections["total"]
    assert summary["restarts"] > 0 and summary["escalations"] == 0
    for key in ("p50", "p99"):
        assert finite(summary["restart_latency_us"][key]), key
        assert finite(summary["crash_to_answer_us"][key]), key
    # Every call that failed because a worker died on it left a dead letter.
    faults = report["runs"]["faults"]["accounting"]
    assert faults["dead_lettered"] >= faults["failed_call_failed"] - faults["failed_without_dead_letter"]
    assert report["root_alive"]

    statuses = {t["key"]: t["status"] for t in report["targets"]}
    assert statuses["lost"] == "PASS"
    for key in ("offered", "throughput", "p99", "recovery"):
        assert statuses[key] in ("PASS", "MISS"), key
    assert "messages lost" in stdout


def test_peers_smoke_reports_every_shape(tmp_path: Path) -> None:
    report, stdout = run("benchmarks.peers", tmp_path / "peers.json")
    pykka = report["pykka_installed"]
    peers = ("airssys", "trio", "pykka") if pykka else ("airssys", "trio")
    for shape in ("spawn", "send", "call", "restart"):
        by_peer = report["results"][shape]
        for peer in peers:
            figure = by_peer[peer]
            assert finite(figure["us_per_op"]) and figure["us_per_op"] > 0, (shape, peer)
            if shape in ("call", "restart"):
                assert finite(figure["p99"]), (shape, peer)
        assert finite(by_peer["ratios"]["trio"]), shape
        if pykka:
            assert finite(by_peer["ratios"]["pykka"]), shape
        else:
            assert by_peer["pykka"] is None
    assert "airssys/trio" in stdout


@pytest.mark.skipif(sys.platform != "linux", reason="pinning is Linux-only")
def test_pinning_is_reported() -> None:
    from benchmarks._report import pin_to_one_core

    info = pin_to_one_core("none")
    assert info == {"requested": "none", "pinned": False, "cpu": None, "error": None}
