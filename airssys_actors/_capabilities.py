"""What a WASM process may do beyond handling its own mail. Deny by default.

A process gets exactly the capabilities in its spawn options or child spec; a process it
spawns gets nothing it was not given explicitly. Python processes are host code and are
not checked.
"""

from __future__ import annotations

import attrs


def _patterns(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)  # type: ignore[arg-type]


def matches(pattern: str, address: str) -> bool:
    """``*`` matches anything; ``a/*`` matches ``a/`` and anything under it (not ``ab``);
    anything else matches exactly."""
    if pattern == "*":
        return True
    if pattern.endswith("/*"):
        return address.startswith(pattern[:-1])
    return pattern == address


@attrs.frozen
class Capabilities:
    """Grants for one process. The default grants nothing."""

    send: tuple[str, ...] = attrs.field(default=(), converter=_patterns)
    """Address patterns it may send to, request, link to and monitor. A process may always
    message itself and reply to calls it received."""
    spawn: tuple[str, ...] = attrs.field(default=(), converter=_patterns)
    """Component names it may spawn (patterns as for ``send``)."""
    max_children: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    """How many processes it spawned may be alive at once."""
    timers: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    """How many timers it may have pending at once (0: may not set timers)."""

    @classmethod
    def all(cls, max_children: int = 1000, timers: int = 1000) -> Capabilities:
        """Everything, for trusted guests and examples."""
        return cls(send=("*",), spawn=("*",), max_children=max_children, timers=timers)

    def may_message(self, address: str) -> bool:
        return any(matches(p, address) for p in self.send)

    def may_spawn(self, component: str) -> bool:
        return any(matches(p, component) for p in self.spawn)
