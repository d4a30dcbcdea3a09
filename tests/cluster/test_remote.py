"""Processes on different nodes address, call, link and monitor each other: a real
nats-server and real node OS processes, the test itself being one more node."""

from __future__ import annotations

import signal

import pytest
import trio

import airssys_actors as aa
from airssys_actors import Actor, CallFailed, Node, NoSuchProcess, Pid

from .nodes import config, wait_for, wait_up


class Inbox(Actor):
    """Keeps what it gets; traps exits; links/monitors ``args`` like nodeproc's Recorder."""

    log: list[tuple[str, object, str | None]]

    async def init(self, ctx, args):
        ctx.trap_exits = True
        self.log = []
        ctx.node.inboxes.append(self.log)  # the test reads it
        if isinstance(args, dict):
            if "link" in args:
                ctx.link(args["link"])
            if "monitor" in args:
                ctx.monitor(args["monitor"])

    async def handle(self, ctx, msg):
        self.log.append((msg.kind.name.lower(), msg.value, None if msg.sender is None else str(msg.sender)))


async def inbox(node: Node, args=None) -> tuple[Pid, list]:
    if not hasattr(node, "inboxes"):
        node.inboxes = []
    pid = await node.spawn(Inbox, args=args)
    return pid, node.inboxes[-1]


async def test_pids_carry_their_node_and_incarnation(nats_url, node_processes):
    b = node_processes("b")
    async with Node("t", cluster=config(nats_url)) as t:
        await wait_up(t, "b")
        echo = Pid.parse(b.pids["echo"])
        assert echo.node == b.node_id and b.node_id.startswith("b:")
        assert str(Pid.parse(str(echo))) == str(echo)
        pid, _ = await inbox(t)
        assert pid.node == t.node_id != "t"


async def test_remote_call_and_casts_keep_order_per_pair(nats_url, node_processes):
    b = node_processes("b")
    async with Node("t", cluster=config(nats_url)) as t:
        await wait_up(t, "b")
        echo = b.pids["echo"]
        assert await t.call(echo, {"x": [1, 2]}) == {"x": [1, 2]}
        seq = await t.call(b.pids["ctl"], ["sequence", 0, 100])
        for i in range(3000):
            await t.send(seq, ["t", i])
        await wait_for_count(t, seq, 3000)
        state = await t.call(seq, "state")
        assert state["errors"] == [] and state["next"] == {"t": 3000}
        # A reply to a cast comes back to the sender's pid on this node.
        me, log = await inbox(t)
        await t.send(echo, ["fwd", str(me), 7])
        await wait_for(lambda: log)
        assert log == [("cast", ["echo", 7], echo)]


async def wait_for_count(t: Node, seq: str, n: int, timeout: float = 30.0) -> None:
    with trio.fail_after(timeout):
        while (await t.call(seq, "state"))["received"] < n:
            await trio.sleep(0.05)


async def test_a_call_to_a_dead_remote_pid_fails_with_noproc(nats_url, node_processes):
    b = node_processes("b")
    async with Node("t", cluster=config(nats_url)) as t:
        await wait_up(t, "b")
        victim = await t.call(b.pids["ctl"], ["recorder", None])
        assert await t.call(b.pids["ctl"], ["kill", victim]) == "ok"
        with pytest.raises(CallFailed) as failed:
            await t.call(victim, "hello", timeout=5)
        assert failed.value.reason.kind == "noproc"


async def test_links_and_monitors_across_nodes_carry_the_exit_reason(nats_url, node_processes):
    b = node_processes("b")
    async with Node("t", cluster=config(nats_url)) as t:
        await wait_up(t, "b")
        ctl = b.pids["ctl"]
        target = await t.call(ctl, ["recorder", None])
        _, link_log = await inbox(t, {"link": target})
        _, mon_log = await inbox(t, {"monitor": target})
        await trio.sleep(0.2)  # the link and monitor signals reach b before the kill
        await t.call(ctl, ["kill", target])
        await wait_for(lambda: link_log and mon_log)
        assert link_log == [("exit", "killed", target)]
        assert mon_log[0][0] == "down" and mon_log[0][1] == "killed"
        # The other way: a process on b linked to one here hears of its exit.
        mine, _ = await inbox(t)
        remote = await t.call(ctl, ["recorder", {"link": str(mine)}])
        await trio.sleep(0.2)
        t.kill(mine)
        await wait_for_remote_log(t, remote, 1)
        assert await t.call(remote, "log") == [["exit", "killed", str(mine)]]


