"""The cluster data plane beside raw nats-py, between two OS processes on one local
nats-server: publish and subscribe msg/s (100 B messages) and a request/reply round
trip (64 B; the responder echoes to the reply subject the message names).

``python -m benchmarks.dataplane [--messages N] [--calls N]``. Not a test: numbers only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time

import trio

SIZE = 100
CALL_SIZE = 64


# ---- roles run in the child processes ------------------------------------------------

def _plane(url: str, subjects: list[str], on_messages):
    from airssys_actors._clusterconfig import ClusterConfig
    from airssys_actors._dataplane import DataPlane

    return DataPlane(ClusterConfig(servers=url), subjects, on_messages, lambda state: None)


async def dp_sub(url: str, n: int) -> dict:
    count = [0, 0.0, 0.0]
    done = trio.Event()

    def on_messages(batch):
        if not count[0]:
            count[1] = time.perf_counter()
        count[0] += len(batch)
        if count[0] >= n:
            count[2] = time.perf_counter()
            done.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(_plane(url, ["bench.>"], on_messages).run)
        print("ready", flush=True)
        await done.wait()
        nursery.cancel_scope.cancel()
    return {"received_per_s": n / (count[2] - count[1])}


async def dp_pub(url: str, n: int) -> dict:
    async with trio.open_nursery() as nursery:
        plane = _plane(url, [], lambda batch: None)
        await nursery.start(plane.run)
        payload = b"x" * SIZE
        started = time.perf_counter()
        for i in range(n):
            plane.publish("bench.a", payload)
            if i & 1023 == 1023:
                await trio.lowlevel.checkpoint()  # the writer drains (the buffer is bounded)
        while plane._out:  # written to the socket
            await trio.sleep(0.0005)
        elapsed = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    return {"published_per_s": n / elapsed}


async def dp_echo(url: str, _: int) -> dict:
    async with trio.open_nursery() as nursery:
        def on_messages(batch):
            for _subject, data in batch:
                reply, _, body = data.partition(b"\n")
                plane.publish(reply.decode(), body)

        plane = _plane(url, ["bench.req"], on_messages)
        await nursery.start(plane.run)
        print("ready", flush=True)
        await trio.sleep_forever()
    return {}


async def dp_req(url: str, calls: int) -> dict:
    arrived = trio.Event()
    latencies: list[float] = []

    def on_messages(batch):
        arrived.set()

    async with trio.open_nursery() as nursery:
        plane = _plane(url, ["bench.rep"], on_messages)
        await nursery.start(plane.run)
        body = b"bench.rep\n" + b"y" * CALL_SIZE
        for _ in range(calls + 200):
            arrived = trio.Event()
            started = time.perf_counter()
            plane.publish("bench.req", body)
            await arrived.wait()
            latencies.append(time.perf_counter() - started)
        nursery.cancel_scope.cancel()
    return _latency(latencies[200:])


async def nats_sub(url: str, n: int) -> dict:
    import nats

    nc = await nats.connect(url)
    count = [0, 0.0, 0.0]
    done = asyncio.Event()

    async def on_message(msg):
        if not count[0]:
            count[1] = time.perf_counter()
        count[0] += 1
        if count[0] >= n:
            count[2] = time.perf_counter()
            done.set()

    await nc.subscribe("bench.>", cb=on_message, pending_msgs_limit=n + 1, pending_bytes_limit=1 << 30)
    await nc.flush()
    print("ready", flush=True)
    await done.wait()
    await nc.close()
    return {"received_per_s": n / (count[2] - count[1])}


async def nats_pub(url: str, n: int) -> dict:
    import nats

    nc = await nats.connect(url, pending_size=1 << 30)
    payload = b"x" * SIZE
    started = time.perf_counter()
    for i in range(n):
        await nc.publish("bench.a", payload)
        if i & 1023 == 1023:
            await asyncio.sleep(0)
    await nc.flush()
    elapsed = time.perf_counter() - started
    await nc.close()
    return {"published_per_s": n / elapsed}


async def nats_echo(url: str, _: int) -> dict:
    import nats

    nc = await nats.connect(url)

    async def on_message(msg):
        await nc.publish(msg.reply, msg.data)

    await nc.subscribe("bench.req", cb=on_message)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.Event().wait()
    return {}


async def nats_req(url: str, calls: int) -> dict:
    import nats

    nc = await nats.connect(url)
    latencies = []
    body = b"y" * CALL_SIZE
    for _ in range(calls + 200):
        started = time.perf_counter()
        await nc.request("bench.req", body, timeout=5)
        latencies.append(time.perf_counter() - started)
    await nc.close()
    return _latency(latencies[200:])


def _latency(latencies: list[float]) -> dict:
    latencies.sort()
    return {"rtt_p50_us": statistics.median(latencies) * 1e6,
            "rtt_p99_us": latencies[int(len(latencies) * 0.99)] * 1e6}


ROLES = {"dp_sub": dp_sub, "dp_pub": dp_pub, "dp_echo": dp_echo, "dp_req": dp_req,
         "nats_sub": nats_sub, "nats_pub": nats_pub, "nats_echo": nats_echo, "nats_req": nats_req}


def _child(role: str, url: str, n: int) -> None:
    function = ROLES[role]
    result = trio.run(function, url, n) if role.startswith("dp_") else asyncio.run(function(url, n))
    print(json.dumps(result), flush=True)


# ---- the driver ------------------------------------------------------------------------

def _spawn(role: str, url: str, n: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "benchmarks.dataplane", "--role", role, "--url", url, "-n", str(n)],
                            stdout=subprocess.PIPE, text=True)


def _pair(server_role: str, client_role: str, url: str, n: int) -> dict:
    server = _spawn(server_role, url, n)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        client = _spawn(client_role, url, n)
        out, _ = client.communicate(timeout=300)
        result = json.loads(out.strip().splitlines()[-1])
        if server_role.endswith("_sub"):
            result.update(json.loads(server.communicate(timeout=300)[0].strip().splitlines()[-1]))
        return result
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=sorted(ROLES))
    parser.add_argument("--url")
    parser.add_argument("-n", type=int, default=0)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--calls", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.role:
        _child(args.role, args.url, args.n)
        return
    from airssys_cli.natsserver import NatsServer

    with tempfile.TemporaryDirectory() as store, NatsServer().start(store) as server:
        for name, prefix in (("data plane", "dp"), ("nats-py", "nats")):
            runs = [{**_pair(f"{prefix}_sub", f"{prefix}_pub", server.url, args.messages),
                     **_pair(f"{prefix}_echo", f"{prefix}_req", server.url, args.calls)} for _ in range(args.runs)]
            medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            print(f"{name:>10}: publish {medians['published_per_s'] / 1e3:7.0f} k msg/s, "
                  f"receive {medians['received_per_s'] / 1e3:6.0f} k msg/s, "
                  f"RTT p50 {medians['rtt_p50_us']:5.0f} us, p99 {medians['rtt_p99_us']:5.0f} us "
                  f"(medians of {args.runs})")


if __name__ == "__main__":
    main()
