#!/usr/bin/env python3
"""Check the hand-written WAT guests with the stock wasmtime-py component API.

No airssys runtime is involved: every guest is instantiated on its own, with Python
stand-ins for airssys:actor/host@0.1.0 that record what the guest asked for, and its
exports are called directly. This is a script, not a pytest module:

    .venv/bin/python tests/guests/check_guests.py [-v]

It prints one line per failed check (every check with -v) and exits non-zero if any failed.
"""

import pathlib
import shutil
import subprocess
import sys
import tempfile

import msgpack
import wasmtime
from wasmtime import component as cm

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "components"
GUESTS = ROOT / "tests" / "guests"
VERBOSE = "-v" in sys.argv[1:]

P = msgpack.packb


def U(data):
    return msgpack.unpackb(data, raw=False)


# ---------------------------------------------------------------------------------------
# checks

passed = 0
failed = []


def check(label, got, want):
    global passed
    if got == want:
        passed += 1
        if VERBOSE:
            print(f"ok    {label}")
    else:
        shown = repr(got)
        if len(shown) > 200:
            shown = shown[:200] + "..."
        failed.append(label)
        print(f"FAIL  {label}: got {shown}, want {want!r}"[:600])


def check_raises(label, fn, *words):
    """fn() must raise a wasmtime error (a trap or a link/compile error) naming all words."""
    global passed
    try:
        got = fn()
    except (wasmtime.Trap, wasmtime.WasmtimeError) as e:
        text = str(e).lower()
        missing = [w for w in words if w.lower() not in text]
        if missing:
            failed.append(label)
            print(f"FAIL  {label}: error lacks {missing}: {text[:400]}")
        else:
            passed += 1
            if VERBOSE:
                print(f"ok    {label} ({text.strip().splitlines()[-1].strip()[:100]})")
        return
    failed.append(label)
    print(f"FAIL  {label}: no error, returned {got!r}"[:400])


# ---------------------------------------------------------------------------------------
# a host that records everything


class Host:
    """Python stand-ins for airssys:actor/host@0.1.0.

    `fail` holds the names of host functions that answer err("denied"); everything else
    answers as the brief says: self "<test.1>", request ok(7), send-after ok(9), cancel-timer
    true, spawn ok("<test.2>"), monitor ok(11), now-ms 123. `calls` records every call as
    (name, *args), in order.
    """

    def __init__(self):
        self.calls = []
        self.fail = set()
        self.request_ids = None  # an iterator of ids to hand out instead of 7
        self.cancel_result = True
        self.now = 123

    def named(self, name):
        return [c[1:] for c in self.calls if c[0] == name]

    def define(self, linker):
        def rec(name, *args):
            self.calls.append((name, *args))

        def unit(name):  # result<_, string>
            return "denied" if name in self.fail else None

        def self_(store):
            rec("self")
            return "<test.1>"

        def send(store, to, payload):
            rec("send", to, payload)
            return unit("send")

        def request(store, to, payload, timeout):
            rec("request", to, payload, timeout)
            if "request" in self.fail:
                return "denied"
            return next(self.request_ids) if self.request_ids else 7

        def send_after(store, to, payload, delay):
            rec("send-after", to, payload, delay)
            return "denied" if "send-after" in self.fail else 9

        def cancel_timer(store, timer):
            rec("cancel-timer", timer)
            return self.cancel_result

        def spawn(store, component, args):
            rec("spawn", component, args)
            # result<string, string> is ambiguous in wasmtime-py, so it takes a Variant
            if "spawn" in self.fail:
                return cm.Variant("err", "denied")
            return cm.Variant("ok", "<test.2>")

        def link(store, target):
            rec("link", target)
            return unit("link")

        def monitor(store, target):
            rec("monitor", target)
            return "denied" if "monitor" in self.fail else 11

        def stop(store, reason):
            rec("stop", reason)

        def log(store, level, message):
            rec("log", level, message)

        def now_ms(store):
            rec("now-ms")
            return self.now

        def reply(store, call, payload):
            rec("reply", call, payload)
            return unit("reply")

        with linker.root() as root:
            with root.add_instance("airssys:actor/types@0.1.0"):
                pass
            with root.add_instance("airssys:actor/host@0.1.0") as h:
                h.add_func("self", self_)
                h.add_func("send", send)
                h.add_func("request", request)
                h.add_func("send-after", send_after)
                h.add_func("cancel-timer", cancel_timer)
                h.add_func("spawn", spawn)
                h.add_func("link", link)
                h.add_func("monitor", monitor)
                h.add_func("stop", stop)
                h.add_func("log", log)
                h.add_func("now-ms", now_ms)
                h.add_func("reply", reply)


