"""The example supervision trees run to the end, and the restart benchmark runs at smoke
size and reports every row.

Each example's ``main()`` checks what it shows (restarts, pids, message accounting) and
exits non-zero if a check fails. Speed targets are measured by ``python -m
benchmarks.restart``, never asserted here.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PYTHON) if _VENV_PYTHON.exists() else sys.executable
TREES = ROOT / "examples" / "trees"


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("example", ["kv_service.py", "pipeline.py"])
def test_example_tree_runs(example: str) -> None:
    result = run(str(TREES / example))
    assert result.returncode == 0, f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert "FAILED" not in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("example", ["kv_service.py", "pipeline.py"])
def test_example_tree_has_a_module_level_tree(example: str) -> None:
    import supervisors

    spec = importlib.util.spec_from_file_location(f"example_{example[:-3]}", TREES / example)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert isinstance(module.tree, supervisors.Supervisor)
    supervisors.check_child_specs([module.tree])
    assert callable(module.main)


def positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_restart_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "restart.json"
    result = run("-m", "benchmarks.restart", "--size", "smoke", "--json", str(out), timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["size"] == "smoke"
    rows = report["rows"]
    assert {(r["kind"], r["strategy"]) for r in rows} == {
        (kind, strategy) for kind in ("wat", "python")
        for strategy in ("one_for_one", "one_for_all", "rest_for_one")
    }
    for row in rows:
        where = (row["kind"], row["strategy"])
        assert row["crashes"] >= 50, where
        for key in ("p50_us", "p99_us", "spawn_p50_us", "ratio_p50", "ratio_p99"):
            assert positive(row[key]), (where, key)
        assert row["p50_us"] <= row["p99_us"], where
        for figure in ("restart_us", "after_failure_us", "group_us"):
            assert positive(row[figure]["p50"]) and positive(row[figure]["p99"]), (where, figure)
        assert row["status_p50"] in ("PASS", "MISS") and row["status_p99"] in ("PASS", "MISS"), where
    for kind in ("wat", "python"):
        assert positive(report["spawn"][kind]["spawn_us"]["p50"]), kind
    assert "p50/spawn" in result.stdout  # the table was printed
