"""The airssys command driven as a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AIRSSYS = [sys.executable, "-m", "airssys_cli"]
COMPONENTS = ROOT / "examples" / "components"

TREE = f"""
from supervisors import Supervisor, Child
tree = Supervisor("root", children=[
    Child("counter", {str(COMPONENTS / "counter.wat")!r}, args={{"start": 0}}, name="counter", version="v1"),
    Supervisor("pool", strategy="one_for_all", children=[
        Child("echo1", {str(COMPONENTS / "echo.wat")!r}, name="echo1"),
        Child("echo2", {str(COMPONENTS / "echo.wat")!r}, name="echo2"),
    ]),
])
"""


def airssys(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*AIRSSYS, *args], capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    if check and result.returncode != 0:
        raise AssertionError(f"airssys {' '.join(args)} failed: {result.stderr}")
    return result


def start_node(tmp_path, text: str, *extra: str):
    """`airssys run` on a tree file with ``text``, once its control socket is up."""
    tree = tmp_path / "tree.py"
    tree.write_text(text)
    socket = tmp_path / "sock" / "control.sock"
    # Memory tracking only when a test asks for it with --track-memory.
    env = {**os.environ, "AIRSSYS_SOCKET": str(socket), "AIRSSYS_TRACK_MEMORY": "0"}
    proc = subprocess.Popen([*AIRSSYS, "run", str(tree), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    deadline = time.monotonic() + 30
    while not socket.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"node did not start: {proc.communicate()[1]}")
        time.sleep(0.05)
    return proc, env, socket


@pytest.fixture
def running_node(tmp_path):
    proc, env, socket = start_node(tmp_path, TREE)
    yield env, socket, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_control_socket_is_private_to_the_user(running_node):
    _, socket, _ = running_node
    assert stat.S_IMODE(socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(socket.parent.stat().st_mode) == 0o700


def test_tree_ps_call_send(running_node):
    env, _, _ = running_node
    tree = json.loads(airssys("tree", "--json", env=env).stdout)
    assert [c["id"] for c in tree["children"]] == ["counter", "pool"]
    assert tree["children"][0]["version"] == "v1"
    assert [c["id"] for c in tree["children"][1]["children"]] == ["echo1", "echo2"]
    human = airssys("tree", env=env).stdout
    assert "counter@v1" in human and "echo1" in human and "restarts=0" in human
    assert json.loads(airssys("call", "counter", "5", env=env).stdout) == 5
    assert airssys("send", "counter", "2", env=env).stdout.strip() == "sent"
    assert json.loads(airssys("call", "counter", '"get"', env=env).stdout) == 7
    rows = json.loads(airssys("ps", "--json", env=env).stdout)
    assert {r["name"] for r in rows} >= {"counter", "echo1", "echo2"}
    assert all({"pid", "component", "version", "mailbox", "restarts", "fuel_used"} <= set(r) for r in rows)


def ps_column(human: str, name: str) -> dict[str, str]:
    """One column of `airssys ps`'s table, by pid."""
    lines = human.splitlines()
    header = next(line for line in lines if "┃ pid" in line)
    index = [c.strip() for c in header.split("┃")].index(name)
    rows = [[c.strip() for c in line.split("│")] for line in lines if "│ <" in line]
    return {row[1]: row[index] for row in rows}


def test_ps_memory_is_a_dash_without_track_memory(running_node):
    env, _, _ = running_node
    rows = json.loads(airssys("ps", "--json", env=env).stdout)
    assert len(rows) == 5 and {r["memory_bytes"] for r in rows} == {None}
    human = airssys("ps", env=env).stdout
    memory = ps_column(human, "memory")
    assert len(memory) == 5 and set(memory.values()) == {"-"}
    assert "airssys run --track-memory" in human  # the table says how to get the figures


