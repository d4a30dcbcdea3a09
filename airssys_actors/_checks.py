"""Checks for numbers where they enter: seconds, counts and sizes.

Each check returns the value to store or raises an error whose message names the
parameter (as trio does), so a NaN, an infinity, a negative, a bool or a string is
refused where the user wrote it instead of reaching trio or wasmtime::

    timeout = finite_seconds("timeout", timeout)
    capacity = positive_int("mailbox_capacity", capacity)
"""

from __future__ import annotations

import math
import numbers


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (a hostile value can be huge)."""
    try:
        text = repr(value)
    except Exception:  # a repr that raises still gets a message
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


class InvalidValue(ValueError):
    """A number is out of range for its parameter; ``name`` and ``value`` say which."""

    def __init__(self, name: str, value: object, expected: str, *, message: str | None = None) -> None:
        self.name = name
        self.value = value
        super().__init__(message or f"{name} must be {expected}, got {shown(value)}")


class InvalidType(TypeError):
    """A parameter got a value of the wrong type; ``name`` and ``value`` say which."""

    def __init__(self, name: str, value: object, expected: str) -> None:
        self.name = name
        self.value = value
        super().__init__(f"{name} must be {expected}, got {type(value).__name__} {shown(value)}")


def finite_seconds(name: str, value: object, *, minimum: float = 0.0, exclusive: bool = False,
                   maximum: float = math.inf) -> float:
    """``value`` as a float number of seconds: a real number (not a bool), not NaN, not
    infinite, ``>= minimum`` (``> minimum`` with ``exclusive``) and ``<= maximum``."""
    return finite_number(name, value, minimum=minimum, exclusive=exclusive, maximum=maximum, noun="number of seconds")


def finite_number(name: str, value: object, *, minimum: float = 0.0, exclusive: bool = False,
                  maximum: float = math.inf, noun: str = "number") -> float:
    """:func:`finite_seconds` for any quantity (a rate, a weight)."""
    kind = type(value)
    if kind is not float and kind is not int:  # the common cases first: this is on hot paths
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InvalidType(name, value, f"a {noun}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a float
        number = math.inf
    if math.isfinite(number) and (number > minimum or (number == minimum and not exclusive)) and number <= maximum:
        return number
    low = f"> {minimum:g}" if exclusive else f">= {minimum:g}"
    high = "" if maximum == math.inf else f" and <= {maximum:g}"
    raise InvalidValue(name, value, f"a finite {noun} {low}{high}")


def whole_number(name: str, value: object, *, minimum: int = 0, maximum: int | None = None) -> int:
    """``value`` as an int (not a bool, not a float) with ``minimum <= value <= maximum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidType(name, value, "an integer")
    number = int(value)
    if number < minimum or (maximum is not None and number > maximum):
        expected = f"an integer >= {minimum}" + ("" if maximum is None else f" and <= {maximum}")
        raise InvalidValue(name, value, expected)
    return number


def positive_int(name: str, value: object, *, maximum: int | None = None) -> int:
    """``value`` as an int >= 1 (not a bool)."""
    return whole_number(name, value, minimum=1, maximum=maximum)
