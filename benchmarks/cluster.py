"""Two airssys nodes as one system over NATS: a remote call and remote send throughput,
each next to the raw nats-py floor measured in the same run.

    python -m benchmarks.cluster [--size smoke|full] [--json FILE] [--cpu none|auto|N] [--window N]

The benchmark starts its own ``nats-server`` (the binary beside the interpreter, else
the one on ``PATH``) on a free 127.0.0.1 port with JetStream and a temporary store, and
stops it by pid at the end. Everything is measured between **two separate OS
processes** (children of this one, started and always stopped by pid, every wait
bounded), in rounds; each round measures the floors and then ours:

* **floor A, raw nats-py request/reply**: process R subscribes to a subject and responds
  with the request's data; process Q does ``calls`` sequential ``nc.request`` of 64 B.
  p50/p99 of the round trip. Plain asyncio nats-py, nothing of ours.
* **floor B, raw nats-py publish/subscribe**: process P publishes ``messages`` messages of
  100 B (an 8-byte sequence number and padding) and flushes; process S counts them,
  checking the sequence. Messages per second at the receiver, first to last received.
* **ours, remote call**: process B runs ``Node(name="b", cluster=URL)`` with an echo
  ``Actor`` (a call is answered with its message) and prints the echo's pid as a JSON
  line; process A runs ``Node(name="a", cluster=URL)`` and does ``calls`` sequential
  ``await node.call(pid, bytes(62))`` (64 B of msgpack). p50/p99.
* **ours, remote send**: A does ``messages`` ``await node.send(pid, [seq, pad])`` (~100 B
  of msgpack) to a counter ``Actor`` on B, which checks the sequence: a sequence number
  never seen is lost, one seen twice is duplicated. Messages per second at the
  receiver, first to last received.

Targets (reported, never asserted): remote call p50 <= 1.5x floor A's p50; remote send
>= 0.5x floor B's throughput; lost == 0 and duplicated == 0. Latency percentiles pool
every round's samples; throughputs are the median of the rounds.

``--window N`` gives both nodes ``ClusterConfig(servers=URL, window=N)`` instead of the
URL alone (the credit window: messages in flight from one node to another before a
sender waits), to see how much of the send figure the window decides.

If ``Node`` does not take ``cluster=`` yet (``TypeError``), the floors are still
measured and our rows are ``n/a`` with the reason.

Pinning: ``--cpu none`` (the default) leaves every process free, because each
measurement needs three busy processes (the two ends and the server) on this 2-core
machine; ``--cpu auto|N`` pins this process before anything starts, so the server and
every child inherit the same single CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from . import _report as R

ROOT = Path(__file__).resolve().parent.parent
MODULE = "benchmarks.cluster"

SIZES: dict[str, dict[str, int]] = {
    # calls (+ warmup) per round for the latencies, messages per round for throughput.
    "smoke": {"rounds": 1, "calls": 300, "warmup": 50, "messages": 5_000},
    "full": {"rounds": 5, "calls": 4_000, "warmup": 400, "messages": 100_000},
}
TARGET_CALL_RATIO = 1.5
TARGET_SEND_RATIO = 0.5
CALL_BYTES = 64  # floor A's request; ours: bytes(62) is 64 B of msgpack (bin8 header + 62)
TP_BYTES = 100  # floor B's message; ours: [seq, bytes(92)] is 96..100 B of msgpack
ECHO_SUBJECT = "bench.echo"
TP_SUBJECT = "bench.tp"
#: A receiver that has seen no message for this long after the first one reports
#: what it has (the lost tail, if any, is counted as lost).
IDLE_SECONDS = 3.0
#: The longest a receiver waits for the first message (the sender first does its calls).
FIRST_MESSAGE_SECONDS = 120.0
#: Bounds of the parent's waits on its children.
START_SECONDS = 60.0
STOP_SECONDS = 5.0
#: How long node a may take to see node b (and be seen) before its first call is answered.
CONNECT_SECONDS = 15.0
MAX_LINE = 16 * 1024 * 1024


# -- sequence accounting (used by both receivers) ------------------------------------


class Usage:
    """CPU use of this process since it was made: ``cpu_share``, its CPU time (every
    thread) over the wall time (near 1.0 or above: this end is the bottleneck), and
    ``cpu_wait``, the share of the wall time its main thread was runnable but waiting for
    a CPU (other work on the machine; a figure with much of it should be measured again)."""

    def __init__(self) -> None:
        self.wall, self.cpu, self.wait = time.perf_counter(), time.process_time(), R.sched_wait_seconds()

    def since(self) -> dict[str, float]:
        wall = time.perf_counter() - self.wall
        wait = R.sched_wait_seconds()
        return {"cpu_share": (time.process_time() - self.cpu) / wall if wall > 0 else math.nan,
                "cpu_wait": (wait - self.wait) / wall if wall > 0 and wait is not None and self.wait is not None
                else math.nan}


class Tally:
    """Counts ``expected`` sequence numbers arriving: unique, duplicated, out of order,
    and the time of the first and last one."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen = bytearray(expected)
        self.received = 0
        self.unique = 0
        self.duplicated = 0
        self.out_of_order = 0
        self.invalid = 0
        self.next_seq = 0
        self.first: float | None = None
        self.last: float | None = None
        # CPU use from the first message to the last (taken when the set is complete,
        # so that no message pays a system call for it).
        self._usage_first: Usage | None = None
        self.usage: dict[str, float] | None = None

    def add(self, seq: object) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
            self._usage_first = Usage()
        self.last = now
        self.received += 1
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < self.expected:
            self.invalid += 1
            return
        if self.seen[seq]:
            self.duplicated += 1
            return
        self.seen[seq] = 1
        self.unique += 1
        if self.unique == self.expected and self._usage_first is not None:
            self.usage = self._usage_first.since()
        if seq < self.next_seq:
            self.out_of_order += 1  # arrived after a later one
        else:
            self.next_seq = seq + 1

    @property
    def complete(self) -> bool:
        return self.unique == self.expected

    def idle_for(self) -> float:
        return 0.0 if self.last is None else time.perf_counter() - self.last

    def result(self) -> dict[str, Any]:
        span = (self.last - self.first) if self.first is not None and self.last is not None else 0.0
        return {
            "expected": self.expected, "received": self.received, "unique": self.unique,
            "lost": self.expected - self.unique, "duplicated": self.duplicated,
            "out_of_order": self.out_of_order, "invalid": self.invalid, "seconds": span,
            # First to last received: received - 1 intervals.
            "msgs_per_s": (self.received - 1) / span if span > 0 else math.nan,
            **(self.usage or {"cpu_share": math.nan, "cpu_wait": math.nan}),
        }


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout: how a child tells the parent what it did."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


