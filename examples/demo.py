"""A tour of the airssys-actors API in a few seconds, one step at a time.

(``make demo`` runs ``airssys demo``, the command line's demo of supervision, faults and
hot upgrades under load. This script is the smaller tour, written to be read.)

Every process here is a sandboxed WebAssembly component from ``examples/components/``:

1. start a node and load the four example guests (echo, counter, crasher, pinger);
2. spawn them under names, send casts and make calls;
3. stream a burst of casts into the counter while a table of processes updates;
4. let one guest ask another (pinger -> echo, pinger -> counter) and spawn a third;
5. show the sandbox: echo may not send anything it was not allowed to;
6. monitor and link the crasher, crash it, and look at what everyone saw:
   the caller's ``CallFailed``, the dead letter, the DOWN and EXIT messages, and a
   linked process that went down with it;
7. account for every message: sent = handled + dead letters + still queued.

Run it with ``.venv/bin/python examples/demo.py``. It is also meant to be read.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import trio
from rich.console import Console
from rich.live import Live
from rich.table import Table

from airssys_actors import CallFailed, Capabilities, Node, NoSuchProcess

COMPONENTS = Path(__file__).resolve().parent / "components"
console = Console()


def step(title: str) -> None:
    console.print()
    console.rule(f"[bold cyan]{title}")


def show(label: str, value: Any, *, text: bool = False) -> None:
    """One line of the tour: what was done, and what came back (its Python repr, or the
    text itself when ``text``)."""
    line = Table.grid(padding=(0, 2))
    line.add_column(width=40, no_wrap=True)
    line.add_column(style="green", overflow="fold")
    line.add_row(f"  {label}", str(value) if text else repr(value))
    console.print(line)


class Ledger:
    """The messages this script put in mailboxes (casts and calls), for the summary."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.sent = 0

    async def send(self, to: Any, message: Any) -> None:
        await self.node.send(to, message)
        self.sent += 1

    def send_nowait(self, to: Any, message: Any) -> None:
        self.node.send_nowait(to, message)
        self.sent += 1

    async def call(self, to: Any, message: Any, timeout: float = 5.0) -> Any:
        self.sent += 1  # counted before awaiting: a call that fails was still delivered
        return await self.node.call(to, message, timeout=timeout)


def process_table(node: Node, title: str = "processes") -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("pid", "name", "component", "version", "mailbox", "messages in"):
        table.add_column(column, justify="right" if column in ("mailbox", "messages in") else "left",
                         no_wrap=True)
    for info in node.processes():
        table.add_row(info["pid"], info["name"] or "-", info["component"], info["version"],
                      str(info["mailbox"]), str(info["messages_in"]))
    return table


