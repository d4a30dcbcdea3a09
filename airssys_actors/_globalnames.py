"""Global names: one cluster-wide table of names in a JetStream KV bucket.

``register`` is the bucket's atomic create (a name held elsewhere is an explicit
:class:`NameTaken`, never a silent overwrite); ``unregister`` deletes with the
revision this node saw, so it never removes a holder it did not see. ``whereis`` reads
a local table fed by a watch of the bucket: no round trip on a send. A name goes when
its process exits (its node deletes it) or its node is lost (every survivor tries the
same compare-and-delete: one wins, the rest are refused, harmlessly). Keys are
``n.<hex of the name's UTF-8>``, so any valid name is a valid key.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgpack
import trio

from ._errors import ActorError, NameTaken
from ._pid import Pid, is_valid_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._transport import KvChange, NatsTransport

log = logging.getLogger("airssys_actors.cluster")


def _key(name: str) -> str:
    return "n." + name.encode("utf-8", "surrogatepass").hex()


class GlobalNames:
    """The cluster's names, as this node sees them."""

    def __init__(self, transport: NatsTransport, bucket: str, me: str, *, timeout: float,
                 alive: Callable[[Pid], bool], start_soon: Callable[..., None],
                 drop: Callable[[str, str], None]) -> None:
        self.transport = transport
        self.bucket = bucket
        self.me = me
        """This node's id: names of its processes are its to remove when they exit."""
        self.timeout = timeout
        self._alive = alive
        self._start_soon = start_soon
        self._drop = drop
        self._table: dict[str, tuple[Pid, int]] = {}  # name -> (pid, revision)
        self._held: dict[Pid, set[str]] = {}  # this node's processes' names

    async def start(self) -> None:
        transport = self.transport
        await transport.kv_bucket(self.bucket, history=1)
        await transport.kv_watch(self.bucket, "n.>")

    def on_change(self, change: KvChange) -> None:
        """A change seen by the watch: the table follows the bucket."""
        try:
            name = bytes.fromhex(change.key[2:]).decode("utf-8", "surrogatepass")
        except ValueError:
            name = None
        if name is None or not change.key.startswith("n."):
            self._drop(f"kv {self.bucket} {change.key[:100]}", "not a name key")
            return
        current = self._table.get(name)
        if current is not None and current[1] > change.revision:
            return  # older news than what this node already did itself
        if change.deleted or change.value is None:
            self._table.pop(name, None)
            return
        try:
            entry = msgpack.unpackb(change.value)
            pid = Pid.parse(entry[1]) if entry[0] == name and isinstance(entry[1], str) else None
        except Exception:
            pid = None
        if pid is None:
            self._drop(f"kv {self.bucket} {change.key[:100]}", "malformed name entry")
            return
        self._table[name] = (pid, change.revision)

    def whereis(self, name: str) -> Pid | None:
        entry = self._table.get(name)
        return None if entry is None else entry[0]

    def names(self) -> dict[str, Pid]:
        return {name: pid for name, (pid, _rev) in self._table.items()}

    async def register(self, name: str, pid: Pid) -> None:
        if not isinstance(name, str) or not is_valid_name(name):
            raise ValueError(f"invalid name {name!r}: names are non-empty, at most 255 characters, "
                             "and do not start with '<'")
        from ._transport import KeyExists

        key = _key(name)
        try:
            revision = await self.transport.kv_create(self.bucket, key, msgpack.packb([name, str(pid)]))
        except KeyExists:
            holder = self.whereis(name)
            if holder is None:
                found = await self.transport.kv_get(self.bucket, key)
                try:
                    holder = Pid.parse(msgpack.unpackb(found[0])[1]) if found is not None else None
                except Exception:  # an entry no node wrote: held, by no one we know
                    holder = None
            if holder == pid:
                return
            raise NameTaken(f"global name {name!r} is registered to {holder or 'an entry no node can read'}") from None
        current = self._table.get(name)
        if current is None or current[1] <= revision:
            self._table[name] = (pid, revision)
        if pid.node == self.me:
            self._held.setdefault(pid, set()).add(name)
            if not self._alive(pid):  # it exited while the create was in flight
                self.process_exited(pid)

    async def unregister(self, name: str) -> None:
        """Remove ``name`` if this node sees it held; a no-op for a name no one holds."""
        entry = self._table.get(name)
        if entry is None:
            return
        pid, revision = entry
        from ._transport import WrongRevision

        try:
            await self.transport.kv_delete(self.bucket, _key(name), last=revision)
        except WrongRevision:
            raise ActorError(f"global name {name!r} changed hands meanwhile; not removed") from None
        self._forget(name, revision)
        held = self._held.get(pid)
        if held is not None:
            held.discard(name)
            if not held:
                del self._held[pid]

    def _forget(self, name: str, revision: int) -> None:
        entry = self._table.get(name)
        if entry is not None and entry[1] == revision:
            del self._table[name]

    def process_exited(self, pid: Pid) -> None:
        names = self._held.pop(pid, None)
        if names:
            for name in names:
                entry = self._table.get(name)
                if entry is not None and entry[0] == pid:
                    self._delete_soon(name, entry[1])

    def node_down(self, node_id: str) -> None:
        """Every survivor tries to remove a lost node's names (compare-and-delete)."""
        for name, (pid, revision) in list(self._table.items()):
            if pid.node == node_id:
                self._delete_soon(name, revision)

    def sweep(self, live: set[str]) -> None:
        """Once after start: names held by incarnations no live node has (a cluster
        that stopped whole, a node that died while no one watched) are removed."""
        for name, (pid, revision) in list(self._table.items()):
            if pid.node not in live:
                self._delete_soon(name, revision)

    async def release_all(self, timeout: float) -> None:
        """A node leaving removes the names of its processes, all gone by now (deletes
        started as each exited may still be in flight: these are the same CAS, and the
        one that loses the race is refused, harmlessly)."""
        from ._transport import TransportError

        with trio.move_on_after(timeout):
            for name, (pid, revision) in list(self._table.items()):
                if pid.node == self.me:
                    try:
                        await self.transport.kv_delete(self.bucket, _key(name), last=revision)
                        self._forget(name, revision)
                    except TransportError:
                        pass
        self._held.clear()

    def _delete_soon(self, name: str, revision: int) -> None:
        self._start_soon(self._delete, name, revision)

    async def _delete(self, name: str, revision: int) -> None:
        from ._transport import TransportError

        try:
            with trio.move_on_after(self.timeout * 2):
                await self.transport.kv_delete(self.bucket, _key(name), last=revision)
                self._forget(name, revision)
        except TransportError as exc:  # someone else removed or re-took it first: fine
            log.debug("name %r not removed: %s", name, exc)