# -- children: the raw nats-py floors (plain asyncio) ---------------------------------


async def _asyncio_stdin_eof() -> None:
    """Returns when the parent closes our stdin (its way of saying: stop now)."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.buffer.read)


async def _asyncio_receive(tally: Tally, done: asyncio.Event) -> None:
    started = time.perf_counter()
    while not tally.complete:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.1)
        if tally.last is None and time.perf_counter() - started > FIRST_MESSAGE_SECONDS:
            break
        if tally.last is not None and tally.idle_for() > IDLE_SECONDS:
            break


async def floor_server(url: str, messages: int) -> None:
    """R and S: answers requests on ECHO_SUBJECT, counts TP_SUBJECT."""
    import nats

    nc = await nats.connect(url, allow_reconnect=False)
    tally = Tally(messages)
    done = asyncio.Event()

    async def echo(msg: Any) -> None:
        await msg.respond(msg.data)

    async def count(msg: Any) -> None:
        tally.add(int.from_bytes(msg.data[:8], "big"))
        if tally.complete:
            done.set()

    await nc.subscribe(ECHO_SUBJECT, cb=echo)
    # The pending limits hold a whole round: a drop here would be nats-py's, not the wire's.
    await nc.subscribe(TP_SUBJECT, cb=count, pending_msgs_limit=max(messages * 2, 65_536),
                       pending_bytes_limit=max(messages * 4 * TP_BYTES, 64 * 1024 * 1024))
    await nc.flush()
    emit("ready")
    await _asyncio_receive(tally, done)
    emit("received", **tally.result())
    await _asyncio_stdin_eof()
    await nc.close()


async def floor_client(url: str, calls: int, warmup: int, messages: int) -> None:
    """Q and P: sequential requests, then a burst of publishes."""
    import nats

    nc = await nats.connect(url, allow_reconnect=False)
    payload = bytes(CALL_BYTES)
    clock = time.perf_counter
    for _ in range(warmup):
        await nc.request(ECHO_SUBJECT, payload, timeout=10)
    samples = []
    for _ in range(calls):
        t0 = clock()
        reply = await nc.request(ECHO_SUBJECT, payload, timeout=10)
        samples.append(clock() - t0)
        if reply.data != payload:
            raise AssertionError("floor A: the reply is not the request")
    emit("calls", samples=samples)
    pad = bytes(TP_BYTES - 8)
    t0, usage = clock(), Usage()
    for seq in range(messages):
        await nc.publish(TP_SUBJECT, seq.to_bytes(8, "big") + pad)
    await nc.flush(timeout=60)
    seconds = clock() - t0
    emit("sent", messages=messages, seconds=seconds, msgs_per_s=messages / seconds, **usage.since())
    await _asyncio_stdin_eof()
    await nc.close()


# -- children: ours (two airssys nodes) -----------------------------------------------


async def _trio_stdin_eof() -> None:
    import trio

    stream = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    async with stream:
        while await stream.receive_some(65536):
            pass


def _cluster_node(name: str, url: str, window: int | None) -> Any:
    """``Node(name=..., cluster=url)`` (with a ``ClusterConfig`` when ``window`` is
    given), or None after telling the parent why not."""
    import airssys_actors
    from airssys_actors import Node

    try:
        cluster: Any = url
        if window is not None:
            config = getattr(airssys_actors, "ClusterConfig", None)
            if config is None:
                from airssys_actors._clusterconfig import ClusterConfig as config
            cluster = config(servers=url, window=window)
        return Node(name=name, cluster=cluster)
    except TypeError as exc:
        emit("unavailable", reason=f"Node(cluster=...) raised TypeError: {exc}")
        return None


async def node_b(url: str, messages: int, window: int | None) -> None:
    """B: an echo and a counter, their pids on stdout; reports what the counter saw."""
    import trio

    from airssys_actors import Actor, Kind

    tally = Tally(messages)

    class Echo(Actor):
        async def handle(self, ctx: Any, msg: Any) -> Any:
            return msg.value if msg.kind == Kind.CALL else None

    class Counter(Actor):
        async def handle(self, ctx: Any, msg: Any) -> Any:
            value = msg.value
            if msg.kind == Kind.CALL:
                return tally.result()
            tally.add(value[0] if isinstance(value, (list, tuple)) and value else None)
            return None

    node = _cluster_node("b", url, window)
    if node is None:
        return
    async with node:
        echo = await node.spawn(Echo)
        counter = await node.spawn(Counter)
        emit("ready", echo=str(echo), counter=str(counter))
        started = time.perf_counter()
        while not tally.complete:
            await trio.sleep(0.05)
            if tally.last is None and time.perf_counter() - started > FIRST_MESSAGE_SECONDS:
                break
            if tally.last is not None and tally.idle_for() > IDLE_SECONDS:
                break
        emit("received", **tally.result())
        await _trio_stdin_eof()


async def node_a(url: str, echo_text: str, counter_text: str, calls: int, warmup: int, messages: int,
                 window: int | None) -> None:
    """A: sequential calls to B's echo, then a burst of sends to B's counter."""
    from airssys_actors import Pid

    echo, counter = Pid.parse(echo_text), Pid.parse(counter_text)
    if echo is None or counter is None:
        raise ValueError(f"B's pids do not parse: {echo_text!r}, {counter_text!r}")
    node = _cluster_node("a", url, window)
    if node is None:
        return
    clock = time.perf_counter
    payload = bytes(CALL_BYTES - 2)
    async with node:
        connect_seconds = await _until_answered(node, echo, payload)
        emit("connected", seconds=connect_seconds)
        for _ in range(warmup):
            await node.call(echo, payload, timeout=10)
        samples = []
        for _ in range(calls):
            t0 = clock()
            reply = await node.call(echo, payload, timeout=10)
            samples.append(clock() - t0)
            if reply != payload:
                raise AssertionError("remote call: the reply is not the request")
        emit("calls", samples=samples)
        pad = bytes(TP_BYTES - 8)
        t0, usage = clock(), Usage()
        for seq in range(messages):
            await node.send(counter, [seq, pad])
        seconds = clock() - t0
        emit("sent", messages=messages, seconds=seconds, msgs_per_s=messages / seconds, **usage.since())
        # Stay up (and connected) until B has counted: the parent closes stdin then.
        await _trio_stdin_eof()


async def _until_answered(node: Any, pid: Any, payload: bytes) -> float:
    """Seconds until the first call to ``pid`` is answered. A node learns of a peer from
    its heartbeat, so right after start the peer may be unknown yet (NoConnection, a
    NoSuchProcess) or not know us (its reply cannot leave: a timeout)."""
    import trio

    from airssys_actors import CallTimeout, NoSuchProcess

    started = time.perf_counter()
    while True:
        try:
            await node.call(pid, payload, timeout=1.0)
            return time.perf_counter() - started
        except (NoSuchProcess, CallTimeout):
            if time.perf_counter() - started > CONNECT_SECONDS:
                raise
            await trio.sleep(0.02)


def run_child(args: argparse.Namespace) -> int:
    try:
        if args.child == "floor-server":
            asyncio.run(floor_server(args.url, args.messages))
        elif args.child == "floor-client":
            asyncio.run(floor_client(args.url, args.calls, args.warmup, args.messages))
        else:
            import trio

            if args.child == "node-b":
                trio.run(node_b, args.url, args.messages, args.window)
            else:
                trio.run(node_a, args.url, args.echo, args.counter, args.calls, args.warmup, args.messages,
                         args.window)
    except BaseException as exc:  # the parent reads why from stdout, the traceback from stderr
        traceback.print_exc()
        sys.stderr.flush()
        emit("error", error="; ".join(f"{type(e).__name__}: {e}" for e in _leaves(exc))[:2000])
        return 1
    return 0


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or ``exc`` itself."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


# -- the parent: server, children, rounds -----------------------------------------------


class ChildFailed(RuntimeError):
    """A child exited, reported an error or did not answer in time."""


def _stderr_tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found beside the interpreter or on PATH "
                           "(pip install 'airssys-actors[cluster]')")
    return found


def _create(path: Path) -> int:
    """A new file for a child's output, as a descriptor the child inherits (the child
    keeps it; ours is closed once the child has started)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def nats_server(workdir: Path) -> AsyncIterator[dict[str, Any]]:
    """A nats-server on a free 127.0.0.1 port, JetStream stored under ``workdir``;
    stopped by pid on the way out, whatever happened."""
    import trio

    binary = nats_server_binary()
    with trio.fail_after(10):
        version = (await trio.run_process([binary, "--version"], capture_stdout=True)).stdout.decode().strip()
    port = free_port()
    store = workdir / "jetstream"
    log = workdir / "nats-server.log"
    cmd = [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)]
    log_fd = _create(log)
    try:
        proc = await trio.lowlevel.open_process(cmd, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd)
    finally:
        os.close(log_fd)
    try:
        with trio.move_on_after(10) as scope:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"nats-server exited with {proc.returncode}: {_stderr_tail(log)}")
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", port)
                except OSError:
                    await trio.sleep(0.02)
                    continue
                await stream.aclose()
                break
        if scope.cancelled_caught:
            raise RuntimeError(f"nats-server did not listen on 127.0.0.1:{port} within 10 s: {_stderr_tail(log)}")
        yield {"url": f"nats://127.0.0.1:{port}", "pid": proc.pid, "version": version, "command": cmd}
    finally:
        with trio.CancelScope(shield=True):
            await _stop_pid(proc, first=signal.SIGTERM)


