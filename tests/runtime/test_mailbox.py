import pytest
import trio
import trio.testing

from airssys_actors import MailboxClosed, MailboxFull
from airssys_actors._mailbox import Mailbox
from airssys_actors._message import Envelope, Kind


def env(n: int, kind: int = Kind.CAST) -> Envelope:
    return Envelope(kind, n, None, b"")


def test_capacity_must_be_positive():
    with pytest.raises(ValueError, match="capacity"):
        Mailbox(0)


def test_fifo_order():
    box = Mailbox(10)
    for i in range(5):
        box.put_nowait(env(i))
    assert [box.get_nowait().ref for _ in range(5)] == [0, 1, 2, 3, 4]
    assert box.get_nowait() is None


def test_put_nowait_raises_at_the_bound():
    box = Mailbox(2)
    box.put_nowait(env(1))
    box.put_nowait(env(2))
    with pytest.raises(MailboxFull):
        box.put_nowait(env(3))


def test_system_lane_is_taken_first_and_ignores_the_bound():
    box = Mailbox(1)
    box.put_nowait(env(1))
    box.put_system(env(2, Kind.DOWN))
    box.put_system(env(3, Kind.TIMER))
    assert [box.get_nowait().ref for _ in range(3)] == [2, 3, 1]


async def test_put_waits_for_room_then_delivers_in_order():
    box = Mailbox(1)
    box.put_nowait(env(1))
    order = []

    async def sender():
        await box.put(env(2))
        order.append("sent")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        await trio.testing.wait_all_tasks_blocked()
        assert order == []  # blocked on the full mailbox
        assert box.statistics().senders_waiting == 1
        assert box.get_nowait().ref == 1
    assert order == ["sent"]
    assert box.get_nowait().ref == 2


async def test_close_wakes_blocked_senders_with_mailbox_closed():
    box = Mailbox(1)
    box.put_nowait(env(1))
    errors = []

    async def sender():
        try:
            await box.put(env(2))
        except MailboxClosed as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        await trio.testing.wait_all_tasks_blocked()
        left = box.close()
    assert [e.ref for e in left] == [1]
    assert len(errors) == 1
    with pytest.raises(MailboxClosed):
        box.put_nowait(env(3))


async def test_wait_returns_when_a_message_arrives():
    box = Mailbox(4)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.wait)
        await trio.testing.wait_all_tasks_blocked()
        box.put_nowait(env(7))
    assert box.get_nowait().ref == 7


def test_statistics_is_a_frozen_snapshot():
    box = Mailbox(3)
    box.put_nowait(env(1))
    box.put_system(env(2))
    stats = box.statistics()
    assert (stats.depth, stats.system_depth, stats.capacity, stats.closed) == (1, 1, 3, False)
    with pytest.raises(AttributeError):
        stats.depth = 5
