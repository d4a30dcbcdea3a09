"""``airssys run TREE.py``: a node with that tree, served on the control socket until
Ctrl-C, which stops the tree in reverse start order."""

from __future__ import annotations

import argparse
import signal
from typing import Any

import trio

import supervisors
from airssys_actors import Node

from . import render
from .commands import HANDLERS
from .control import ControlServer, default_socket
from .treefile import load_tree


async def serve_tree(args: argparse.Namespace, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    tree = load_tree(args.tree)
    out = render.console(stderr=True)
    # Catch Ctrl-C / SIGTERM from the very start, so that a signal during start-up also
    # stops the tree cleanly instead of interrupting it mid-way.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as outer:
            async def on_signal() -> None:
                async for _ in signals:
                    out.print("stopping...")
                    outer.cancel_scope.cancel()
                    return

            outer.start_soon(on_signal)
            await _serve(args, tree, out, task_status)
            outer.cancel_scope.cancel()
    out.print("stopped.")


async def _serve(args: argparse.Namespace, tree: Any, out: Any, task_status: Any) -> None:
    socket = args.socket or default_socket()
    async with Node(args.node_name) as node:
        root = await supervisors.start(node, tree)
        server = ControlServer(node, root, socket, HANDLERS)
        await node._nursery.start(server.serve)  # type: ignore[union-attr]
        if args.metrics:
            from .metrics import serve_metrics

            await node._nursery.start(serve_metrics, node, root, args.metrics)  # type: ignore[union-attr]
        out.print(f"[bold green]airssys[/bold green] node {node.name!r} running tree {tree.id!r} "
                  f"({len(node.pids())} processes); control socket {socket}")
        if args.metrics:
            out.print(f"metrics on http://{args.metrics}/metrics")
        out.print("Ctrl-C stops the tree in reverse order.")
        task_status.started(node)
        reason = await root.wait()
        out.print(f"[red]the tree stopped[/red]: root supervisor exited with {reason}")


def run_tree(args: argparse.Namespace) -> int:
    trio.run(serve_tree, args)
    return 0
