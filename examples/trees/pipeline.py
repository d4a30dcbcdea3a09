"""A three-stage pipeline under rest_for_one, and no message lost to its crashes.

    parse -> enrich -> sink          (how records flow)

    pipeline (rest_for_one)          (start order)
    |-- sink     counts what arrives: records, total amount, ids in order
    |-- enrich   adds a tier to each record; crashes on a record of a blocked user
    `-- parse    turns a CSV line "id,user,amount" into a record; crashes on garbage

The stages start downstream first, so that every stage's downstream is up before the
stage can send to it, and rest_for_one restarts a crashed stage together with the stages
started after it: the ones that feed it. A crash of enrich restarts enrich and parse; a
crash of parse restarts parse; the sink, last in the flow and first to start, keeps its
count through every crash above it.

Every stage is registered under a name with ``mailbox="keep"`` (the default): when a
stage crashes, or is stopped because a stage it feeds crashed, its queued records stay in
its mailbox for the restarted instance, and records sent to it meanwhile queue there
too. The only message each crash costs is the one that crashed it, recorded as a dead
letter. The tour sends 1,000 lines with 20 poison lines among them and checks, at the
sink and in the dead letters, that the other 980 arrived once each, in order.

Run it with ``.venv/bin/python examples/trees/pipeline.py``. ``tree`` is the module-level
spec a runner can start on its own node.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import trio

import supervisors
from airssys_actors import Actor, Context, Kind, Message, Node
from supervisors import Child, Supervisor, SupervisorRef

BLOCKED = "mallory"


class Parse(Actor):
    """CSV line -> record; a line that does not parse crashes the stage."""

    async def handle(self, ctx: Context, msg: Message) -> Any:
        ident, user, amount = msg.value.split(",")  # ValueError on a garbage line
        # send_nowait never yields: a stage stopped between two messages (rest_for_one
        # stopping the stages that feed a crashed one) never holds a half-handled record.
        ctx.send_nowait("pipeline.enrich", {"id": int(ident), "user": user, "amount": float(amount)})


class Enrich(Actor):
    """record -> record with a tier; the blocked user's record crashes the stage."""

    async def handle(self, ctx: Context, msg: Message) -> Any:
        record = msg.value
        if record["user"] == BLOCKED:
            raise PermissionError(f"no profile for {record['user']!r}")
        record["tier"] = "gold" if record["amount"] >= 100 else "standard"
        ctx.send_nowait("pipeline.sink", record)


class Sink(Actor):
    """Counts records; ``"stats"`` (a call) returns what it saw."""

    async def init(self, ctx: Context, args: Any) -> None:
        self.ids: list[int] = []
        self.total = 0.0
        self.tiers: Counter[str] = Counter()

    async def handle(self, ctx: Context, msg: Message) -> Any:
        if msg.kind == Kind.CALL:
            return {"count": len(self.ids), "total": self.total, "tiers": dict(self.tiers), "ids": self.ids}
        record = msg.value
        self.ids.append(record["id"])
        self.total += record["amount"]
        self.tiers[record["tier"]] += 1
        return None


def stage(id: str, actor: type[Actor]) -> Child:
    # A large bound: a stage that is restarting keeps queueing what is sent to it.
    return Child(id, actor, name=f"pipeline.{id}", mailbox="keep", mailbox_capacity=10_000)


tree = Supervisor("pipeline", strategy="rest_for_one", max_restarts=30, within=5, children=[
    stage("sink", Sink),
    stage("enrich", Enrich),
    stage("parse", Parse),
])


# -- the tour ---------------------------------------------------------------------


def lines(n: int) -> list[str]:
    """n CSV lines; every 100 lines one garbage line (parse crashes) and one record of
    the blocked user (enrich crashes)."""
    out = []
    for i in range(n):
        if i % 100 == 50:
            out.append(f"garbage line {i}")
        elif i % 100 == 90:
            out.append(f"{i},{BLOCKED},{i % 250}.0")
        else:
            out.append(f"{i},user{i % 7},{i % 250}.0")
    return out


async def show_children(sup: SupervisorRef) -> dict[str, Any]:
    rows = await sup.which_children()
    for r in rows:
        print(f"    {r.id:<7} {r.pid!s:<11} {r.name:<16} restarts={r.restarts:<3} {r.last_reason or ''}")
    return {r.id: r for r in rows}


def check(condition: bool, what: str) -> None:
    print(f"  [{'ok' if condition else 'FAILED'}] {what}")
    if not condition:
        raise SystemExit(f"check failed: {what}")


async def main() -> None:
    async with Node() as node:
        root = await supervisors.start(node, tree)
        print("1. the pipeline is up (start order: sink, enrich, parse)")
        before = await show_children(root)

        data = lines(1000)
        poison = [line for line in data if "," not in line or BLOCKED in line]
        good = [int(line.split(",")[0]) for line in data if line not in poison]
        print(f"\n2. sending {len(data)} lines into pipeline.parse ({len(poison)} of them poison)")
        with node.subscribe({"restart"}) as sub:
            for line in data:
                await node.send("pipeline.parse", line)  # parked while parse restarts: it waits there
            with trio.fail_after(20):
                while (stats := await node.call("pipeline.sink", "stats"))["count"] < len(good):
                    await trio.sleep(0.01)
            await trio.sleep(0.05)  # anything extra (a duplicate) would arrive now
            stats = await node.call("pipeline.sink", "stats")
            restarts = Counter(e.data["child"] for e in sub.drain())

        print(f"    sink: count={stats['count']} total={stats['total']:.1f} tiers={stats['tiers']}")
        print(f"    restart events per child: {dict(restarts)}")
        print("\n3. after the crashes")
        after = await show_children(root)

        dead = node.dead_letters()
        by_stage = Counter(d.to for d in dead)
        print(f"    dead letters: {dict(by_stage)}")
        for d in dead[:3]:
            print(f"      {d.to}: {d.value!r} ({d.reason})")
        print("      ...")

        print("\n4. accounting")
        check(stats["ids"] == good, f"the sink got all {len(good)} good records, once each, in order")
        check(sorted(str(d.value) for d in dead if d.to == "pipeline.parse")
              == sorted(line for line in poison if "," not in line),
              "parse's dead letters are exactly the garbage lines")
        check(sorted(d.value["id"] for d in dead if d.to == "pipeline.enrich")
              == sorted(int(line.split(",")[0]) for line in poison if BLOCKED in line),
              "enrich's dead letters are exactly the blocked user's records")
        check(len(good) + len(dead) == len(data), "sent = delivered + dead letters")
        check(after["sink"].pid == before["sink"].pid and after["sink"].restarts == 0,
              "the sink was never restarted: its count is whole")
        check(after["enrich"].restarts == 10 and after["parse"].restarts == 20,
              "rest_for_one: enrich's 10 crashes also restarted parse (10 + 10 of its own)")

        await root.stop()


if __name__ == "__main__":
    trio.run(main)
    sys.exit(0)
