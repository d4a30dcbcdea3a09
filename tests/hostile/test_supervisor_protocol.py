"""Hostile class 6: anything sent to a supervisor that is not a valid request.

From Python (forged request tokens, wrong argument types, non-msgpack bytes, raw casts)
and from a WAT guest granted ``send`` to the supervisor: a call gets an error reply, any
other message is dropped with an event; afterwards the tree is up, its children answer,
and no request left anything behind (no open handoff, nothing in the supervisor's
mailbox).
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import supervisors
from airssys_actors import Actor, Capabilities, Context, Message, decode, encode
from supervisors import Child, Supervisor, SupervisorError
from supervisors._handoff import open_count

from ..conftest import component_path


class Slow(Actor):
    """Answers ``["sleep", s]`` after ``s`` seconds; anything else at once."""

    async def handle(self, ctx: Context, msg: Message) -> Any:
        value = msg.value
        if isinstance(value, list) and value[:1] == ["sleep"]:
            await trio.sleep(value[1])
        return "ok"


def tree(**extra: Any) -> Supervisor:
    return Supervisor("root", name="root-sup", children=[
        Child("counter", component_path("counter.wat"), args={"start": 7}, name="counter"),
        Child("slow", Slow, name="slow"),
        Supervisor("pool", name="pool-sup", strategy="simple_one_for_one", children=[Child("w", Slow)]),
        *extra.get("more", []),
    ])


async def assert_tree_serves(node, root) -> None:
    """The tree is up, its children answer, and no request left anything behind."""
    await trio.testing.wait_all_tasks_blocked()
    assert root.alive
    assert await node.call("counter", "get") == 7
    assert await node.call("slow", "ping") == "ok"
    assert [c.id for c in await root.which_children()][:3] == ["counter", "slow", "pool"]
    assert open_count() == 0
    assert node.process_info(root.pid)["mailbox"] == 0


async def raw_call(node, pid, value: Any) -> Any:
    return await node.call(pid, value, timeout=5)


FORGED = b"\x00" * 16

BAD_REQUESTS = [
    # (request, words the error must contain)
    (42, "a supervisor request is a list"),
    ("which_children", "a supervisor request is a list"),
    ({"op": "which_children"}, "a supervisor request is a list"),
    (None, "a supervisor request is a list"),
    ([], "a supervisor request is a list"),
    ([1, 2], "operation must be a string"),
    (["no_such_op"], "unknown operation"),
    (["_terminate_all"], "unknown operation"),
    (["__init__"], "unknown operation"),
    (["terminate_child", {"a": 1}], "child must be str"),
    (["terminate_child"], "terminate_child takes 1 arguments"),
    (["terminate_child", "counter", "extra"], "terminate_child takes 1 arguments"),
    (["child_pid", None], "child must be str"),
    (["child_pid", [[[[[["deep"]]]]]]], "child must be str"),
    (["which_children", "x"], "offset must be int"),
    (["which_children", True], "offset must be int"),
    (["which_children", -1], "offset must be >= 0"),
    (["which_children", 0, 0], "limit must be 1 to"),
    (["which_children", 0, 10**12], "limit must be 1 to"),
    (["which_children", 0, 2**64 - 1], "limit must be 1 to"),
    (["count_children", *range(50_000)], "count_children takes 0 arguments"),
    (["start_child", 12345], "token must be bytes"),
    (["start_child", FORGED], "not a request token"),
    (["start_child", b"short"], "not a request token"),
    (["upgrade", FORGED], "not a request token"),
    (["upgrade", "x" * 100_000], "token must be bytes"),
    (["collect", FORGED], "not a request token"),
    (["adopt", FORGED], "not a request token"),
    (["child_spec", "counter", FORGED], "not a request token"),
    (["child_spec", "counter", 1.5], "token must be bytes"),
    (["restart_child", "no-such-child"], "no child"),
    (["delete_child", "x" * 10_000], "no child"),
]


@pytest.mark.parametrize(("request_", "words"), BAD_REQUESTS, ids=[repr(r)[:40] for r, _ in BAD_REQUESTS])
async def test_a_bad_call_gets_an_error_reply_and_the_tree_stays_up(node, request_, words):
    root = await supervisors.start(node, tree())
    status, text = await raw_call(node, root.pid, request_)
    assert status == "error"
    assert words in text
    assert len(text) < 1000  # the offending value is quoted, not echoed whole
    await assert_tree_serves(node, root)


async def test_every_bad_call_in_a_row_leaves_the_tree_serving(node):
    root = await supervisors.start(node, tree())
    pool = await root.child("pool")
    for request_, _ in BAD_REQUESTS:
        assert (await raw_call(node, root.pid, request_))[0] == "error"
        assert (await raw_call(node, pool.pid, request_))[0] == "error"
    await assert_tree_serves(node, root)
    assert await pool.start_child() is not None


@pytest.mark.parametrize("payload", [b"", b"\xc1", b"\x92\x01", b"\x91\xa5hello" + b"\x00", b"\xdd\xff\xff\xff\xff",
                                     bytes(range(256)), b"\x91" * 100_000 + b"\xc0"])
async def test_bytes_that_are_not_msgpack_get_an_error_reply(node, payload):
    root = await supervisors.start(node, tree())
    status, text = decode(await node.call_bytes(root.pid, payload, timeout=5))
    assert status == "error" and "not a msgpack value" in text
    await assert_tree_serves(node, root)


async def test_casts_and_other_kinds_are_dropped_with_an_event(node):
    root = await supervisors.start(node, tree())
    sub = node.subscribe({"supervisor_dropped"})
    await node.send(root.pid, ["terminate_child", "counter"])  # a valid request, but a cast
    await node.send(root.pid, {"garbage": [1, 2, 3]})
    node.send_after(root.pid, "tick", 0)  # from outside a process: arrives as a cast
    await trio.sleep(0.01)
    events = sub.drain()
    assert len(events) == 3
    assert {e.data["message_kind"] for e in events} == {"cast"}
    assert all(e.pid == root.pid and e.data["bytes"] > 0 for e in events)
    assert await root.child_pid("counter") is not None  # the cast did nothing
    await assert_tree_serves(node, root)


async def test_a_bad_call_is_recorded_as_an_event(node):
    root = await supervisors.start(node, tree())
    sub = node.subscribe({"supervisor_bad_request"})
    await raw_call(node, root.pid, ["terminate_child", {"a": 1}])
    (event,) = sub.drain()
    assert "child must be str" in event.reason and event.data["message_kind"] == "call"


async def test_a_token_is_good_only_for_its_own_supervisor_and_request(node):
    """A real token of one request, replayed to another supervisor or after the request
    ended, is refused like a forged one."""
    from supervisors._handoff import open_handoff

    root = await supervisors.start(node, tree())
    pool = await root.child("pool")
    with open_handoff(root.pid, (None, None)) as handoff:
        status, text = await raw_call(node, pool.pid, ["start_child", handoff.token])
        assert status == "error" and "not a request token" in text
    with open_handoff(pool.pid, (None, None)) as handoff:
        token = handoff.token
    status, text = await raw_call(node, pool.pid, ["start_child", token])
    assert status == "error" and "not a request token" in text
    assert (await pool.count_children())["active"] == 0
    await assert_tree_serves(node, root)


async def test_a_request_whose_caller_gives_up_leaves_nothing_behind(node):
    root = await supervisors.start(node, tree())
    pool = await root.child("pool")
    version = node.process_info("counter")["version"]
    # Each caller gives up before (or while) its request is handled: the request is
    # queued with its token, which the supervisor then finds closed.
    for _ in range(20):
        with trio.move_on_after(0.001):
            await pool.start_child(args={"n": 1})
        with trio.move_on_after(0):
            await root.child("pool")
        with trio.move_on_after(0):
            await root.upgrade("counter", component_path("counter_v2.wat"))
    # A supervisor that took a request before its caller left stops its work on it.
    await trio.testing.wait_all_tasks_blocked()
    assert open_count() == 0
    assert node.process_info("counter")["version"] == version
    await assert_tree_serves(node, root)
    # Requests whose callers gave up after the supervisor took them may still have
    # started children; none was started twice, and each answers.
    for row in await pool.which_children():
        assert await node.call(row.pid, "ping") == "ok"


async def test_a_reply_too_large_for_a_message_is_an_error_reply_not_a_crash():
    """A Python process's reply that does not fit in ``max_message`` would end it: the
    supervisor answers with an error instead."""
    from airssys_actors import Node

    async with Node(max_message=2048) as node:
        root = await supervisors.start(node, Supervisor("root", children=[
            Child("a" * 3000, Slow, name="long"), Child("b", Slow, name="short"),
        ]))
        status, text = await raw_call(node, root.pid, ["which_children", 0, 2])
        assert status == "error" and "does not fit in a message" in text
        # The next row alone fits, so the listing from there on works.
        status, page = await raw_call(node, root.pid, ["which_children", 1, 2])
        assert status == "ok" and [r["id"] for r in page["rows"]] == ["b"] and page["next"] is None
        assert root.alive and await node.call("long", "ping") == "ok"


async def test_a_guest_sending_garbage_to_its_supervisor(node):
    """A WAT guest granted ``send`` to the root supervisor casts garbage at it and calls
    it with bad requests and forged tokens: each call is answered with an error, each
    cast dropped; the tree goes on."""
    pinger = Child("pinger", component_path("pinger.wat"), name="pinger",
                   capabilities=Capabilities(send=("root-sup", "pool-sup")))
    root = await supervisors.start(node, tree(more=[pinger]))
    sub = node.subscribe({"supervisor_dropped"})
    for target in ("root-sup", "pool-sup"):
        for value in ([1, 2, 3], "terminate_child", ["terminate_child", "counter"], {"x": None}, b"\xc1" * 100):
            assert await node.call("pinger", ["send", target, value]) == "ok"
        for request_, words in BAD_REQUESTS[:30]:
            reply = await node.call("pinger", ["ask", target, request_], timeout=10)
            assert reply[0] == "error", (request_, reply)
            assert words in reply[1]
    await trio.sleep(0.01)
    assert len(sub.drain()) == 10
    assert (await root.child("pool")).alive
    await assert_tree_serves(node, root)


async def test_a_guest_cannot_stop_or_start_children_without_a_token(node):
    """Requests that need no Python object work from a guest granted ``send``, as from
    any client (that is what the grant means); those that carry objects need a token
    only a Python caller on the node can have."""
    pinger = Child("pinger", component_path("pinger.wat"), name="pinger",
                   capabilities=Capabilities(send=("root-sup",)))
    root = await supervisors.start(node, tree(more=[pinger]))
    reply = await node.call("pinger", ["ask", "root-sup", ["count_children"]])
    assert reply == ["ok", {"specs": 4, "active": 4, "supervisors": 1, "workers": 3}]
    reply = await node.call("pinger", ["ask", "root-sup", ["start_child", FORGED]])
    assert reply[0] == "error"
    assert (await root.count_children())["specs"] == 4
    await assert_tree_serves(node, root)


async def test_ref_methods_still_refuse_bad_input_with_supervisor_error(node):
    root = await supervisors.start(node, tree())
    with pytest.raises(SupervisorError, match="no child"):
        await root.terminate_child("nope")
    with pytest.raises(SupervisorError, match="limit must be 1 to"):
        await root.which_children_page(0, 0)
    await assert_tree_serves(node, root)


def test_the_encoded_forged_request_is_small():
    # The forged-token requests above are ordinary small messages: nothing needs a
    # special path to reach the supervisor.
    assert len(encode(["start_child", FORGED])) < 64


# -- arbitrary input (property-based) -------------------------------------------------

_scalars = st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.floats() \
    | st.text(max_size=40) | st.binary(max_size=40)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=5)
                       | st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=20)
_ops = st.sampled_from(["which_children", "count_children", "child_pid", "child_spec", "start_child",
                        "terminate_child", "restart_child", "delete_child", "collect", "adopt", "upgrade"])
#: Requests that look like real ones (a known operation, arbitrary arguments), any msgpack
#: value, and arbitrary bytes.
_payloads = st.builds(lambda op, args: encode([op, *args]), _ops, st.lists(_values, max_size=3)) \
    | _values.map(encode) | st.binary(max_size=200)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_payloads, min_size=1, max_size=25))
def test_arbitrary_calls_and_casts_never_end_the_tree(payloads):
    from airssys_actors import Node

    async def main() -> None:
        async with Node(shutdown_timeout=1.0) as node:
            root = await supervisors.start(node, tree())
            pool = await root.child("pool")
            for payload in payloads:
                for target in (root.pid, pool.pid):
                    reply = decode(await node.call_bytes(target, payload, timeout=5))
                    assert isinstance(reply, list) and reply[0] in ("ok", "error")
                    if _is_msgpack(payload):
                        node.send_nowait(target, decode(payload))
            # Whatever those did (a valid request may stop a child: it is then restarted or
            # gone by its spec), the supervisors answer and nothing was left behind.
            await trio.testing.wait_all_tasks_blocked()
            assert root.alive and pool.alive
            assert open_count() == 0
            assert set(await root.count_children()) == {"specs", "active", "supervisors", "workers"}
            assert node.process_info(root.pid)["mailbox"] == 0

    trio.run(main)


def _is_msgpack(payload: bytes) -> bool:
    try:
        decode(payload)
    except Exception:
        return False
    return True