async def _stop_pid(proc: Any, first: signal.Signals | None) -> None:
    """Stop ``proc`` by its pid: ``first`` (None: it was asked to stop already), then
    SIGKILL if it is still there after STOP_SECONDS. Bounded."""
    import trio

    if proc.poll() is None and first is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, first)
    with trio.move_on_after(STOP_SECONDS):
        await proc.wait()
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        with trio.move_on_after(STOP_SECONDS):
            await proc.wait()


class Child:
    """One child process of this benchmark: JSON lines out, stdin closed to stop it."""

    def __init__(self, role: str, proc: Any, stderr: Path) -> None:
        self.role = role
        self.proc = proc
        self.stderr = stderr
        self._buffer = b""
        self.exit_status: int | None = None

    async def expect(self, *events: str, timeout: float) -> dict[str, Any]:
        """The next line whose event is one of ``events`` (or ``unavailable``)."""
        import trio

        with trio.move_on_after(timeout):
            while True:
                line = await self._line()
                if line is None:
                    raise ChildFailed(f"{self.role} exited (status {self.proc.poll()}) before {'/'.join(events)}:\n"
                                      f"{_stderr_tail(self.stderr)}")
                try:
                    got = json.loads(line)
                except ValueError:
                    continue  # not one of ours (a library printing to stdout)
                if not isinstance(got, dict):
                    continue
                if got.get("event") == "error":
                    raise ChildFailed(f"{self.role}: {got.get('error')}\n{_stderr_tail(self.stderr)}")
                if got.get("event") in (*events, "unavailable"):
                    return got
        raise ChildFailed(f"{self.role} sent no {'/'.join(events)} within {timeout:g} s:\n{_stderr_tail(self.stderr)}")

    async def _line(self) -> bytes | None:
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE:
                raise ChildFailed(f"{self.role}: a line longer than {MAX_LINE} bytes")
            chunk = await self.proc.stdout.receive_some(1 << 20)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    async def stop(self) -> None:
        """Close stdin (the child's cue to leave), then SIGTERM and SIGKILL by pid."""
        import trio

        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await self.proc.stdin.aclose()
        with trio.move_on_after(STOP_SECONDS):
            await self.proc.wait()
        await _stop_pid(self.proc, first=signal.SIGTERM)
        self.exit_status = self.proc.poll()


