import pytest
import trio
import trio.testing

import supervisors
from airssys_actors import CallFailed, Capabilities, Limits, Node, Pid
from supervisors import Child, Supervisor, SupervisorError

from . import workers
from .workers import SlowToStop, Worker
from ..conftest import component_path


def w(id, **kw):
    args = {"id": id, **kw.pop("args", {})}
    return Child(id, Worker, args=args, name=kw.pop("name", id), **kw)


@pytest.fixture(autouse=True)
def clear_starts():
    workers.STARTS.clear()


async def exits(node, sub):
    return [(e.name, e.reason) for e in sub.drain() if e.kind == "exit"]


async def test_children_start_in_order_and_stop_in_reverse():
    async with Node() as node:
        tree = Supervisor("root", children=[w("a"), w("b"), w("c")])
        root = await supervisors.start(node, tree)
        assert workers.STARTS == ["a", "b", "c"]
        assert [c.id for c in await root.which_children()] == ["a", "b", "c"]
        sub = node.subscribe({"exit"})
        assert (await root.stop()).kind == "shutdown"
        assert [e.name for e in sub.drain()] == ["c", "b", "a", None]


async def test_a_child_that_fails_to_start_fails_the_start(node):
    tree = Supervisor("root", children=[w("a"), w("b", args={"fail_init": True}), w("c")])
    with pytest.raises(SupervisorError, match=r"failed_to_start_child 'b'.*init refused"):
        await supervisors.start(node, tree)
    assert workers.STARTS == ["a", "b"]
    assert node.pids() == []  # "a" was stopped again


async def test_one_for_one_restarts_only_the_crashed_child(node):
    root = await supervisors.start(node, Supervisor("root", children=[w("a"), w("b")]))
    a, b = await root.child_pid("a"), await root.child_pid("b")
    with pytest.raises(CallFailed):
        await node.call("a", "crash")
    await trio.testing.wait_all_tasks_blocked()
    assert await root.child_pid("b") == b
    new_a = await root.child_pid("a")
    assert new_a != a and node.is_alive(new_a)
    assert await node.call("a", "x") == ["a", 1]  # by name, to the restarted child


async def test_one_for_all_restarts_everyone(node):
    root = await supervisors.start(node, Supervisor("root", strategy="one_for_all", children=[w("a"), w("b"), w("c")]))
    before = [await root.child_pid(i) for i in "abc"]
    workers.STARTS.clear()
    await node.send("b", "crash")
    await trio.testing.wait_all_tasks_blocked()
    after = [await root.child_pid(i) for i in "abc"]
    assert all(x != y for x, y in zip(before, after, strict=True))
    assert workers.STARTS == ["a", "b", "c"]


async def test_rest_for_one_restarts_the_rest_in_order(node):
    root = await supervisors.start(node, Supervisor("root", strategy="rest_for_one",
                                                    children=[w("a"), w("b"), w("c"), w("d")]))
    before = {i: await root.child_pid(i) for i in "abcd"}
    workers.STARTS.clear()
    sub = node.subscribe({"exit"})
    await node.send("b", "crash")
    await trio.testing.wait_all_tasks_blocked()
    assert [e.name for e in sub.drain()] == ["b", "d", "c"]  # the crash, then the rest in reverse
    assert workers.STARTS == ["b", "c", "d"]
    assert await root.child_pid("a") == before["a"]
    for i in "bcd":
        assert await root.child_pid(i) != before[i]


async def test_permanent_child_is_restarted_even_after_a_normal_exit(node):
    root = await supervisors.start(node, Supervisor("root", children=[w("a")]))
    old = await root.child_pid("a")
    await node.call("a", ["stop", "normal"])
    await trio.testing.wait_all_tasks_blocked()
    assert await root.child_pid("a") not in (None, old)


@pytest.mark.parametrize("reason", ["normal", "shutdown"])
async def test_transient_child_quiet_exit_is_not_restarted(node, reason):
    root = await supervisors.start(node, Supervisor("root", children=[w("a", restart="transient")]))
    await node.call("a", ["stop", reason])
    await trio.testing.wait_all_tasks_blocked()
    assert await root.child_pid("a") is None
    assert [c.id for c in await root.which_children()] == ["a"]  # the spec stays
    assert node.whereis("a") is None and not node.is_parked("a")


