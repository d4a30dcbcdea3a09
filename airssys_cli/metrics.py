"""Prometheus metrics for a running node (``airssys run --metrics HOST:PORT``).

Values are read from the node when Prometheus scrapes, on the trio thread: nothing is
counted twice and the message path pays nothing. The page is prometheus_client's
``generate_latest``; HTTP is parsed and written by ``h11``.

Why h11 and not prometheus_client's own server (``start_http_server``): that server runs
in a thread of its own and calls the collectors there, but the collector reads the
node's process table and asks the supervisors for their children, which only the trio
thread may touch; it also has no connection cap and no timeouts. h11 is a well-kept,
I/O-free HTTP/1.1 parser, so the endpoint runs in the node's nursery under the same
:class:`~airssys_cli.serving.ClientLimits` as the control socket (connection cap,
deadline on every read and write, an accept loop that survives fd exhaustion) while
HTTP itself (request framing, keep-alive, malformed requests) is h11's.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Iterator

import trio

try:
    import h11
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised by the error path only
    raise RuntimeError("metrics need the prometheus-client and h11 packages: "
                       "pip install 'airssys-actors[metrics]'") from exc

from airssys_actors import Node

from .serving import ClientLimits, send_within, serve_clients
from .treewalk import restarts_by_pid, walk


class NodeCollector(Collector):
    def __init__(self, node: Node, restarts: dict[str, int]) -> None:
        self.node = node
        self.restarts = restarts

    def collect(self) -> Iterator[Any]:
        labels = ["pid", "name", "component", "version"]
        messages_in = CounterMetricFamily("airssys_process_messages_in", "Messages handled", labels=labels)
        messages_out = CounterMetricFamily("airssys_process_messages_out", "Messages sent", labels=labels)
        mailbox = GaugeMetricFamily("airssys_process_mailbox_depth", "Messages waiting", labels=labels)
        handler = CounterMetricFamily("airssys_process_handler_seconds", "Time spent in handlers", labels=labels)
        fuel = CounterMetricFamily("airssys_process_fuel_used", "Fuel consumed by the guest", labels=labels)
        memory = GaugeMetricFamily("airssys_process_memory_bytes",
                                   "Linear memory of the guest (only with --track-memory)", labels=labels)
        restarts = CounterMetricFamily("airssys_process_restarts", "Restarts of the child under this name",
                                       labels=labels)
        for info in self.node.processes():
            values = [info["pid"], info["name"] or "", info["component"] or "", info["version"] or ""]
            messages_in.add_metric(values, info["messages_in"])
            messages_out.add_metric(values, info["messages_out"])
            mailbox.add_metric(values, info["mailbox"])
            handler.add_metric(values, info["handle_seconds"])
            if info.get("fuel_used") is not None:
                fuel.add_metric(values, info["fuel_used"])
            if info.get("memory_bytes") is not None:
                memory.add_metric(values, info["memory_bytes"])
            restarts.add_metric(values, self.restarts.get(info["pid"], 0))
        yield from (messages_in, messages_out, mailbox, handler, fuel, memory, restarts)
        stats = self.node.statistics()
        yield GaugeMetricFamily("airssys_node_processes", "Live processes", value=stats.processes)
        yield GaugeMetricFamily("airssys_node_pending_calls", "Calls awaiting a reply", value=stats.pending_calls)
        yield GaugeMetricFamily("airssys_node_timers", "Pending timers", value=stats.timers)
        yield CounterMetricFamily("airssys_node_dead_letters", "Dead letters recorded", value=stats.dead_letters)
        injected = CounterMetricFamily("airssys_node_faults_injected", "Faults injected", labels=["kind"])
        for kind, count in self.node.faults.injected.items():
            injected.add_metric([kind], count)
        yield injected


async def render_metrics(node: Node, root: Any) -> bytes:
    restarts = restarts_by_pid(await walk(node, root)) if root is not None else {}
    registry = CollectorRegistry()
    registry.register(NodeCollector(node, restarts))
    return generate_latest(registry)


class ScrapePacer:
    """Makes the page for every scrape, one collection at a time, and reuses a page that
    was costly to make for ten times as long as it took.

    Collecting runs on the node's own thread and, for a large node, takes long (about
    2 s for 20,000 processes) without yielding: an unauthenticated client scraping in a
    loop, or a few at once, would otherwise hold the node's thread nearly all the time.
    Paced, scrapes take at most about a tenth of it. A page that took less than
    :data:`FRESH_BELOW` seconds is never reused: a small node is always scraped fresh."""

    REUSE_FACTOR = 10
    FRESH_BELOW = 0.05

    def __init__(self, node: Node, root: Any) -> None:
        self.node = node
        self.root = root
        self._lock = trio.Lock()
        self._page: bytes | None = None
        self._made_at = 0.0
        self._cost = 0.0

    async def page(self) -> bytes:
        async with self._lock:  # a scrape that waits here gets the page just made
            now = trio.current_time()
            if (self._page is not None and self._cost >= self.FRESH_BELOW
                    and now - self._made_at < self.REUSE_FACTOR * self._cost):
                return self._page
            self._page = None
            page = await render_metrics(self.node, self.root)
            self._made_at = trio.current_time()
            self._cost = self._made_at - now
            self._page = page
            return page


#: What ``generate_latest`` writes: the text exposition format 0.0.4.
EXPOSITION_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
#: Bytes of request line and headers a client may send (h11 refuses more with 431).
MAX_HEADERS = 16 * 1024
#: Bytes of request body the endpoint reads and throws away (a scrape has none).
MAX_BODY = 64 * 1024


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (port 0 to 65535; IPv6 hosts in brackets) as ``(host, port)``."""
    host, _, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--metrics takes HOST:PORT with a port from 0 to 65535, got {address!r}")
    return host, int(port)


