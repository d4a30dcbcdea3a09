"""``airssys``: the command line. Every command has ``--json``; errors are one line and a
non-zero exit (a traceback only with ``--debug``)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import trio

from . import render
from .control import ControlError, default_socket, request
from .clusterflags import add_cluster_flags
from .run import add_client_limit_flags


class UsageError(Exception):
    pass


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"not valid JSON: {text!r} ({exc.msg})") from None


# Flag types: argparse reports what they raise as "argument --flag: <message>" and exits
# with code 2, so each message says what the flag takes. float() alone would let "nan"
# and "inf" through (every comparison with NaN is False), and int(float("inf")) raises
# OverflowError, which argparse does not catch.

def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _integer(text: str, minimum: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
    return value


def _count(text: str) -> int:
    return _integer(text, 1)


def _history(text: str) -> int:
    return _integer(text, 0)


def _port(text: str) -> int:
    value = _integer(text, 0)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, got {text}")
    return value


def _host_port(text: str) -> str:
    """``HOST:PORT`` with a port from 0 to 65535, checked before the node starts."""
    host, _, port = text.rpartition(":")
    if not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"must be HOST:PORT with a port from 0 to 65535, got {text!r}")
    return text


def _node_name(text: str) -> str:
    if not text or any(c in text for c in "<>. \t\n"):
        raise argparse.ArgumentTypeError(f"a node name is non-empty, without spaces, dots or angle brackets: {text!r}")
    return text


def _common(suppress: bool) -> argparse.ArgumentParser:
    # The same options work before and after the command; after it, only when given, so a
    # subcommand does not reset what was set before it.
    default = argparse.SUPPRESS if suppress else None
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=default or False, help="print JSON instead of tables")
    common.add_argument("--debug", action="store_true", default=default or False, help="show tracebacks")
    common.add_argument("--socket", type=Path, default=default,
                        help="control socket (default: $AIRSSYS_SOCKET, $XDG_RUNTIME_DIR/airssys/control.sock "
                             "or ~/.airssys/control.sock)")
    return common


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import version

    common = _common(suppress=True)
    parser = argparse.ArgumentParser(prog="airssys", description="Run and operate airssys-actors nodes.",
                                     parents=[_common(suppress=False)])
    parser.add_argument("--version", action="version", version=f"airssys {version('airssys-actors')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", parents=[common], help="start a node with the tree in a Python file")
    run.add_argument("tree", help="a Python file defining `tree = Supervisor(...)`")
    run.add_argument("--node-name", default="local", type=_node_name, help="the node part of every pid")
    node = sub.add_parser("node", parents=[common], help="start a cluster node, with a tree or none")
    node.add_argument("tree", nargs="?", default=None, help="a Python file defining `tree = Supervisor(...)`")
    node.add_argument("--name", "--node-name", dest="node_name", required=True, type=_node_name,
                      help="the node's name in its cluster (letters, digits, '_' and '-')")
    for serving in (run, node):
        serving.add_argument("--metrics", metavar="HOST:PORT", default=None, type=_host_port,
                             help="serve Prometheus metrics over HTTP (e.g. 127.0.0.1:9464)")
        serving.add_argument("--track-memory", action="store_true",
                             help="report each WASM process's linear memory size (in ps and metrics); "
                                  "makes spawns slower and costs more memory (see docs/cli.md)")
        add_client_limit_flags(serving)
        add_cluster_flags(serving)

    sub.add_parser("tree", parents=[common], help="the live supervision tree")
    sub.add_parser("ps", parents=[common], help="every process with its version, mailbox and counters")
    sub.add_parser("stats", parents=[common], help="node counters")
    sub.add_parser("nodes", parents=[common], help="the nodes of this node's cluster: up or down, channel counters")

    send = sub.add_parser("send", parents=[common], help="send a message (JSON) to a name or pid")
    send.add_argument("to")
    send.add_argument("message", type=_json_arg)

    call = sub.add_parser("call", parents=[common], help="call a name or pid with a message (JSON)")
    call.add_argument("to")
    call.add_argument("message", type=_json_arg)
    call.add_argument("--timeout", type=_positive, default=5.0, help="seconds to wait for the reply")

    deploy = sub.add_parser("deploy", parents=[common], help="hot-deploy a new component version")
    deploy.add_argument("target", help="a child id, or a component name (every process of it)")
    deploy.add_argument("file", help="the new .wat or .wasm")
    deploy.add_argument("--version", default=None, help="version label (default: content hash)")
    mode = deploy.add_mutually_exclusive_group()
    mode.add_argument("--rolling", action="store_true", help="one process at a time, stop at the first failure")
    mode.add_argument("--canary", type=_count, default=0, metavar="N", help="change N first and probe them")
    deploy.add_argument("--probe", type=_json_arg, default=None, help="message (JSON) canaries must answer")

    inject = sub.add_parser("inject", parents=[common], help="inject a fault into a process")
    inject.add_argument("target", help="a registered name or pid")
    inject.add_argument("fault", choices=["kill", "trap", "fuel", "deadline", "memory", "init", "delay", "drop"])
    inject.add_argument("--seconds", type=_non_negative, default=0.05, help="delay for the delay fault")
    inject.add_argument("--count", type=_count, default=1, help="messages affected by delay/drop")

    logs = sub.add_parser("logs", parents=[common], help="the event stream")
    logs.add_argument("--follow", "-f", action="store_true", help="keep streaming new events")
    logs.add_argument("--history", type=_history, default=50, help="recent events to show first")

    sub.add_parser("demo", parents=[common], help="a guided tour: tree, traffic, faults, hot upgrade")

    bench = sub.add_parser("bench", parents=[common], help="run a benchmark")
    bench.add_argument("name", choices=["spawn", "throughput", "latency", "restart", "upgrade", "chaos", "peers",
                                        "isolation", "cluster", "all"])
    bench.add_argument("--size", choices=["smoke", "full"], default="full")
    bench.add_argument("--out", type=Path, default=None, help="JSON report path")

    cluster = sub.add_parser("cluster", parents=[common], help="a local NATS server for a cluster of nodes")
    actions = cluster.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser("up", parents=[common], help="run nats-server with JetStream on 127.0.0.1 until Ctrl-C")
    up.add_argument("--port", type=_port, default=4222, help="TCP port on 127.0.0.1 (default 4222; 0 picks a free one)")
    up.add_argument("--store", type=Path, default=Path("build/nats"), help="JetStream store directory (default build/nats)")
    return parser


def _ask(socket: Path, command: str, **args: Any) -> Any:
    return trio.run(_one, socket, command, args)


async def _one(socket: Path, command: str, args: dict[str, Any]) -> Any:
    async for answer in request(socket, command, args):
        if not answer.get("ok"):
            raise ControlError(answer.get("error", "the node refused"))
        return answer["result"]
    raise ControlError("the node closed the connection without answering")


def _print(args: argparse.Namespace, value: Any, human: Any = None) -> None:
    # JSON is printed with ensure_ascii: every control character a guest put in a value
    # is a \u escape. Human text that is a plain str is shown as text, never as markup.
    if args.json or human is None:
        print(json.dumps(value, indent=None if args.json else 2))
    else:
        render.console().print(render.plain(human) if isinstance(human, str) else human)


def _client(args: argparse.Namespace) -> int:
    socket = args.socket or default_socket()
    command = args.command
    if command == "tree":
        tree = _ask(socket, "tree")
        _print(args, tree, render.tree_view(tree))
    elif command == "ps":
        rows = _ask(socket, "ps")
        shown = [{**row, "memory": render.size(row.get("memory_bytes"))} for row in rows]
        untracked = all(row.get("memory_bytes") is None for row in rows)
        caption = "memory is measured when the node runs with `airssys run --track-memory`" if untracked else None
        _print(args, rows, render.table(shown, ["pid", "name", "component", "version", "mailbox", "restarts",
                                                "messages_in", "messages_out", "fuel_used", "memory",
                                                "handle_ms"], caption=caption))
    elif command == "stats":
        stats = _ask(socket, "stats")
        _print(args, stats, render.table([stats], list(stats)))
    elif command == "nodes":
        nodes = _ask(socket, "nodes")
        _print(args, nodes, render.table(nodes, ["name", "node", "up", "sent", "unacked", "held", "downs"],
                                         caption=None if nodes else "this node is not in a cluster"))
    elif command == "send":
        _print(args, _ask(socket, "send", to=args.to, message=args.message), "sent")
    elif command == "call":
        reply = _ask(socket, "call", to=args.to, message=args.message, timeout=args.timeout)
        print(json.dumps(reply))
    elif command == "deploy":
        if args.probe is not None and not args.canary:
            raise UsageError("--probe is the message canaries must answer: use it with --canary N")
        strategy = "rolling" if args.rolling else "atomic"
        report = _ask(socket, "deploy", target=args.target, path=str(Path(args.file).resolve()),
                      version=args.version, strategy=strategy, canary=args.canary, probe=args.probe)
        _print(args, report, render.deploy_report(report))
    elif command == "inject":
        result = _ask(socket, "inject", target=args.target, fault=args.fault, seconds=args.seconds, count=args.count)
        _print(args, result, result)
    elif command == "logs":
        trio.run(_logs, args, socket)
    return 0


async def _logs(args: argparse.Namespace, socket: Path) -> None:
    async for event in request(socket, "logs", {"follow": args.follow, "history": args.history}):
        if isinstance(event, dict) and event.get("ok") is False:
            raise ControlError(event.get("error", "refused"))
        print(json.dumps(event) if args.json else render.event_line(event), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"airssys: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command in ("run", "node"):
            from .clusterflags import cluster_config
            from .run import run_tree

            try:
                args.cluster_config = cluster_config(args)
            except argparse.ArgumentTypeError as exc:
                raise UsageError(str(exc)) from None

            return run_tree(args)
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(args)
        if args.command == "cluster":
            from .cluster import cluster_up

            return cluster_up(args)
        if args.command == "bench":
            from .bench import run_bench

            return run_bench(args)
        return _client(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if getattr(args, "debug", False):
            raise
        cause = _root_cause(exc)
        text = str(cause).strip().splitlines()
        message = text[0] if text else type(cause).__name__
        if getattr(args, "json", False):
            print(json.dumps({"error": message, "type": type(cause).__name__}), file=sys.stderr)
        else:
            print(f"airssys: {render.escape(message)}", file=sys.stderr)
        return 2 if isinstance(cause, UsageError) else 1


def _root_cause(exc: BaseException) -> BaseException:
    """The error a user should see: the first real one inside trio's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
