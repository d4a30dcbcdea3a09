"""Shared fixtures: a node per test, paths to the example guests, a private compile cache."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPONENTS = ROOT / "examples" / "components"
GUESTS = ROOT / "tests" / "guests"
PYTHON_GUEST = ROOT / "build" / "guests" / "kvstore.wasm"

# One compile cache for the whole test session, so tests do not depend on ~/.cache.
os.environ.setdefault("AIRSSYS_CACHE_DIR", tempfile.mkdtemp(prefix="airssys-test-cache-"))


@pytest.fixture
async def node():
    from airssys_actors import Node

    async with Node(shutdown_timeout=1.0) as n:
        yield n


def component_path(name: str) -> str:
    return str(COMPONENTS / name)
