"""What a WASM process may do beyond handling its own mail. Deny by default.

A process gets exactly the capabilities in its spawn options or child spec; a process it
spawns gets nothing it was not given explicitly. Python processes are host code and are
not checked.
"""

from __future__ import annotations

import attrs

from ._checks import whole_number


def _patterns(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)  # type: ignore[arg-type]


class Matcher:
    """A set of patterns compiled for the hot path: one set lookup and one ``startswith``
    over a tuple of prefixes, however many patterns there are."""

    __slots__ = ("anything", "exact", "prefixes")

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.anything = "*" in patterns
        self.exact = frozenset(p for p in patterns if not p.endswith("/*") and p != "*")
        self.prefixes = tuple(p[:-1] for p in patterns if p.endswith("/*"))

    def __call__(self, address: str) -> bool:
        return self.anything or address in self.exact or address.startswith(self.prefixes)


def matches(pattern: str, address: str) -> bool:
    """``*`` matches anything; ``a/*`` matches ``a/`` and anything under it (not ``ab``);
    anything else matches exactly."""
    if pattern == "*":
        return True
    if pattern.endswith("/*"):
        return address.startswith(pattern[:-1])
    return pattern == address


@attrs.frozen
class Preopen:
    """A host directory a guest may use through WASI, under ``guest_path``."""

    host_path: str = attrs.field(converter=str)
    guest_path: str = attrs.field(converter=str)
    writable: bool = False
    """False: read-only (files and the directory); True: the guest may create and write."""


def _count(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    whole_number(f"Capabilities.{attribute.name}", value, minimum=0)


def _env(value: object) -> tuple[tuple[str, str], ...]:
    items = value.items() if isinstance(value, dict) else value
    return tuple((str(k), str(v)) for k, v in items)  # type: ignore[union-attr]


@attrs.frozen
class WasiGrant:
    """WASI access for a guest that imports ``wasi:*``: exactly these directories and
    variables, plus WASI's clocks and randomness. Without a grant such a guest runs in
    an empty WASI context, the same as ``WasiGrant()``."""

    dirs: tuple[Preopen, ...] = attrs.field(default=(), converter=tuple)
    env: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_env)
    """Environment variables the guest sees, as a dict or pairs."""
    inherit_env: tuple[str, ...] = attrs.field(default=(), converter=_patterns)
    """Names of host environment variables to pass through (when set)."""


@attrs.frozen
class Capabilities:
    """Grants for one process. The default grants nothing."""

    send: tuple[str, ...] = attrs.field(default=(), converter=_patterns)
    """Address patterns it may send to, request, link to and monitor. A process may always
    message itself and reply to calls it received."""
    spawn: tuple[str, ...] = attrs.field(default=(), converter=_patterns)
    """Component names it may spawn (patterns as for ``send``)."""
    max_children: int = attrs.field(default=0, validator=_count)
    """How many processes it spawned may be alive at once."""
    timers: int = attrs.field(default=0, validator=_count)
    """How many timers it may have pending at once (0: may not set timers)."""
    wasi: WasiGrant | None = None
    """WASI access (files, environment); None: an empty WASI context (clocks and
    randomness only)."""

    @classmethod
    def all(cls, max_children: int = 1000, timers: int = 1000) -> Capabilities:
        """Everything, for trusted guests and examples."""
        return cls(send=("*",), spawn=("*",), max_children=max_children, timers=timers)

    def may_message(self, address: str) -> bool:
        return any(matches(p, address) for p in self.send)

    def may_spawn(self, component: str) -> bool:
        return any(matches(p, component) for p in self.spawn)


#: The default grants, shared (a frozen value) rather than built for every spawn.
NO_CAPABILITIES = Capabilities()