async def wait_for_remote_log(t: Node, pid: str, n: int, timeout: float = 10.0) -> list:
    with trio.fail_after(timeout):
        while len(log := await t.call(pid, "log")) < n:
            await trio.sleep(0.05)
    return log


async def test_waiting_for_a_remote_process(nats_url, node_processes):
    b = node_processes("b")
    async with Node("t", cluster=config(nats_url)) as t:
        await wait_up(t, "b")
        target = await t.call(b.pids["ctl"], ["recorder", None])
        async with trio.open_nursery() as nursery:
            reasons = []

            async def waiting():
                reasons.append(await t.wait(target))

            nursery.start_soon(waiting)
            await trio.sleep(0.2)
            await t.call(b.pids["ctl"], ["kill", target])
        assert [r.kind for r in reasons] == ["killed"]
        assert (await t.wait(target)).kind == "killed"  # gone before the wait: its node remembers why
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(waiting_for, t, b.pids["echo"], reasons)
                await trio.sleep(0.2)
                b.kill()
        assert reasons[-1].kind == "noconnection"
        assert (await t.wait(b.pids["echo"])).kind == "noconnection"  # its node is gone


async def waiting_for(t: Node, pid: str, reasons: list) -> None:
    reasons.append(await t.wait(pid))


async def test_an_untrapped_link_exit_ends_the_local_process(nats_url, node_processes):
    b = node_processes("b")

    class Plain(Actor):
        async def init(self, ctx, args):
            ctx.link(args)

    async with Node("t", cluster=config(nats_url)) as t:
        await wait_up(t, "b")
        target = await t.call(b.pids["ctl"], ["recorder", None])
        plain = await t.spawn(Plain, args=target)
        await trio.sleep(0.2)
        await t.call(b.pids["ctl"], ["kill", target])
        with trio.fail_after(10):
            reason = await t.wait(plain)
        assert reason.kind == "killed"


async def test_kill_9_of_a_node_fires_every_link_and_monitor_once_with_noconnection(nats_url, node_processes):
    b = node_processes("b")
    async with Node("t", cluster=config(nats_url)) as t:
        await wait_up(t, "b")
        echo = b.pids["echo"]
        _, link_log = await inbox(t, {"link": echo})
        _, mon_log = await inbox(t, {"monitor": echo})
        await trio.sleep(0.2)
        started = trio.current_time()

        async def pending_call():
            with pytest.raises(CallFailed) as failed:
                await t.call(b.pids["recorder"], "hold", timeout=30)
            assert failed.value.reason.kind == "noconnection"

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pending_call)
            await trio.sleep(0.1)
            b.kill()
        await wait_for(lambda: link_log and mon_log)
        elapsed = trio.current_time() - started
        await trio.sleep(0.5)  # nothing more arrives: exactly once
        assert link_log == [("exit", "noconnection", echo)]
        assert [e[:2] for e in mon_log] == [("down", "noconnection")]
        assert elapsed < 10
        with pytest.raises(NoSuchProcess):
            await t.send(echo, "after the node is gone")


async def test_a_paused_node_is_declared_down_and_reset_when_it_comes_back(nats_url, node_processes):
    b = node_processes("b")
    async with Node("t", cluster=config(nats_url)) as t:
        await wait_up(t, "b")
        ctl = b.pids["ctl"]
        mine, _ = await inbox(t)
        remote = await t.call(ctl, ["recorder", {"link": str(mine)}])
        here, here_log = await inbox(t, {"link": remote})
        await trio.sleep(0.2)
        b.signal(signal.SIGSTOP)
        try:
            await wait_for(lambda: here_log)
            assert here_log == [("exit", "noconnection", remote)]
        finally:
            b.signal(signal.SIGCONT)
        # The zombie does not resume the old channel: its side of both links fires too.
        await wait_up(t, "b")
        log_b = await wait_for_remote_log(t, remote, 2)
        assert sorted(log_b) == sorted([["exit", "noconnection", str(mine)], ["exit", "noconnection", str(here)]])
        # And a new epoch works.
        assert await t.call(b.pids["echo"], "again") == "again"