def test_run_track_memory_shows_memory_in_ps_and_metrics(tmp_path):
    port = free_port()
    proc, env, _ = start_node(tmp_path, TREE, "--track-memory", "--metrics", f"127.0.0.1:{port}")
    try:
        rows = {r["name"] or r["pid"]: r for r in json.loads(airssys("ps", "--json", env=env).stdout)}
        for name in ("counter", "echo1", "echo2"):
            assert rows[name]["memory_bytes"] == 128 << 10  # two 64 KiB pages each
        supervisors = [r for r in rows.values() if r["component"] == "supervisor"]
        assert len(supervisors) == 2 and all(r["memory_bytes"] is None for r in supervisors)
        human = airssys("ps", env=env).stdout
        memory = ps_column(human, "memory")
        assert sorted(memory.values()) == ["-", "-", "128.0 KiB", "128.0 KiB", "128.0 KiB"]
        assert "--track-memory" not in human
        body = scrape(port, proc)
        assert 'airssys_process_memory_bytes{component="counter",name="counter"' in body
        assert body.count("airssys_process_memory_bytes{") == 3  # WASM processes only
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_deploy_migrates_state_and_reports(running_node):
    env, _, _ = running_node
    airssys("call", "counter", "41", env=env)
    out = airssys("deploy", "counter", str(COMPONENTS / "counter.wat"), "--version", "v1b", "--json", env=env).stdout
    report = json.loads(out)
    assert report["strategy"] == "atomic"
    (proc,) = report["processes"]
    assert (proc["child"], proc["from"], proc["to"]) == ("counter", "v1", "v1b")
    assert proc["pause_ms"] >= 0
    assert json.loads(airssys("call", "counter", '"get"', env=env).stdout) == 41  # state carried over
    human = airssys("deploy", "counter", str(COMPONENTS / "counter.wat"), "--version", "v1c", env=env).stdout
    assert "v1b -> v1c" in human
    tree = json.loads(airssys("tree", "--json", env=env).stdout)
    assert tree["children"][0]["version"] == "v1c"


