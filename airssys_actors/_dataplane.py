"""The cluster's data plane: a trio-native NATS core-protocol client that runs in the
node's own nursery, so publishing and receiving process frames crosses no thread.

Why not nats-py here: measured for issue #14 (2 vCPUs, loopback), the thread bridge to
nats-py roughly doubles a call's round trip, and a trio-native core client beat nats-py
on its own asyncio loop. The control plane (JetStream KV, request/reply probes) stays on
:class:`~airssys_actors._transport.NatsTransport`; this module speaks only INFO,
CONNECT, PUB, SUB, MSG, PING/PONG, +OK/-ERR (protocol 1, no headers).

Shape of the hot paths (the point of the module):

* **Outbound**: :meth:`DataPlane.publish` is synchronous and never waits. It appends
  ``PUB <subject> <n>\\r\\n<data>\\r\\n`` to one ``bytearray`` and wakes the writer task
  once per burst; the writer hands everything buffered to ``send_all`` in one go. The
  buffer is bounded (``OUTBOUND_LIMIT``): past it :class:`OutboundFull` is raised at
  once instead of growing (the server is not reading).
* **Inbound**: the reader takes big reads (``receive_some(65536)`` or the size of the
  message it is waiting for), parses every complete ``MSG`` in them with no await in
  between and calls ``on_messages`` once per read with ``(subject, payload)`` pairs in
  arrival order. A message split across reads is gathered without re-parsing. Memory
  is bounded: a control line longer than ``MAX_LINE`` without CRLF, or a ``MSG``
  announcing more than the server's ``max_payload``, is a protocol error (the
  connection is dropped and made again), never an unbounded buffer.

Failures: connection loss (socket error, EOF, a protocol error, an ``-ERR`` other than
a permissions violation, or no PONG within ``ping_interval`` of a PING) calls
``on_state("disconnected")``, drops what was not yet sent (logged on the
``airssys_actors.cluster`` logger and counted in :attr:`DataPlane.dropped_unsent`),
then reconnects every ``reconnect_wait`` forever, subscribes again, and calls
``on_state("reconnected")`` before any message of the new connection. While
disconnected :meth:`DataPlane.publish` raises :class:`NotConnected`. A ``-ERR
'Permissions Violation ...'`` (a refused publish or subscription) is logged, rate
limited, and the connection kept, as the server keeps it.

Bounds: outbound, at most ``OUTBOUND_LIMIT`` bytes waiting plus the one buffer being
written (whose messages are counted in :attr:`DataPlane.lost_in_flight` if the
connection breaks under them); inbound, one message of at most ``max_payload`` (an
INFO announcing more than ``MAX_PAYLOAD_LIMIT``, 64 MiB, is a protocol error) plus
``MAX_LINE``. The callbacks run in the reader task and must not raise: an exception
from them ends :meth:`DataPlane.run` (it is a bug in the caller, not a lost connection).

Credentials, as ``NatsTransport``: ``token``, ``user``/``password`` (or the URL's
``user:password@`` / ``token@``), ``nkeys_seed`` (signs the INFO nonce; needs the
``nkeys`` package), ``creds`` (JWT and seed), TLS (``tls://`` URLs, or the server's INFO
``tls_required``, or any ``tls_*`` field: the socket is upgraded right after INFO).
Files are read and checked once, when :meth:`DataPlane.run` starts.

Errors raised are the transport's: :class:`ClusterUnreachable`, :class:`NotConnected`,
:class:`MessageTooLarge` (``_transport.MessageTooLarge``, a ``TransportError``, as
``NatsTransport.publish`` raises; the remote layer turns it into the user-facing
``airssys_actors.MessageTooLarge`` as it does today), plus :class:`OutboundFull`.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import trio

from ._clusterconfig import ClusterConfig
from ._credentials import BadCredential, check_credentials
from ._transport import ClusterUnreachable, MessageTooLarge, NotConnected, TransportError

log = logging.getLogger("airssys_actors.cluster")

#: Bytes waiting to be written before publish raises OutboundFull.
OUTBOUND_LIMIT = 8 << 20
#: The longest control line (INFO, MSG header, -ERR) accepted without its CRLF.
MAX_LINE = 64 << 10
#: NATS caps max_payload at 64 MiB; an INFO announcing more is a protocol error.
MAX_PAYLOAD_LIMIT = 64 << 20
#: A server that sends no max_payload gets NATS's default.
DEFAULT_MAX_PAYLOAD = 1 << 20
#: Bytes asked of the socket per read when no large message is pending.
READ_SIZE = 65536
#: How often a PING is sent; a PING still unanswered at the next one is a dead connection.
PING_INTERVAL = 2.0
#: Subjects remembered with their encoded PUB prefix (the data plane publishes to few).
_PREFIX_CACHE = 4096
#: At most one log line per second for repeated permission violations.
_LOG_EVERY = 1.0

_HMSG_LINE = re.compile(rb"HMSG[ \t]+[^ \t]+[ \t]+[^ \t]+[ \t]+(?:[^ \t]+[ \t]+)?\d{1,9}[ \t]+(\d{1,9})[ \t]*$")
_SUBJECT = re.compile(r"[^\s*>.]+(?:\.[^\s*>.]+)*")
_SUB_SUBJECT = re.compile(r"(?:[^\s.]+)(?:\.[^\s.]+)*")


class OutboundFull(TransportError):
    """The data plane's write buffer is full (``OUTBOUND_LIMIT`` bytes): the server is
    not reading fast enough; the message was not queued."""


class _Lost(Exception):
    """The connection is unusable: a protocol error, an -ERR, a missed PONG."""


class _Refused(_Lost):
    """The server answered the handshake with -ERR (bad credentials, for one)."""


_LOSS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, _Lost)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _Lost):
        return str(exc)
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    # trio puts the OS's reason in __cause__ (for open_tcp_stream, a group of attempts).
    cause = exc.__cause__ or exc.__context__
    while isinstance(cause, BaseExceptionGroup) and cause.exceptions:
        cause = cause.exceptions[-1]
    if isinstance(exc, (trio.BrokenResourceError, OSError)) and cause is not None:
        text += f" ({type(cause).__name__}: {cause})"
    return text


class DataPlane:
    """Publish to and receive from NATS inside the calling trio run.

    ``subjects`` are subscribed (one sid each) on every connection; ``on_messages``
    gets each socket read's messages as ``(subject, payload)`` in arrival order, called
    in the reader task; ``on_state`` gets ``"disconnected"`` and ``"reconnected"``, in
    order with the messages. Start it with ``await nursery.start(plane.run)``: that
    returns once subscribed (the server answered PONG), or raises
    :class:`ClusterUnreachable` after ``config.connect_timeout``.
    """

    def __init__(self, config: ClusterConfig, subjects: list[str],
                 on_messages: Callable[[list[tuple[str, bytes]]], None],
                 on_state: Callable[[str], None], *, ping_interval: float = PING_INTERVAL) -> None:
        if not isinstance(config, ClusterConfig):
            raise TransportError(f"config must be a ClusterConfig, got {type(config).__name__}")
        if isinstance(subjects, str) or not isinstance(subjects, (list, tuple)):
            raise TransportError(f"subjects must be a list of str, got {type(subjects).__name__}")
        for subject in subjects:
            if not isinstance(subject, str) or not _SUB_SUBJECT.fullmatch(subject) or len(subject) > 1024:
                raise TransportError(f"subjects: not a NATS subject: {subject!r:.80}")
        if isinstance(ping_interval, bool) or not isinstance(ping_interval, (int, float)) or \
                not 0 < ping_interval <= 3600:
            raise TransportError(f"ping_interval must be a number of seconds in (0, 3600], got {ping_interval!r:.40}")
        self._config = config
        self._subjects = list(subjects)
        self._on_messages = on_messages
        self._on_state = on_state
        self._ping_interval = float(ping_interval)
        self._max_payload = DEFAULT_MAX_PAYLOAD
        self._connected = False
        self._running = False
        self._out = bytearray()
        self._out_messages = 0
        self._wake = trio.Event()
        self._woken = False
        self._writing = False
        self._room = trio.Event()  # set (and replaced) each time the write buffer empties
        self._prefixes: dict[str, bytes] = {}
        self._pings_out = 0
        self._pong = False
        self._rx = bytearray()
        self._rx_need = 0
        self._server = ""
        self._last_permission_log = 0.0
        self._permission_suppressed = 0
        #: Messages dropped unsent at a disconnect (never written to the socket).
        self.dropped_unsent = 0
        #: Messages being written when a connection broke (each may or may not have arrived).
        self.lost_in_flight = 0
        #: Permission violations the server reported (refused publishes or subscriptions).
        self.permission_violations = 0

    # ---- public ----------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Bytes published and not yet handed to the socket."""
        return len(self._out)

    @property
    def max_payload(self) -> int:
        """The largest payload the server accepts (from its INFO; NATS's 1 MiB before)."""
        return self._max_payload

    @property
    def connected(self) -> bool:
        """True between the server's PONG to our subscriptions and a connection loss."""
        return self._connected

    @property
    def server(self) -> str:
        """The URL of the server currently (or last) connected to."""
        return self._server

    def publish(self, subject: str, data: bytes) -> None:
        """Queue one message; never waits. :class:`NotConnected` while disconnected,
        :class:`MessageTooLarge` over :attr:`max_payload`, :class:`OutboundFull` when
        ``OUTBOUND_LIMIT`` bytes are already waiting."""
        if not self._connected:
            raise NotConnected("the cluster data plane is not connected" if self._running
                               else "the cluster data plane is not running")
        try:
            prefix = self._prefixes.get(subject)
        except TypeError:  # unhashable: not a str
            prefix = None
        if prefix is None:
            prefix = self._prefix(subject)
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray)):
                raise TransportError(f"data must be bytes, got {type(data).__name__}")
        size = len(data)
        if size > self._max_payload:
            raise MessageTooLarge(f"a message of {size} bytes is over the server's max_payload of "
                                  f"{self._max_payload} bytes (subject {subject!r:.80})")
        out = self._out
        if len(out) + size > OUTBOUND_LIMIT:
            raise OutboundFull(f"the data plane's write buffer holds {len(out)} bytes (limit {OUTBOUND_LIMIT}): "
                               f"the server at {self._server} is not reading; message to {subject!r:.80} not sent")
        out += prefix
        out += b"%d\r\n" % size
        out += data
        out += b"\r\n"
        self._out_messages += 1
        if not self._woken:
            self._woken = True
            self._wake.set()

    async def wait_for_room(self) -> None:
        """Return once the write buffer has been written out (or the connection lost):
        what a sender refused with :class:`OutboundFull` waits on."""
        if self._connected and self._out:
            await self._room.wait()
        else:
            await trio.lowlevel.checkpoint()

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until everything published has been written to
        the socket (True), e.g. before leaving: a node's last signals go out."""
        with trio.move_on_after(timeout):
            while self._connected and (self._out or self._writing):
                if self._out:
                    await self._room.wait()
                else:
                    await trio.sleep(0.001)  # the last write is on its way
            return not self._out and not self._writing
        return False

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, subscribe, then serve until cancelled, reconnecting forever. Raises
        :class:`ClusterUnreachable` (before ``task_status.started()``) if no server
        answered within ``connect_timeout``."""
        if self._running:
            raise TransportError("DataPlane.run is already running")
        self._running = True
        try:
            auth = _Auth.load(self._config)
            stream, early = await self._connect_first(auth)
            task_status.started()
            reconnected = False
            while True:
                await self._serve(stream, early, reconnected)
                stream, early = await self._reconnect(auth)
                reconnected = True
        finally:
            self._running = False
            self._connected = False

    # ---- connection lifecycle --------------------------------------------------------

    async def _connect_first(self, auth: _Auth) -> tuple[trio.abc.Stream, list[tuple[str, bytes]]]:
        config = self._config
        errors: dict[str, str] = {}
        refused: set[str] = set()
        current = ""
        with trio.move_on_after(config.connect_timeout):
            while True:
                for url in config.servers:
                    current = url
                    try:
                        return await self._attempt(url, auth)
                    except _Refused as exc:
                        errors[url] = str(exc)
                        refused.add(url)
                    except _LOSS as exc:
                        errors[url] = _describe(exc)
                current = ""
                if len(refused) == len(set(config.servers)):
                    break  # every server said no: waiting will not change its mind
                await trio.sleep(config.reconnect_wait)
        if current:
            errors[current] = f"no answer within {config.connect_timeout:g} s"
        last = "; ".join(f"{url}: {text}" for url, text in errors.items()) or "no attempt finished"
        raise ClusterUnreachable(f"no NATS server answered within {config.connect_timeout:g} s at "
                                 f"{', '.join(config.servers)} (data plane; last error: {last})")

    async def _reconnect(self, auth: _Auth) -> tuple[trio.abc.Stream, list[tuple[str, bytes]]]:
        config = self._config
        attempts = 0
        while True:
            await trio.sleep(config.reconnect_wait)
            for url in config.servers:
                try:
                    with trio.fail_after(config.connect_timeout):
                        return await self._attempt(url, auth)
                except (*_LOSS, trio.TooSlowError) as exc:
                    attempts += 1
                    if attempts == 1 or attempts % 100 == 0:
                        log.warning("cluster data plane: reconnect to %s failed (attempt %d): %s", url, attempts,
                                    "timed out" if isinstance(exc, trio.TooSlowError) else _describe(exc))

    async def _attempt(self, url: str, auth: _Auth) -> tuple[trio.abc.Stream, list[tuple[str, bytes]]]:
        """One connection to ``url`` up to the PONG after our SUBs; the messages that
        arrived before that PONG come back too (delivered after the state change)."""
        parts = urlsplit(url)
        if parts.scheme not in ("nats", "tls"):
            raise _Lost(f"{parts.scheme}:// servers are not supported by the data plane (use nats:// or tls://)")
        host = parts.hostname or "127.0.0.1"
        try:
            port = parts.port or 4222
        except ValueError:
            raise _Lost(f"bad port in {url!r}") from None
        self._reset_connection_state()
        stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
        try:
            info = self._parse_info(await self._read_info(stream))
            want_tls = parts.scheme == "tls" or bool(info.get("tls_required")) or auth.tls is not None
            if want_tls:
                if self._rx:
                    raise _Lost("the server sent data after INFO before the TLS handshake")
                context = auth.tls or _system_tls()
                stream = trio.SSLStream(stream, context, server_hostname=host)
                await stream.do_handshake()
            connect = auth.connect_options(parts, info.get("nonce"))
            connect.update(verbose=False, pedantic=False, tls_required=want_tls, name=f"airssys.{self._config.cluster}.data",
                           lang="python-trio", version="1", protocol=1, echo=True, headers=False)
            out = bytearray(b"CONNECT " + json.dumps(connect, separators=(",", ":")).encode() + b"\r\n")
            for sid, subject in enumerate(self._subjects, 1):
                out += b"SUB %s %d\r\n" % (subject.encode(), sid)
            out += b"PING\r\n"
            await stream.send_all(out)
            early: list[tuple[str, bytes]] = []
            while not self._pong:
                data = await stream.receive_some(max(READ_SIZE, self._rx_need - len(self._rx)))
                if not data:
                    raise _Lost("the server closed the connection during the handshake")
                self._feed(data, early, handshake=True)
                if self._out:  # PONGs to the server's PINGs
                    pending, self._out = self._out, bytearray()
                    await stream.send_all(pending)
            self._server = url
            return stream, early
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise

    def _reset_connection_state(self) -> None:
        self._room.set()  # whoever waits for room learns the connection is gone
        self._room = trio.Event()
        self._out = bytearray()
        self._out_messages = 0
        self._rx = bytearray()
        self._rx_need = 0
        self._pings_out = 0
        self._pong = False

    async def _read_info(self, stream: trio.abc.Stream) -> bytes:
        buffer = bytearray()
        while True:
            end = buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(buffer[:end])
                self._rx = buffer[end + 2:]
                return line
            if len(buffer) > MAX_LINE:
                raise _Lost(f"the server's first line is over {MAX_LINE} bytes without CRLF")
            data = await stream.receive_some(READ_SIZE)
            if not data:
                raise _Lost("the server closed the connection before INFO")
            buffer += data

    def _parse_info(self, line: bytes) -> dict[str, Any]:
        if not line.startswith(b"INFO ") and not line.startswith(b"INFO\t"):
            raise _Lost(f"the server did not start with INFO: {line[:60]!r}")
        info = _info_json(line[5:])
        self._max_payload = info["max_payload"]
        return info

    async def _serve(self, stream: trio.abc.Stream, early: list[tuple[str, bytes]], reconnected: bool) -> None:
        """Run one connection's reader, writer and pinger until it is lost (returns) or
        the run is cancelled (raises Cancelled); the socket is closed either way."""
        loss: list[str] = []
        in_flight = [0]
        try:
            self._connected = True
            if reconnected:
                log.warning("cluster data plane: reconnected to %s", self._server)
                self._on_state("reconnected")
            if early:
                self._on_messages(early)
            async with trio.open_nursery() as nursery:
                def lost(exc: BaseException) -> None:
                    loss.append(_describe(exc))
                    nursery.cancel_scope.cancel()

                nursery.start_soon(self._guarded, self._reader, stream, lost)
                nursery.start_soon(self._guarded, self._writer, (stream, in_flight), lost)
                nursery.start_soon(self._guarded, self._pinger, None, lost)
        finally:
            self._connected = False
            await trio.aclose_forcefully(stream)
        unsent, unsent_bytes = self._out_messages, len(self._out)
        self.dropped_unsent += unsent
        self.lost_in_flight += in_flight[0]
        self._reset_connection_state()
        log.warning("cluster data plane: connection to %s lost (%s); %d unsent messages (%d bytes) dropped, "
                    "%d being written may be lost; reconnecting every %g s", self._server,
                    loss[0] if loss else "unknown", unsent, unsent_bytes, in_flight[0], self._config.reconnect_wait)
        self._on_state("disconnected")

    @staticmethod
    async def _guarded(task: Callable[[Any], Any], arg: Any, lost: Callable[[BaseException], None]) -> None:
        try:
            await task(arg)
        except _LOSS as exc:
            lost(exc)

    async def _reader(self, stream: trio.abc.Stream) -> None:
        on_messages = self._on_messages
        while True:
            data = await stream.receive_some(max(READ_SIZE, self._rx_need - len(self._rx)))
            if not data:
                raise _Lost("the server closed the connection")
            messages: list[tuple[str, bytes]] = []
            try:
                self._feed(data, messages, handshake=False)
            finally:
                if messages:  # those before a protocol error are delivered too
                    on_messages(messages)
            if self._out and not self._woken:  # PONGs
                self._woken = True
                self._wake.set()

    async def _writer(self, state: tuple[trio.abc.Stream, list[int]]) -> None:
        stream, in_flight = state
        while True:
            if not self._out:
                self._woken = False
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            data, self._out = self._out, bytearray()
            in_flight[0], self._out_messages = self._out_messages, 0
            self._writing = True
            try:
                await stream.send_all(data)
            finally:
                self._writing = False
            in_flight[0] = 0
            if not self._out:
                self._room.set()
                self._room = trio.Event()

    async def _pinger(self, _: None) -> None:
        while True:
            await trio.sleep(self._ping_interval)
            if self._pings_out:
                raise _Lost(f"no PONG from the server within {self._ping_interval:g} s of a PING")
            self._pings_out += 1
            self._control(b"PING\r\n")
            if not self._woken:
                self._woken = True
                self._wake.set()

    def _control(self, line: bytes) -> None:
        if len(self._out) > OUTBOUND_LIMIT:
            raise _Lost("the server sends PINGs but does not read our PONGs (write buffer full)")
        self._out += line

    # ---- parsing ---------------------------------------------------------------------

    def _feed(self, data: bytes, messages: list[tuple[str, bytes]], handshake: bool) -> None:
        """Parse what ``data`` completes; keep the incomplete tail for the next read."""
        rx = self._rx
        if rx:
            rx += data
            if len(rx) < self._rx_need:
                return  # still inside one large message: no re-parse
            data = bytes(rx)
            self._rx = bytearray()
        try:
            pos = self._parse(data, messages, handshake)
        except (ValueError, KeyError, TypeError) as exc:  # a hostile server's bytes
            raise _Lost(f"protocol error from the server: {type(exc).__name__}: {exc}"[:300]) from None
        if pos < len(data):
            self._rx = bytearray(memoryview(data)[pos:])

    def _parse(self, data: bytes, messages: list[tuple[str, bytes]], handshake: bool) -> int:
        pos = 0
        size = len(data)
        find = data.find
        rfind = data.rfind
        startswith = data.startswith
        append = messages.append
        limit = self._max_payload
        subjects: dict[bytes, str] = {}
        self._rx_need = 0
        while pos < size:
            eol = find(b"\r\n", pos)
            if eol < 0:
                if size - pos > MAX_LINE:
                    raise _Lost(f"a line of over {MAX_LINE} bytes without CRLF from the server")
                return pos
            if startswith(b"MSG ", pos):
                # MSG <subject> <sid> [reply-to] <#bytes>: the subject ends at the first
                # space, the length starts after the last (finds are cheaper than a regex).
                space = find(b" ", pos + 4, eol)
                last = rfind(b" ", pos, eol)
                if space <= pos + 4 or last <= space:
                    raise _Lost(f"malformed MSG line from the server: {data[pos:min(eol, pos + 80)]!r}")
                length = int(data[last + 1:eol])
                if not 0 <= length <= limit:
                    raise _Lost(f"the server sent a MSG of {length} bytes (its max_payload is {limit})")
                start = eol + 2
                end = start + length
                if end + 2 > size:
                    self._rx_need = end + 2 - pos
                    return pos
                if not startswith(b"\r\n", end):
                    raise _Lost(f"a MSG's payload is not {length} bytes long (no CRLF after it)")
                raw = data[pos + 4:space]
                subject = subjects.get(raw)
                if subject is None:
                    subject = subjects[raw] = raw.decode()
                append((subject, data[start:end]))
                pos = end + 2
                continue
            line = data[pos:eol]
            pos = eol + 2
            if line == b"PING":
                self._control(b"PONG\r\n")
            elif line == b"PONG":
                self._pings_out = 0
                self._pong = True
            elif line == b"+OK":
                pass
            elif line.startswith(b"-ERR"):
                self._server_error(line[4:].strip().decode(errors="replace"), handshake)
            elif line.startswith(b"INFO"):
                info = _info_json(line[4:])
                self._max_payload = limit = info["max_payload"]
            elif line.startswith(b"HMSG"):  # not asked for (headers false): skip it
                hmatch = _HMSG_LINE.match(line)
                if hmatch is None:
                    raise _Lost(f"malformed HMSG line from the server: {line[:80]!r}")
                total = int(hmatch[1])
                if total > limit:
                    raise _Lost(f"the server sent an HMSG of {total} bytes, over its max_payload {limit}")
                if pos + total + 2 > size:
                    self._rx_need = pos + total + 2 - (eol - len(line))
                    return eol - len(line)
                pos += total + 2
            else:
                raise _Lost(f"unexpected line from the server: {line[:60]!r}")
        return pos

    def _server_error(self, text: str, handshake: bool) -> None:
        text = text.strip("'")[:300]
        if text.lower().startswith("permissions violation"):
            # The server keeps the connection; the message or subscription is refused.
            self.permission_violations += 1
            now = time.monotonic()
            if now - self._last_permission_log >= _LOG_EVERY:
                more = f" (and {self._permission_suppressed} more since the last report)" \
                    if self._permission_suppressed else ""
                log.error("cluster data plane: the server at %s refused: %s%s", self._server or "(connecting)",
                          text, more)
                self._last_permission_log = now
                self._permission_suppressed = 0
            else:
                self._permission_suppressed += 1
            return
        if handshake:
            raise _Refused(f"the server refused the connection: {text}")
        raise _Lost(f"the server reported an error: {text}")

    def _prefix(self, subject: str) -> bytes:
        if type(subject) is not str:
            raise TransportError(f"subject must be a str, got {type(subject).__name__}")
        if not _SUBJECT.fullmatch(subject) or len(subject) > 1024:
            raise TransportError(f"subject must be dot-separated tokens without spaces or wildcards, "
                                 f"got {subject!r:.80}")
        prefix = b"PUB " + subject.encode() + b" "
        if len(self._prefixes) >= _PREFIX_CACHE:
            self._prefixes.clear()
        self._prefixes[subject] = prefix
        return prefix


def _info_json(raw: bytes) -> dict[str, Any]:
    """An INFO payload, checked where it matters to us (max_payload bounds memory)."""
    try:
        info = json.loads(raw)
    except ValueError as exc:
        raise _Lost(f"the server's INFO is not JSON: {exc}") from None
    if not isinstance(info, dict):
        raise _Lost("the server's INFO is not a JSON object")
    max_payload = info.get("max_payload", DEFAULT_MAX_PAYLOAD)
    if isinstance(max_payload, bool) or not isinstance(max_payload, int) or \
            not 0 < max_payload <= MAX_PAYLOAD_LIMIT:
        raise _Lost(f"the server's INFO max_payload must be 1 to {MAX_PAYLOAD_LIMIT} bytes, got {max_payload!r:.40}")
    info["max_payload"] = max_payload
    nonce = info.get("nonce")
    if nonce is not None and (not isinstance(nonce, str) or len(nonce) > 1024):
        raise _Lost("the server's INFO nonce is not a short string")
    return info


_SYSTEM_TLS: list[ssl.SSLContext] = []


def _system_tls() -> ssl.SSLContext:
    """A TLS context with the system's CAs, made once: loading them takes a while (up
    to a second on a busy machine), not to be paid inside every connect deadline."""
    if not _SYSTEM_TLS:
        _SYSTEM_TLS.append(ssl.create_default_context())
    return _SYSTEM_TLS[0]


class _Auth:
    """Credentials from the config, read once at start: token, user/password (or the
    URL's userinfo), an nkey seed file, a .creds file (JWT + seed), TLS files."""

    def __init__(self, config: ClusterConfig, seed: bytes | None, jwt: str | None,
                 tls: ssl.SSLContext | None) -> None:
        self.config = config
        self.seed = seed
        self.jwt = jwt
        self.tls = tls

    @classmethod
    def load(cls, config: ClusterConfig) -> _Auth:
        # The same checks, and the same TLS context, as the control plane's.
        try:
            tls = check_credentials(config)
        except BadCredential as exc:
            raise TransportError(str(exc)) from None
        seed = jwt = None
        if config.creds is not None:
            text = _read_text("creds", config.creds)
            jwt_match = re.search(r"-+BEGIN NATS USER JWT-+\s*\n\s*(\S+)", text)
            seed_match = re.search(r"-+BEGIN USER NKEY SEED-+\s*\n\s*(\S+)", text)
            if jwt_match is None or seed_match is None:
                raise TransportError(f"creds: {config.creds!r} holds no NATS USER JWT and USER NKEY SEED blocks")
            jwt, seed = jwt_match[1], seed_match[1].encode()
        elif config.nkeys_seed is not None:
            seed = _read_text("nkeys_seed", config.nkeys_seed).strip().encode()
        return cls(config, seed, jwt, tls)

    def connect_options(self, url: Any, nonce: str | None) -> dict[str, Any]:
        config = self.config
        options: dict[str, Any] = {}
        user = unquote(url.username) if url.username else None
        password = unquote(url.password) if url.password is not None else None
        if config.token is not None:
            options["auth_token"] = config.token
        elif config.user is not None:
            options["user"] = config.user
            options["pass"] = config.password or ""
        elif user is not None and password is None:
            options["auth_token"] = user  # nats://TOKEN@host
        elif user is not None:
            options["user"] = user
            options["pass"] = password
        if self.seed is not None:
            keys = _nkeys("creds" if self.jwt is not None else "nkeys_seed")
            pair = keys.from_seed(bytearray(self.seed))
            try:
                if self.jwt is not None:
                    options["jwt"] = self.jwt
                else:
                    options["nkey"] = pair.public_key.decode()
                if nonce is not None:
                    signed = pair.sign(nonce.encode())
                    options["sig"] = base64.urlsafe_b64encode(signed).rstrip(b"=").decode()
            finally:
                pair.wipe()
        return options


def _read_text(field: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read(1 << 20)
    except (OSError, UnicodeDecodeError) as exc:
        raise TransportError(f"{field}: cannot read {path!r}: {exc}") from None


def _nkeys(field: str) -> Any:
    try:
        import nkeys
    except ImportError:
        raise TransportError(f"{field} needs the nkeys package (pip install nkeys)") from None
    return nkeys