@contextlib.asynccontextmanager
async def child(role: str, workdir: Path, *args: str) -> AsyncIterator[Child]:
    """Start ``python -m benchmarks.cluster --child ROLE ...``; stopped by pid on exit."""
    import trio

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("PYTHONUNBUFFERED", "1")
    stderr = workdir / f"{role}-{time.monotonic_ns()}.stderr"
    cmd = [sys.executable, "-m", MODULE, "--child", role, *args]
    err_fd = _create(stderr)
    try:
        proc = await trio.lowlevel.open_process(cmd, cwd=str(ROOT), env=env, stdin=subprocess.PIPE,
                                                stdout=subprocess.PIPE, stderr=err_fd)
    finally:
        os.close(err_fd)
    c = Child(role, proc, stderr)
    try:
        yield c
    finally:
        with trio.CancelScope(shield=True):
            await c.stop()


def _receive_timeout(size: dict[str, int]) -> float:
    # Generous: the sender may be slow, but the receiver itself gives up when idle.
    return FIRST_MESSAGE_SECONDS + IDLE_SECONDS + 10


async def measure_floors(url: str, workdir: Path, size: dict[str, int]) -> dict[str, Any]:
    common = ["--url", url, "--messages", str(size["messages"])]
    async with child("floor-server", workdir, *common) as server:
        await server.expect("ready", timeout=START_SECONDS)
        async with child("floor-client", workdir, *common, "--calls", str(size["calls"]),
                         "--warmup", str(size["warmup"])) as client:
            calls = await client.expect("calls", timeout=START_SECONDS + 60)
            sent = await client.expect("sent", timeout=_receive_timeout(size))
            received = await server.expect("received", timeout=_receive_timeout(size))
    return {"call_samples": calls["samples"], "sent": _without_event(sent), "received": _without_event(received),
            "exit_status": {"floor-server": server.exit_status, "floor-client": client.exit_status},
            "pids": {"floor-server": server.proc.pid, "floor-client": client.proc.pid}}


