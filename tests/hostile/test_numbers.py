"""Numbers at every boundary of the public API: NaN, infinities, negatives, bools standing
in for ints and wrong types are refused where they enter, with an error naming the field,
and the node keeps serving afterwards. None of them reaches trio or wasmtime."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import attrs
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

import supervisors
from airssys_actors import Actor, Capabilities, Context, Limits, Message, Node
from airssys_actors.faults import ChaosScheduler
from supervisors import Child, InvalidChildSpec, Supervisor

from ..conftest import component_path

NAN, INF = float("nan"), float("inf")

#: Values no number field takes.
HOSTILE = [NAN, INF, -INF, True, False, "5", None, [1], b"1", 10**400]
BAD_SECONDS = [NAN, INF, -INF, -1, -0.5, True, "1", [1], b"1", object(), 10**400]
BAD_COUNTS = [NAN, INF, -1, 1.5, 2.0, True, False, "3", None, [1]]


class Echo(Actor):
    async def handle(self, ctx: Context, msg: Message) -> Any:
        return msg.value


class Checker(Actor):
    """Tries a Context method with the arguments in the message; replies with the error."""

    async def handle(self, ctx: Context, msg: Message) -> Any:
        op, value = msg.value
        try:
            if op == "send_after":
                ctx.send_after(ctx.pid, "tick", value)
            elif op == "call":
                await ctx.call("echo", "hi", timeout=value)
        except (TypeError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return "accepted"


def refused(exc_info: pytest.ExceptionInfo[BaseException], field: str) -> None:
    assert isinstance(exc_info.value, (TypeError, ValueError))
    assert field in str(exc_info.value), str(exc_info.value)


async def still_serves(node: Node) -> None:
    pid = await node.spawn(Echo)
    assert await node.call(pid, "still here") == "still here"


# -- Node(...) ------------------------------------------------------------------------


@pytest.mark.parametrize("field, bad", [
    *[("mailbox_capacity", v) for v in [0, -1, 1.5, True, NAN, INF, "10"]],
    *[("max_message", v) for v in [0, -1, 1.5, True, NAN, "10", 2**40]],
    *[("dead_letter_capacity", v) for v in [-1, 1.5, True, NAN, "10"]],
    *[("shutdown_timeout", v) for v in BAD_SECONDS],
    ("limits", {"fuel": 1}),
])
def test_node_arguments_are_checked_where_they_enter(field, bad):
    with pytest.raises((TypeError, ValueError)) as info:
        Node(**{field: bad})
    refused(info, field)


async def test_a_node_refuses_bad_spawn_arguments_and_keeps_serving(node):
    for bad in [0, -3, True, 2.5, NAN, "9"]:
        with pytest.raises((TypeError, ValueError)) as info:
            await node.spawn(Echo, mailbox_capacity=bad)
        refused(info, "mailbox_capacity")
    with pytest.raises(TypeError) as info:
        await node.spawn(Echo, limits={"fuel": 5})
    refused(info, "limits")
    with pytest.raises(TypeError) as info:
        await node.spawn(Echo, capabilities=["*"])
    refused(info, "capabilities")
    with pytest.raises(TypeError) as info:
        await node.spawn(Echo, name=7)
    refused(info, "name")
    from airssys_actors import MessageTooLarge

    with pytest.raises(MessageTooLarge):
        await node.spawn(Echo, args=b"x" * (node.max_message + 1))
    assert node.statistics().processes == 0  # nothing half-started
    await still_serves(node)


@pytest.mark.parametrize("bad", BAD_SECONDS)
async def test_call_timeouts_are_checked_before_anything_is_sent(node, bad):
    pid = await node.spawn(Echo)
    with pytest.raises((TypeError, ValueError)) as info:
        await node.call(pid, "x", timeout=bad)
    refused(info, "timeout")
    with pytest.raises((TypeError, ValueError)) as info:
        await node.call_bytes(pid, b"\xa1x", timeout=bad)
    refused(info, "timeout")
    assert node.statistics().pending_calls == 0
    assert node.statistics().timers == 0
    assert await node.call(pid, "fine") == "fine"


async def test_call_bytes_takes_bytes_only(node):
    pid = await node.spawn(Echo)
    with pytest.raises(TypeError) as info:
        await node.call_bytes(pid, "not bytes")  # type: ignore[arg-type]
    refused(info, "payload")
    await still_serves(node)


@pytest.mark.parametrize("bad", BAD_SECONDS)
async def test_send_after_delays_are_checked(node, bad):
    pid = await node.spawn(Echo)
    with pytest.raises((TypeError, ValueError)) as info:
        node.send_after(pid, "tick", bad)
    refused(info, "delay")
    assert node.statistics().timers == 0  # no timer that can never fire
    assert await node.call(pid, "fine") == "fine"


async def test_large_finite_timeouts_and_zero_are_fine(node):
    pid = await node.spawn(Echo)
    assert await node.call(pid, "x", timeout=1e300) == "x"
    assert await node.call(pid, "x", timeout=Fraction(5, 2)) == "x"
    timer = node.send_after(pid, "later", 1e12)
    assert node.cancel_timer(timer)
    from airssys_actors import CallTimeout

    try:  # a zero timeout is a valid one: a reply or a timeout, nothing else
        await node.call(pid, "x", timeout=0)
    except CallTimeout:
        pass


async def test_python_actors_context_checks_its_arguments(node):
    await node.spawn(Echo, name="echo")
    checker = await node.spawn(Checker)
    for op, field in [("send_after", "delay"), ("call", "timeout")]:
        for bad in [NAN, INF, -1, True, "1"]:
            answer = await node.call(checker, [op, bad])
            assert answer != "accepted" and field in answer, (op, bad, answer)
    assert await node.call(checker, ["call", 1.0]) == "accepted"
    assert node.is_alive(checker)  # the actor was told, not crashed


async def test_subscription_bounds_are_counts(node):
    for bad in [0, -1, True, 1.5, NAN, "10"]:
        with pytest.raises((TypeError, ValueError)) as info:
            node.subscribe(maxlen=bad)
        refused(info, "maxlen")
    with node.subscribe({"spawn"}, maxlen=1) as sub:
        await still_serves(node)
        assert sub.drain()


# -- Limits and Capabilities ----------------------------------------------------------

LIMIT_FIELDS = [f.name for f in attrs.fields(Limits)]


@pytest.mark.parametrize("field", LIMIT_FIELDS)
@pytest.mark.parametrize("bad", [NAN, INF, -1, True, "5", [1], 10**400])
def test_limits_refuse_bad_numbers_naming_the_field(field, bad):
    with pytest.raises((TypeError, ValueError)) as info:
        Limits(**{field: bad})
    refused(info, f"Limits.{field}")


def test_limits_edges():
    assert Limits(fuel=None, deadline=None, memory=None, table_elements=None).fuel is None
    for field in ("max_message", "max_pending"):
        with pytest.raises(TypeError) as info:
            Limits(**{field: None})
        refused(info, field)
    with pytest.raises(ValueError):
        Limits(fuel=0)  # zero fuel would mean "unlimited" to the instance: refused
    with pytest.raises(ValueError):
        Limits(deadline=0)
    with pytest.raises(TypeError):
        Limits(fuel=1e9)  # a float where an integer is due
    assert Limits(memory=0, max_pending=0, table_elements=0).memory == 0


def test_limits_live_in_their_own_module_and_where_they_were():
    from airssys_actors._host._instance import Limits as FromInstance
    from airssys_actors._limits import Limits as FromLimits

    assert FromInstance is FromLimits is Limits


@pytest.mark.parametrize("field", ["max_children", "timers"])
@pytest.mark.parametrize("bad", BAD_COUNTS)
def test_capabilities_counts_are_whole_numbers(field, bad):
    with pytest.raises((TypeError, ValueError)) as info:
        Capabilities(**{field: bad})
    refused(info, f"Capabilities.{field}")


async def test_a_bad_limit_never_reaches_a_spawn(node):
    with pytest.raises(ValueError):
        await node.spawn(component_path("echo.wat"), limits=Limits(deadline=NAN))
    pid = await node.spawn(component_path("echo.wat"), limits=Limits(deadline=1e9, fuel=2**63 - 1))
    assert await node.call(pid, "ok") == "ok"


# -- supervision specs and SupervisorRef ------------------------------------------------


@pytest.mark.parametrize("field, bad", [
    *[("within", v) for v in [NAN, INF, -INF, 0, -1, True, "5", None]],
    *[("max_restarts", v) for v in [True, False, -1, 1.5, NAN, "3", None]],
    *[("shutdown", v) for v in [NAN, INF, -INF, -1, True, "soon", None]],
])
def test_supervisor_specs_refuse_bad_numbers(field, bad):
    with pytest.raises(InvalidChildSpec) as info:
        Supervisor("root", **{field: bad})
    assert info.value.field == field
    refused(info, field)


@pytest.mark.parametrize("field, bad", [
    *[("shutdown", v) for v in [NAN, INF, -INF, -1, True, "later", None]],
    *[("mailbox_capacity", v) for v in [True, False, 0, -1, 1.5, NAN, "10"]],
    ("limits", {"fuel": 1}), ("capabilities", "*"), ("trap_exits", "yes"), ("threaded", 1),
    ("name", 5), ("version", 2),
])
def test_child_specs_refuse_bad_values(field, bad):
    with pytest.raises(InvalidChildSpec) as info:
        Child("w", component_path("echo.wat"), **{field: bad})
    assert info.value.field == field
    refused(info, field)


def test_spec_errors_stay_short_whatever_the_value():
    with pytest.raises(InvalidChildSpec) as info:
        Child("w", component_path("echo.wat"), shutdown="x" * 1_000_000)
    assert len(str(info.value)) < 400


async def test_supervisor_ref_checks_timeouts_and_counts(node):
    root = await supervisors.start(node, Supervisor("root", children=[Child("echo", Echo, name="echo")]))
    cases: list[tuple[str, dict[str, Any]]] = [
        *[("canary", {"canary": v}) for v in [-1, True, 1.5, NAN, "2"]],
        *[("probe_timeout", {"probe_timeout": v}) for v in [*BAD_SECONDS, 0]],
        *[("timeout", {"timeout": v}) for v in [*BAD_SECONDS, 0]],
        ("strategy", {"strategy": "yolo"}),
    ]
    for field, kwargs in cases:
        with pytest.raises((TypeError, ValueError)) as info:
            await root.upgrade("echo", component_path("echo.wat"), **kwargs)
        refused(info, field)
    for bad in [NAN, INF, -1, 0, True]:
        with pytest.raises((TypeError, ValueError)) as info:
            await root.downgrade("echo", timeout=bad)
        refused(info, "timeout")
        with pytest.raises((TypeError, ValueError)) as info:
            await root.stop(timeout=bad)
        refused(info, "timeout")
    assert root.alive
    assert len(await root.which_children()) == 1
    assert await node.call("echo", "still") == "still"


# -- the chaos scheduler ------------------------------------------------------------------


@pytest.mark.parametrize("field, kwargs", [
    *[("rate", {"rate": v}) for v in [NAN, INF, 0, -1, True, "5"]],
    *[("delay", {"delay": v}) for v in BAD_SECONDS],
    *[("count", {"count": v}) for v in BAD_COUNTS],
    *[("mix", {"mix": m}) for m in [{"trap": NAN}, {"trap": -1}, {"trap": INF}, {"trap": True},
                                     {"trap": "1"}, {"trap": 0}, {"meteor": 1}]],
    ("seed", {"seed": 1.5}),
    ("pattern", {"pattern": 5}),
])
async def test_chaos_scheduler_arguments(node, field, kwargs):
    options = {"rate": 10, **kwargs}
    pattern = options.pop("pattern", "w/*")
    with pytest.raises((TypeError, ValueError)) as info:
        ChaosScheduler(node, pattern, **options)
    refused(info, field)
    scheduler = ChaosScheduler(node, "w/*", rate=10)
    with pytest.raises(ValueError) as info:
        await scheduler.run(duration=NAN)
    refused(info, "duration")
    await still_serves(node)


# -- property: any value either builds a valid object or is refused naming the field -------

ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.fractions(), st.text(max_size=4),
    st.binary(max_size=4), st.lists(st.integers(), max_size=2),
)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_seconds(value: object) -> bool:
    return isinstance(value, (int, float, Fraction)) and not isinstance(value, bool) and math.isfinite(value)


def _outcome(build: Any, field: str) -> Any:
    try:
        return build()
    except (TypeError, ValueError) as exc:
        assert field in str(exc), f"{field}: {exc}"
        return None


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(LIMIT_FIELDS), value=ANY_VALUE)
def test_property_limits(field, value):
    made = _outcome(lambda: Limits(**{field: value}), f"Limits.{field}")
    if made is not None:
        got = getattr(made, field)
        if field == "deadline":
            assert got is None or (_is_seconds(got) and 0 < got <= 1e9)
        else:
            assert (got is None and field not in ("max_message", "max_pending")) or (_is_int(got) and got >= 0)


NODE_FIELDS = ["mailbox_capacity", "max_message", "dead_letter_capacity", "shutdown_timeout"]


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(NODE_FIELDS), value=ANY_VALUE)
def test_property_node_arguments(field, value):
    made = _outcome(lambda: Node(**{field: value}), field)
    if made is not None:
        if field == "shutdown_timeout":
            assert _is_seconds(made.shutdown_timeout) and made.shutdown_timeout >= 0
        elif field == "mailbox_capacity":
            assert _is_int(made.mailbox_capacity) and made.mailbox_capacity >= 1
        elif field == "max_message":
            assert value is None or (_is_int(made.max_message) and made.max_message >= 1)


SPEC_FIELDS = {
    Supervisor: ["max_restarts", "within", "shutdown"],
    Child: ["shutdown", "mailbox_capacity"],
}


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from([Supervisor, Child]), data=st.data(), value=ANY_VALUE)
def test_property_specs(kind, data, value):
    field = data.draw(st.sampled_from(SPEC_FIELDS[kind]))
    args = ("w", component_path("echo.wat")) if kind is Child else ("root",)
    try:
        made = kind(*args, **{field: value})
    except InvalidChildSpec as exc:
        assert exc.field == field and field in str(exc)
        return
    got = getattr(made, field)
    if field == "within":
        assert _is_seconds(got) and got > 0
    elif field == "max_restarts":
        assert _is_int(got) and got >= 0
    elif field == "shutdown":
        assert got in ("brutal_kill", "infinity") or (_is_seconds(got) and got >= 0)
    elif field == "mailbox_capacity":
        assert got is None or (_is_int(got) and got >= 1)


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from(["max_children", "timers"]), value=ANY_VALUE)
def test_property_capabilities(field, value):
    made = _outcome(lambda: Capabilities(**{field: value}), f"Capabilities.{field}")
    if made is not None:
        assert _is_int(getattr(made, field)) and getattr(made, field) >= 0


def test_property_faults_and_chaos():
    """Every fault argument, with arbitrary values, on one running node: a fault armed,
    or an error naming the argument; the node serves afterwards."""

    async def main() -> None:
        async with Node(shutdown_timeout=1.0) as node:
            await node.spawn(Echo, name="w/1")

            @settings(max_examples=300, deadline=None)
            @given(arg=st.sampled_from(["seconds", "count", "times", "rate", "delay", "weight"]), value=ANY_VALUE)
            def check(arg: str, value: Any) -> None:
                faults = node.faults
                if arg in ("seconds", "count"):
                    build = lambda: faults.inject("w/1", "delay", **{arg: value})  # noqa: E731
                elif arg == "times":
                    build = lambda: faults.fail_next_init("w/1", value)  # noqa: E731
                elif arg == "weight":
                    arg = "mix"
                    build = lambda: ChaosScheduler(node, "w/*", rate=1, mix={"trap": value})  # noqa: E731
                else:
                    build = lambda: ChaosScheduler(node, "w/*", **{"rate": 1, arg: value})  # noqa: E731
                _outcome(build, arg)
                faults.clear()

            check()
            assert await node.call("w/1", "after") == "after"

    trio.run(main)