_engines = {}
_components = {}


def engine(fuel):
    if fuel not in _engines:
        cfg = wasmtime.Config()
        if fuel:
            cfg.consume_fuel = True
        _engines[fuel] = wasmtime.Engine(cfg)
    return _engines[fuel]


def component(path, fuel=False):
    key = (str(path), fuel)
    if key not in _components:
        _components[key] = cm.Component(engine(fuel), path.read_text())
    return _components[key]


class Guest:
    """One instance of a guest component in its own store."""

    def __init__(self, path, fuel=None, memory_limit=None):
        self.host = Host()
        eng = engine(bool(fuel))
        linker = cm.Linker(eng)
        self.host.define(linker)
        self.store = wasmtime.Store(eng)
        if fuel:
            self.store.set_fuel(fuel)
        if memory_limit:
            self.store.set_limits(memory_size=memory_limit)
        self.instance = linker.instantiate(self.store, component(path, bool(fuel)))

    def export(self, name, *args):
        f = self.instance.get_func(self.store, name)
        r = f(self.store, *args)
        f.post_return(self.store)
        return r

    def init(self, args):
        return self.export("init", args)

    def snapshot(self):
        return self.export("snapshot")

    def upgrade(self, version, state):
        return self.export("upgrade", version, state)

    def handle(self, kind, ref=None, payload=b"", sender=None):
        env = cm.Record()
        env.kind = cm.Variant(kind) if ref is None else cm.Variant(kind, ref)
        env.sender = sender
        env.payload = payload
        return self.export("handle", env)

    def call(self, msg, call_id=1, sender="<caller.1>"):
        """A call with msgpack `msg` (raw bytes when msg is bytes)."""
        return self.handle("call", call_id, msg if isinstance(msg, bytes) else P(msg), sender)

    def cast(self, msg, sender="<caller.1>"):
        return self.handle("cast", None, msg if isinstance(msg, bytes) else P(msg), sender)


# ---------------------------------------------------------------------------------------
# echo (the template)


def check_echo():
    g = Guest(EXAMPLES / "echo.wat")
    check("echo: init", g.init(P(None)), None)
    check("echo: call answers its payload", g.call(b"\x01\x02\x03"), b"\x01\x02\x03")
    check("echo: cast answers nothing", g.cast(P("hi")), None)
    check("echo: cast goes back to its sender", g.host.named("send"), [("<caller.1>", P("hi"))])
    check("echo: snapshot", g.snapshot(), b"")
    check("echo: upgrade", g.upgrade("0.0.1", b"x"), None)


# ---------------------------------------------------------------------------------------
# counter


