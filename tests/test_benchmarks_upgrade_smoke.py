"""The hot-upgrade benchmark runs end to end at smoke size and reports every figure.

Speed targets are measured by ``python -m benchmarks.upgrade``, never asserted here:
this only checks that every row is there with finite, positive figures.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PYTHON) if _VENV_PYTHON.exists() else sys.executable

STATES = (100, 10 * 1024, 1024 * 1024)


def positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_upgrade_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "upgrade.json"
    result = subprocess.run(
        [PYTHON, "-m", "benchmarks.upgrade", "--size", "smoke", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["size"] == "smoke"
    assert "benchmarks.upgrade" in report["command"]
    assert positive(report["seconds"])

    for state in STATES:
        floor = report["floors"][str(state)]
        for key in ("instantiate_us", "create_us", "snapshot_us", "upgrade_us", "raw_migration_us", "floor_us"):
            assert positive(floor[key]), (state, key)

    rows = report["rows"]
    assert {(r["strategy"], r["processes"], r["state_bytes"]) for r in rows} == {
        (strategy, count, state) for strategy in ("atomic", "rolling") for count in (1, 10) for state in STATES
    }
    for row in rows:
        where = (row["strategy"], row["processes"], row["state_bytes"])
        assert row["repeats"] >= 1, where
        for q in ("p50", "p90", "p99", "max", "min", "mean"):
            assert positive(row["pause_ms"][q]), (where, q)
        assert row["pause_ms"]["n"] == row["processes"] * row["repeats"], where
        assert positive(row["change_ms"]["median"]) and all(positive(v) for v in row["change_ms"]["runs"]), where
        for key in ("floor_ms", "raw_migration_ms", "change_per_process_ms", "pause_p50_ms", "pause_max_ms",
                    "pause_p50_vs_floor", "pause_p50_vs_raw_migration", "ratio"):
            assert positive(row[key]), (where, key)
        assert row["pause_ms"]["p50"] <= row["pause_ms"]["max"], where
        assert row["status"] in ("PASS", "MISS"), where

    drains = report["drain"]
    assert {d["state_bytes"] for d in drains} == set(STATES)
    for d in drains:
        for key in ("normal_msgs_per_s", "after_upgrade_msgs_per_s", "ratio"):
            assert positive(d[key]), (d["state_bytes"], key)
        assert all(positive(v) for v in d["normal_runs"] + d["after_runs"]), d["state_bytes"]
        assert d["dead_letters"] == 0
        assert d["status"] in ("PASS", "MISS")

    for stall in report["stall"]:
        for key in ("max_gap_ms", "max_pause_ms"):
            assert positive(stall[key]), (stall["state_bytes"], key)

    assert report["limits"]["max_snapshot_bytes"] > max(STATES)
    assert "p50/floor" in result.stdout  # the table was printed