async def main() -> None:
    started = time.perf_counter()
    async with Node(shutdown_timeout=1.0) as node:
        ledger = Ledger(node)

        # -- 1. load ---------------------------------------------------------------------
        step("1. Start a node and load the guests")
        loaded = Table(title="components", title_justify="left")
        for column in ("name", "version", "source", "load time"):
            loaded.add_column(column)
        for name in ("echo", "counter", "crasher", "pinger"):
            t0 = time.perf_counter()
            component = node.load(COMPONENTS / f"{name}.wat")  # compiled once, then cached on disk
            loaded.add_row(component.name, component.version, f"examples/components/{name}.wat",
                           f"{(time.perf_counter() - t0) * 1000:.0f} ms")
        console.print(loaded)

        # -- 2. spawn, send, call --------------------------------------------------------
        step("2. Spawn named processes, send and call")
        await node.spawn("echo", name="echo")
        await node.spawn("counter", name="counter", args={"start": 0})
        await node.spawn("crasher", name="crasher")
        # pinger may message these three names and have one echo child at a time.
        # Everything else is denied: capabilities are deny-by-default.
        await node.spawn("pinger", name="pinger", trap_exits=True,
                         capabilities=Capabilities(send=["echo", "counter", "crasher"],
                                                   spawn=["echo"], max_children=1))
        show("call echo with a msgpack map",
             await ledger.call("echo", {"hello": ["world", 1.5, b"raw"]}))
        await ledger.send("counter", 10)            # a cast: no reply
        await ledger.send("counter", "incr")
        show("call counter 'get' (after 10, 'incr')", await ledger.call("counter", "get"))
        show("call crasher 'ping'", await ledger.call("crasher", "ping"))
        show("call pinger 'self' (its own address)", await ledger.call("pinger", "self"))

        # -- 3. a burst, watched live ----------------------------------------------------
        step("3. 2,000 casts into the counter, watched live")
        with Live(process_table(node), console=console, refresh_per_second=20) as live:
            for _ in range(20):
                for _ in range(100):
                    ledger.send_nowait("counter", "incr")   # 100 at a time, well under the bound
                live.update(process_table(node))
                await trio.sleep(0.05)                     # the counter drains its mailbox meanwhile
            live.update(process_table(node))
        console.print()
        show("call counter 'get'", await ledger.call("counter", "get"))

        # -- 4. guests talking to guests -------------------------------------------------
        step("4. Request/reply between guests")
        show("pinger asks echo",
             await ledger.call("pinger", ["ask", "echo", "hello from pinger"]))
        show("pinger asks counter 'get'", await ledger.call("pinger", ["ask", "counter", "get"]))
        answered_requests = 2  # each answer came back to pinger as a reply(id) message
        child = await ledger.call("pinger", ["spawn", "echo"])
        show("pinger spawns an echo (unnamed)", child)
        show(f"parent of {child}", node.process_info(child)["parent"])
        show(f"call {child} 'hi'", await ledger.call(child, "hi"))
        show("pinger spawns another (max_children=1)",
             await ledger.call("pinger", ["spawn", "echo"]))
        console.print(process_table(node))

        # -- 5. the sandbox --------------------------------------------------------------
        step("5. Deny by default")
        with node.subscribe({"capability_denied"}) as denied:
            # pinger casts to echo; echo tries to send the cast back to its sender, but echo
            # was spawned without capabilities, so its host send returns err.
            show("pinger sends 'hi' to echo", await ledger.call("pinger", ["send", "echo", "hi"]))
            event = await denied.wait_for(lambda e: True, timeout=2)
        show("event capability_denied",
             f"{event.name}: {event.data['import']} -> {event.data['target']}", text=True)
        # Patterns match the address text: pinger was granted the name "echo", not its pid.
        show("pinger asks echo by pid, not by name",
             await ledger.call("pinger", ["ask", str(node.whereis("echo"))]))

        # -- 6. monitor, link, crash -----------------------------------------------------
        step("6. Monitors, links and a crash")
        show("pinger monitors crasher (monitor id)",
             await ledger.call("pinger", ["monitor", "crasher"]))
        show("pinger (traps exits) links to crasher",
             await ledger.call("pinger", ["link", "crasher"]))
        buddy = await node.spawn("pinger", name="buddy", capabilities=Capabilities(send=["crasher"]))
        show("buddy (does not trap) links to crasher",
             await ledger.call("buddy", ["link", "crasher"]))
        crasher = node.whereis("crasher")
        # Counters of the two processes that are about to die, for the summary.
        gone = [node.process_info("crasher"), node.process_info("buddy")]
        try:
            await ledger.call("crasher", "crash")
        except CallFailed as exc:
            show("call crasher 'crash' raised", f"CallFailed: {exc}", text=True)
        reason = await node.wait(crasher)
        show("crasher's exit reason", str(reason), text=True)
        show("buddy's exit reason (linked)", str(await node.wait(buddy)), text=True)
        letter = node.dead_letters()[-1]
        show("dead letter",
             f"to={letter.to} kind={letter.kind.name.lower()} value={letter.value!r}", text=True)
        show("  ...because", letter.reason, text=True)
        show("pinger's last DOWN payload", await ledger.call("pinger", "last-down"))
        show("pinger's last EXIT payload", await ledger.call("pinger", "last-exit"))
        show("pinger's last EXIT sender", await ledger.call("pinger", "last-exit-sender"))
        signals = 2  # the DOWN and the EXIT pinger received as messages
        try:
            await node.send("crasher", "anyone there?")
        except NoSuchProcess as exc:
            show("send to 'crasher' now raises", f"NoSuchProcess: {exc}", text=True)

        # -- 7. accounting ---------------------------------------------------------------
        step("7. Every message accounted for")
        live_infos = node.processes()
        console.print(process_table(node, "processes at the end"))
        infos = live_infos + gone
        sent_by_guests = sum(i["messages_out"] for i in infos)
        handled = sum(i["messages_in"] for i in infos)
        queued = sum(i["mailbox"] for i in live_infos)
        dead = node.dead_letter_count
        delivered = ledger.sent + sent_by_guests + answered_requests + signals
        lost = delivered - handled - dead - queued
        summary = Table(title="summary", title_justify="left", show_header=False)
        summary.add_column("what")
        summary.add_column("count", justify="right")
        summary.add_row("messages sent by this script", str(ledger.sent))
        summary.add_row("messages sent by guests", str(sent_by_guests))
        summary.add_row("replies and DOWN/EXIT delivered as messages",
                        str(answered_requests + signals))
        summary.add_row("messages handled", str(handled))
        summary.add_row("dead letters", str(dead))
        summary.add_row("still queued", str(queued))
        summary.add_row("[bold]lost[/]", f"[bold]{lost}[/]")
        console.print(summary)
    console.print(f"\nnode stopped; demo took {time.perf_counter() - started:.1f} s")
    if lost != 0:
        raise SystemExit(f"{lost} messages unaccounted for")


if __name__ == "__main__":
    trio.run(main)
