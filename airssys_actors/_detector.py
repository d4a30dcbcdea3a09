"""Failure detection: a heartbeat every ``heartbeat`` seconds; a peer silent for
``suspect_after`` is probed on ``air.<cluster>.ctl.<peer>.ping`` (no responders: its
process is gone, down at once); silent for ``down_after``: down. Also the credit a
receiver still owes, flushed with each beat, and the one sweep of stale global names."""

from __future__ import annotations

import msgpack
import trio

from ._channel import Channels, Peer
from ._transport import NoResponders, TransportError


class Detection(Channels):
    """The failure detector of the remote path."""

    _hb_seq: int
    _hb_subject: str
    _started_at: float
    _swept: bool
    _tasks: trio.CancelScope

    async def _heartbeats(self, scope: trio.CancelScope) -> None:
        with scope:
            await self._beat()

    async def _beat(self) -> None:
        config = self.config
        last = trio.current_time()
        while True:
            if self.connected:
                self._hb_seq += 1
                self._publish(self._hb_subject, msgpack.packb([self.me, self._hb_seq]))
            now = trio.current_time()
            if now - last > config.heartbeat + config.suspect_after:
                # This node did not run for a while (stopped, starved, a long inline guest):
                # the silence it measured is its own, not its peers'. They get a fresh
                # start instead of being declared down (and losing their names) for it.
                for peer in self.peers.values():
                    peer.heard = max(peer.heard, now)
            last = now
            for peer in list(self.peers.values()):
                self._flush_credit(peer)
                if not peer.up:
                    continue
                silent = now - peer.heard
                if silent >= config.down_after:
                    self._down(peer, f"silent for {silent:.2f} s")
                elif silent >= config.suspect_after and not peer.probing:
                    peer.probing = True
                    if not self._start_soon(self._probe, peer, peer.node_id):
                        peer.probing = False
            if not self._swept and now - self._started_at >= config.down_after and self.connected:
                self._swept = True
                self.names.sweep({p.node_id for p in self.peers.values() if p.up} | {self.me})
            await trio.sleep(config.heartbeat)

    async def _probe(self, peer: Peer, node_id: str | None) -> None:
        try:
            await self.transport.request(f"{self._prefix}.ctl.{peer.name}.ping", b"", self.config.down_after)
        except NoResponders:
            if peer.up and peer.node_id == node_id:
                self._down(peer, "no one answers its probe")
        except TransportError:
            pass  # the heartbeat timeout decides
        finally:
            peer.probing = False
