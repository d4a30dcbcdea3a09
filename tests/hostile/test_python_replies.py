"""Python actors answer hostile or careless calls the way guests do: a reply over the
message limit is refused (the caller gets MessageTooLarge, the reply is a dead letter
`reply_too_large`) and the actor goes on; a call answered from inside its handler leaves
nothing pending behind it, and calls whose callers gave up are not kept forever."""

from __future__ import annotations

from typing import Any

import pytest

from airssys_actors import NOREPLY, Actor, Context, Message, MessageTooLarge, Node


class Echoer(Actor):
    """Replies with ``n`` bytes to ["big", n], answers ["early", x] with ctx.reply before
    returning NOREPLY, and says what it still has deferred to "deferred"."""

    async def handle(self, ctx: Context, msg: Message) -> Any:
        value = msg.value
        if value == "deferred":
            return len(ctx._proc.deferred)
        if value[0] == "big":
            return b"x" * value[1]
        ctx.reply(msg.ref, value[1])
        return NOREPLY


async def test_an_oversized_python_reply_is_refused_and_the_actor_goes_on(node: Node):
    pid = await node.spawn(Echoer)
    before = node.dead_letter_count
    with pytest.raises(MessageTooLarge):
        await node.call(pid, ["big", node.max_message + 1])
    assert node.is_alive(pid)
    assert node.dead_letter_count == before + 1
    assert node.dead_letters()[-1].reason == "reply_too_large"
    assert await node.call(pid, ["big", 3]) == b"xxx"
    assert await node.call(pid, "deferred") == 0


async def test_a_call_answered_inside_its_handler_leaves_nothing_deferred(node: Node):
    pid = await node.spawn(Echoer)
    for i in range(100):
        assert await node.call(pid, ["early", i]) == i
    assert await node.call(pid, "deferred") == 0
    assert node.process_info(pid)["mailbox"] == 0


class Silent(Actor):
    """Takes every call and never answers it."""

    async def handle(self, ctx: Context, msg: Message) -> Any:
        return NOREPLY if msg.value != "ping" else "pong"


async def test_calls_that_time_out_unanswered_are_not_remembered_forever(node: Node):
    """A process that never answers, called in a loop with short timeouts: what the node
    keeps for the unanswered calls stays within max_pending (and twice what is live).
    (A Python actor holds the default max_pending, 10,000; it is lowered here so that the
    test need not make 20,000 calls.)"""
    from airssys_actors import CallTimeout

    pid = await node.spawn(Silent)
    node._processes[pid].max_pending = 10
    for _ in range(200):
        with pytest.raises(CallTimeout):
            await node.call(pid, "anything", timeout=0.002)
    assert len(node._processes[pid].deferred) <= 2 * 10 + 1
    assert await node.call(pid, "ping") == "pong"