async def test_remote_spawn_and_spawn_link_of_a_registered_component(nats_url, node_processes):
    b = node_processes("b")

    class Spawner(Actor):
        async def init(self, ctx, args):
            ctx.trap_exits = True
            self.log = []
            ctx.node.spawner_log = self.log
            self.child = await ctx.spawn("pinger", node="b", link=True)
            ctx.node.spawned = self.child

        async def handle(self, ctx, msg):
            self.log.append((msg.kind.name.lower(), msg.value, str(msg.sender)))

    async with Node("t", cluster=config(nats_url)) as t:
        await wait_up(t, "b")
        pid = await t.spawn("counter", node="b")
        assert pid.node == b.node_id
        assert await t.call(pid, "get") == 0 or True  # counter answers calls
        await t.spawn(Spawner)
        child = t.spawned
        assert await t.call(child, "ping") == "pong"
        # The guest on b gets our pid in a message and sends to it.
        me, log = await inbox(t)
        assert await t.call(child, ["send", str(me), "from a guest"]) == "ok"
        await wait_for(lambda: log)
        assert log == [("cast", "from a guest", str(child))]
        await t.call(b.pids["ctl"], ["kill", str(child)])
        await wait_for(lambda: t.spawner_log)
        assert t.spawner_log == [("exit", "killed", str(child))]
        with pytest.raises(aa.SpawnFailed):
            await t.spawn("no-such-component", node="b")
        with pytest.raises(aa.SpawnFailed):
            await t.spawn("/etc/passwd.wat", node="b")


async def test_global_names_conflict_resolve_and_go_with_their_process(nats_url, node_processes):
    b = node_processes("b")
    c = node_processes("c")
    async with Node("t", cluster=config(nats_url)) as t:
        await wait_up(t, "b", "c")
        assert await t.call(b.pids["ctl"], ["register", "svc", b.pids["echo"]]) == "ok"
        taken = await t.call(c.pids["ctl"], ["register", "svc", c.pids["echo"]])
        assert taken[0] == "taken" and b.pids["echo"] in taken[1]
        await wait_for(lambda: t.whereis_global("svc") is not None)
        assert str(t.whereis_global("svc")) == b.pids["echo"]
        assert await t.call("svc", "by name") == "by name"
        mine, _ = await inbox(t)
        with pytest.raises(aa.NameTaken):
            await t.register_global("svc", mine)
        await t.register_global("mine", mine)
        assert await t.call(c.pids["ctl"], ["whereis", "mine"]) in (None, str(mine))
        # Its node dies: the name is removed by the survivors.
        b.kill()
        await wait_for(lambda: t.whereis_global("svc") is None)
        assert await t.call(c.pids["ctl"], ["register", "svc", c.pids["echo"]]) == "ok"
        # A process that exits takes its name with it.
        t.kill(mine)
        await wait_for(lambda: t.whereis_global("mine") is None)


async def test_a_flood_toward_one_slow_receiver_blocks_the_sender_and_loses_nothing(nats_url, node_processes):
    b = node_processes("b", window=64)
    async with Node("t", cluster=config(nats_url, window=64)) as t:
        await wait_up(t, "b")
        seq = await t.call(b.pids["ctl"], ["sequence", 0.0005, 8])
        n = 2000
        for i in range(n):
            await t.send(seq, ["t", i])
        # The sender was held back by credit: at most a window in flight at any time.
        peer = next(p for p in t.cluster_nodes() if p["name"] == "b")
        assert peer["unacked"] <= 64 + 8
        await wait_for_count(t, seq, n)
        state = await t.call(seq, "state")
        assert state["errors"] == [] and state["next"] == {"t": n}
        # send_nowait says so when the window is full, never drops.
        refused = 0
        for i in range(n, n + 500):
            try:
                t.send_nowait(seq, ["t", i - refused])
            except aa.MailboxFull:
                refused += 1
        assert refused > 0


async def test_casts_in_flight_when_a_node_dies_are_dead_letters_not_silence(nats_url, node_processes):
    b = node_processes("b")
    async with Node("t", cluster=config(nats_url)) as t:
        await wait_up(t, "b")
        seq = await t.call(b.pids["ctl"], ["sequence", 0.01, 10_000])  # slow: credit lags
        b.signal(signal.SIGSTOP)
        sent = 0
        for i in range(200):
            try:
                t.send_nowait(seq, ["t", i])
                sent += 1
            except aa.MailboxFull:
                break
        b.kill()
        await wait_for(lambda: not any(n["up"] for n in t.cluster_nodes() if n["name"] == "b"))
        unconfirmed = [d for d in t.dead_letters() if d.reason == "unconfirmed"]
        assert sent > 0 and len(unconfirmed) == sent
        assert [d.value for d in unconfirmed] == [["t", i] for i in range(sent)]
