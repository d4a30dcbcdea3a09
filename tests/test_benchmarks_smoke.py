"""The core benchmark runs end to end at smoke size and reports every figure.

Speed targets are measured by ``python -m benchmarks.core``, never asserted here: this
only checks that each figure and floor is there, finite and positive.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FLOORS = (
    "trio_hop_buffer0_us", "trio_hop_bufferN_us", "trio_roundtrip_us", "trio_task_spawn_us",
    "trio_task_start_us", "raw_call_cast_us", "raw_call_call_us", "raw_instantiate_us",
    "raw_instantiate_init_us", "msgpack_us", "msgpack_raw_us", "stock_call_us", "stock_instantiate_us",
)
RUNTIME = (
    "spawn_us", "spawn_gc_off_us", "send_1to1_msgs_per_s", "send_nowait_1to1_msgs_per_s",
    "send_NtoM_msgs_per_s", "call_us", "call_bytes_us",
)


def positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_core_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "core.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.core", "--size", "smoke", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(out.read_text())

    assert report["size"] == "smoke"
    assert "benchmarks.core" in report["command"]
    for key in ("cpu_count", "python", "wasmtime"):
        assert report["machine"][key], key
    assert "pinned" in report["pin"]

    for key in FLOORS:
        figure = report["floors"][key]
        assert positive(figure["median"]), key
        assert figure["runs"] and all(positive(v) for v in figure["runs"]), key
    for key in RUNTIME:
        figure = report["runtime"][key]
        assert positive(figure["median"]), key
        assert all(positive(v) for v in figure["runs"]), key
    for key in ("call_us", "call_bytes_us"):
        for q in ("p50", "p99", "p999", "mean"):
            assert positive(report["runtime"][key][q]), (key, q)
    for key, value in report["derived_floors"].items():
        assert positive(value), key

    many = report["processes"]
    assert many["n"] > 0
    assert many["answered"] == many["n"] and many["alive"] == many["n"]
    for key in ("VmRSS_per_process_bytes", "VmSize_per_process_bytes", "spawn_us_per_process",
                "spawn_seconds", "shutdown_seconds"):
        assert positive(many[key]), key
    for q in ("p50", "p99", "max"):
        assert positive(many["call_us"][q]), q

    targets = {t["key"]: t for t in report["targets"]}
    for key in ("spawn_us", "send_1to1_msgs_per_s", "send_NtoM_msgs_per_s", "call_us.p50"):
        row = targets[key]
        for field in ("measured", "floor", "ratio"):
            assert positive(row[field]), (key, field)
        assert row["status"] in ("PASS", "MISS"), key
    assert targets["processes"]["status"] in ("PASS", "MISS", "n/a")
    assert positive(targets["processes"]["measured"])
    # The table was printed.
    assert "spawn (per process)" in proc.stdout
