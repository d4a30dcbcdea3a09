"""The isolation-overhead benchmark at smoke size: every figure present (no speed asserts)."""

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_isolation_benchmark_smoke(tmp_path):
    out = tmp_path / "iso.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.isolation", "--size", "smoke", "--json", str(out),
                             "--cpu", "none"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert set(report["medians"]) == {"unchecked", "checked", "pattern"}
    assert all(math.isfinite(v) and v > 0 for v in report["medians"].values())
    assert {t["status"] for t in report["targets"]} <= {"PASS", "MISS"}
    assert set(report["growth_medians"]) == {"64", "128", "256"}
    assert all(math.isfinite(v) and v > 0 for v in report["growth_medians"].values())
