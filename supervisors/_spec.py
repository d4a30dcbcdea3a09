"""Supervision tree specs: plain frozen values, checked when they are built.

Every check names the spec, the field and the bad value (OTP's ``check_childspec``):
past construction the runtime trusts the record.
"""

from __future__ import annotations

import sys
from typing import Any

import attrs

from airssys_actors import Capabilities, Limits

from ._checks import finite, shown

STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one", "simple_one_for_one")
RESTARTS = ("permanent", "transient", "temporary")
MAILBOX_MODES = ("keep", "drop")

Shutdown = float | int | str
"""Seconds to wait after asking to shut down, ``"brutal_kill"`` or ``"infinity"``."""


class InvalidChildSpec(ValueError):
    """A child or supervisor spec is wrong; ``field`` and ``value`` say where."""

    def __init__(self, spec_id: object, field: str, value: object, problem: str) -> None:
        self.spec_id = spec_id
        self.field = field
        self.value = value
        super().__init__(f"invalid spec {shown(spec_id)}: {field}={shown(value)}: {problem}")


def _check_id(spec_id: object) -> None:
    if not isinstance(spec_id, str) or not spec_id:
        raise InvalidChildSpec(spec_id, "id", spec_id, "must be a non-empty string")


def _check_shutdown(spec_id: str, value: object) -> None:
    if isinstance(value, str) and value in ("brutal_kill", "infinity"):
        return
    # A float infinity is refused: "infinity" says the same thing and says it on purpose.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not finite(value) or value < 0:
        raise InvalidChildSpec(spec_id, "shutdown", value,
                               "must be finite seconds >= 0, 'brutal_kill' or 'infinity'")


def _check_type(spec_id: str, field: str, value: object, kind: type | tuple[type, ...], what: str) -> None:
    if value is not None and not isinstance(value, kind):
        raise InvalidChildSpec(spec_id, field, value, f"must be {what} or None")


def _check_flag(spec_id: str, field: str, value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidChildSpec(spec_id, field, value, "must be True or False")


def _check_in(spec_id: str, field: str, value: object, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidChildSpec(spec_id, field, value, f"must be one of {', '.join(allowed)}")


@attrs.frozen
class Child:
    """A worker: a process started from ``component`` with ``args``.

    ``component`` is anything ``Node.spawn`` takes: a path to ``.wat``/``.wasm``, a
    loaded ``Component``, a registered component name, or an ``Actor`` subclass.
    """

    id: str
    component: Any
    args: Any = None
    restart: str = "permanent"
    """``permanent`` (always restarted), ``transient`` (restarted unless it exits
    normal/shutdown), ``temporary`` (never restarted)."""
    shutdown: Shutdown = 5.0
    name: str | None = None
    """Registered name; kept across restarts, so senders that use it keep working."""
    mailbox: str = "keep"
    """``keep``: messages queued when it crashes go to its restarted instance; ``drop``:
    they become dead letters."""
    mailbox_capacity: int | None = None
    limits: Limits | None = None
    capabilities: Capabilities | None = None
    trap_exits: bool = False
    version: str | None = None
    """Version label when ``component`` is a path (default: a content hash)."""
    threaded: bool = False
    """Run the guest's calls in a worker thread (see ``Node.spawn``)."""

    def __attrs_post_init__(self) -> None:
        _check_id(self.id)
        _check_in(self.id, "restart", self.restart, RESTARTS)
        _check_shutdown(self.id, self.shutdown)
        _check_in(self.id, "mailbox", self.mailbox, MAILBOX_MODES)
        capacity = self.mailbox_capacity
        if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, int)
                                     or not 1 <= capacity <= sys.maxsize):
            raise InvalidChildSpec(self.id, "mailbox_capacity", capacity, f"must be an integer from 1 to {sys.maxsize}")
        if self.component is None:
            raise InvalidChildSpec(self.id, "component", None, "is required")
        _check_type(self.id, "name", self.name, str, "a str")
        _check_type(self.id, "limits", self.limits, Limits, "a Limits")
        _check_type(self.id, "capabilities", self.capabilities, Capabilities, "a Capabilities")
        _check_type(self.id, "version", self.version, str, "a str")
        _check_flag(self.id, "trap_exits", self.trap_exits)
        _check_flag(self.id, "threaded", self.threaded)

    @property
    def is_supervisor(self) -> bool:
        return False


def _children(value: Any) -> tuple[Any, ...]:
    return tuple(value)


@attrs.frozen
class Supervisor:
    """A supervisor and its children, which may be supervisors themselves."""

    id: str
    strategy: str = "one_for_one"
    max_restarts: int = 3
    """More than this many restarts ..."""
    within: float = 5.0
    """... within this many seconds makes the supervisor give up (exit ``shutdown``)."""
    children: tuple[Child | Supervisor, ...] = attrs.field(default=(), converter=_children)
    restart: str = "permanent"
    shutdown: Shutdown = "infinity"
    name: str | None = None

    def __attrs_post_init__(self) -> None:
        _check_id(self.id)
        _check_in(self.id, "strategy", self.strategy, STRATEGIES)
        if isinstance(self.max_restarts, bool) or not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            raise InvalidChildSpec(self.id, "max_restarts", self.max_restarts, "must be an integer >= 0")
        within = self.within
        # `not within > 0` also refuses NaN, which every comparison (so `within <= 0`) lets by.
        if isinstance(within, bool) or not isinstance(within, (int, float)) or not finite(within) \
                or not within > 0:
            raise InvalidChildSpec(self.id, "within", within, "must be finite seconds > 0")
        _check_in(self.id, "restart", self.restart, RESTARTS)
        _check_shutdown(self.id, self.shutdown)
        _check_type(self.id, "name", self.name, str, "a str")
        seen: set[str] = set()
        for child in self.children:
            if not isinstance(child, (Child, Supervisor)):
                raise InvalidChildSpec(self.id, "children", child, "each child must be a Child or a Supervisor")
            if child.id in seen:
                raise InvalidChildSpec(self.id, "children", child.id, "duplicate child id")
            seen.add(child.id)
        if self.strategy == "simple_one_for_one":
            if len(self.children) != 1:
                raise InvalidChildSpec(self.id, "children", len(self.children),
                                       "simple_one_for_one takes exactly one template child")
            if self.children[0].name is not None:
                raise InvalidChildSpec(self.id, "children", self.children[0].name,
                                       "a simple_one_for_one template cannot have a registered name (bad_combination)")

    @property
    def is_supervisor(self) -> bool:
        return True


def check_child_specs(specs: list[Child | Supervisor] | tuple[Child | Supervisor, ...]) -> None:
    """Check a list of specs as a supervisor would (duplicate ids, registered names)."""
    Supervisor("check", children=specs)
    names: set[str] = set()

    def walk(spec: Child | Supervisor) -> None:
        if spec.name is not None:
            if spec.name in names:
                raise InvalidChildSpec(spec.id, "name", spec.name, "registered name used twice in the tree")
            names.add(spec.name)
        if isinstance(spec, Supervisor):
            for child in spec.children:
                walk(child)

    for spec in specs:
        walk(spec)
