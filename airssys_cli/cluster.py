"""``airssys cluster up``: a local nats-server with JetStream for a cluster of nodes on
this machine, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import json
import signal
from pathlib import Path

from .natsserver import NatsServer, NatsServerError


def cluster_up(args: argparse.Namespace) -> int:
    server = NatsServer()
    # Blocked only after the server has started: a child inherits the signal mask.
    server.start(Path(args.store), port=args.port)
    stopping = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
    try:
        if args.json:
            print(json.dumps({"url": server.url, "pid": server.pid, "store": str(Path(args.store).resolve()),
                              "version": ".".join(map(str, server.version))}), flush=True)
        else:
            print(f"nats-server {'.'.join(map(str, server.version))} with JetStream at {server.url} "
                  f"(pid {server.pid}, store {args.store})", flush=True)
            print(f"start nodes with: airssys node --name a --cluster {server.url} [TREE.py]", flush=True)
            print("Ctrl-C stops the server", flush=True)
        while True:
            if signal.sigtimedwait(stopping, 0.5) is not None:
                break
            if not server.running:
                raise NatsServerError(f"nats-server (pid {server.pid}) exited with code "
                                      f"{server.process.returncode}: {server._tail()}")
        return 0
    finally:
        server.stop()
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
