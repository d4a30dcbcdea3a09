"""The resource limits of one process: a frozen value, checked when it is built.

Every field is checked where a user writes it (``Limits(deadline=float("nan"))`` raises
at once, naming ``deadline``), so wasmtime only ever sees numbers it can take.
"""

from __future__ import annotations

from typing import Any

import attrs

from ._checks import finite_seconds, whole_number

INT64_MAX = 2**63 - 1
"""wasmtime takes fuel, memory and table sizes as 64-bit integers."""
MAX_MESSAGE_LIMIT = 2**32 - 1
"""A message is a ``list<u8>``, whose length the component model keeps in 32 bits."""
MAX_DEADLINE = 1e9
"""Seconds; about 31 years, far past any real deadline, and still a whole number of
epoch ticks that fits wasmtime's 64-bit counter."""


def _count(minimum: int, maximum: int | None = None, optional: bool = True) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        whole_number(f"Limits.{attribute.name}", value, minimum=minimum, maximum=maximum)

    return check


def _seconds(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        finite_seconds(f"Limits.{attribute.name}", value, minimum=0.0, exclusive=True, maximum=MAX_DEADLINE)


@attrs.frozen
class Limits:
    """Resource limits of one process; ``None`` means unlimited.

    Checked when built: a bool, a float where an integer is due, NaN, an infinity or a
    value out of range raises ``TypeError``/``ValueError`` naming the field."""

    fuel: int | None = attrs.field(default=1_000_000_000, validator=_count(1, INT64_MAX))
    """Fuel (roughly wasm instructions) per call into the guest: reason ``out_of_fuel``."""
    deadline: float | None = attrs.field(default=5.0, validator=_seconds)
    """Wall-clock seconds per call into the guest: reason ``deadline``."""
    memory: int | None = attrs.field(default=256 << 20, validator=_count(0, INT64_MAX))
    """Bytes per instance for all its linear memories and tables together (a table
    element counts 8 bytes): growth past it fails (see docs/security.md)."""
    table_elements: int | None = attrs.field(default=100_000, validator=_count(0, INT64_MAX))
    max_message: int = attrs.field(default=1 << 20, validator=_count(1, MAX_MESSAGE_LIMIT, optional=False))
    """Largest message, in encoded bytes, it may send or receive."""
    max_pending: int = attrs.field(default=10_000, validator=_count(0, INT64_MAX, optional=False))
    """Outstanding requests and monitors a guest may hold at once (host calls past it
    return ``err``)."""