async def measure_ours(url: str, workdir: Path, size: dict[str, int], window: int | None) -> dict[str, Any]:
    common = ["--url", url, "--messages", str(size["messages"])]
    if window is not None:
        common += ["--window", str(window)]
    async with child("node-b", workdir, *common) as b:
        ready = await b.expect("ready", timeout=START_SECONDS)
        if ready["event"] == "unavailable":
            return {"unavailable": ready["reason"]}
        async with child("node-a", workdir, *common, "--calls", str(size["calls"]), "--warmup", str(size["warmup"]),
                         "--echo", ready["echo"], "--counter", ready["counter"]) as a:
            connected = await a.expect("connected", timeout=START_SECONDS + CONNECT_SECONDS)
            if connected["event"] == "unavailable":
                return {"unavailable": connected["reason"]}
            calls = await a.expect("calls", timeout=START_SECONDS + 120)
            sent = await a.expect("sent", timeout=_receive_timeout(size) + 120)
            received = await b.expect("received", timeout=_receive_timeout(size))
    # A node that fails on its way out has still measured: its exit status is kept.
    return {"echo": ready["echo"], "counter": ready["counter"], "connect_seconds": connected["seconds"],
            "call_samples": calls["samples"], "sent": _without_event(sent), "received": _without_event(received),
            "exit_status": {"node-b": b.exit_status, "node-a": a.exit_status},
            "pids": {"node-b": b.proc.pid, "node-a": a.proc.pid}}


