"""The cluster benchmark's own flags: a bad value is refused before anything starts
(no nats-server, no child process), with an error that names the flag."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchmarks.cluster", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("value", ["0", "-3", "many", "1.5", ""])
def test_bad_window_is_refused_naming_the_flag(value: str) -> None:
    proc = run("--size", "smoke", "--window", value)
    assert proc.returncode == 2
    assert "--window" in proc.stderr
    assert "round 1" not in proc.stderr  # nothing was measured


@pytest.mark.parametrize("args", [["--size", "huge"], ["--child", "rogue"]])
def test_unknown_size_or_role_is_refused(args: list[str]) -> None:
    proc = run(*args)
    assert proc.returncode == 2
    assert args[0] in proc.stderr
