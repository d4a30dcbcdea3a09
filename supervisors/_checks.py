"""The number checks the supervisors' specs and handles share (the runtime's own are
private to it): every error names the field and shows a hostile value in one short line."""

from __future__ import annotations

import math


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: a tree file or a caller can pass
    anything, and the message stays one short line."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float is no number of seconds either
        return False


def seconds(name: str, value: object) -> float:
    """A timeout as given to a method: finite seconds > 0 (checked before any call)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__} {shown(value)}")
    if not finite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)
