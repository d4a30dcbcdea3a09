"""Starting a tree, and the handle used to inspect and change a running supervisor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs

from airssys_actors import ExitReason, Node, Pid, SpawnFailed

from ._checks import seconds
from ._handoff import open_handoff
from ._server import PAGE, SupervisorError, _ServerFactory
from ._upgrade import STRATEGIES, UpgradeReport
from ._spec import Child, Supervisor, check_child_specs


UPGRADE_GRACE = 5.0
"""Seconds an upgrade's caller waits past its ``timeout``: at the timeout the supervisor
rolls the change back and answers, and its answer should not be lost to the caller's own
timer."""


@attrs.frozen
class ChildInfo:
    """One row of :meth:`SupervisorRef.which_children`."""

    id: str
    pid: Pid | None
    type: str
    """``worker`` or ``supervisor``."""
    restart: str
    name: str | None
    component: str
    version: str | None
    restarts: int
    last_reason: str | None


@attrs.frozen
class SupervisorRef:
    """A running supervisor. Every method is a call to the supervisor process, so it is
    served in order with the exits the supervisor handles."""

    node: Node
    pid: Pid
    spec: Supervisor

    async def _call(self, *op: Any, timeout: float = 60.0) -> Any:
        timeout = seconds("timeout", timeout)
        status, value = await self.node.call(self.pid, list(op), timeout=timeout)
        if status != "ok":
            raise SupervisorError(value)
        return value

    async def _request(self, op: str, *args: Any, value: Any = None, timeout: float = 60.0,
                       grace: float = 0.0) -> Any:
        """A call that hands Python objects to the supervisor and takes one back. The
        supervisor's work on it ends at ``timeout``; the caller waits ``grace`` seconds
        more for its answer. Whatever ends the call, nothing of it stays behind."""
        with open_handoff(self.pid, value, timeout) as handoff:
            status, detail = await self.node.call(self.pid, [op, *args, handoff.token], timeout=timeout + grace)
            if status == "upgrade_failed":
                raise handoff.result
            if status != "ok":
                raise SupervisorError(detail)
            return handoff.result

    async def which_children_page(self, offset: int = 0, limit: int = PAGE) -> tuple[list[ChildInfo], int | None]:
        """One page of :meth:`which_children` from ``offset``: its rows (at most
        ``limit``, and no more than fit in one message) and the offset of the next page,
        or None after the last."""
        page = await self._call("which_children", offset, limit)
        rows = [ChildInfo(**{**row, "pid": None if row["pid"] is None else Pid.parse(row["pid"])})
                for row in page["rows"]]
        return rows, page["next"]

    async def children(self, page: int = PAGE) -> AsyncIterator[ChildInfo]:
        """Every child, a page of ``page`` rows per call to the supervisor. Each page is
        as the supervisor had it then: children started or stopped between two pages may
        be missed or listed twice, as with any paged listing."""
        offset: int | None = 0
        while offset is not None:
            rows, offset = await self.which_children_page(offset, page)
            for row in rows:
                yield row

    async def which_children(self) -> list[ChildInfo]:
        """Every child: the static ones in start order, then the dynamic ones (read a
        page at a time, so that a supervisor with many children answers in bounded
        messages)."""
        return [row async for row in self.children()]

    async def count_children(self) -> dict[str, int]:
        """``specs``, ``active``, ``supervisors`` and ``workers``, as OTP counts them."""
        return await self._call("count_children")

    async def child_pid(self, child_id: str) -> Pid | None:
        """The current pid of a child, or None while it is not running."""
        text = await self._call("child_pid", child_id)
        return None if text is None else Pid.parse(text)

    async def child(self, child_id: str) -> SupervisorRef:
        """A handle on a child that is itself a supervisor."""
        spec = await self._request("child_spec", child_id)
        if not isinstance(spec, Supervisor):
            raise SupervisorError(f"child {child_id!r} is not a supervisor")
        pid = await self.child_pid(child_id)
        if pid is None:
            raise SupervisorError(f"child {child_id!r} is not running")
        return SupervisorRef(self.node, pid, spec)

    async def start_child(self, spec: Child | Supervisor | None = None, *, args: Any = None,
                          name: str | None = None) -> Pid:
        """Add a child. With ``simple_one_for_one``, pass ``args`` (merged into the
        template's when both are maps) and optionally a ``name``; otherwise a spec."""
        if self.spec.strategy == "simple_one_for_one":
            if spec is not None:
                raise SupervisorError("simple_one_for_one children come from the template: pass args")
            item: Any = (args, name)
        else:
            if spec is None:
                raise SupervisorError("start_child needs a Child or Supervisor spec")
            item = spec
        with open_handoff(self.pid, item) as handoff:
            return Pid.parse(await self._call("start_child", handoff.token))  # type: ignore[return-value]

    async def terminate_child(self, child: str | Pid) -> None:
        """Stop a child per its shutdown spec (it is not restarted). A dynamic or
        temporary child is also deleted."""
        await self._call("terminate_child", str(child))

    async def restart_child(self, child_id: str) -> Pid:
        """Start a terminated child again from its spec."""
        return Pid.parse(await self._call("restart_child", child_id))  # type: ignore[return-value]

    async def delete_child(self, child_id: str) -> None:
        """Forget a terminated child's spec."""
        await self._call("delete_child", child_id)

    async def upgrade(self, target: str, component: Any, *, version: str | None = None,
                      strategy: str = "atomic", canary: int = 0, probe: Any = None,
                      probe_timeout: float = 5.0, timeout: float = 300.0) -> UpgradeReport:
        """Hot-deploy ``component`` (a Component, path or bytes) into the running tree.

        ``target`` is a child id, or a component name: every running process of that
        component under this supervisor, its dynamic children and nested supervisors.
        Each process is suspended, its state migrated through the new version's
        ``upgrade``, and resumed under the same pid and name; messages sent meanwhile
        queue and none is lost. Afterwards the child specs restart the new version.

        The change must finish within ``timeout`` seconds: past it, or as soon as this
        call is cancelled, it is rolled back like any failure.

        Raises:
            UpgradeFailed: naming the process and the cause (``timeout`` past the
                deadline); with ``atomic`` (default) every process still runs its old
                version with its state and queued messages untouched; with ``rolling``
                the ones in ``exc.report`` were changed.
            InvalidComponent, ComponentWorldMismatch: before anything is suspended.
        """
        # Every argument is checked before anything is loaded or asked of the supervisor.
        if not isinstance(target, str) or not target:
            raise TypeError(f"target must be a child id or component name (a non-empty str), got {target!r:.60}")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r:.60}")
        if isinstance(canary, bool) or not isinstance(canary, int):
            raise TypeError(f"canary must be an integer, got {type(canary).__name__} {canary!r:.60}")
        if canary < 0:
            raise ValueError(f"canary must be an integer >= 0, got {canary}")
        probe_timeout = seconds("probe_timeout", probe_timeout)
        timeout = seconds("timeout", timeout)
        if isinstance(component, (str, bytes)) or hasattr(component, "__fspath__"):
            from ._upgrade import load_component

            component = load_component(component, version)  # fail before the call
        request = {"direction": "up", "target": target, "component": component, "version": version,
                   "strategy": strategy, "canary": canary, "probe": probe, "probe_timeout": probe_timeout}
        return await self._request("upgrade", value=request, timeout=timeout, grace=UPGRADE_GRACE)

    async def downgrade(self, target: str, *, strategy: str = "atomic", timeout: float = 300.0) -> UpgradeReport:
        """Go back to the version each target process ran before its last upgrade, through
        the same protocol (the older version's ``upgrade`` gets the newer ``from-version``)."""
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r:.60}")
        timeout = seconds("timeout", timeout)
        request = {"direction": "down", "target": target, "component": None, "version": None,
                   "strategy": strategy, "canary": 0, "probe": None, "probe_timeout": 5.0}
        return await self._request("upgrade", value=request, timeout=timeout, grace=UPGRADE_GRACE)

    async def stop(self, timeout: float | None = None) -> ExitReason:
        """Shut the tree down (children stop in reverse order) and return the exit reason.
        ``timeout`` is accepted for compatibility and not used: each child's own
        ``shutdown`` spec bounds how long the tree takes."""
        if timeout is not None:
            seconds("timeout", timeout)
        if self.node.is_alive(self.pid):
            await self.node.exit(self.pid, "shutdown")
        return await self.node.wait(self.pid)

    async def wait(self) -> ExitReason:
        """Wait until this supervisor exits (e.g. it gave up) and return why."""
        return await self.node.wait(self.pid)

    @property
    def alive(self) -> bool:
        return self.node.is_alive(self.pid)


async def start(node: Node, tree: Supervisor) -> SupervisorRef:
    """Start ``tree`` on ``node`` and return once every child has started.

    Raises:
        SupervisorError: a child failed to start (the message names it and the reason);
            whatever had started is stopped again.
    """
    if not isinstance(tree, Supervisor):
        raise TypeError("start() takes a Supervisor spec")
    check_child_specs([tree])
    try:
        pid = await node.spawn(_ServerFactory(tree, None), name=tree.name)
    except SpawnFailed as exc:
        detail = exc.reason.detail or str(exc.reason)
        raise SupervisorError(detail.removeprefix("SupervisorError: ")) from None
    return SupervisorRef(node, pid, tree)