def _without_event(line: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in line.items() if k != "event"}


async def run_rounds(size: dict[str, int], progress: R.Progress, window: int | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="airssys-bench-cluster-") as tmp:
        workdir = Path(tmp)
        async with nats_server(workdir) as server:
            rounds: list[dict[str, Any]] = []
            unavailable: str | None = None
            error: str | None = None
            for i in range(size["rounds"]):
                progress.phase(f"round {i + 1}/{size['rounds']}: raw nats-py floors", 1)
                floors = await measure_floors(server["url"], workdir, size)
                ours: dict[str, Any] | None = None
                if unavailable is None and error is None:
                    progress.phase(f"round {i + 1}/{size['rounds']}: two airssys nodes", 1)
                    try:
                        ours = await measure_ours(server["url"], workdir, size, window)
                    except ChildFailed as exc:
                        error = str(exc)
                        print(f"ours failed: {error}", file=sys.stderr)
                    else:
                        unavailable = ours.get("unavailable")
                rounds.append({"floors": floors, "ours": ours})
    return {"server": server, "rounds": rounds, "unavailable": unavailable, "error": error}


# -- the summary and the report -----------------------------------------------------------


def _median(values: list[float]) -> float:
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return statistics.median(values) if values else math.nan


def _usage(side: str, sent: list[dict[str, Any]], received: list[dict[str, Any]]) -> dict[str, float]:
    return {f"{side}_{end}_{key}": _median([x.get(key) for x in lines])
            for end, lines in (("sender", sent), ("receiver", received)) for key in ("cpu_share", "cpu_wait")}


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    rounds = result["rounds"]
    floor_calls = [s for r in rounds for s in r["floors"]["call_samples"]]
    floor_recv = [r["floors"]["received"] for r in rounds]
    summary: dict[str, Any] = {
        "floor_a_call_us": R.latency_stats(floor_calls),
        "floor_b_msgs_per_s": _median([x["msgs_per_s"] for x in floor_recv]),
        "floor_b_publish_msgs_per_s": _median([r["floors"]["sent"]["msgs_per_s"] for r in rounds]),
        "floor_b_lost": sum(x["lost"] for x in floor_recv),
        "floor_b_duplicated": sum(x["duplicated"] for x in floor_recv),
        "floor_b_out_of_order": sum(x["out_of_order"] for x in floor_recv),
        **_usage("floor_b", [r["floors"]["sent"] for r in rounds], floor_recv),
    }
    measured = [r["ours"] for r in rounds if r["ours"] and "call_samples" in r["ours"]]
    if measured:
        ours_recv = [o["received"] for o in measured]
        summary.update({
            "ours_rounds": len(measured),
            "ours_call_us": R.latency_stats([s for o in measured for s in o["call_samples"]]),
            "ours_msgs_per_s": _median([x["msgs_per_s"] for x in ours_recv]),
            "ours_send_msgs_per_s": _median([o["sent"]["msgs_per_s"] for o in measured]),
            "ours_lost": sum(x["lost"] for x in ours_recv),
            "ours_duplicated": sum(x["duplicated"] for x in ours_recv),
            "ours_out_of_order": sum(x["out_of_order"] for x in ours_recv),
            "ours_invalid": sum(x["invalid"] for x in ours_recv),
            **_usage("ours", [o["sent"] for o in measured], ours_recv),
            "ours_connect_seconds": max(o["connect_seconds"] for o in measured),
        })
    return summary


def _row(figure: str, key: str, measured: float | None, floor: float | None, target: str, ok: bool | None,
         measured_text: str, floor_text: str, floor_is: str) -> dict[str, Any]:
    ratio = measured / floor if measured is not None and floor else None
    return {"benchmark": "cluster", "figure": figure, "key": key, "measured": measured, "floor": floor,
            "ratio": ratio, "target": target, "status": "n/a" if ok is None else ("PASS" if ok else "MISS"),
            "measured_text": measured_text, "floor_text": floor_text, "floor_is": floor_is}