def check_counter():
    path = EXAMPLES / "counter.wat"
    g = Guest(path)
    check("counter: init nil", g.init(P(None)), None)
    check("counter: get after nil", g.call("get"), P(0))
    check("counter: init {} ", g.init(P({})), None)
    check("counter: init empty args", g.init(b""), None)
    check("counter: init {start}", g.init(P({"start": 5})), None)
    check("counter: get after start 5", g.call("get"), P(5))
    check("counter: init {start} among other keys",
          g.init(P({"name": "c", "opts": [1, {"a": b"\x00" * 300, "b": 1.5}, None, True],
                    7: "int key", "start": -40, "z": {"nested": [[], {}]}})), None)
    check("counter: get after start -40", g.call("get"), P(-40))
    check("counter: init {start} as uint64", g.init(b"\x81\xa5start\xcf\x00\x00\x00\x01\x00\x00\x00\x00"), None)
    check("counter: get after start 2^32", g.call("get"), P(2**32))
    for label, args in [("a str", P("x")), ("an int", P(3)), ("a list", P([1])),
                        ("start a str", P({"start": "x"})), ("start a float", P({"start": 1.0})),
                        ("a truncated map", b"\x82\xa5start\x01"), ("a key without value", b"\x81\xa5start"),
                        ("nil with trailing bytes", b"\xc0\xc0"), ("0xc1", b"\xc1"),
                        ("a map with a truncated value", P({"x": "abc"})[:-1])]:
        check(f"counter: init {label} -> bad args", g.init(args), "bad args")

    g = Guest(path)
    g.init(P({"start": 10}))
    check("counter: call int adds", g.call(5), P(15))
    check("counter: cast int adds, no reply", g.cast(5), None)
    check("counter: cast incr, no reply", g.cast("incr"), None)
    check("counter: call incr", g.call("incr"), P(22))
    check("counter: call get", g.call("get"), P(22))
    check("counter: call negative", g.call(-30), P(-8))
    check("counter: str8 incr", g.call(b"\xd9\x04incr"), P(-7))
    total = -7
    for raw, n in [(b"\xcc\xc8", 200), (b"\xcd\x01\x00", 256), (b"\xce\x00\x01\x00\x00", 65536),
                   (b"\xcf\x00\x00\x00\x01\x00\x00\x00\x00", 2**32), (b"\xd0\xfe", -2),
                   (b"\xd1\xff\x00", -256), (b"\xd2\xff\xff\x00\x00", -65536),
                   (b"\xd3\xff\xff\xff\xff\x00\x00\x00\x00", -(2**32)), (b"\xe0", -32), (b"\x7f", 127)]:
        total += n
        check(f"counter: add {n} as {raw[:1].hex()}", g.call(raw), P(total))
    # replies use the shortest form, like msgpack-python
    for n in [0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1,
              -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63)]:
        g.upgrade("v", P(n))
        check(f"counter: encodes {n} shortest", g.call("get"), P(n))
    g.upgrade("v", P(3))
    for label, msg in [("an unknown str", P("nope")), ("a float", P(1.5)), ("a list", P([1])),
                       ("nil", P(None)), ("empty", b""), ("an int with trailing bytes", P(1) + b"\x00"),
                       ("a truncated uint16", b"\xcd\x01")]:
        check(f"counter: call {label} -> unknown message", g.call(msg), "unknown message")
    check("counter: cast unknown -> unknown message", g.cast("nope"), "unknown message")
    check("counter: count unchanged by errors", g.call("get"), P(3))
    for kind in ["reply", "failed", "down", "timer"]:
        check(f"counter: {kind} envelope ignored", g.handle(kind, 1, P(100)), None)
    check("counter: exit envelope ignored", g.handle("exit", None, P(100), "<x.1>"), None)
    check("counter: count unchanged by other kinds", g.call("get"), P(3))

    check("counter: snapshot", g.snapshot(), P(3))
    g2 = Guest(path)
    g2.init(P(None))
    check("counter: upgrade from snapshot", g2.upgrade("0.1.0", g.snapshot()), None)
    check("counter: count after upgrade", g2.call("get"), P(3))
    for label, state in [("a str", P("3")), ("empty", b""), ("nil", P(None)), ("trailing", P(1) + b"\x01")]:
        check(f"counter: upgrade {label} -> bad state", g2.upgrade("0.1.0", state), "bad state")
    check("counter: count kept after bad upgrade", g2.call("get"), P(3))


# ---------------------------------------------------------------------------------------
# crasher


