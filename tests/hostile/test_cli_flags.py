"""Every number flag of `airssys`: a bad value (NaN, an infinity, a negative, a word)
ends the command with exit code 2 and one line that names the flag; nothing is sent
to the node, which keeps serving."""

from __future__ import annotations

import json
import subprocess

import pytest

from ..conftest import ROOT
from .conftest import AIRSSYS, RunningNode

FLAGS = [
    (["call", "echo", '"x"'], "--timeout", ["nan", "NaN", "inf", "-inf", "Infinity", "0", "-1", "abc", "1e400", ""]),
    (["inject", "echo", "delay"], "--seconds", ["nan", "inf", "-inf", "-0.5", "soon", "1e999"]),
    (["inject", "echo", "drop"], "--count", ["0", "-1", "1.5", "nan", "inf", "true", "1e3", ""]),
    (["logs"], "--history", ["-1", "nan", "inf", "1.5", "lots", "1e400"]),
    (["deploy", "echo", "examples/components/echo.wat"], "--canary", ["0", "-2", "nan", "inf", "1.5"]),
    (["run", "examples/my_first/tree.py"], "--metrics", ["127.0.0.1:99999", "127.0.0.1:nan", "127.0.0.1:-1",
                                                         "9464", ":9464", "127.0.0.1:\u00b2", "127.0.0.1:"]),
]
CASES = [(command, flag, value) for command, flag, values in FLAGS for value in values]


def airssys(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AIRSSYS, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)


@pytest.mark.parametrize("command, flag, values", FLAGS)
def test_a_bad_number_flag_is_refused_naming_the_flag(command, flag, values, tmp_path):
    """The real command, once per flag (a subprocess each: the exit code is the process's)."""
    # The socket does not exist: a value that got past the parser would fail differently.
    result = airssys("--socket", str(tmp_path / "none.sock"), *command, f"{flag}={values[0]}")
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert flag in lines[-1], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command, flag, value", CASES)
def test_every_bad_value_is_refused_naming_the_flag(command, flag, value, tmp_path, capsys):
    """Every value, through ``main`` in this process (the same parser, no start-up cost)."""
    from airssys_cli.main import main

    with pytest.raises(SystemExit) as info:
        main(["--socket", str(tmp_path / "none.sock"), *command, f"{flag}={value}"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert flag in err[-1], err


def test_good_values_still_parse():
    from airssys_cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["call", "echo", '"x"', "--timeout", "2.5"])
    assert args.timeout == 2.5
    args = parser.parse_args(["inject", "echo", "delay", "--seconds", "0", "--count", " 3 "])
    assert (args.seconds, args.count) == (0.0, 3)
    assert parser.parse_args(["logs", "--history", "0"]).history == 0


def test_bad_flags_never_reach_a_running_node(running_node: RunningNode):
    for command, flag, values in FLAGS:
        if command[0] == "deploy":
            continue
        for value in values[:3]:
            result = running_node.cli(*command, f"{flag}={value}")
            assert result.returncode == 2 and flag in result.stderr, result.stderr
    running_node.assert_alive()
    stats = running_node.cli("--json", "stats")
    assert stats.returncode == 0, stats.stderr
    # no fault was armed by any of them: a call is answered at once
    result = running_node.cli("call", "echo", json.dumps("still here"), "--timeout", "5")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == "still here"