def build_targets(summary: dict[str, Any], unavailable: str | None, error: str | None) -> list[dict[str, Any]]:
    fa, fb = summary["floor_a_call_us"], summary["floor_b_msgs_per_s"]
    specs = [
        ("remote call p50", "call_p50", f"<= {TARGET_CALL_RATIO:g}x floor A p50", "floor A p50 (nats-py request)"),
        ("remote call p99", "call_p99", "(informational)", "floor A p99 (nats-py request)"),
        ("remote send throughput", "send_rate", f">= {TARGET_SEND_RATIO:g}x floor B",
         "floor B (nats-py publish -> subscribe, at the receiver)"),
        ("remote send lost", "send_lost", "== 0", "-"),
        ("remote send duplicated", "send_duplicated", "== 0", "-"),
    ]
    if "ours_call_us" not in summary:
        reason = unavailable or error or "not measured"
        status_ok = None if unavailable else False  # an error is a MISS, "not supported yet" is n/a
        return [_row(fig, key, None, None, goal, status_ok, f"n/a: {reason}" if unavailable else f"error: {reason}",
                     "-", floor_is) for fig, key, goal, floor_is in specs]
    oc = summary["ours_call_us"]
    rate = summary["ours_msgs_per_s"]
    lost, dup = summary["ours_lost"], summary["ours_duplicated"]
    rows = [
        _row("remote call p50", "call_p50", oc["p50"], fa["p50"], specs[0][2],
             oc["p50"] / fa["p50"] <= TARGET_CALL_RATIO, R.fmt_us(oc["p50"]), R.fmt_us(fa["p50"]), specs[0][3]),
        _row("remote call p99", "call_p99", oc["p99"], fa["p99"], specs[1][2], None,
             R.fmt_us(oc["p99"]), R.fmt_us(fa["p99"]), specs[1][3]),
        _row("remote send throughput", "send_rate", rate, fb, specs[2][2],
             bool(math.isfinite(rate) and rate / fb >= TARGET_SEND_RATIO), R.fmt_rate(rate), R.fmt_rate(fb),
             specs[2][3]),
        _row("remote send lost", "send_lost", lost, None, "== 0", lost == 0, f"{lost:,}", "-", "-"),
        _row("remote send duplicated", "send_duplicated", dup, None, "== 0", dup == 0, f"{dup:,}", "-", "-"),
    ]
    for r in rows[3:]:
        r["ratio"] = None
    return rows


def print_tables(report: dict[str, Any]) -> None:
    s, size = report["summary"], report["sizes"]
    rows = []
    for t in report["targets"]:
        ratio = f"{t['ratio']:.2f}x" if t["ratio"] is not None else "-"
        rows.append([t["figure"], t["measured_text"], t["floor_text"], ratio, t["target"], t["status"]])
    R.print_table(f"cluster ({report['size']}): two nodes over NATS vs raw nats-py, {size['rounds']} round(s), "
                  f"{size['calls']:,} calls and {size['messages']:,} messages per round",
                  ["figure", "ours", "floor", "ratio", "target", "status"], rows, right=(1, 2, 3))
    fa = s["floor_a_call_us"]
    def cpu(side: str) -> str:
        def share(key: str) -> str:
            v = s[key]
            return "-" if not math.isfinite(v) else f"{v:.0%}"

        return " / ".join(f"{share(f'{side}_{end}_cpu_share')} (wait {share(f'{side}_{end}_cpu_wait')})"
                          for end in ("sender", "receiver"))

    accounting = [
        ["floor A: nats-py request/reply p50 / p99", f"{R.fmt_us(fa['p50'])} / {R.fmt_us(fa['p99'])}",
         "-", "-", "-", "-"],
        ["floor B: nats-py subscriber (publisher)",
         f"{R.fmt_rate(s['floor_b_msgs_per_s'])} ({R.fmt_rate(s['floor_b_publish_msgs_per_s'])})",
         f"{s['floor_b_lost']:,}", f"{s['floor_b_duplicated']:,}", f"{s['floor_b_out_of_order']:,}", cpu("floor_b")],
    ]
    if "ours_call_us" in s:
        oc = s["ours_call_us"]
        accounting += [
            ["ours: remote call p50 / p99", f"{R.fmt_us(oc['p50'])} / {R.fmt_us(oc['p99'])}", "-", "-", "-", "-"],
            ["ours: counter on b (sender on a)",
             f"{R.fmt_rate(s['ours_msgs_per_s'])} ({R.fmt_rate(s['ours_send_msgs_per_s'])})",
             f"{s['ours_lost']:,}", f"{s['ours_duplicated']:,}", f"{s['ours_out_of_order']:,}", cpu("ours")],
        ]
    R.print_table("side by side (throughput at the receiver, the sender's rate in brackets; CPU: the process's "
                  "CPU time over its wall time while sending / receiving; wait: its main thread runnable but "
                  "waiting for a CPU)",
                  ["figure", "measured", "lost", "duplicated", "out of order", "CPU sender / receiver"],
                  accounting, right=(1, 2, 3, 4, 5))


