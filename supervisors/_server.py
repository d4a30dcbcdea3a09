"""The supervisor process: a Python actor that traps exits, starts its children linked
to itself and applies its strategy when one exits. Built only on airssys_actors' public
API (spawn with link, trapped exits, exit/kill, release_name, events), as OTP's
supervisor is built on gen_server.

Ordering, as in OTP: children start left to right and stop right to left; a dynamic
(simple_one_for_one) child set stops in no defined order. Exits are system messages, so
they are handled before queued calls.

Anything may message a supervisor (a guest granted ``send`` to it, a control-socket
client): a call that is not a valid request is answered with ``["error", text]``, any
other message is dropped with a ``supervisor_dropped`` event. Neither ends the tree.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import attrs
import trio

from airssys_actors import (
    Actor, CallFailed, CallTimeout, Component, Context, ExitReason, InvalidComponent, Kind,
    Message, MessageTooLarge, NoSuchProcess, Pid, SpawnFailed, UndecodableMessage, UnencodableMessage,
    UpgradeFailed, encode,
)

from ._handoff import Handoff, NoHandoff, open_handoff, take
from ._intensity import RestartWindow
from ._spec import Child, Supervisor
from ._upgrade import Migration, Target, load_component

HISTORY = 5
"""How many earlier versions each child remembers."""

PAGE = 1000
"""Most rows one ``which_children`` reply holds (fewer when they would not fit in
``Node.max_message``)."""

REASON_CHARS = 2048
"""Error texts in the supervisor's replies and events are cut to this many characters."""

NESTED_TIMEOUT = 60.0
"""Seconds a supervisor waits for a nested supervisor's part of an upgrade."""

_UPGRADE_FAILED = object()
"""What ``_op_upgrade`` returns when the change failed (the error is in the handoff)."""


@attrs.define(eq=False)
class ChildState:
    spec: Child | Supervisor
    pid: Pid | None = None
    restarts: int = 0
    component: Any = None
    """What is spawned: a loaded Component for WASM children, else spec.component."""
    args: Any = None
    dynamic: bool = False
    last_reason: str | None = None
    last_pid: Pid | None = None
    history: list[Any] = attrs.field(factory=list)
    """Versions it ran before (newest last), for downgrades."""

    @property
    def id(self) -> str:
        return self.spec.id

    def version(self) -> str | None:
        if isinstance(self.spec, Supervisor):
            return None
        return getattr(self.component, "version", "python")


class _ServerFactory:
    """Makes a supervisor actor; its ``__name__`` labels the process ``supervisor``."""

    __name__ = "supervisor"

    def __init__(self, spec: Supervisor, parent: Pid | None) -> None:
        self.spec = spec
        self.parent = parent

    def __call__(self) -> SupervisorServer:
        return SupervisorServer(self.spec, self.parent)


def _load(spec: Child) -> Any:
    component = spec.component
    if isinstance(component, (str, Path)) and Path(component).suffix in (".wat", ".wasm"):
        return Component.load(component, version=spec.version)
    return component


class SupervisorError(Exception):
    """A tree operation was refused (unknown child id, wrong strategy, still running...)."""


