"""Prometheus metrics for a running node (``airssys run --metrics HOST:PORT``).

Values are read from the node when Prometheus scrapes, on the trio thread: nothing is
counted twice and the message path pays nothing. Served with the official client
library's exposition format over a minimal HTTP endpoint in the node's nursery.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Iterator

import trio

try:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised by the error path only
    raise RuntimeError("metrics need the prometheus-client package: pip install 'airssys-actors[metrics]'") from exc

from airssys_actors import Node


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
    from .commands import _restarts, walk

    restarts = _restarts(await walk(node, root), {}) if root is not None else {}
    registry = CollectorRegistry()
    registry.register(NodeCollector(node, restarts))
    return generate_latest(registry)


async def serve_metrics(node: Node, root: Any, address: str, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--metrics takes HOST:PORT, got {address!r}")

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            request = b""
            with trio.move_on_after(5):
                while b"\r\n\r\n" not in request and len(request) < 8192:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    request += chunk
            line = request.split(b"\r\n", 1)[0].split()
            if len(line) >= 2 and line[0] == b"GET" and line[1].split(b"?")[0] == b"/metrics":
                body = await render_metrics(node, root)
                head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            else:
                body = b"not found: try /metrics\n"
                head = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
            head += b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
            try:
                await stream.send_all(head + body)
            except trio.BrokenResourceError:
                pass

    listeners = await trio.open_tcp_listeners(int(port), host=host)
    task_status.started(listeners)
    await trio.serve_listeners(handle, listeners)