def draw_chart(report: dict[str, Any]) -> Any:
    def draw(plt: Any) -> Any:
        s = report["summary"]
        fig, (left, right) = plt.subplots(1, 2)
        labels = ["p50", "p99"]
        floor = [s["floor_a_call_us"][q] for q in labels]
        ours = [s["ours_call_us"][q] for q in labels] if "ours_call_us" in s else [0, 0]
        xs = range(len(labels))
        left.bar([x - 0.2 for x in xs], floor, 0.4, label="floor A: nats-py request")
        left.bar([x + 0.2 for x in xs], ours, 0.4, label="ours: remote node.call")
        left.set_xticks(list(xs), labels)
        left.set_ylabel("µs")
        left.set_title("round trip between two processes")
        left.legend()
        rates = [s["floor_b_msgs_per_s"], s.get("ours_msgs_per_s", 0) or 0]
        right.bar(["floor B: nats-py pub/sub", "ours: remote node.send"], rates)
        right.set_ylabel("messages/s at the receiver")
        right.set_title("throughput between two processes")
        return fig

    return draw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON (and a chart next to it)")
    parser.add_argument("--cpu", default="none", help="pin everything to one CPU: N, 'auto', or 'none' (default)")
    parser.add_argument("--window", type=int, metavar="N",
                        help="both nodes' credit window (ClusterConfig.window; default: its default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    # The children's side (this module runs itself as each child process).
    parser.add_argument("--child", choices=("floor-server", "floor-client", "node-b", "node-a"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--messages", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--echo", help=argparse.SUPPRESS)
    parser.add_argument("--counter", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.window is not None and args.window < 1:
        parser.error(f"--window: a positive number of messages, not {args.window}")
    if args.child:
        return run_child(args)

    import trio

    size = SIZES[args.size]
    pin = R.pin_to_one_core(args.cpu) if args.cpu != "none" else {
        "requested": "none", "pinned": False, "cpu": None,
        "note": "not pinned: two node processes and nats-server share the machine's cores"}
    report = R.base_report("cluster", MODULE, argv, args.size, pin)
    report["machine"]["nats_py"] = R._version("nats-py")
    report["sizes"] = size
    report["window"] = args.window  # None: ClusterConfig's default
    report["payload_bytes"] = {"call": CALL_BYTES, "message": TP_BYTES}
    started = R.clock()
    with R.Progress(enabled=not args.no_progress, live=False) as progress:
        result = trio.run(run_rounds, size, progress, args.window)
    report["seconds"] = R.clock() - started
    report["server"] = {k: v for k, v in result["server"].items() if k != "url"}
    report["unavailable"] = result["unavailable"]
    report["error"] = result["error"]
    report["summary"] = summarize(result)
    # Each round keeps its percentiles, not its raw samples (the summary pools those).
    for r in result["rounds"]:
        for side in (r["floors"], r["ours"] or {}):
            if "call_samples" in side:
                side["call_us"] = R.latency_stats(side.pop("call_samples"))
    report["rounds"] = result["rounds"]
    report["targets"] = build_targets(report["summary"], result["unavailable"], result["error"])
    print_tables(report)
    print(f"total {report['seconds']:.1f} s", file=sys.stderr)
    if args.json:
        R.write_json(args.json, report)
        R.write_chart(args.json, draw_chart(report), size=(11, 4.5))
    return 1 if result["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
