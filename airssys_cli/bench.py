"""``airssys bench NAME``: run a benchmark from benchmarks/ and print its report."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

# Each benchmark is a module with main(argv) -> int; `all` runs them in turn.
MODULES = {
    "spawn": ("benchmarks.core", ["--only", "spawn"]),
    "throughput": ("benchmarks.core", ["--only", "throughput"]),
    "latency": ("benchmarks.core", ["--only", "latency"]),
    "restart": ("benchmarks.restart", []),
    "upgrade": ("benchmarks.upgrade", []),
    "chaos": ("benchmarks.chaos", []),
    "peers": ("benchmarks.peers", []),
    "isolation": ("benchmarks.isolation", []),
    "cluster": ("benchmarks.cluster", []),
    "all": ("benchmarks.all", []),
}


def run_bench(args: argparse.Namespace) -> int:
    root = Path(__file__).resolve().parent.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module_name, extra = MODULES[args.name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise RuntimeError(f"benchmark {args.name!r} is not available ({exc.name} is missing)") from None
    argv = [*extra, "--size", args.size]
    if args.out is not None:
        argv += ["--json", str(args.out)]
    return int(module.main(argv) or 0)
