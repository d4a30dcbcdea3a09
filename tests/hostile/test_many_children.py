"""Hostile class 6, at scale: a supervisor with 20,000 dynamic (simple_one_for_one)
children. Listing them never needs a reply over the message limit (the supervisor, a
Python process, would otherwise end on it): ``which_children`` pages, and the CLI's
``ps`` and ``tree`` and the metrics scrape read those pages. ``terminate_child`` and
``count_children`` work on the whole set.
"""

from __future__ import annotations

import functools
import json
import urllib.request
from typing import Any

import pytest
import trio
import trio.testing

import supervisors
from airssys_actors import Actor, Context, Message, Node, decode, encode
from supervisors import Child, Supervisor, SupervisorError

from .conftest import start_node, stop_node

MANY = 20_000


class Tiny(Actor):
    """The cheapest child: answers every call with "ok"."""

    async def handle(self, ctx: Context, msg: Message) -> Any:
        return "ok"


def pool_spec() -> Supervisor:
    return Supervisor("pool", strategy="simple_one_for_one", children=[Child("w", Tiny)])


async def test_twenty_thousand_dynamic_children(node):
    pool = await supervisors.start(node, pool_spec())
    pids = [await pool.start_child() for _ in range(MANY)]
    assert await pool.count_children() == {"specs": 1, "active": MANY, "supervisors": 0, "workers": MANY}

    # One page: at most the limit, a reply within the message limit, and where to go on.
    rows, following = await pool.which_children_page(0, 1000)
    assert len(rows) == 1000 and following == 1000
    raw = await node.call_bytes(pool.pid, encode(["which_children", 0, 1000]))
    assert len(raw) <= node.max_message
    status, page = decode(raw)
    assert status == "ok" and page["total"] == MANY

    # Every page together: each child once, in start order.
    rows = await pool.which_children()
    assert [r.pid for r in rows] == pids
    assert all(r.id == str(r.pid) for r in rows)
    last, following = await pool.which_children_page(MANY - 1)
    assert [r.pid for r in last] == [pids[-1]] and following is None
    assert await pool.which_children_page(MANY + 5) == ([], None)

    # terminate_child by pid, anywhere in the set.
    for victim in (pids[0], pids[MANY // 2], pids[-1]):
        await pool.terminate_child(victim)
        assert not node.is_alive(victim)
        with pytest.raises(SupervisorError, match="no child"):
            await pool.terminate_child(victim)
    assert (await pool.count_children())["active"] == MANY - 3
    remaining = await pool.which_children()
    assert len(remaining) == MANY - 3 and pids[MANY // 2] not in {r.pid for r in remaining}
    assert await node.call(pids[1], "ping") == "ok"

    # A crashed dynamic child (permanent template) is restarted under a new pid.
    node.kill(pids[2])
    await trio.testing.wait_all_tasks_blocked()
    assert (await pool.count_children())["active"] == MANY - 3
    assert pids[2] not in {r.pid for r in await pool.which_children()}


async def test_pages_shrink_to_fit_a_small_message_limit():
    async with Node(max_message=8192) as node:
        pool = await supervisors.start(node, pool_spec())
        pids = [await pool.start_child() for _ in range(300)]
        offset: int | None = 0
        seen = []
        pages = 0
        while offset is not None:
            raw = await node.call_bytes(pool.pid, encode(["which_children", offset, 1000]))
            assert len(raw) <= 8192
            status, page = decode(raw)
            assert status == "ok"
            assert page["rows"], "every page makes progress"
            seen.extend(row["pid"] for row in page["rows"])
            offset = page["next"]
            pages += 1
        assert pages > 1
        assert seen == [str(p) for p in pids]
        assert [r.pid for r in await pool.which_children()] == pids


TREE = f"""
from airssys_actors import Actor
from supervisors import Child, Supervisor, SupervisorRef

MANY = {MANY}


class Tiny(Actor):
    async def handle(self, ctx, msg):
        return "ok"


class Filler(Actor):
    \"\"\"Starts MANY children of the pool once the tree is up, then answers "done?".\"\"\"

    async def init(self, ctx, args):
        self.started = 0
        ctx.send_nowait(ctx.pid, "fill")

    async def handle(self, ctx, msg):
        if msg.value == "fill":
            pool = SupervisorRef(ctx.node, ctx.node.whereis("pool"), self.pool_spec)
            for _ in range(MANY):
                await pool.start_child()
                self.started += 1
            return None
        return self.started


Filler.pool_spec = Supervisor("pool", name="pool", strategy="simple_one_for_one", children=[Child("w", Tiny)])
tree = Supervisor("root", children=[Filler.pool_spec, Child("filler", Filler, name="filler")])
"""


def test_cli_ps_tree_and_metrics_with_twenty_thousand_children(tmp_path):
    running = start_node(tmp_path, TREE, metrics=True)
    try:
        from airssys_cli.main import _one

        async def ask(command: str, **args: Any) -> Any:
            return await _one(running.socket, command, args)

        async def wait_filled() -> None:
            with trio.fail_after(120):  # a guard against a hang, not a speed bound
                while await ask("call", to="filler", message="done?", timeout=30) < MANY:
                    await trio.sleep(0.2)

        trio.run(wait_filled)

        done = running.cli("ps", "--json", timeout=120)
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)
        assert len(rows) >= MANY + 3  # root, pool, filler and the pool's children
        assert sum(1 for r in rows if r["component"] == "Tiny") == MANY

        done = running.cli("tree", "--json", timeout=120)
        assert done.returncode == 0, done.stderr
        tree = json.loads(done.stdout)
        (pool,) = [c for c in tree["children"] if c["id"] == "pool"]
        assert len(pool["children"]) == MANY
        assert all(c["alive"] for c in pool["children"])

        with urllib.request.urlopen(f"http://127.0.0.1:{running.metrics_port}/metrics", timeout=120) as reply:
            body = reply.read().decode()
        samples = [line for line in body.splitlines() if line.startswith("airssys_process_mailbox_depth{")]
        assert len(samples) >= MANY + 3

        # The node still serves, and the root supervisor still answers requests.
        assert trio.run(functools.partial(ask, "call", to="pool", message=["count_children"], timeout=30)) == \
            ["ok", {"specs": 1, "active": MANY, "supervisors": 0, "workers": MANY}]
        running.assert_alive()
    finally:
        stop_node(running)
