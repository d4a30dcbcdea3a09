"""A key-value service as a supervision tree.

    kv_service (one_for_one)
    |-- store    the Python kvstore guest (build/guests/kvstore.wasm, built by
    |            `make python-guest`), or DictStore below when it is not built
    |-- pool     (one_for_all) three counter.wat guests, kv.worker.0 .. kv.worker.2;
    |            each counts the requests it served
    `-- router   a Python actor, registered as "kv": the service's front door

Clients call "kv" with ``["put", key, value]``, ``["get", key]``, ``["delete", key]`` or
``"stats"``. The router spreads requests round robin over the pool (each request is
metered on one worker: a call of ``1`` to a counter guest) and answers from the store.

Why these strategies:
- the root is one_for_one: the store, the pool and the router fail independently;
- the pool is one_for_all: its meters are read as one set of numbers, so when one is
  lost (its count restarts at 0) they all restart together and the set stays consistent;
- the router comes last because it uses the others; children start in order.

Run it with ``.venv/bin/python examples/trees/kv_service.py``: it starts the tree, drives
traffic from a few concurrent clients, crashes a worker and then the store, and shows
``which_children`` before and after each crash. ``tree`` is the module-level spec a
runner can start on its own node.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import trio

import supervisors
from airssys_actors import Actor, CallFailed, CallTimeout, Context, Kind, Message, Node, NoSuchProcess
from supervisors import Child, Supervisor, SupervisorRef

ROOT = Path(__file__).resolve().parents[2]
COUNTER = ROOT / "examples" / "components" / "counter.wat"
KVSTORE = ROOT / "build" / "guests" / "kvstore.wasm"

WORKERS = 3
SEED = {"greeting": "hello", "answer": 42}


class DictStore(Actor):
    """The kvstore guest's protocol in Python (used when the guest is not built)."""

    async def init(self, ctx: Context, args: Any) -> None:
        self.data = dict((args or {}).get("data", {}))

    async def handle(self, ctx: Context, msg: Message) -> Any:
        request = msg.value
        if msg.kind == Kind.CAST:
            if isinstance(request, list) and len(request) == 3 and request[0] == "put":
                self.data[request[1]] = request[2]
            return None
        if msg.kind != Kind.CALL:
            return None
        if isinstance(request, list) and request:
            op, *args = request
            if op == "put" and len(args) == 2:
                self.data[args[0]] = args[1]
                return "ok"
            if op == "get" and len(args) == 1:
                return self.data.get(args[0])
            if op == "delete" and len(args) == 1:
                return self.data.pop(args[0], None) is not None or args[0] in self.data
        if request == "keys":
            return sorted(self.data)
        if request == "size":
            return len(self.data)
        if request == "ping":
            return "pong"
        if request == "crash":
            raise RuntimeError("asked to crash")
        raise ValueError(f"bad request: {request!r}")


class Router(Actor):
    """The front door: meters each request on a pool worker, then asks the store.

    A worker that is down (crashed, or restarting with its pool) does not fail the
    request: the router waits for the restarted worker up to ``meter_timeout`` and counts
    the request as unmetered if it could not be metered.
    """

    async def init(self, ctx: Context, args: Any) -> None:
        self.store = args["store"]
        self.workers = [f"kv.worker.{i}" for i in range(args["workers"])]
        self.next = 0
        self.unmetered = 0

    async def handle(self, ctx: Context, msg: Message) -> Any:
        if msg.kind != Kind.CALL:
            return None
        request = msg.value
        if request == "stats":
            served = {}
            for worker in self.workers:
                try:
                    served[worker] = await ctx.call(worker, "get")
                except (CallFailed, NoSuchProcess, CallTimeout):
                    served[worker] = None
            return {"served": served, "unmetered": self.unmetered,
                    "keys": await ctx.call(self.store, "size")}
        worker = self.workers[self.next % len(self.workers)]
        self.next += 1
        try:
            await ctx.call(worker, 1, timeout=1.0)
        except (CallFailed, NoSuchProcess, CallTimeout):
            self.unmetered += 1
        return await ctx.call(self.store, request)


def store_child() -> Child:
    if KVSTORE.exists():
        return Child("store", str(KVSTORE), args={"data": SEED}, name="kv.store", shutdown=2.0)
    return Child("store", DictStore, args={"data": SEED}, name="kv.store", shutdown=2.0)


tree = Supervisor("kv_service", strategy="one_for_one", max_restarts=5, within=10, children=[
    store_child(),
    Supervisor("pool", strategy="one_for_all", max_restarts=5, within=10, children=[
        Child(f"worker{i}", str(COUNTER), args={"start": 0}, name=f"kv.worker.{i}", version="v1")
        for i in range(WORKERS)
    ]),
    Child("router", Router, args={"store": "kv.store", "workers": WORKERS}, name="kv"),
])


# -- the tour ---------------------------------------------------------------------