def check_crasher():
    path = EXAMPLES / "crasher.wat"
    g = Guest(path)
    check("crasher: init fail", g.init(P("fail")), "init failed")
    check("crasher: init fail as str8", g.init(b"\xd9\x04fail"), "init failed")
    for label, args in [("nil", P(None)), ("empty", b""), ("another str", P("ok")),
                        ("a list", P(["fail"])), ("fail plus trailing", P("fail") + b"\x00")]:
        check(f"crasher: init {label} -> ok", g.init(args), None)

    check("crasher: call ping", g.call("ping"), P("pong"))
    check("crasher: cast ping", g.cast("ping"), None)
    check("crasher: call other str", g.call("hello"), P("pong"))
    check("crasher: call non-str", g.call([1, 2]), P("pong"))
    check("crasher: call empty payload", g.call(b""), P("pong"))
    check("crasher: error (call)", g.call("error"), "asked to fail")
    check("crasher: error (cast)", g.cast("error"), "asked to fail")
    check("crasher: down envelope ignored", g.handle("down", 3, P("crash")), None)
    check("crasher: snapshot", g.snapshot(), b"")
    check("crasher: upgrade", g.upgrade("0.1.0", b"anything"), None)
    check("crasher: no stop so far", g.host.named("stop"), [])

    for cmd, reason, reply in [("stop", "normal", P("stopping")), ("shutdown", "shutdown", P("stopping")),
                               ("boom", "boom", None)]:
        g = Guest(path)
        check(f"crasher: {cmd} (call) reply", g.call(cmd), reply)
        check(f"crasher: {cmd} (call) stops", g.host.named("stop"), [(reason,)])
        g = Guest(path)
        check(f"crasher: {cmd} (cast) no reply", g.cast(cmd), None)
        check(f"crasher: {cmd} (cast) stops", g.host.named("stop"), [(reason,)])

    check_raises("crasher: crash traps", lambda: Guest(path).call("crash"), "unreachable")
    check_raises("crasher: crash (cast) traps", lambda: Guest(path).cast("crash"), "unreachable")
    check_raises("crasher: loop runs out of fuel", lambda: Guest(path, fuel=20_000_000).call("loop"), "fuel")
    check_raises("crasher: recurse overflows the stack", lambda: Guest(path).call("recurse"), "stack")
    g = Guest(path, memory_limit=64 << 20)
    check_raises("crasher: alloc grows to the limit, then traps", lambda: g.call("alloc"), "unreachable")

    # A 4 MiB list<u8> result is more than wasmtime-py's dynamic (Val-based) API may lift:
    # wasmtime's default hostcall fuel (128 MiB, about 48 bytes per list element) stops at
    # 2796200 bytes with a WasmtimeError, after which the instance cannot be entered again.
    g = Guest(path)
    check_raises("crasher: big (4 MiB) is too much to lift", lambda: g.call("big"), "too much data")
    check_raises("crasher: instance unusable after that", lambda: g.call("ping"), "cannot enter")
    g = Guest(path)
    check("crasher: big (cast) no reply", g.cast("big"), None)
    check("crasher: ping after a big cast", g.call("ping"), P("pong"))
    # The same code with a 2 MiB payload, to check what "big" builds.
    text = path.read_text()
    check("crasher: 4194304 appears three times", text.count("4194304"), 3)
    with tempfile.TemporaryDirectory() as tmp:
        small = pathlib.Path(tmp) / "crasher_2mib.wat"
        small.write_text(text.replace("4194309", "2097157").replace("4194304", "2097152"))
        g = Guest(small)
        for i in range(2):
            # dirty the heap first (a payload is copied there), "big" must zero it again
            check(f"crasher: 2 MiB of 0xff before big #{i}", g.call(P(b"\xff" * 2200000)), P("pong"))
            big = g.call("big")
            check(f"crasher: 2 MiB big #{i} length", len(big), 2097157)
            check(f"crasher: 2 MiB big #{i} header", big[:5], b"\xc6\x00\x20\x00\x00")
            check(f"crasher: 2 MiB big #{i} decodes to zeros", U(big) == bytes(2097152), True)
            check(f"crasher: ping after 2 MiB big #{i}", g.call("ping"), P("pong"))

    g = Guest(path)
    check("crasher: spam reply", g.call("spam"), P("spammed"))
    sends = g.host.named("send")
    check("crasher: spam sends 100000", len(sends), 100000)
    check("crasher: spam sends ping to self", set(sends), {("<test.1>", P("ping"))})
    g = Guest(path)
    g.host.fail.add("send")
    check("crasher: spam ignores send errors", g.call("spam"), P("spammed"))
    check("crasher: spam tried 100000 sends", len(g.host.named("send")), 100000)
    check("crasher: ping after spam", g.call("ping"), P("pong"))