async def test_transient_child_abnormal_exit_is_restarted(node):
    root = await supervisors.start(node, Supervisor("root", children=[w("a", restart="transient")]))
    await node.call("a", ["stop", "bad things"])
    await trio.testing.wait_all_tasks_blocked()
    assert await root.child_pid("a") is not None


async def test_temporary_child_is_never_restarted_and_is_dropped(node):
    root = await supervisors.start(node, Supervisor("root", children=[w("a", restart="temporary"), w("b")]))
    await node.send("a", "crash")
    await trio.testing.wait_all_tasks_blocked()
    assert [c.id for c in await root.which_children()] == ["b"]


async def test_temporary_child_is_not_restarted_when_a_sibling_takes_it_down(node):
    root = await supervisors.start(node, Supervisor("root", strategy="one_for_all",
                                                    children=[w("a", restart="temporary"), w("b")]))
    workers.STARTS.clear()
    await node.send("b", "crash")
    await trio.testing.wait_all_tasks_blocked()
    assert workers.STARTS == ["b"]
    assert [c.id for c in await root.which_children()] == ["b"]


async def test_intensity_exceeded_makes_the_supervisor_give_up(node):
    root = await supervisors.start(node, Supervisor("root", max_restarts=2, within=10, children=[w("a")]))
    sub = node.subscribe({"give_up", "restart"})
    for _ in range(3):
        await node.send("a", "crash")
        await trio.testing.wait_all_tasks_blocked()
    assert (await root.wait()).kind == "shutdown"
    kinds = [e.kind for e in sub.drain()]
    assert kinds == ["restart", "restart", "give_up"]
    assert not node.is_alive("a") and not node.is_parked("a")


async def test_intensity_window_slides_over_time(node, autojump_clock):
    root = await supervisors.start(node, Supervisor("root", max_restarts=2, within=1.0, children=[w("a")]))
    for _ in range(6):  # six crashes, never more than two within any second
        await node.send("a", "crash")
        await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(0.6)
    assert root.alive
    for _ in range(2):  # with the one 0.6 s ago, three within a second: too many
        await node.send("a", "crash")
        await trio.testing.wait_all_tasks_blocked()
    assert not root.alive


async def test_escalation_through_three_levels(node):
    tree = Supervisor("root", max_restarts=5, within=60, children=[
        Supervisor("mid", max_restarts=0, children=[
            Supervisor("leaf", max_restarts=0, children=[w("worker")]),
        ]),
    ])
    root = await supervisors.start(node, tree)
    mid = await root.child_pid("mid")
    with node.subscribe({"give_up", "escalation", "restart"}) as sub:
        await node.send("worker", "crash")
        await trio.testing.wait_all_tasks_blocked()
        events = [(e.kind, e.data.get("supervisor"), e.data.get("child")) for e in sub.drain()]
    assert events == [
        ("give_up", "leaf", "worker"), ("escalation", "leaf", "worker"),
        ("give_up", "mid", "leaf"), ("escalation", "mid", "leaf"),
        ("restart", "root", "mid"),
    ]
    assert root.alive
    assert await root.child_pid("mid") not in (None, mid)
    assert await node.call("worker", "hi") == ["worker", 1]  # the whole branch is back


async def test_root_giving_up_stops_the_tree_and_reports_why(node):
    tree = Supervisor("root", max_restarts=0, children=[w("a"), Supervisor("sub", children=[w("b")])])
    root = await supervisors.start(node, tree)
    with node.subscribe({"give_up"}) as sub:
        await node.send("a", "crash")
        assert (await root.wait()).kind == "shutdown"
        (event,) = sub.drain()
    assert event.data["child"] == "a" and "crashed on purpose" in event.reason
    assert node.pids() == []


async def test_tree_operations(node):
    root = await supervisors.start(node, Supervisor("root", children=[w("a")]))
    assert await root.count_children() == {"specs": 1, "active": 1, "supervisors": 0, "workers": 1}
    pid = await root.start_child(w("b"))
    assert await root.child_pid("b") == pid
    with pytest.raises(SupervisorError, match="already exists"):
        await root.start_child(w("b"))
    await root.terminate_child("b")
    assert await root.child_pid("b") is None and not node.is_alive(pid)
    with pytest.raises(SupervisorError, match="running"):
        await root.delete_child("a")
    again = await root.restart_child("b")
    assert node.is_alive(again)
    await root.terminate_child("b")
    await root.delete_child("b")
    assert [c.id for c in await root.which_children()] == ["a"]
    with pytest.raises(SupervisorError, match="no child"):
        await root.restart_child("zzz")


