"""The name registry: every lookup of a name goes through this one interface, so a
cluster-wide registry can replace it without touching the rest of the runtime."""

from __future__ import annotations

from typing import Protocol

from ._errors import NameTaken
from ._pid import Pid, is_valid_name


class Registry(Protocol):
    """Maps names to pids. A name names at most one live process."""

    def register(self, name: str, pid: Pid) -> None: ...
    def unregister(self, name: str) -> None: ...
    def whereis(self, name: str) -> Pid | None: ...
    def names(self) -> dict[str, Pid]: ...


class LocalRegistry:
    """The registry of one node."""

    def __init__(self) -> None:
        self._by_name: dict[str, Pid] = {}

    def register(self, name: str, pid: Pid) -> None:
        if not is_valid_name(name):
            raise ValueError(f"invalid name {name!r}: names are non-empty, at most 255 characters, and do not start with '<'")
        holder = self._by_name.get(name)
        if holder is not None and holder != pid:
            raise NameTaken(f"name {name!r} is registered to {holder}")
        self._by_name[name] = pid

    def unregister(self, name: str) -> None:
        self._by_name.pop(name, None)

    def whereis(self, name: str) -> Pid | None:
        return self._by_name.get(name)

    def names(self) -> dict[str, Pid]:
        return dict(self._by_name)