# ---------------------------------------------------------------------------------------
# pinger


def check_pinger():
    path = EXAMPLES / "pinger.wat"
    g = Guest(path)
    h = g.host
    check("pinger: init", g.init(P(None)), None)
    check("pinger: call ping", g.call("ping"), P("pong"))
    check("pinger: cast ping", g.cast("ping"), None)
    check("pinger: cast ping without sender", g.cast("ping", sender=None), None)
    check("pinger: self", g.call("self"), P("<test.1>"))
    check("pinger: now", g.call("now"), P(123))
    for now in [2**40, 2**64 - 1]:
        h.now = now
        check(f"pinger: now {now}", U(g.call("now")), now)
    check("pinger: log", g.call("log"), P("ok"))
    check("pinger: log goes to host", h.named("log"), [("info", "hello from pinger")])

    # ask: deferred reply, answered from reply(id) / failed(id)
    check("pinger: ask defers", g.call(["ask", "<x.9>"], call_id=50), None)
    check("pinger: ask requests ping", h.named("request"), [("<x.9>", P("ping"), 1000)])
    check("pinger: unknown reply id dropped", g.handle("reply", 8, P("stray")), None)
    check("pinger: nothing answered yet", h.named("reply"), [])
    check("pinger: reply(7) handled", g.handle("reply", 7, P("pong!"), "<x.9>"), None)
    check("pinger: reply(7) answers call 50", h.named("reply"), [(50, P("pong!"))])
    g.handle("reply", 7, P("again"), "<x.9>")
    check("pinger: a second reply(7) is dropped", len(h.named("reply")), 1)
    check("pinger: ask with a message", g.call(["ask", "<x.9>", {"a": [1, 2], "b": b"\x00"}], call_id=51), None)
    check("pinger: ask sends the message as-is", h.named("request")[-1], ("<x.9>", P({"a": [1, 2], "b": b"\x00"}), 1000))
    check("pinger: failed(7) handled", g.handle("failed", 7, P("timeout")), None)
    check("pinger: failed(7) answers call 51", h.named("reply")[-1], (51, P("timeout")))
    h.fail.add("request")
    check("pinger: ask error", g.call(["ask", "<x.9>"], call_id=52), P(["error", "denied"]))
    h.fail.discard("request")
    n = len(h.named("reply"))
    check("pinger: ask from a cast", g.cast(["ask", "<x.9>"]), None)
    g.handle("reply", 7, P("late"))
    check("pinger: reply to a cast's ask is dropped", len(h.named("reply")), n)

    # after / timer, and request and timer ids that collide
    check("pinger: after defers", g.call(["after", 50], call_id=60), None)
    check("pinger: after sets a timer to self", h.named("send-after")[-1], ("<test.1>", P("tick"), 50))
    h.request_ids = iter([9])
    check("pinger: ask with request id 9", g.call(["ask", "<x.9>"], call_id=61), None)
    g.handle("timer", 9, P("tick"), "<test.1>")
    check("pinger: timer(9) answers call 60 with tock", h.named("reply")[-1], (60, P("tock")))
    h.request_ids = None
    g.handle("reply", 9, P("r9"))
    check("pinger: reply(9) answers call 61", h.named("reply")[-1], (61, P("r9")))
    n = len(h.named("reply"))
    g.handle("timer", 9, P("tick"))
    check("pinger: a second timer(9) is dropped", len(h.named("reply")), n)
    check("pinger: after with a big delay", g.call(["after", 3_600_000], call_id=62), None)
    check("pinger: big delay passed on", h.named("send-after")[-1][2], 3_600_000)
    h.fail.add("send-after")
    check("pinger: after error", g.call(["after", 5], call_id=63), P(["error", "denied"]))
    check("pinger: cancel error", g.call(["cancel", 5]), P(["error", "denied"]))
    h.fail.discard("send-after")

    # cancel
    check("pinger: cancel true", g.call(["cancel", 50]), P(True))
    check("pinger: cancel cancels the timer it set", h.named("cancel-timer")[-1], (9,))
    h.cancel_result = False
    check("pinger: cancel false", g.call(["cancel", 50]), P(False))

    # spawn
    check("pinger: spawn", g.call(["spawn", "counter"]), P("<test.2>"))
    check("pinger: spawn passes name and nil", h.named("spawn")[-1], ("counter", P(None)))
    h.fail.add("spawn")
    check("pinger: spawn error", g.call(["spawn", "nope"]), P(["error", "denied"]))

    # monitor / down
    check("pinger: last-down before any", g.call("last-down"), P(None))
    check("pinger: monitor", g.call(["monitor", "<x.3>"]), P(11))
    check("pinger: monitor target", h.named("monitor")[-1], ("<x.3>",))
    check("pinger: down stored", g.handle("down", 11, P("normal"), "<x.3>"), None)
    check("pinger: last-down", g.call("last-down"), P("normal"))
    g.handle("down", 12, P({"reason": ["boom", 1]}))
    check("pinger: last-down keeps the latest", g.call("last-down"), P({"reason": ["boom", 1]}))
    g.handle("down", 13, P("x" * 9000))
    check("pinger: oversized down payload", g.call("last-down"), P("payload too large"))
    h.fail.add("monitor")
    check("pinger: monitor error", g.call(["monitor", "<x.3>"]), P(["error", "denied"]))

    # link / exit
    check("pinger: last-exit before any", g.call("last-exit"), P(None))
    check("pinger: last-exit-sender before any", g.call("last-exit-sender"), P(None))
    check("pinger: link", g.call(["link", "<x.4>"]), P("ok"))
    check("pinger: link target", h.named("link")[-1], ("<x.4>",))
    check("pinger: exit stored", g.handle("exit", None, P("killed"), "<x.4>"), None)
    check("pinger: last-exit", g.call("last-exit"), P("killed"))
    check("pinger: last-exit-sender", g.call("last-exit-sender"), P("<x.4>"))
    g.handle("exit", None, P("shutdown"), None)
    check("pinger: last-exit without sender", g.call("last-exit"), P("shutdown"))
    check("pinger: last-exit-sender without sender", g.call("last-exit-sender"), P(None))
    h.fail.add("link")
    check("pinger: link error", g.call(["link", "<x.4>"]), P(["error", "denied"]))

    # send
    value = [1, {"k": b"bin", "f": 1.25}, None, "s" * 40, list(range(20))]
    check("pinger: send", g.call(["send", "<x.5>", value]), P("ok"))
    check("pinger: send passes the raw value", h.named("send")[-1], ("<x.5>", P(value)))
    check("pinger: send from a cast", g.cast(["send", "<x.5>", 1]), None)
    check("pinger: cast send went out", h.named("send")[-1], ("<x.5>", P(1)))
    h.fail.add("send")
    check("pinger: send error", g.call(["send", "<x.5>", 1]), P(["error", "denied"]))

    # host reply failing is ignored
    h.fail.add("reply")
    g.call(["ask", "<x.9>"], call_id=70)
    check("pinger: host reply error ignored", g.handle("reply", 7, P("x")), None)

    # malformed commands
    unknown = P(["error", "unknown message"])
    for label, msg in [("an unknown str", P("what")), ("an int", P(5)), ("nil", P(None)), ("empty", b""),
                       ("an unknown array command", P(["what", 1])), ("ask without target", P(["ask"])),
                       ("ask with an int target", P(["ask", 1])), ("send without value", P(["send", "<x>"])),
                       ("after with a str", P(["after", "x"])), ("an empty array", P([])),
                       ("array with an int head", P([1, 2])), ("truncated send", P(["send", "<x>", "abc"])[:-1]),
                       ("ping with trailing bytes", P("ping") + b"\x00")]:
        check(f"pinger: {label} -> unknown message", g.call(msg), unknown)
    check("pinger: unknown cast answers nothing", g.cast("what"), None)
    check("pinger: snapshot", g.snapshot(), b"")
    check("pinger: upgrade", g.upgrade("0.1.0", b""), None)

    # many pending calls, answered out of order; the table holds 64
    g = Guest(path)
    g.host.request_ids = iter(range(100, 200))
    for i in range(64):
        g.call(["ask", "<x.9>"], call_id=1000 + i)
    check("pinger: 65th pending call refused", g.call(["ask", "<x.9>"], call_id=2000),
          P(["error", "too many pending calls"]))
    check("pinger: 65th pending after refused", g.call(["after", 1], call_id=2001),
          P(["error", "too many pending calls"]))
    for i in reversed(range(64)):
        g.handle("reply", 100 + i, P(i))
    check("pinger: 64 replies routed", g.host.named("reply"), [(1000 + i, P(i)) for i in reversed(range(64))])
    check("pinger: table free again", g.call(["ask", "<x.9>"], call_id=3000), None)


