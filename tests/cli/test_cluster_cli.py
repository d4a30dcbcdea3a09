"""`airssys run/node --cluster`: node OS processes started by the CLI find each other,
`airssys nodes` shows them, and `airssys call` on one node reaches a process on another."""

from __future__ import annotations

import json
import subprocess
import time

from ..cluster.conftest import nats_server, nats_url  # noqa: F401 - fixtures
from ..hostile.conftest import AIRSSYS, ROOT, TREE, start_node, stop_node

TIMINGS = ["--heartbeat", "0.1", "--suspect-after", "0.25", "--down-after", "0.5"]


def poll(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def up_names(node) -> set[str]:
    done = node.cli("nodes", "--json")
    assert done.returncode == 0, done.stderr
    return {n["name"] for n in json.loads(done.stdout) if n["up"]}


def test_cli_nodes_find_each_other_and_call_across(nats_url, tmp_path):  # noqa: F811
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_node(tmp_path / "a", TREE, "--node-name", "a", "--cluster", nats_url, *TIMINGS)
    b = start_node(tmp_path / "b", TREE, "--node-name", "b", "--cluster", nats_url, *TIMINGS)
    try:
        assert poll(lambda: {"a", "b"} <= up_names(a))
        rows = json.loads(b.cli("ps", "--json").stdout)
        counter = next(r["pid"] for r in rows if r["name"] == "counter")
        assert counter.startswith("<b:")
        done = a.cli("call", counter, "5")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == 5
        # A node with no tree of its own.
        env = {**a.env, "AIRSSYS_SOCKET": str(tmp_path / "c.sock")}
        c = subprocess.Popen([*AIRSSYS, "node", "--name", "c", "--cluster", nats_url, *TIMINGS], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert poll(lambda: "c" in up_names(a))
        finally:
            c.terminate()
            c.wait(30)
        a.assert_alive()
    finally:
        stop_node(a)
        stop_node(b)