async def show_children(title: str, sup: SupervisorRef) -> dict[str, Any]:
    rows = await sup.which_children()
    print(f"  {title}")
    print(f"    {'id':<10} {'pid':<10} {'type':<11} {'name':<12} {'component':<10} {'restarts':>8}  last reason")
    for r in rows:
        print(f"    {r.id:<10} {r.pid!s:<10} {r.type:<11} {r.name or '-':<12} {r.component:<10} "
              f"{r.restarts:>8}  {r.last_reason or '-'}")
    return {r.id: r for r in rows}


async def client(node: Node, n: int, requests: int) -> None:
    for i in range(requests):
        key = f"user:{n}:{i}"
        assert await node.call("kv", ["put", key, {"n": n, "i": i}]) == "ok"
        assert await node.call("kv", ["get", key]) == {"n": n, "i": i}


async def wait_for_restarts(sub: Any, count: int) -> list[Any]:
    return [await sub.wait_for(lambda e: e.kind == "restart") for _ in range(count)]


def check(condition: bool, what: str) -> None:
    print(f"  [{'ok' if condition else 'FAILED'}] {what}")
    if not condition:
        raise SystemExit(f"check failed: {what}")


async def main() -> None:
    print(f"store: {'kvstore.wasm (Python guest)' if KVSTORE.exists() else 'DictStore (Python actor)'}")
    async with Node() as node:
        root = await supervisors.start(node, tree)
        pool = await root.child("pool")
        print("\n1. the tree is up")
        before_root = await show_children("kv_service:", root)
        before_pool = await show_children("pool:", pool)
        print(f"    count_children(root) = {await root.count_children()}")

        print("\n2. traffic: 4 clients x 25 puts and gets through the router")
        async with trio.open_nursery() as nursery:
            for n in range(4):
                nursery.start_soon(client, node, n, 25)
        stats = await node.call("kv", "stats")
        print(f"    stats: {stats}")
        check(sum(stats["served"].values()) == 200, "every request was metered on one worker")
        check(stats["keys"] == len(SEED) + 100, "the store holds the seed plus 100 keys")

        print("\n3. crash worker 1 (a counter guest given a message it does not understand)")
        with node.subscribe({"restart"}) as sub:
            await node.send("kv.worker.1", "not a number")
            events = await wait_for_restarts(sub, WORKERS)  # one_for_all: the whole pool
        for e in events:
            print(f"    restart event: {e.data['supervisor']}/{e.data['child']} {e.data['old_pid']} -> {e.pid}"
                  f"  ({e.reason})")
        after_pool = await show_children("pool:", pool)
        after_root = await show_children("kv_service:", root)
        check(all(after_pool[i].pid != before_pool[i].pid for i in before_pool), "every worker has a new pid")
        check(after_root["store"].pid == before_root["store"].pid, "the store was not touched")
        check(after_root["pool"].pid == before_root["pool"].pid, "the pool supervisor was not restarted")
        check(await node.call("kv", ["get", "user:2:7"]) == {"n": 2, "i": 7}, "data survived the pool restart")
        stats = await node.call("kv", "stats")
        print(f"    stats after: {stats}")
        check(sum(stats["served"].values()) == 1, "the meters restarted from 0 together (one_for_all)")

        print("\n4. crash the store, and call it right away")
        store_pid = await root.child_pid("store")
        results: list[Any] = []

        async def reader() -> None:
            results.append(await node.call("kv", ["get", "greeting"]))

        with node.subscribe({"restart"}) as sub:
            async with trio.open_nursery() as nursery:
                failed = None
                try:
                    await node.call("kv.store", "crash")
                except CallFailed as exc:
                    failed = exc
                for _ in range(3):  # parked or restarted: either way the new store answers
                    nursery.start_soon(reader)
            (event,) = [await sub.wait_for(lambda e: e.kind == "restart")]
        print(f"    the crash call failed at once: {failed}")
        print(f"    restart event: {event.data['child']} {event.data['old_pid']} -> {event.pid}")
        await show_children("kv_service:", root)
        check(failed is not None, "the caller got CallFailed")
        check(await root.child_pid("store") not in (None, store_pid), "the store has a new pid")
        check(results == ["hello"] * 3, "calls made right after the crash were answered (seed data)")
        check(await node.call("kv", ["get", "user:0:0"]) is None, "keys written since the seed are gone: "
              "the store keeps its data in memory and restarts from its args")

        print("\n5. stop the tree (children stop in reverse start order)")
        with node.subscribe({"exit"}) as sub:
            reason = await root.stop()
            order = [e.name or "supervisor" for e in sub.drain()]
        print(f"    exit order: {order}")
        check(reason.kind == "shutdown", "the root exited with reason shutdown")
        check(order[0] == "kv" and order[-2] == "kv.store", "router first, store last")
        print(f"    dead letters: {node.dead_letter_count} "
              f"({', '.join(sorted({f'{d.to}: {d.value!r}' for d in node.dead_letters()}))})")


if __name__ == "__main__":
    trio.run(main)
    sys.exit(0)
