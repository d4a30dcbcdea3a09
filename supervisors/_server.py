"""The supervisor process: a Python actor that traps exits, starts its children linked
to itself and applies its strategy when one exits. Built only on airssys_actors' public
API (spawn with link, trapped exits, exit/kill, release_name, events), as OTP's
supervisor is built on gen_server.

Ordering, as in OTP: children start left to right and stop right to left; a dynamic
(simple_one_for_one) child set stops in no defined order. Exits are system messages, so
they are handled before queued calls.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import attrs
import trio

from airssys_actors import (
    Actor, Component, Context, ExitReason, InvalidComponent, Kind, Message, NoSuchProcess, Pid,
    SpawnFailed, UpgradeFailed,
)

from ._intensity import RestartWindow
from ._spec import Child, Supervisor
from ._upgrade import Migration, Target, load_component

HISTORY = 5
"""How many earlier versions each child remembers."""

#: Python objects (specs, components) handed to a supervisor alongside a call message.
#: Supervisors live in the same Python process as their handles, so the message carries
#: a token and the object travels here; the message keeps the ordering.
_STASH: dict[int, Any] = {}
_TOKENS = itertools.count(1)


def stash(obj: Any) -> int:
    token = next(_TOKENS)
    _STASH[token] = obj
    return token


def unstash(token: int) -> Any:
    return _STASH.pop(token)


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


class SupervisorServer(Actor):
    def __init__(self, spec: Supervisor, parent: Pid | None) -> None:
        self.spec = spec
        self.parent = parent
        self.window = RestartWindow(spec.max_restarts, spec.within)
        self.children: list[ChildState] = []
        self.by_pid: dict[Pid, ChildState] = {}
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
            self.children.append(state)

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
        state.pid = pid
        self.by_pid[pid] = state
        return pid

    async def handle(self, ctx: Context, msg: Message) -> Any:
        if msg.kind == Kind.EXIT:
            await self._on_exit(msg.sender, ExitReason.from_wire(msg.value))
            return None
        if msg.kind != Kind.CALL:
            return None
        try:
            op, *rest = msg.value
            if not isinstance(op, str):
                raise TypeError(op)
        except Exception:
            # Garbage from a process allowed to message us must not take the tree down.
            return ["error", "not a supervisor operation"]
        method = getattr(self, f"_op_{op}", None)
        if method is None:
            return ["error", f"unknown operation {op!r}"]
        try:
            result = await method(*rest)
        except TypeError as exc:
            return ["error", f"bad arguments for {op!r}: {exc}"]
        except SupervisorError as exc:
            return ["error", str(exc)]
        except UpgradeFailed as exc:
            return ["upgrade_failed", stash(exc)]
        except (InvalidComponent, ValueError) as exc:
            return ["error", str(exc)]
        if isinstance(result, list) and result and result[0] == "upgrade_failed":
            return result
        return ["ok", result]

    # -- exits and restarts -----------------------------------------------------------

    async def _on_exit(self, sender: Pid | None, reason: ExitReason) -> None:
        ctx = self.ctx
        assert ctx is not None
        if sender is None or sender == self.parent:
            await self._terminate_all()
            ctx.stop("shutdown")
            return
        state = self.by_pid.pop(sender, None)
        if state is None:
            return  # a child we terminated ourselves, or an unrelated link
        state.pid, state.last_pid = None, sender
        state.last_reason = str(reason)
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
        if state.spec.restart == "temporary" or state.dynamic:
            if state in self.children:
                self.children.remove(state)

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
                    self.children.remove(other)
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
        self.by_pid.pop(pid, None)
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
        dynamic = [s for s in self.by_pid.values() if s.dynamic]
        if dynamic:
            async with trio.open_nursery() as nursery:
                for state in dynamic:
                    nursery.start_soon(self._terminate, state)
        for state in reversed(self.children):
            await self._terminate(state)

    # -- operations (calls from SupervisorRef) ----------------------------------------

    def _find(self, key: str) -> ChildState:
        for state in self.children:
            if state.id == key:
                return state
        for state in self.by_pid.values():
            if str(state.pid) == key:
                return state
        raise SupervisorError(f"no child {key!r}")

    async def _op_which_children(self) -> list[dict[str, Any]]:
        states = self.children + [s for s in self.by_pid.values() if s.dynamic]
        return [
            {
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
            for s in states
        ]

    async def _op_count_children(self) -> dict[str, int]:
        states = self.children + [s for s in self.by_pid.values() if s.dynamic]
        sups = sum(1 for s in states if isinstance(s.spec, Supervisor))
        return {
            "specs": len(self.children) + (1 if self.template else 0),
            "active": sum(1 for s in states if s.pid is not None),
            "supervisors": sups,
            "workers": len(states) - sups,
        }

    async def _op_child_pid(self, key: str) -> str | None:
        state = self._find(key)
        return None if state.pid is None else str(state.pid)

    async def _op_start_child(self, token: int) -> str:
        item = unstash(token)
        if self.template is not None:
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
            if any(s.id == spec.id for s in self.children):
                raise SupervisorError(f"a child with id {spec.id!r} already exists")
            Supervisor(self.spec.id, children=[*(s.spec for s in self.children), spec])  # validate
            state = ChildState(spec, component=_load(spec) if isinstance(spec, Child) else None,
                               args=getattr(spec, "args", None))
        try:
            pid = await self._start(state)
        except SpawnFailed as exc:
            raise SupervisorError(f"failed_to_start_child {state.id!r}: {exc.reason}") from None
        if not state.dynamic:
            self.children.append(state)
        return str(pid)

    async def _op_terminate_child(self, key: str) -> None:
        state = self._find(key)
        await self._terminate(state)
        if state.dynamic or state.spec.restart == "temporary":
            if state in self.children:
                self.children.remove(state)

    async def _op_restart_child(self, key: str) -> str:
        state = self._find(key)
        if state.pid is not None:
            raise SupervisorError(f"child {key!r} is running")
        try:
            return str(await self._start(state))
        except SpawnFailed as exc:
            raise SupervisorError(f"failed_to_start_child {key!r}: {exc.reason}") from None

    async def _op_delete_child(self, key: str) -> None:
        state = self._find(key)
        if state.pid is not None:
            raise SupervisorError(f"child {key!r} is running")
        self.children.remove(state)

    async def _op_child_spec(self, key: str) -> int:
        return stash(self._find(key).spec)

    # -- code change ------------------------------------------------------------------

    async def _op_collect(self, target: str, token: int, mode: str = "component") -> int:
        """Targets under this supervisor for a change; the reply is a stash token."""
        direction, new = unstash(token)
        return stash(await self._collect(target, direction, new, mode))

    async def _collect(self, target: str, direction: str, new: Component | None, mode: str) -> list[Target]:
        """Running WASM processes in this subtree that ``target`` names: in mode ``child``,
        the one whose child id or registered name it is; in mode ``component``, every
        process of the component with that name."""
        ctx = self.ctx
        assert ctx is not None
        found: list[Target] = []
        states = self.children + [s for s in self.by_pid.values() if s.dynamic]
        for state in states:
            if isinstance(state.spec, Supervisor):
                if state.pid is None:
                    continue
                if mode == "child" and state.id == target:
                    raise SupervisorError(f"child {target!r} is a supervisor: name a worker or a component")
                reply = await ctx.call(state.pid, ["collect", target, stash((direction, new)), mode], timeout=60)
                if reply[0] != "ok":
                    raise SupervisorError(reply[1])
                found.extend(unstash(reply[1]))
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

    async def _op_adopt(self, token: int) -> None:
        """Record versions that processes of ours now run (after a committed change)."""
        direction, targets = unstash(token)
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

    async def _op_upgrade(self, token: int) -> Any:
        ctx = self.ctx
        assert ctx is not None
        request = unstash(token)
        direction = request["direction"]
        new = None
        if direction == "up":
            new = load_component(request["component"], request["version"])
        # A child id or registered name anywhere in the tree first, else a component name.
        targets = await self._collect(request["target"], direction, new, "child") \
            or await self._collect(request["target"], direction, new, "component")
        if not targets:
            raise SupervisorError(f"no running process matches {request['target']!r}")
        migration = Migration(ctx.node, request["target"], request["strategy"], request["canary"],
                              request["probe"], request["probe_timeout"])
        try:
            report = await migration.run(targets)
        except UpgradeFailed as exc:
            await self._announce(direction, [t for t, _ in migration.done])
            return ["upgrade_failed", stash(exc)]
        await self._announce(direction, [t for t, _ in migration.done])
        return stash(report)

    async def _announce(self, direction: str, done: list[Target]) -> None:
        """Tell each owning supervisor which of its children now run which version."""
        ctx = self.ctx
        assert ctx is not None
        by_owner: dict[Pid, list[Target]] = {}
        for target in done:
            by_owner.setdefault(target.owner, []).append(target)
        for owner, targets in by_owner.items():
            if owner == ctx.pid:
                await self._op_adopt(stash((direction, targets)))
            elif ctx.node.is_alive(owner):
                await ctx.call(owner, ["adopt", stash((direction, targets))], timeout=60)

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