def _show(value: object, limit: int = 80) -> str:
    """A value as an error message quotes it: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _cut(text: str, limit: int = REASON_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [truncated, {len(text)} chars]"


#: Each operation's arguments after its name: (name, accepted types), then how many of
#: them may be left out. Checked before the operation runs; a request that does not
#: match is answered with an error naming the argument.
_TOKEN = (bytes,)
_OPS: dict[str, tuple[tuple[tuple[str, tuple[type, ...]], ...], int]] = {
    "which_children": ((("offset", (int,)), ("limit", (int,))), 2),
    "count_children": ((), 0),
    "child_pid": ((("child", (str,)),), 0),
    "child_spec": ((("child", (str,)), ("token", _TOKEN)), 0),
    "start_child": ((("token", _TOKEN),), 0),
    "terminate_child": ((("child", (str,)),), 0),
    "restart_child": ((("child", (str,)),), 0),
    "delete_child": ((("child", (str,)),), 0),
    "collect": ((("token", _TOKEN),), 0),
    "adopt": ((("token", _TOKEN),), 0),
    "upgrade": ((("token", _TOKEN),), 0),
}


def _parse(value: Any) -> tuple[str, list[Any]]:
    """The operation and arguments of a request, or SupervisorError saying what is wrong."""
    if not isinstance(value, list) or not value:
        raise SupervisorError(f"a supervisor request is a list [operation, args...], got {_show(value)}")
    op, args = value[0], value[1:]
    if not isinstance(op, str):
        raise SupervisorError(f"the operation must be a string, got {_show(op)}")
    if op not in _OPS:
        raise SupervisorError(f"unknown operation {_show(op)}")
    params, optional = _OPS[op]
    if not len(params) - optional <= len(args) <= len(params):
        raise SupervisorError(f"{op} takes {len(params) - optional} to {len(params)} arguments, got {len(args)}"
                              if optional else f"{op} takes {len(params)} arguments, got {len(args)}")
    for (name, types), arg in zip(params, args, strict=False):
        if isinstance(arg, bool) or not isinstance(arg, types):
            raise SupervisorError(f"{op}: {name} must be {' or '.join(t.__name__ for t in types)}, got {_show(arg)}")
    return op, args


class SupervisorServer(Actor):
    def __init__(self, spec: Supervisor, parent: Pid | None) -> None:
        self.spec = spec
        self.parent = parent
        self.window = RestartWindow(spec.max_restarts, spec.within)
        self.children: list[ChildState] = []
        """The static children, in start order."""
        self.by_id: dict[str, ChildState] = {}
        """The static children by id."""
        self.by_pid: dict[Pid, ChildState] = {}
        """Every running child by pid (static and dynamic)."""
        self.by_text: dict[str, ChildState] = {}
        """The same by the pid's text, which requests name children by."""
        self.dynamic: dict[Pid, ChildState] = {}
        """The running dynamic (simple_one_for_one) children, in start order."""
        self.template: ChildState | None = None
        self.ctx: Context | None = None

    # -- lifecycle --------------------------------------------------------------------

    async def init(self, ctx: Context, args: Any) -> None:
        self.ctx = ctx
        ctx.trap_exits = True
        if self.spec.strategy == "simple_one_for_one":
            spec = self.spec.children[0]
            self.template = ChildState(spec, component=_load(spec) if isinstance(spec, Child) else None)
            return
        for spec in self.spec.children:
            state = ChildState(spec, component=_load(spec) if isinstance(spec, Child) else None, args=getattr(spec, "args", None))
            try:
                await self._start(state)
            except SpawnFailed as exc:
                await self._terminate_all()
                raise SupervisorError(f"failed_to_start_child {spec.id!r}: {exc.reason}") from None
            self._add_static(state)

    def _add_static(self, state: ChildState) -> None:
        self.children.append(state)
        self.by_id[state.id] = state

    def _remove_static(self, state: ChildState) -> None:
        if self.by_id.get(state.id) is state:
            del self.by_id[state.id]
            self.children.remove(state)

    def _track(self, state: ChildState, pid: Pid) -> None:
        state.pid = pid
        self.by_pid[pid] = state
        self.by_text[str(pid)] = state
        if state.dynamic:
            self.dynamic[pid] = state

    def _untrack(self, pid: Pid) -> ChildState | None:
        state = self.by_pid.pop(pid, None)
        if state is not None:
            self.by_text.pop(str(pid), None)
            self.dynamic.pop(pid, None)
        return state

    async def _start(self, state: ChildState) -> Pid:
        ctx = self.ctx
        assert ctx is not None
        spec = state.spec
        if isinstance(spec, Supervisor):
            pid = await ctx.node.spawn(_ServerFactory(spec, ctx.pid), name=spec.name, link=True)
        else:
            pid = await ctx.node.spawn(
                state.component, name=spec.name, args=state.args, link=True,
                trap_exits=spec.trap_exits, mailbox=spec.mailbox,
                mailbox_capacity=spec.mailbox_capacity, limits=spec.limits,
                capabilities=spec.capabilities, threaded=spec.threaded,
            )
        self._track(state, pid)
        return pid

    async def handle(self, ctx: Context, msg: Message) -> Any:
        if msg.kind == Kind.EXIT:
            await self._on_exit(msg.sender, ExitReason.from_wire(msg.value))
            return None
        if msg.kind != Kind.CALL:
            # Nobody waits for an answer: drop it, but say so (it is not lost silently).
            self._dropped(msg, "not a call")
            return None
        try:
            op, args = _parse(msg.value)
        except (SupervisorError, UndecodableMessage) as exc:
            # Garbage from a process allowed to message us must not take the tree down.
            self._dropped(msg, str(exc), answered=True)
            return ["error", str(exc)]
        try:
            result = await getattr(self, f"_op_{op}")(*args)
        except NoHandoff as exc:
            reply = ["error", f"{op}: {exc}"]
        except (SupervisorError, InvalidComponent, ValueError) as exc:
            reply = ["error", _cut(str(exc))]
        except Exception as exc:
            # A bug or an unforeseen failure in one request: that request fails, the tree
            # goes on (the supervisor's state is only changed by completed steps).
            ctx.node.events.emit("supervisor_error", pid=ctx.pid, name=self.spec.name, component="supervisor",
                                 reason=_cut(f"{type(exc).__name__}: {exc}"), data={"operation": op})
            reply = ["error", _cut(f"{op} failed: {type(exc).__name__}: {exc}")]
        else:
            # A failed upgrade's UpgradeFailed is in the request's handoff.
            reply = ["upgrade_failed", None] if result is _UPGRADE_FAILED else ["ok", result]
        try:
            encode(reply, ctx.node.max_message)
        except (MessageTooLarge, UnencodableMessage) as exc:
            # An oversized reply would end this process: answer with the error instead.
            reply = ["error", f"{op}: the reply does not fit in a message: {exc}"]
        return reply

    def _dropped(self, msg: Message, why: str, answered: bool = False) -> None:
        ctx = self.ctx
        assert ctx is not None
        ctx.node.events.emit(
            "supervisor_dropped" if not answered else "supervisor_bad_request", pid=ctx.pid,
            name=self.spec.name, component="supervisor", reason=_cut(why, 200),
            data={"supervisor": self.spec.id, "from": None if msg.sender is None else str(msg.sender),
                  "message_kind": msg.kind.name.lower(), "bytes": len(msg.payload)},
        )

    # -- exits and restarts -----------------------------------------------------------

    async def _on_exit(self, sender: Pid | None, reason: ExitReason) -> None:
        ctx = self.ctx
        assert ctx is not None
        if sender is None or sender == self.parent:
            await self._terminate_all()
            ctx.stop("shutdown")
            return
        state = self._untrack(sender)
        if state is None:
            return  # a child we terminated ourselves, or an unrelated link
        state.pid, state.last_pid = None, sender
        state.last_reason = str(reason)  # the runtime caps a reason at 4 KiB, keeping its size
        if not _should_restart(state.spec.restart, reason):
            self._forget(state, reason)
            return
        await self._restart(state, reason)

    def _forget(self, state: ChildState, reason: ExitReason) -> None:
        """A child that exited for good: its parked mailbox is released."""
        ctx = self.ctx
        assert ctx is not None
        if state.spec.name is not None:
            ctx.node.release_name(state.spec.name, reason)
        if state.spec.restart == "temporary" and not state.dynamic:
            self._remove_static(state)

    async def _restart(self, failed: ChildState, reason: ExitReason) -> None:
        ctx = self.ctx
        assert ctx is not None
        strategy = self.spec.strategy
        while True:
            if not self.window.add(trio.current_time()):
                await self._give_up(failed, reason)
                return
            if strategy in ("one_for_one", "simple_one_for_one"):
                group = [failed]
            else:
                start = 0 if strategy == "one_for_all" else self.children.index(failed)
                group = self.children[start:]
                for other in reversed(group):
                    if other is not failed and other.pid is not None:
                        await self._terminate(other, release=other.spec.restart == "temporary")
                for other in [s for s in group if s.spec.restart == "temporary" and s is not failed]:
                    self._remove_static(other)
                group = [s for s in group if s.spec.restart != "temporary" or s is failed]
            try:
                for state in group:
                    old = None if state.last_pid is None else str(state.last_pid)
                    if state.pid is None:
                        new = await self._start(state)
                        state.restarts += 1
                        ctx.node.events.emit(
                            "restart", pid=new, name=state.spec.name, component=_label(state),
                            version=state.version(), reason=str(reason),
                            data={"supervisor": self.spec.id, "child": state.id, "old_pid": old,
                                  "restarts": state.restarts},
                        )
                return
            except SpawnFailed as exc:
                # The restart itself failed: it counts as another restart (OTP retries).
                reason = exc.reason

    async def _give_up(self, state: ChildState, reason: ExitReason) -> None:
        ctx = self.ctx
        assert ctx is not None
        data = {"supervisor": self.spec.id, "child": state.id, "max_restarts": self.spec.max_restarts,
                "within": self.spec.within}
        ctx.node.events.emit("give_up", pid=ctx.pid, name=self.spec.name, component="supervisor",
                             reason=str(reason), data=data)
        if self.parent is not None:
            ctx.node.events.emit("escalation", pid=ctx.pid, name=self.spec.name, component="supervisor",
                                 reason=str(reason), data={**data, "to": str(self.parent)})
        if state.spec.name is not None:
            ctx.node.release_name(state.spec.name, reason)
        await self._terminate_all()
        ctx.stop("shutdown")

    # -- stopping children ------------------------------------------------------------

    async def _terminate(self, state: ChildState, release: bool = True) -> None:
        """Stop one child per its shutdown spec; its later EXIT message is ignored."""
        ctx = self.ctx
        assert ctx is not None
        pid = state.pid
        if pid is None:
            return
        self._untrack(pid)
        state.pid, state.last_pid = None, pid
        node = ctx.node
        shutdown = state.spec.shutdown
        # As OTP does: unlink first and watch the exit with wait(), so the child's exit
        # does not come back as an EXIT message (which would outlive this supervisor).
        ctx.unlink(pid)
        try:
            if shutdown == "brutal_kill":
                node.kill(pid)
            else:
                await node.exit(pid, "shutdown")
                # exit() yields once, which is often all a child needs to stop: only
                # set up the timeout (and yield again) for one that is still running.
                if shutdown != "infinity" and node.is_alive(pid):
                    with trio.move_on_after(float(shutdown)):
                        await node.wait(pid)
                    if node.is_alive(pid):
                        node.kill(pid)
        except NoSuchProcess:
            pass
        if node.is_alive(pid):
            await node.wait(pid)
        if release and state.spec.name is not None:
            node.release_name(state.spec.name)

    async def _terminate_all(self) -> None:
        if self.dynamic:
            await self._terminate_dynamic()
        for state in reversed(self.children):
            await self._terminate(state)

    async def _terminate_dynamic(self) -> None:
        """Stop every dynamic child at once, as :meth:`_terminate` stops one: they share
        the template's shutdown spec, so one deadline covers them all (a task and a
        cancel scope per child would cost more than stopping it)."""
        ctx = self.ctx
        assert ctx is not None and self.template is not None
        node = ctx.node
        shutdown = self.template.spec.shutdown
        states = list(self.dynamic.values())
        pids = []
        for state in states:
            pid = state.pid
            assert pid is not None
            self._untrack(pid)
            state.pid, state.last_pid = None, pid
            ctx.unlink(pid)
            try:
                if shutdown == "brutal_kill":
                    node.kill(pid)
                else:
                    await node.exit(pid, "shutdown")
            except NoSuchProcess:
                continue
            pids.append(pid)
        with trio.move_on_after(math.inf if shutdown in ("infinity", "brutal_kill") else float(shutdown)):
            for pid in pids:
                if node.is_alive(pid):
                    await node.wait(pid)
        for pid in pids:
            if node.is_alive(pid):
                node.kill(pid)
        for pid in pids:
            if node.is_alive(pid):
                await node.wait(pid)
        for state in states:
            if state.spec.name is not None:
                node.release_name(state.spec.name)

    # -- operations (calls from SupervisorRef) ----------------------------------------

    def _find(self, key: str) -> ChildState:
        """A child by its id, or a running child by its pid's text."""
        state = self.by_id.get(key) or self.by_text.get(key)
        if state is None:
            raise SupervisorError(f"no child {_show(key)}")
        return state

    def _take(self, token: bytes) -> Handoff:
        assert self.ctx is not None
        return take(token, self.ctx.pid)

    @staticmethod
    def _row(s: ChildState) -> dict[str, Any]:
        return {
            "id": s.id if not s.dynamic else str(s.pid),
            "pid": None if s.pid is None else str(s.pid),
            "type": "supervisor" if isinstance(s.spec, Supervisor) else "worker",
            "restart": s.spec.restart,
            "name": s.spec.name,
            "component": _label(s),
            "version": s.version(),
            "restarts": s.restarts,
            "last_reason": s.last_reason,
        }

    async def _op_which_children(self, offset: int = 0, limit: int = PAGE) -> dict[str, Any]:
        """One page of the children: static ones in order, then the dynamic ones in start
        order. ``next`` is the offset of the next page, or None after the last. The
        rows are as many as ``limit`` allows and fit in one message."""
        if offset < 0:
            raise SupervisorError(f"which_children: offset must be >= 0, got {offset}")
        if not 1 <= limit <= PAGE:
            raise SupervisorError(f"which_children: limit must be 1 to {PAGE}, got {limit}")
        assert self.ctx is not None
        total = len(self.children) + len(self.dynamic)
        static = len(self.children)
        states = self.children[offset:offset + limit]
        if len(states) < limit and offset + len(states) < total:
            skip = max(0, offset - static)
            wanted = limit - len(states)
            for index, state in enumerate(self.dynamic.values()):
                if index >= skip + wanted:
                    break
                if index >= skip:
                    states.append(state)
        # Leave room for the reply's envelope around the rows.
        budget = self.ctx.node.max_message - 1024
        rows: list[dict[str, Any]] = []
        used = 0
        for state in states:
            row = self._row(state)
            size = len(encode(row))
            if rows and used + size > budget:
                break
            rows.append(row)
            used += size
        end = offset + len(rows)
        return {"rows": rows, "total": total, "next": end if end < total else None}

    async def _op_count_children(self) -> dict[str, int]:
        static_sups = sum(1 for s in self.children if isinstance(s.spec, Supervisor))
        dynamic = len(self.dynamic)
        dynamic_sups = dynamic if self.template is not None and isinstance(self.template.spec, Supervisor) else 0
        return {
            "specs": len(self.children) + (1 if self.template else 0),
            "active": sum(1 for s in self.children if s.pid is not None) + dynamic,
            "supervisors": static_sups + dynamic_sups,
            "workers": len(self.children) - static_sups + dynamic - dynamic_sups,
        }

    async def _op_child_pid(self, key: str) -> str | None:
        state = self._find(key)
        return None if state.pid is None else str(state.pid)

    async def _op_start_child(self, token: bytes) -> str:
        item = self._take(token).value
        if self.template is not None:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise SupervisorError("start_child of simple_one_for_one takes (args, name)")
            args, name = item
            spec = self.template.spec
            if isinstance(spec, Child) and isinstance(spec.args, dict) and isinstance(args, dict):
                args = {**spec.args, **args}
            elif args is None:
                args = getattr(spec, "args", None)
            if name is not None:
                spec = attrs.evolve(spec, name=name)
            state = ChildState(spec, component=self.template.component, args=args, dynamic=True)
        else:
            spec = item
            if not isinstance(spec, (Child, Supervisor)):
                raise SupervisorError("start_child takes a Child or Supervisor spec")
            if spec.id in self.by_id:
                raise SupervisorError(f"a child with id {spec.id!r} already exists")
            Supervisor(self.spec.id, children=[*(s.spec for s in self.children), spec])  # validate
            state = ChildState(spec, component=_load(spec) if isinstance(spec, Child) else None,
                               args=getattr(spec, "args", None))
        try:
            pid = await self._start(state)
        except SpawnFailed as exc:
            raise SupervisorError(f"failed_to_start_child {state.id!r}: {exc.reason}") from None
        if not state.dynamic:
            self._add_static(state)
        return str(pid)

    async def _op_terminate_child(self, key: str) -> None:
        state = self._find(key)
        await self._terminate(state)
        if not state.dynamic and state.spec.restart == "temporary":
            self._remove_static(state)

    async def _op_restart_child(self, key: str) -> str:
        state = self._find(key)
        if state.pid is not None:
            raise SupervisorError(f"child {_show(key)} is running")
        try:
            return str(await self._start(state))
        except SpawnFailed as exc:
            raise SupervisorError(f"failed_to_start_child {_show(key)}: {exc.reason}") from None

    async def _op_delete_child(self, key: str) -> None:
        state = self._find(key)
        if state.pid is not None:
            raise SupervisorError(f"child {_show(key)} is running")
        self._remove_static(state)

    async def _op_child_spec(self, key: str, token: bytes) -> None:
        handoff = self._take(token)
        handoff.result = self._find(key).spec

    # -- code change ------------------------------------------------------------------

    async def _op_collect(self, token: bytes) -> None:
        """Targets under this supervisor for a change, handed back in the handoff."""
        handoff = self._take(token)
        target, direction, new, mode = handoff.value
        handoff.result = await self._collect(target, direction, new, mode)

    async def _collect(self, target: str, direction: str, new: Component | None, mode: str) -> list[Target]:
        """Running WASM processes in this subtree that ``target`` names: in mode ``child``,
        the one whose child id or registered name it is; in mode ``component``, every
        process of the component with that name."""
        ctx = self.ctx
        assert ctx is not None
        found: list[Target] = []
        for state in [*self.children, *self.dynamic.values()]:
            if isinstance(state.spec, Supervisor):
                if state.pid is None:
                    continue
                if mode == "child" and state.id == target:
                    raise SupervisorError(f"child {target!r} is a supervisor: name a worker or a component")
                found.extend(await self._collect_nested(state, (target, direction, new, mode)))
            elif mode == "child" and target in (state.id, state.spec.name):
                if not isinstance(state.component, Component):
                    raise SupervisorError(f"child {target!r} is not a WASM process")
                if state.pid is None:
                    raise SupervisorError(f"child {target!r} is not running")
                found.append(self._target(state, direction, new))
            elif mode == "component" and state.pid is not None and isinstance(state.component, Component) \
                    and state.component.name == target:
                found.append(self._target(state, direction, new))
        return found

    async def _collect_nested(self, state: ChildState, query: tuple[Any, ...]) -> list[Target]:
        ctx = self.ctx
        assert ctx is not None and state.pid is not None
        with open_handoff(state.pid, query, NESTED_TIMEOUT) as handoff:
            try:
                status, detail = await ctx.call(state.pid, ["collect", handoff.token], timeout=NESTED_TIMEOUT)
            except (CallFailed, CallTimeout, NoSuchProcess) as exc:
                raise SupervisorError(f"nested supervisor {state.id!r} did not answer: {exc}") from None
            if status != "ok":
                raise SupervisorError(detail)
            return list(handoff.result)

    def _target(self, state: ChildState, direction: str, new: Component | None) -> Target:
        assert self.ctx is not None and state.pid is not None
        if direction == "down":
            if not state.history:
                raise SupervisorError(f"child {state.id!r} has no earlier version to go back to")
            new = state.history[-1]
        assert new is not None
        if new.name != state.component.name:
            # A new version keeps the component's name (its identity); versions tell them apart.
            new = attrs.evolve(new, name=state.component.name)
        return Target(state.pid, self.ctx.pid, str(state.pid) if state.dynamic else state.id, state.component, new)

    async def _op_adopt(self, token: bytes) -> None:
        """Record versions that processes of ours now run (after a committed change)."""
        direction, targets = self._take(token).value
        self._adopt_all(direction, targets)

    def _adopt_all(self, direction: str, targets: list[Target]) -> None:
        for target in targets:
            state = self.by_pid.get(target.pid)
            if state is None:
                continue  # it exited meanwhile; a restart uses the spec's old version
            self._adopt(state, direction, target.new)
            if self.template is not None and self.template.component is target.component:
                # Dynamic children started from now on get the new version too.
                self._adopt(self.template, direction, target.new)

    @staticmethod
    def _adopt(state: ChildState, direction: str, new: Component) -> None:
        if direction == "down":
            if state.history:
                state.history.pop()
        else:
            state.history.append(state.component)
            del state.history[:-HISTORY]
        state.component = new

    async def _op_upgrade(self, token: bytes) -> Any:
        ctx = self.ctx
        assert ctx is not None
        handoff = self._take(token)
        request = handoff.value
        if not isinstance(request, dict):
            raise SupervisorError("upgrade takes a request map")
        direction = request["direction"]
        new = None
        if direction == "up":
            new = load_component(request["component"], request["version"])
        migration = Migration(ctx.node, request["target"], request["strategy"], request["canary"],
                              request["probe"], request["probe_timeout"])
        # The change runs until the caller's deadline, or until the caller gives up: then
        # it is rolled back like any failure (what a rolling change finished stays done).
        failure: UpgradeFailed | None = None
        try:
            with handoff.work_scope() as scope:
                try:
                    # A child id or registered name anywhere in the tree first, else a component name.
                    targets = await self._collect(request["target"], direction, new, "child") \
                        or await self._collect(request["target"], direction, new, "component")
                    if not targets:
                        raise SupervisorError(f"no running process matches {request['target']!r}")
                    report = await migration.run(targets)
                except UpgradeFailed as exc:
                    failure = exc
            if scope.cancelled_caught:
                failure = UpgradeFailed(request["target"], "timeout",
                                        "the change did not finish before its caller's deadline (or the caller "
                                        "gave up): it was rolled back", report=migration.report())
        finally:
            # Whatever ended it, the supervisors learn which processes now run which version.
            await self._announce(direction, [t for t, _ in migration.done])
        if failure is not None:
            handoff.result = failure
            return _UPGRADE_FAILED
        handoff.result = report
        return None

    async def _announce(self, direction: str, done: list[Target]) -> None:
        """Tell each owning supervisor which of its children now run which version."""
        ctx = self.ctx
        assert ctx is not None
        by_owner: dict[Pid, list[Target]] = {}
        for target in done:
            by_owner.setdefault(target.owner, []).append(target)
        for owner, targets in by_owner.items():
            if owner == ctx.pid:
                self._adopt_all(direction, targets)
                continue
            with open_handoff(owner, (direction, targets), NESTED_TIMEOUT) as handoff:
                try:
                    await ctx.call(owner, ["adopt", handoff.token], timeout=NESTED_TIMEOUT)
                except (CallFailed, CallTimeout, NoSuchProcess):
                    # It exited, and its children with it (they are linked): their
                    # restarts come from the spec's old version.
                    pass

    def terminate(self, ctx: Context, reason: ExitReason) -> None:
        # Killed (untrappable): the children die through their links; nothing else to do.
        pass


def _should_restart(restart: str, reason: ExitReason) -> bool:
    if restart == "permanent":
        return True
    if restart == "transient":
        return not reason.is_quiet
    return False


def _label(state: ChildState) -> str:
    if isinstance(state.spec, Supervisor):
        return "supervisor"
    return getattr(state.component, "name", None) or getattr(state.component, "__name__", str(state.component))


