"""The cluster benchmark runs end to end at smoke size.

Speed targets are reported by the benchmark (PASS/MISS), never asserted here. This checks
what must hold whatever the machine: every target row is there, the raw nats-py floors
are measured and finite, no remote send is lost or duplicated where ours is measured
(or ours is ``n/a`` with the reason while ``Node`` has no ``cluster=``), and the
nats-server and every child process are gone afterwards.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nats")

from benchmarks import cluster

ROOT = Path(__file__).resolve().parent.parent
ROWS = {"remote call p50", "remote call p99", "remote send throughput", "remote send lost",
        "remote send duplicated"}


def finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # Still in the table: only a zombie (exited, not reaped by anyone yet) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    try:
        cluster.nats_server_binary()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    out = tmp_path_factory.mktemp("cluster") / "cluster.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.cluster", "--size", "smoke", "--json", str(out),
                           "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text()), proc.stdout


def test_report_has_every_row_and_the_floors(smoke: tuple[dict, str]) -> None:
    report, stdout = smoke
    assert report["size"] == "smoke" and "benchmarks.cluster" in report["command"]
    assert {t["figure"] for t in report["targets"]} == ROWS
    assert all(t["status"] in ("PASS", "MISS", "n/a") for t in report["targets"])
    for figure in ROWS:
        assert figure in stdout
    s = report["summary"]
    calls = report["sizes"]["calls"] * report["sizes"]["rounds"]
    assert s["floor_a_call_us"]["n"] == calls
    for q in ("p50", "p99"):
        assert finite(s["floor_a_call_us"][q]) and s["floor_a_call_us"][q] > 0, q
    assert finite(s["floor_b_msgs_per_s"]) and s["floor_b_msgs_per_s"] > 0
    # The floor's own accounting: every published message counted once.
    assert s["floor_b_lost"] == 0 and s["floor_b_duplicated"] == 0


def test_ours_loses_and_duplicates_nothing_where_measured(smoke: tuple[dict, str]) -> None:
    report, _ = smoke
    rows = {t["figure"]: t for t in report["targets"]}
    s = report["summary"]
    if report["unavailable"] is not None:
        assert "TypeError" in report["unavailable"]
        assert all(t["status"] == "n/a" and "n/a" in t["measured_text"] for t in rows.values())
        return
    assert report["error"] is None
    messages = report["sizes"]["messages"]
    assert s["ours_lost"] == 0 and s["ours_duplicated"] == 0 and s["ours_invalid"] == 0
    assert rows["remote send lost"]["status"] == "PASS" and rows["remote send duplicated"]["status"] == "PASS"
    for r in report["rounds"]:
        assert r["ours"]["received"]["unique"] == messages
    assert s["ours_call_us"]["n"] == report["sizes"]["calls"] * report["sizes"]["rounds"]
    for key in ("remote call p50", "remote call p99", "remote send throughput"):
        assert finite(rows[key]["measured"]) and finite(rows[key]["ratio"]), key


def test_server_and_children_are_stopped(smoke: tuple[dict, str]) -> None:
    report, _ = smoke
    pids = [report["server"]["pid"]]
    for r in report["rounds"]:
        pids += list(r["floors"]["pids"].values())
        if r["ours"] and "pids" in r["ours"]:
            pids += list(r["ours"]["pids"].values())
    assert len(pids) >= 3
    assert all(gone(pid) for pid in pids), pids


def test_tally_counts_gaps_repeats_and_late_arrivals() -> None:
    tally = cluster.Tally(6)
    for seq in (0, 1, 3, 2, 3, 5, 99, "x"):
        tally.add(seq)
    got = tally.result()
    assert got["received"] == 8 and got["unique"] == 5
    assert got["lost"] == 1  # 4 never came
    assert got["duplicated"] == 1  # 3 twice
    assert got["out_of_order"] == 1  # 2 after 3
    assert got["invalid"] == 2  # 99 is out of range, "x" is no sequence number
    assert not tally.complete


def test_rows_are_na_with_the_reason_when_node_has_no_cluster() -> None:
    floors_only = {"floor_a_call_us": {"p50": 300.0, "p99": 450.0}, "floor_b_msgs_per_s": 200_000.0}
    reason = "Node(cluster=...) raised TypeError: unexpected keyword argument 'cluster'"
    rows = cluster.build_targets(floors_only, reason, None)
    assert {r["figure"] for r in rows} == ROWS
    assert all(r["status"] == "n/a" and reason in r["measured_text"] for r in rows)
    # A failure of ours is not "not there yet": it is a MISS, with the error.
    failed = cluster.build_targets(floors_only, None, "node-a: boom")
    assert all(r["status"] == "MISS" and "boom" in r["measured_text"] for r in failed)
