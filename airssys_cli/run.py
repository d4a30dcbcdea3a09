"""``airssys run TREE.py``: a node with that tree, served on the control socket until
Ctrl-C (or SIGTERM), which stops the tree in reverse start order."""

from __future__ import annotations

import argparse
import logging
import signal
from typing import Any

import trio

import supervisors
from airssys_actors import Node, track_memory

from . import render
from .commands import HANDLERS
from .control import ControlServer, default_socket
from .serving import (DEFAULT_CLIENT_TIMEOUT, DEFAULT_MAX_CLIENTS, MAX_CLIENT_TIMEOUT, ClientLimits,
                      check_client_timeout, check_max_clients)
from .treefile import load_tree


def add_client_limit_flags(run: argparse.ArgumentParser) -> None:
    """``--client-timeout`` and ``--max-clients`` of ``airssys run``."""
    run.add_argument("--client-timeout", type=_flag(check_client_timeout), default=DEFAULT_CLIENT_TIMEOUT,
                     metavar="SECONDS",
                     help="seconds a control-socket or metrics client has to send its request and to take "
                          f"each part of the answer (default {DEFAULT_CLIENT_TIMEOUT:g}, at most {MAX_CLIENT_TIMEOUT:g})")
    run.add_argument("--max-clients", type=_flag(check_max_clients, int), default=DEFAULT_MAX_CLIENTS, metavar="N",
                     help="connections served at once on the control socket and, apart, on the metrics port; "
                          f"more are refused (default {DEFAULT_MAX_CLIENTS})")


def _flag(check: Any, parse: Any = float) -> Any:
    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        try:
            return check(value, "value")
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("value ")) from None

    return convert


def client_limits(args: argparse.Namespace) -> ClientLimits:
    return ClientLimits(timeout=getattr(args, "client_timeout", DEFAULT_CLIENT_TIMEOUT),
                        max_clients=getattr(args, "max_clients", DEFAULT_MAX_CLIENTS))


class TreeGaveUp(Exception):
    """The root supervisor exceeded its restart intensity and stopped the tree."""


async def serve_tree(args: argparse.Namespace, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    # A cluster node may start with no tree of its own (its processes come by remote spawn).
    tree = load_tree(args.tree) if args.tree is not None else supervisors.Supervisor("root", children=[])
    out = render.console(stderr=True)
    stop = trio.Event()
    # Catch Ctrl-C / SIGTERM from the very start, so a signal during start-up also stops
    # the tree in order instead of interrupting it half-way.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as outer:
            async def on_signal() -> None:
                async for _ in signals:
                    out.print("stopping...")
                    stop.set()

            outer.start_soon(on_signal)
            try:
                await _serve(args, tree, out, stop, task_status)
            finally:
                outer.cancel_scope.cancel()
    out.print("stopped.")


async def _serve(args: argparse.Namespace, tree: Any, out: Any, stop: trio.Event, task_status: Any) -> None:
    socket = args.socket or default_socket()
    async with Node(args.node_name, cluster=getattr(args, "cluster_config", None)) as node:
        give_ups = node.subscribe({"give_up"})
        root = await supervisors.start(node, tree)
        limits = client_limits(args)
        server = ControlServer(node, root, socket, HANDLERS, limits)
        await node.start(server.serve)
        if args.metrics:
            from .metrics import serve_metrics

            listeners = await node.start(serve_metrics, node, root, args.metrics, limits)
            host, port = listeners[0].socket.getsockname()[:2]
            out.print(f"metrics on http://{host}:{port}/metrics")
        count = len(node.pids())
        where = "" if node.cluster is None else f" in cluster {node.cluster.cluster!r} as {node.node_id}"
        out.print(f"[bold green]airssys[/bold green] node {node.name!r}{where} running tree {tree.id!r} "
                  f"({count} process{'es' if count != 1 else ''}); control socket {socket}")
        out.print("Ctrl-C stops the tree in reverse order.")
        task_status.started(node)
        gave_up = False
        async with trio.open_nursery() as nursery:
            async def tree_ended() -> None:
                nonlocal gave_up
                await root.wait()
                gave_up = True
                nursery.cancel_scope.cancel()

            nursery.start_soon(tree_ended)
            await stop.wait()
            nursery.cancel_scope.cancel()
        if gave_up:
            why = [f"{e.data.get('supervisor')} gave up after child {e.data.get('child')!r} exited with {e.reason}"
                   for e in give_ups.drain()]
            raise TreeGaveUp("the tree stopped: " + ("; ".join(why) or "the root supervisor exited"))
        with trio.CancelScope(shield=True):
            await root.stop()  # children stop in reverse start order, as OTP does


class _GuestLogRate(logging.Filter):
    """At most ``per_second`` guest log records a second reach stderr (a guest that logs in
    a loop must not make the node wait on a slow terminal or pipe); the rest are counted
    and the count is reported with the next record let through. Every line is still an
    event (``airssys logs``)."""

    def __init__(self, per_second: int = 100) -> None:
        super().__init__()
        self.per_second = per_second
        self.second = 0
        self.count = 0
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("airssys_actors.guest"):
            return True
        second = int(record.created)
        if second != self.second:
            self.second, self.count = second, 0
        self.count += 1
        if self.count > self.per_second:
            self.suppressed += 1
            return False
        if self.suppressed:
            record.msg = f"{record.msg} (and {self.suppressed} guest log lines not shown)"
            self.suppressed = 0
        return True


def _log_escaped() -> None:
    """Log records (guest log lines among them) reach stderr with control characters
    escaped and guest lines rate-limited; as Python's default, only warnings and errors
    are shown."""
    handler = logging.StreamHandler()
    handler.setFormatter(render.EscapingFormatter("%(name)s: %(message)s"))
    handler.addFilter(_GuestLogRate())
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(handler)
        root.setLevel(logging.WARNING)


def run_tree(args: argparse.Namespace) -> int:
    _log_escaped()
    if getattr(args, "track_memory", False):
        # Before the tree file is loaded: the engine is created with the first component.
        track_memory(True)
    trio.run(serve_tree, args)
    return 0