async def test_nested_supervisor_handle(node):
    root = await supervisors.start(node, Supervisor("root", children=[Supervisor("pool", children=[w("x")])]))
    pool = await root.child("pool")
    assert [c.id for c in await pool.which_children()] == ["x"]
    rows = await root.which_children()
    assert rows[0].type == "supervisor" and rows[0].component == "supervisor"


async def test_simple_one_for_one(node):
    tree = Supervisor("pool", strategy="simple_one_for_one", children=[
        Child("worker", Worker, args={"id": "template"}),
    ])
    pool = await supervisors.start(node, tree)
    pids = [await pool.start_child(args={"id": f"w{i}"}) for i in range(3)]
    assert [await node.call(p, "x") for p in pids] == [["w0", 1], ["w1", 1], ["w2", 1]]
    await node.send(pids[1], "crash")
    await trio.testing.wait_all_tasks_blocked()
    rows = await pool.which_children()
    assert len(rows) == 3 and pids[1] not in [r.pid for r in rows]
    restarted = next(r.pid for r in rows if r.pid not in pids)
    assert await node.call(restarted, "x") == ["w1", 1]  # same extra args
    await pool.terminate_child(str(pids[0]))
    assert (await pool.count_children())["active"] == 2
    named = await pool.start_child(args={"id": "named"}, name="named")
    assert node.whereis("named") == named
    assert (await pool.stop()).kind == "shutdown"
    assert node.pids() == []


async def test_brutal_kill_versus_timeout_for_a_child_slow_to_stop(node):
    tree = Supervisor("root", children=[
        Child("quick", SlowToStop, args={"id": "quick", "stop_after": 0.05}, shutdown=2.0),
        Child("slow", SlowToStop, args={"id": "slow", "stop_after": 10}, shutdown=0.2),
        Child("brutal", SlowToStop, args={"id": "brutal", "stop_after": 10}, shutdown="brutal_kill"),
    ])
    root = await supervisors.start(node, tree)
    reasons = {}
    for child_id in ("quick", "slow", "brutal"):
        pid = await root.child_pid(child_id)
        start = trio.current_time()
        await root.terminate_child(child_id)
        reasons[child_id] = ((await node.wait(pid)).kind, trio.current_time() - start)
    assert reasons["quick"][0] == "shutdown" and reasons["quick"][1] < 1.0
    assert reasons["slow"][0] == "killed" and 0.2 <= reasons["slow"][1] < 1.0
    assert reasons["brutal"][0] == "killed" and reasons["brutal"][1] < 0.1


@pytest.mark.parametrize("shutdown, least, most", [(0.3, 0.3, 2.0), ("brutal_kill", 0.0, 0.2)])
async def test_guest_stuck_in_a_long_handler(node, shutdown, least, most):
    tree = Supervisor("root", children=[
        Child("stuck", component_path("crasher.wat"), threaded=True, shutdown=shutdown,
              limits=Limits(fuel=None, deadline=None)),
    ])
    root = await supervisors.start(node, tree)
    pid = await root.child_pid("stuck")
    await node.send(pid, "loop")
    await trio.sleep(0.05)
    start = trio.current_time()
    await root.terminate_child("stuck")
    took = trio.current_time() - start
    assert (await node.wait(pid)).kind == "killed"
    assert least <= took < most