def test_deploy_failure_is_one_line_and_nonzero(running_node):
    env, _, _ = running_node
    result = airssys("deploy", "echo", str(COMPONENTS / "counter.wat"), env=env, check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "UpgradeFailed" in result.stderr and "bad state" in result.stderr
    assert "Traceback" not in result.stderr
    missing = airssys("deploy", "counter", "/no/such.wat", env=env, check=False)
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_errors_are_one_line(running_node):
    env, _, _ = running_node
    for args in (("call", "nobody", "1"), ("call", "counter", "{bad")):
        result = airssys(*args, env=env, check=False)
        assert result.returncode != 0
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_logs_show_events(running_node):
    env, _, _ = running_node
    airssys("send", "counter", '"not a number"', env=env)  # crashes; the supervisor restarts it
    time.sleep(0.3)
    events = [json.loads(line) for line in airssys("logs", "--json", env=env).stdout.splitlines()]
    kinds = [e["kind"] for e in events]
    assert "restart" in kinds and "exit" in kinds
    exit_event = next(e for e in events if e["kind"] == "exit")
    assert exit_event["name"] == "counter" and exit_event["reason"].startswith("error")
    assert {"pid", "name", "component", "version", "reason", "time"} <= set(exit_event)


def test_ctrl_c_stops_the_tree_in_reverse_order(running_node):
    _env, socket, proc = running_node
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped." in err
    assert not socket.exists()


def test_no_node_running(tmp_path):
    env = {**os.environ, "AIRSSYS_SOCKET": str(tmp_path / "none.sock")}
    result = airssys("tree", env=env, check=False)
    assert result.returncode == 1 and "no node is listening" in result.stderr


def test_bad_tree_file(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("tree = 42\n")
    env = {**os.environ, "AIRSSYS_SOCKET": str(tmp_path / "s.sock")}
    result = airssys("run", str(bad), env=env, check=False)
    assert result.returncode == 1 and "must define" in result.stderr and "Traceback" not in result.stderr


def test_inject_a_fault_and_watch_the_restart(running_node):
    env, _, _ = running_node
    assert "injected trap" in airssys("inject", "counter", "trap", env=env).stdout
    result = airssys("call", "counter", "1", env=env, check=False)
    assert result.returncode == 1 and "trap" in result.stderr
    time.sleep(0.2)
    tree = json.loads(airssys("tree", "--json", env=env).stdout)
    assert tree["children"][0]["restarts"] == 1
    bad = airssys("inject", "counter", "meteor", env=env, check=False)
    assert bad.returncode == 2  # argparse rejects the unknown fault kind


def free_port() -> int:
    import socket as socketlib

    with socketlib.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape(port: int, proc: subprocess.Popen[str]) -> str:
    """The node's /metrics page, once it answers."""
    import urllib.request

    deadline = time.monotonic() + 30
    body = None
    while body is None and time.monotonic() < deadline:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError:
            time.sleep(0.1)
    assert body is not None, proc.stderr.read() if proc.poll() is not None else "no answer"
    return body


def test_metrics_endpoint(tmp_path):
    port = free_port()
    proc, _, _ = start_node(tmp_path, TREE, "--metrics", f"127.0.0.1:{port}")
    try:
        body = scrape(port, proc)
        assert "airssys_process_memory_bytes{" not in body  # not tracked by default
        assert 'airssys_process_messages_in_total{component="counter",name="counter"' in body
        assert "airssys_node_processes 5.0" in body
        assert "airssys_process_mailbox_depth" in body and "airssys_node_dead_letters_total" in body
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_demo_runs_and_loses_nothing():
    result = subprocess.run([*AIRSSYS, "demo", "--json"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["lost"] == 0
    assert summary["sent"] == summary["answered"] + summary["failed_with_typed_error"]
    assert summary["faults_injected"] >= 5 and summary["restarts"] >= 4
    assert summary["counter_versions"] == ["v2"] and summary["upgrade_processes"] == 4


def test_demo_human_output_has_a_summary():
    result = subprocess.run([*AIRSSYS, "demo"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    for text in ("live tree", "summary", "lost", "upgrade pause", "counter@v2"):
        assert text in result.stdout


ORDER_TREE = """
from pathlib import Path
from airssys_actors import Actor
from supervisors import Supervisor, Child

LOG = Path({log!r})

class Noted(Actor):
    async def init(self, ctx, args):
        self.id = args

    def terminate(self, ctx, reason):
        with LOG.open("a") as f:
            f.write(f"{{self.id}}:{{reason.kind}}\\n")

tree = Supervisor("root", max_restarts=0, children=[
    Child("a", Noted, args="a", name="a"),
    Supervisor("sub", children=[Child("b1", Noted, args="b1"), Child("b2", Noted, args="b2")]),
    Child("c", Noted, args="c", name="c"),
])
"""


def test_ctrl_c_stops_children_in_reverse_start_order(tmp_path):
    log = tmp_path / "order.log"
    proc, _, _ = start_node(tmp_path, ORDER_TREE.format(log=str(log)))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert log.read_text().split() == ["c:shutdown", "b2:shutdown", "b1:shutdown", "a:shutdown"]


def test_a_tree_that_gives_up_exits_nonzero_and_says_why(tmp_path):
    log = tmp_path / "order.log"
    proc, env, _ = start_node(tmp_path, ORDER_TREE.format(log=str(log)))
    airssys("inject", "a", "kill", env=env)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "root gave up after child 'a' exited with killed" in err
    assert "Traceback" not in err


def test_options_work_before_the_command(running_node, tmp_path):
    env, socket, _ = running_node
    other = {k: v for k, v in env.items() if k != "AIRSSYS_SOCKET"}
    tree = json.loads(airssys("--json", "--socket", str(socket), "tree", env=other).stdout)
    assert tree["id"] == "root"
    assert tree["children"][1]["strategy"] == "one_for_all"


def test_start_up_failures_are_one_clear_line(tmp_path):
    bad = tmp_path / "tree.py"
    bad.write_text("from supervisors import Supervisor, Child\n"
                   "tree = Supervisor('root', children=[Child('x', '/no/such/guest.wat')])\n")
    env = {**os.environ, "AIRSSYS_SOCKET": str(tmp_path / "s.sock")}
    result = airssys("run", str(bad), env=env, check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "cannot read /no/such/guest.wat" in result.stderr
    json_err = airssys("run", str(bad), "--json", env=env, check=False)
    assert "cannot read /no/such/guest.wat" in json.loads(json_err.stderr)["error"]


def test_bad_option_values_are_refused(running_node):
    env, _, _ = running_node
    for args in (("inject", "counter", "delay", "--seconds", "-1"), ("call", "counter", "1", "--timeout", "0"),
                 ("deploy", "counter", str(COMPONENTS / "counter.wat"), "--probe", '"x"')):
        result = airssys(*args, env=env, check=False)
        assert result.returncode == 2, args