# ---------------------------------------------------------------------------------------
# components that must be refused


def check_refused():
    eng = engine(False)

    c = component(EXAMPLES / "notaworld.wat")
    check("notaworld: exports only init", sorted(c.type.exports(eng)), ["init"])
    g = Guest(EXAMPLES / "notaworld.wat")
    check("notaworld: init works", g.init(P(None)), None)
    check("notaworld: no handle", g.instance.get_func(g.store, "handle"), None)

    check_raises("core_module: not a component",
                 lambda: cm.Component(eng, (GUESTS / "core_module.wat").read_text()))
    wasmtime.Module(eng, (GUESTS / "core_module.wat").read_text())  # but a valid core module
    check("core_module: a valid core module", True, True)

    component(GUESTS / "bad_import.wat")
    check("bad_import: compiles", True, True)
    check_raises("bad_import: instantiation fails on teleport",
                 lambda: Guest(GUESTS / "bad_import.wat"), "teleport")

    c = component(GUESTS / "wrong_types.wat")
    check("wrong_types: exports the four names", sorted(c.type.exports(eng)),
          ["handle", "init", "snapshot", "upgrade"])
    g = Guest(GUESTS / "wrong_types.wat")
    ty = g.instance.get_func(g.store, "handle").type(g.store)
    params = ty.params
    check("wrong_types: handle takes one u32",
          [(name, type(t).__name__) for name, t in params], [("x", "U32")])
    check("wrong_types: handle returns u32", type(ty.result).__name__, "U32")
    check("wrong_types: handle(41)", g.export("handle", 41), 42)