async def test_restarted_child_keeps_its_name_and_gets_the_queued_messages(node):
    class Forwarder(Worker):
        async def handle(self, ctx, msg):
            value = msg.value
            if value == "crash":
                raise RuntimeError("crash")
            await ctx.send("sink", value)
            return None

    class Sink(Worker):
        async def handle(self, ctx, msg):
            if msg.value == "all":
                return self.seen
            self.seen.append(msg.value)
            return None

    await node.spawn(Sink, name="sink", args={"id": "sink"})
    root = await supervisors.start(node, Supervisor("root", max_restarts=1000, within=60, children=[
        Child("fwd", Forwarder, name="fwd", args={"id": "fwd"}),
    ]))
    sent = []
    for i in range(1000):
        if i % 10 == 5:
            await node.send("fwd", "crash")  # 100 crashes, each with messages queued behind it
        else:
            await node.send("fwd", i)
            sent.append(i)
    await trio.testing.wait_all_tasks_blocked()
    assert (await root.which_children())[0].restarts == 100
    assert await node.call("sink", "all") == sent  # all of them, once each, in order
    crashes = [d for d in node.dead_letters() if d.to == "fwd"]
    assert [d.value for d in crashes] == ["crash"] * 100
    assert all(d.reason.startswith("error") for d in crashes)


async def test_mailbox_drop_makes_queued_messages_dead_letters(node):
    root = await supervisors.start(node, Supervisor("root", children=[w("a", mailbox="drop")]))
    old = await root.child_pid("a")
    await node.send("a", ["sleep", 0.05])
    await node.send("a", "crash")
    await node.send("a", "queued")
    await node.wait(old)
    await trio.testing.wait_all_tasks_blocked()
    assert "queued" in [d.value for d in node.dead_letters()]
    assert await node.call("a", "fresh") == ["a", 1]
    assert root.alive


async def test_call_in_flight_on_a_crashing_child_fails_at_once(node):
    await supervisors.start(node, Supervisor("root", children=[w("a")]))
    with trio.fail_after(1):
        with pytest.raises(CallFailed) as info:
            await node.call("a", "crash", timeout=30)
    assert "crashed on purpose" in info.value.reason.detail


async def test_calls_queued_behind_a_crash_are_answered_by_the_restarted_child(node):
    await supervisors.start(node, Supervisor("root", children=[w("a")]))
    results = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node.send, "a", ["sleep", 0.05])
        await trio.testing.wait_all_tasks_blocked()
        await node.send("a", "crash")

        async def caller():
            results.append(await node.call("a", "after"))

        nursery.start_soon(caller)
    assert results == [["a", 1]]


async def test_wasm_children_in_a_tree(node):
    tree = Supervisor("root", children=[
        Child("counter", component_path("counter.wat"), args={"start": 7}, name="counter", version="v1"),
        Child("echo", component_path("echo.wat"), name="echo", capabilities=Capabilities(send=["*"])),
    ])
    root = await supervisors.start(node, tree)
    assert await node.call("counter", 1) == 8
    rows = await root.which_children()
    assert [(r.component, r.version) for r in rows] == [("counter", "v1"), ("echo", rows[1].version)]
    await node.send("counter", "not a number")  # err -> crash -> restart from args
    await trio.testing.wait_all_tasks_blocked()
    assert await node.call("counter", "get") == 7
    assert (await root.which_children())[0].restarts == 1


async def test_restart_events_carry_the_reason_and_a_timestamp(node):
    await supervisors.start(node, Supervisor("root", children=[w("a")]))
    with node.subscribe({"restart"}) as sub:
        await node.send("a", "crash")
        event = await sub.wait_for(lambda e: True)
    assert event.name == "a" and "crashed on purpose" in event.reason
    assert event.data["supervisor"] == "root" and event.data["restarts"] == 1
    assert event.time > 0 and isinstance(event.pid, Pid)


async def test_node_shutdown_stops_the_tree_top_down():
    async with Node() as node:
        await supervisors.start(node, Supervisor("root", children=[w("a"), Supervisor("s", children=[w("b")])]))
        sub = node.subscribe({"exit", "restart"})
    events = sub.drain()
    assert "restart" not in [e.kind for e in events]
    assert [e.name for e in events] == ["b", None, "a", None]


async def test_child_handle_for_a_supervisor_added_at_run_time(node):
    root = await supervisors.start(node, Supervisor("root", children=[w("a")]))
    await root.start_child(Supervisor("sub", children=[w("x")]))
    sub = await root.child("sub")
    assert [c.id for c in await sub.which_children()] == ["x"]


async def test_a_clean_stop_leaves_no_dead_letters(node):
    root = await supervisors.start(node, Supervisor("root", children=[w("a"), w("b"), Supervisor("s", children=[w("c")])]))
    await root.stop()
    assert node.dead_letter_count == 0