async def serve_metrics(node: Node, root: Any, address: str, limits: ClientLimits | None = None,
                        task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``/metrics`` on ``address`` until cancelled; ``task_status`` gets the listeners."""
    host, port = parse_address(address)
    limits = limits or ClientLimits()
    pacer = ScrapePacer(node, root)

    async def handle(stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADERS)
        while True:
            try:
                with trio.fail_after(limits.timeout):
                    request = await _next_request(conn, stream)
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    status = exc.error_status_hint
                    await _respond(conn, stream, limits, status, b"bad request: %s\n" % str(exc).encode()[:200],
                                   close=True)
                return
            if request is None:
                return
            if request.method not in (b"GET", b"HEAD"):
                await _respond(conn, stream, limits, 405, b"only GET and HEAD\n", allow=True)
            elif request.target.split(b"?")[0] == b"/metrics":
                try:
                    body = await pacer.page()
                except Exception as exc:  # e.g. a supervisor that stopped mid-scrape: this scrape fails alone
                    message = f"could not collect metrics: {type(exc).__name__}: {exc}"[:500]
                    await _respond(conn, stream, limits, 500, message.encode(errors="replace") + b"\n", close=True)
                    return
                await _respond(conn, stream, limits, 200, body, head=request.method == b"HEAD",
                               content_type=EXPOSITION_TYPE)
            else:
                await _respond(conn, stream, limits, 404, b"not found: try /metrics\n",
                               head=request.method == b"HEAD")
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()  # keep-alive: the next request has a new deadline

    async def refuse(stream: trio.SocketStream) -> None:
        body = b"too many connections: at most %d at once\n" % limits.max_clients
        conn = h11.Connection(h11.SERVER)
        # Answered before the request is read: a client over the cap gets no more of the
        # node's time than this one write.
        conn.receive_data(b"GET / HTTP/1.1\r\nHost: refused\r\n\r\n")
        conn.next_event()
        await _respond(conn, stream, limits, 503, body, close=True)

    listeners = await trio.open_tcp_listeners(port, host=host)
    task_status.started(listeners)
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(serve_clients, listener, handle, refuse, limits, "metrics")


async def _next_request(conn: Any, stream: trio.SocketStream) -> Any:
    """The next complete request (its body read and dropped), or None when the client
    closed the connection."""
    request = None
    body = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            if conn.they_are_waiting_for_100_continue:
                raise h11.RemoteProtocolError("Expect: 100-continue is not supported", error_status_hint=417)
            conn.receive_data(await stream.receive_some(16384))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += len(event.data)
            if body > MAX_BODY:
                raise h11.RemoteProtocolError(f"request body over {MAX_BODY} bytes", error_status_hint=413)
        elif isinstance(event, h11.EndOfMessage):
            return request
        elif isinstance(event, h11.ConnectionClosed):
            return None


REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed", 413: b"Content Too Large",
           431: b"Request Header Fields Too Large", 500: b"Internal Server Error", 503: b"Service Unavailable"}


async def _respond(conn: Any, stream: trio.SocketStream, limits: ClientLimits, status: int, body: bytes, *,
                   head: bool = False, close: bool = False, allow: bool = False,
                   content_type: bytes = b"text/plain; charset=utf-8") -> None:
    headers = [(b"Content-Type", content_type), (b"Content-Length", b"%d" % len(body))]
    if close:
        headers.append((b"Connection", b"close"))
    if allow:
        headers.append((b"Allow", b"GET, HEAD"))
    reason = REASONS.get(status, b"")
    data = conn.send(h11.Response(status_code=status, headers=headers, reason=reason))
    if not head:
        data += conn.send(h11.Data(data=body))
    data += conn.send(h11.EndOfMessage())
    await send_within(stream, data, limits)