def check_targets():
    """`wasm-tools component targets` against wit/ (world `process`), when wasm-tools is there."""
    tool = shutil.which("wasm-tools") or str(pathlib.Path(sys.executable).parent / "wasm-tools")
    if not pathlib.Path(tool).exists():
        print("skip  wasm-tools not found: world conformance not checked")
        return
    expected = {EXAMPLES / "echo.wat": None, EXAMPLES / "counter.wat": None,
                EXAMPLES / "crasher.wat": None, EXAMPLES / "pinger.wat": None,
                EXAMPLES / "notaworld.wat": "missing export named `handle`",
                GUESTS / "bad_import.wat": "missing expected export `teleport`",
                GUESTS / "wrong_types.wat": "type mismatch for export `handle`"}
    with tempfile.TemporaryDirectory() as tmp:
        for path, error in expected.items():
            wasm = pathlib.Path(tmp) / (path.stem + ".wasm")
            subprocess.run([tool, "parse", str(path), "-o", str(wasm)], check=True)
            r = subprocess.run([tool, "component", "targets", str(ROOT / "wit"), str(wasm), "--world", "process"],
                               capture_output=True, text=True)
            if error is None:
                check(f"targets: {path.name} implements the process world", (r.returncode, r.stderr), (0, ""))
            else:
                check(f"targets: {path.name} refused ({error})", r.returncode != 0 and error in r.stderr, True)


def main():
    for section in [check_targets, check_echo, check_counter, check_crasher, check_pinger, check_refused]:
        try:
            section()
        except Exception as e:  # a crash in one section should not hide the others
            failed.append(section.__name__)
            print(f"FAIL  {section.__name__} raised {type(e).__name__}: {e}"[:800])
    print(f"{passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
