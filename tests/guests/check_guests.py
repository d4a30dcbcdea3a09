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
import time

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

    `fail` holds the names of host functions that answer err("denied"); `allow` maps a name
    to how many more calls of it succeed before it too answers err("denied") (a quota, as
    the node's capabilities set); everything else answers as the brief says: self
    "<test.1>", request ok(7), send-after ok(9), cancel-timer true, spawn ok("<test.2>"),
    monitor ok(11), now-ms 123. `calls` records every call as (name, *args), in order.
    """

    def __init__(self):
        self.calls = []
        self.fail = set()
        self.allow = {}
        self.request_ids = None  # an iterator of ids to hand out instead of 7
        self.cancel_result = True
        self.now = 123

    def named(self, name):
        return [c[1:] for c in self.calls if c[0] == name]

    def define(self, linker):
        def rec(name, *args):
            self.calls.append((name, *args))
            if name in self.allow:
                if self.allow[name] > 0:
                    self.allow[name] -= 1
                else:
                    self.fail.add(name)

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


def check_counter_downgrade():
    """counter (v1) also takes counter_v2's snapshot, a map with "count", for a downgrade."""
    path = EXAMPLES / "counter.wat"
    g = Guest(path)
    g.init(P({"start": 7}))
    for label, state, count in [
            ("a v2 snapshot", P({"count": 12, "updates": 3}), 12),
            ("count only", P({"count": -5}), -5),
            ("count last, other keys first", P({"updates": 1, "version": "v2", "x": [1, {"a": None}], "count": 2**40}), 2**40),
            ("a non-str key", P({1: "one", "count": 9, b"bin": 2}), 9),
            ("count as int64", b"\x81\xa5count\xd3\x80\x00\x00\x00\x00\x00\x00\x00", -(2**63)),
            ("count as map16", b"\xde\x00\x01\xa5count\x05", 5),
            ("count as str8 key", b"\x81\xd9\x05count\x06", 6),
            ("a later count wins", b"\x82\xa5count\x01\xa5count\x02", 2)]:
        check(f"counter: upgrade from {label}", g.upgrade("v2", state), None)
        check(f"counter: count after upgrade from {label}", g.call("get"), P(count))
    g.upgrade("v2", P({"count": 4}))
    for label, state in [("an empty map", P({})), ("a map without count", P({"updates": 1, "start": 3})),
                         ("count a str", P({"count": "4"})), ("count nil", P({"count": None})),
                         ("count a float", P({"count": 4.0})), ("a truncated map", P({"count": 1, "x": "abc"})[:-1]),
                         ("a map with trailing bytes", P({"count": 1}) + b"\xc0"), ("an array", P([1])),
                         ("a key without value", b"\x81\xa5count"), ("COUNT", P({"COUNT": 1}))]:
        check(f"counter: upgrade {label} -> bad state", g.upgrade("v2", state), "bad state")
    check("counter: count kept after bad map upgrades", g.call("get"), P(4))


def check_counter_v2():
    path = EXAMPLES / "counter_v2.wat"

    def stats(count, updates):
        return P({"count": count, "updates": updates, "version": "v2"})

    g = Guest(path)
    check("counter_v2: init nil", g.init(P(None)), None)
    check("counter_v2: stats after nil", g.call("stats"), stats(0, 0))
    check("counter_v2: stats bytes, keys in order",
          g.call("stats"), b"\x83\xa5count\x00\xa7updates\x00\xa7version\xa2v2")
    check("counter_v2: init empty args", g.init(b""), None)
    check("counter_v2: init {}", g.init(P({})), None)
    g.call(3)
    check("counter_v2: init {start} among other keys", g.init(P({"a": [1, 2], 5: None, "start": 41, "z": {}})), None)
    check("counter_v2: init resets updates", g.call("stats"), stats(41, 0))
    g.call(1)
    check("counter_v2: init nil resets both", (g.init(P(None)), g.call("stats")), (None, stats(0, 0)))
    g.call(1)
    check("counter_v2: init empty resets both", (g.init(b""), g.call("stats")), (None, stats(0, 0)))
    for label, args in [("a str", P("x")), ("an int", P(3)), ("start a str", P({"start": "x"})),
                        ("a truncated map", b"\x82\xa5start\x01"), ("nil with trailing bytes", b"\xc0\xc0")]:
        check(f"counter_v2: init {label} -> bad args", g.init(args), "bad args")

    g = Guest(path)
    g.init(P({"start": 10}))
    check("counter_v2: call int adds", g.call(5), P(15))
    check("counter_v2: cast int adds, no reply", g.cast(5), None)
    check("counter_v2: cast incr, no reply", g.cast("incr"), None)
    check("counter_v2: call incr", g.call("incr"), P(22))
    check("counter_v2: call get", g.call("get"), P(22))
    check("counter_v2: call negative", g.call(-30), P(-8))
    check("counter_v2: 0 is not an update", g.call(0), P(-8))
    check("counter_v2: cast stats, no reply", g.cast("stats"), None)
    check("counter_v2: stats counts updates", g.call("stats"), stats(-8, 5))
    check("counter_v2: str8 incr", g.call(b"\xd9\x04incr"), P(-7))
    check("counter_v2: uint64", g.call(b"\xcf\x00\x00\x00\x01\x00\x00\x00\x00"), P(2**32 - 7))
    for label, msg in [("an unknown str", P("nope")), ("a float", P(1.5)), ("a list", P(["stats"])),
                       ("nil", P(None)), ("empty", b""), ("stats with trailing bytes", P("stats") + b"\x00"),
                       ("a map", P({"count": 1}))]:
        check(f"counter_v2: call {label} -> unknown message", g.call(msg), "unknown message")
    check("counter_v2: cast unknown -> unknown message", g.cast("nope"), "unknown message")
    for kind in ["reply", "failed", "down", "timer"]:
        check(f"counter_v2: {kind} envelope ignored", g.handle(kind, 1, P(100)), None)
    check("counter_v2: exit envelope ignored", g.handle("exit", None, P(100), "<x.1>"), None)
    check("counter_v2: unchanged by errors and other kinds", g.call("stats"), stats(2**32 - 7, 7))
    check("counter_v2: snapshot", g.snapshot(), P({"count": 2**32 - 7, "updates": 7}))
    check("counter_v2: snapshot bytes", g.snapshot(), b"\x82\xa5count\xce\xff\xff\xff\xf9\xa7updates\x07")

    # upgrade: a v1 int, a v2 map, extremes encoded shortest
    g2 = Guest(path)
    check("counter_v2: upgrade from a v2 snapshot", g2.upgrade("v2", g.snapshot()), None)
    check("counter_v2: stats after upgrade from v2", g2.call("stats"), stats(2**32 - 7, 7))
    for label, state, count, updates in [
            ("a v1 int", P(41), 41, 0), ("a negative v1 int", P(-(2**40)), -(2**40), 0),
            ("count only", P({"count": 3}), 3, 0),
            ("updates first, other keys", P({"updates": 9, "x": [1, {"y": b"z"}], 4: 4, "count": -1}), -1, 9),
            ("extremes", P({"count": -(2**63), "updates": 2**63 - 1}), -(2**63), 2**63 - 1),
            ("count as map16", b"\xde\x00\x02\xa5count\x05\xa7updates\xd0\x80", 5, -128)]:
        check(f"counter_v2: upgrade from {label}", g2.upgrade("v1", state), None)
        check(f"counter_v2: stats after upgrade from {label}", g2.call("stats"), stats(count, updates))
        check(f"counter_v2: snapshot after upgrade from {label}", g2.snapshot(),
              P({"count": count, "updates": updates}))
    g2.upgrade("v1", P({"count": 8, "updates": 2}))
    for label, state in [("a str", P("3")), ("empty", b""), ("nil", P(None)), ("an empty map", P({})),
                         ("updates only", P({"updates": 1})), ("count a str", P({"count": "1"})),
                         ("updates a str", P({"count": 1, "updates": "2"})), ("updates nil", P({"count": 1, "updates": None})),
                         ("an int with trailing bytes", P(1) + b"\x01"), ("a map with trailing bytes", P({"count": 1}) + b"\x01"),
                         ("a truncated map", P({"count": 1, "updates": 300})[:-1]), ("an array", P([1, 2]))]:
        check(f"counter_v2: upgrade {label} -> bad state", g2.upgrade("v1", state), "bad state")
    check("counter_v2: state kept after bad upgrades", g2.call("stats"), stats(8, 2))
    check("counter_v2: updates continue after upgrade", (g2.call("incr"), g2.call("stats")), (P(9), stats(9, 3)))


def check_upgrade_roundtrip():
    """counter v1 -> v2 -> v1 through real instances, as a hot upgrade and a downgrade do."""
    v1 = Guest(EXAMPLES / "counter.wat")
    check("roundtrip: v1 init", v1.init(P({"start": 40})), None)
    check("roundtrip: v1 at 41", v1.call("incr"), P(41))
    s = v1.snapshot()
    check("roundtrip: v1 snapshot is an int", s, P(41))
    v2 = Guest(EXAMPLES / "counter_v2.wat")
    check("roundtrip: v2 upgrade from v1", v2.upgrade("v1", s), None)
    check("roundtrip: v2 stats", U(v2.call("stats")), {"count": 41, "updates": 0, "version": "v2"})
    check("roundtrip: v2 incr", v2.call("incr"), P(42))
    s2 = v2.snapshot()
    check("roundtrip: v2 snapshot", U(s2), {"count": 42, "updates": 1})
    back = Guest(EXAMPLES / "counter.wat")
    check("roundtrip: v1 upgrade from v2 (downgrade)", back.upgrade("v2", s2), None)
    check("roundtrip: v1 get 42", back.call("get"), P(42))
    check("roundtrip: v1 snapshot again an int", back.snapshot(), P(42))
    # and up again: the downgraded state starts updates from 0
    again = Guest(EXAMPLES / "counter_v2.wat")
    again.upgrade("v1", back.snapshot())
    check("roundtrip: v2 again", U(again.call("stats")), {"count": 42, "updates": 0, "version": "v2"})
    # the old instance kept working throughout (a rolled-back upgrade goes on with it)
    check("roundtrip: old v1 untouched", v1.call("get"), P(41))


def check_counter_variants():
    """counter_reject and counter_trap: counter v1 with an upgrade that refuses or traps."""
    for name in ["counter_reject", "counter_trap"]:
        g = Guest(EXAMPLES / f"{name}.wat")
        check(f"{name}: init {{start}}", g.init(P({"x": 1, "start": 5})), None)
        check(f"{name}: call int", g.call(5), P(10))
        check(f"{name}: cast incr", g.cast("incr"), None)
        check(f"{name}: call get", g.call("get"), P(11))
        check(f"{name}: unknown", g.call("stats"), "unknown message")
        check(f"{name}: init bad args", g.init(P("x")), "bad args")
        check(f"{name}: down ignored", g.handle("down", 1, P(1)), None)
        check(f"{name}: snapshot", g.snapshot(), P(11))

    path = EXAMPLES / "counter_reject.wat"
    g = Guest(path)
    g.init(P({"start": 3}))
    long = "v" + "9" * 300
    for label, version, state in [("v1 state", "v1", P(41)), ("v2 state", "v2", P({"count": 1, "updates": 0})),
                                  ("empty version", "", P(1)), ("a unicode version", "v1-é✓", P(1)),
                                  ("a long version", long, b"\x00" * 5000)]:
        check(f"counter_reject: upgrade {label}", g.upgrade(version, state), "refusing state from " + version)
    check("counter_reject: count kept", g.call("get"), P(3))
    check("counter_reject: snapshot kept", g.snapshot(), P(3))

    path = EXAMPLES / "counter_trap.wat"
    check_raises("counter_trap: upgrade traps", lambda: Guest(path).upgrade("v1", P(41)), "unreachable")
    check_raises("counter_trap: upgrade of nothing traps", lambda: Guest(path).upgrade("", b""), "unreachable")
    g = Guest(path)
    g.init(P({"start": 3}))
    check_raises("counter_trap: upgrade after init traps", lambda: g.upgrade("v2", P({"count": 1})), "unreachable")


def check_slow_upgrade():
    """slow_upgrade: counter v1 whose upgrade never returns (stopped by fuel or an epoch)."""
    path = EXAMPLES / "slow_upgrade.wat"
    g = Guest(path)
    check("slow_upgrade: init {start}", g.init(P({"start": 5})), None)
    check("slow_upgrade: call int", g.call(5), P(10))
    check("slow_upgrade: cast incr", g.cast("incr"), None)
    check("slow_upgrade: call get", g.call("get"), P(11))
    check("slow_upgrade: unknown", g.call("stats"), "unknown message")
    check("slow_upgrade: snapshot", g.snapshot(), P(11))
    check_raises("slow_upgrade: upgrade runs out of fuel",
                 lambda: Guest(path, fuel=10_000_000).upgrade("v1", P(41)), "fuel")
    check_raises("slow_upgrade: upgrade of nothing runs out of fuel",
                 lambda: Guest(path, fuel=10_000_000).upgrade("", b""), "fuel")
    # without fuel, an epoch deadline stops it: a real loop, not a trap in disguise
    cfg = wasmtime.Config()
    cfg.epoch_interruption = True
    eng = wasmtime.Engine(cfg)
    linker = cm.Linker(eng)
    Host().define(linker)
    store = wasmtime.Store(eng)
    store.set_epoch_deadline(1)
    inst = linker.instantiate(store, cm.Component(eng, path.read_text()))
    upgrade = inst.get_func(store, "upgrade")
    timer = __import__("threading").Timer(0.05, eng.increment_epoch)
    started = time.perf_counter()
    timer.start()
    check_raises("slow_upgrade: upgrade stopped by the epoch deadline",
                 lambda: upgrade(store, "v1", P(41)), "interrupt")
    took = time.perf_counter() - started
    check("slow_upgrade: it looped until the epoch moved", took >= 0.04, True)


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


def check_crasher_abuse():
    """The commands that abuse the host (timers, spawn-loop, spam to a target) and the
    replies and requests the host must cope with (deep, nested-big, liar, unhashable,
    self-call, last-answer)."""
    path = EXAMPLES / "crasher.wat"

    g = Guest(path)
    check("crasher: timers sets 10000", g.call("timers"), P(10000))
    timers = g.host.named("send-after")
    check("crasher: timers tried 10000", len(timers), 10000)
    check("crasher: timers go to self, 't', 60 s", set(timers), {("<test.1>", P("t"), 60000)})
    g = Guest(path)
    g.host.allow["send-after"] = 25
    check("crasher: timers counts only ok (quota 25)", g.call("timers"), P(25))
    check("crasher: timers tried all 10000 anyway", len(g.host.named("send-after")), 10000)
    g = Guest(path)
    g.host.fail.add("send-after")
    check("crasher: timers all denied -> 0", g.call("timers"), P(0))
    check("crasher: ping after denied timers", g.call("ping"), P("pong"))
    g = Guest(path)
    check("crasher: timers (cast) no reply", g.cast("timers"), None)
    check("crasher: timers (cast) still sets them", len(g.host.named("send-after")), 10000)

    g = Guest(path)
    check("crasher: spawn-loop spawns 10000", g.call("spawn-loop"), P(10000))
    spawns = g.host.named("spawn")
    check("crasher: spawn-loop tried 10000", len(spawns), 10000)
    check("crasher: spawn-loop spawns echo with nil", set(spawns), {("echo", P(None))})
    g = Guest(path)
    g.host.allow["spawn"] = 5
    check("crasher: spawn-loop counts only ok (quota 5)", g.call("spawn-loop"), P(5))
    g = Guest(path)
    g.host.fail.add("spawn")
    check("crasher: spawn-loop all denied -> 0", g.call("spawn-loop"), P(0))

    g = Guest(path)
    check("crasher: spam target sends 100000", g.call(["spam", "<x.9>"]), P(100000))
    sends = g.host.named("send")
    check("crasher: spam target tried 100000", len(sends), 100000)
    check("crasher: spam target sends 'x' to target", set(sends), {("<x.9>", P("x"))})
    long_target = "workers/" + "t" * 300  # a str16
    g = Guest(path)
    g.host.allow["send"] = 10
    check("crasher: spam target counts only ok (quota 10)", g.call(["spam", long_target]), P(10))
    check("crasher: spam a str16 target, as sent", g.host.named("send")[0], (long_target, P("x")))
    g = Guest(path)
    g = Guest(path)
    check("crasher: spam target 7 times", g.call(["spam", "<x.9>", 7]), P(7))
    check("crasher: spam target 7 times, as sent", g.host.named("send"), [("<x.9>", P("x"))] * 7)
    g.host.allow["send"] = 2
    check("crasher: spam target n counts only ok (quota 2)", g.call(["spam", "<x.9>", 5]), P(2))
    g = Guest(path)
    for n in [0, -1]:
        check(f"crasher: spam target {n} times sends nothing", g.call(["spam", "<x.9>", n]), P(0))
    check("crasher: spam n as uint32", g.call(b"\x93\xa4spam\xa1t\xce\x00\x00\x00\x03"), P(3))
    g = Guest(path)
    for label, msg in [("spam without target", P(["spam"])), ("spam an int target", P(["spam", 5])),
                       ("spam with a str count", P(["spam", "<x>", "1"])),
                       ("spam with a fourth element", P(["spam", "<x>", 1, 2])),
                       ("spam with trailing bytes", P(["spam", "<x>"]) + b"\x00")]:
        check(f"crasher: {label} -> pong", g.call(msg), P("pong"))
    check("crasher: malformed spam sends nothing", g.host.named("send"), [])

    g = Guest(path)
    deep = g.call("deep")
    check("crasher: deep is 100001 bytes", len(deep), 100001)
    check("crasher: deep is 0x91 * 100000 + nil", deep == b"\x91" * 100000 + b"\xc0", True)
    for n, value in [(0, None), (-3, None), (1, [None]), (3, [[[None]]])]:
        check(f"crasher: deep {n}", g.call(["deep", n]), P(value))
    check("crasher: deep 1000 decodes", U(g.call(["deep", 1000])) is not None, True)
    nested = g.call("nested-big")
    check("crasher: nested-big is 1000001 bytes", len(nested), 1000001)
    check("crasher: nested-big shape", (nested[:4], nested[-2:], nested.count(b"\x91")),
          (b"\x91" * 4, b"\x91\xc0", 1000000))
    for label, msg in [("deep without n", P(["deep"])), ("deep with a str", P(["deep", "x"])),
                       ("deep with a third element", P(["deep", 1, 2]))]:
        check(f"crasher: {label} -> pong", g.call(msg), P("pong"))
    check("crasher: liar", g.call("liar"), b"\xc6\xff\xff\xff\xff\x00")
    check("crasher: unhashable", g.call("unhashable"), b"\x81\x91\x01\x01")
    check("crasher: deep (cast) no reply", g.cast("deep"), None)
    check("crasher: ping after deep", g.call("ping"), P("pong"))

    g = Guest(path)
    check("crasher: last-answer before any", g.call("last-answer"), P(None))
    check("crasher: self-call answers the request id", g.call("self-call"), P(7))
    check("crasher: self-call requests ping from self, 100 ms",
          g.host.named("request"), [("<test.1>", P("ping"), 100)])
    check("crasher: reply envelope remembered", g.handle("reply", 7, P("pong")), None)
    check("crasher: last-answer after a reply", g.call("last-answer"), P(["reply", "pong"]))
    check("crasher: failed envelope remembered", g.handle("failed", 7, P("timeout")), None)
    check("crasher: last-answer after a failure", g.call("last-answer"), P(["failed", "timeout"]))
    check("crasher: failed with a reason", g.handle("failed", 8, P(["trap", "unreachable"])), None)
    check("crasher: last-answer keeps the payload as-is",
          g.call("last-answer"), P(["failed", ["trap", "unreachable"]]))
    g.handle("reply", 9, P(b"z" * 9000))
    check("crasher: a payload over 8000 bytes is remembered as nil", g.call("last-answer"), P(["reply", None]))
    g.handle("reply", 10, P(b"z" * 7000))
    check("crasher: a payload under 8000 bytes is kept", g.call("last-answer"), P(["reply", b"z" * 7000]))
    check("crasher: down is not an answer", (g.handle("down", 3, P("x")), g.call("last-answer")),
          (None, P(["reply", b"z" * 7000])))
    g.host.request_ids = iter([2**40])
    check("crasher: self-call with msg and timeout", g.call(["self-call", {"a": [1, "b"]}, 250]), P(2**40))
    check("crasher: self-call with msg sent as-is", g.host.named("request")[-1],
          ("<test.1>", P({"a": [1, "b"]}), 250))
    g.host.fail.add("request")
    check("crasher: self-call denied", g.call("self-call"), P(["error", "denied"]))
    for label, msg in [("self-call without timeout", P(["self-call", "x"])),
                       ("self-call with a str timeout", P(["self-call", "x", "y"]))]:
        check(f"crasher: {label} -> pong", g.call(msg), P("pong"))


def check_crasher_spin():
    path = EXAMPLES / "crasher.wat"
    g = Guest(path)
    for n in [1, 2, 1000, 1_000_000]:
        check(f"crasher: spin {n}", g.call(["spin", n]), P("spun"))
    check("crasher: spin 0 (no iterations)", g.call(["spin", 0]), P("spun"))
    check("crasher: spin negative (no iterations)", g.call(["spin", -5]), P("spun"))
    check("crasher: spin as uint64", g.call(b"\x92\xa4spin\xcf\x00\x00\x00\x00\x00\x00\x00\x10"), P("spun"))
    check("crasher: spin (cast) no reply", g.cast(["spin", 1000]), None)
    for label, msg in [("spin without n", P(["spin"])), ("spin with a str", P(["spin", "x"])),
                       ("spin with a float", P(["spin", 1.5])), ("spin with a third element", P(["spin", 1, 2])),
                       ("another array command", P(["spun", 1])), ("bare str spin", P("spin")),
                       ("spin with trailing bytes", P(["spin", 1]) + b"\x00"), ("an empty array", P([])),
                       ("a truncated spin", P(["spin", 300])[:-1])]:
        check(f"crasher: {label} -> pong", g.call(msg), P("pong"))
    # a plain counted loop, 7 units of fuel per iteration (the header says so); all three
    # counts are uint32 in msgpack, so decoding them costs the same
    used = []
    for n in [70_000, 80_000, 1_070_000]:
        g = Guest(path, fuel=100_000_000)
        before = g.store.get_fuel()
        g.call(["spin", n])
        used.append(before - g.store.get_fuel())
    check("crasher: spin costs 7 fuel per iteration", (used[1] - used[0], used[2] - used[0]), (70_000, 7_000_000))
    check_raises("crasher: spin runs out of fuel", lambda: Guest(path, fuel=20_000_000).call(["spin", 10_000_000]), "fuel")
    # the long one finishes (no fuel here); it is a real loop, not optimised away
    g = Guest(path)
    start = time.perf_counter()
    check("crasher: spin 300000000 finishes", g.call(["spin", 300_000_000]), P("spun"))
    took = time.perf_counter() - start
    check("crasher: spin 300000000 takes a measurable time", took > 0.01, True)
    if VERBOSE:
        print(f"      (spin 300000000 took {took:.3f} s)")
    check("crasher: ping after spin", g.call("ping"), P("pong"))


# ---------------------------------------------------------------------------------------
# blob


BLOB_MAX = 8 << 20


def pattern(n):
    """What blob's init fills in: byte i is i mod 251."""
    return (bytes(range(251)) * (n // 251 + 1))[:n]


def pattern_sum(n):
    return (n // 251 * sum(range(251)) + sum(range(n % 251))) % 2**32


def check_blob():
    path = EXAMPLES / "blob.wat"
    g = Guest(path)
    check("blob: init nil", g.init(P(None)), None)
    check("blob: size after nil", g.call("size"), P(0))
    check("blob: sum after nil", g.call("sum"), P(0))
    check("blob: snapshot after nil", g.snapshot(), b"")
    check("blob: init empty args", g.init(b""), None)
    check("blob: init {} is empty", (g.init(P({})), g.call("size")), (None, P(0)))
    check("blob: ping", g.call("ping"), P("pong"))
    check("blob: cast ping, no reply", g.cast("ping"), None)
    for n in [0, 1, 250, 251, 252, 502, 503, 1000, 65536, 100_000]:
        check(f"blob: init size {n}", g.init(P({"size": n})), None)
        check(f"blob: size {n}", g.call("size"), P(n))
        check(f"blob: sum {n}", g.call("sum"), P(pattern_sum(n)))
        check(f"blob: snapshot {n} is the pattern", g.snapshot() == pattern(n), True)
    check("blob: init {size} among other keys", g.init(P({"a": [1, {"b": None}], 3: "x", "size": 300, "z": 1.5})), None)
    check("blob: size 300", g.call("size"), P(300))
    check("blob: init size as uint32", g.init(b"\x81\xa4size\xce\x00\x00\x01\x00"), None)
    check("blob: size 256", g.call("size"), P(256))
    check("blob: init 8 MiB", g.init(P({"size": BLOB_MAX})), None)
    check("blob: size 8 MiB", g.call("size"), P(BLOB_MAX))
    check("blob: sum 8 MiB", g.call("sum"), P(pattern_sum(BLOB_MAX)))
    for label, args in [("size 8 MiB + 1", P({"size": BLOB_MAX + 1})), ("size -1", P({"size": -1})),
                        ("size 2^32", P({"size": 2**32})), ("size a str", P({"size": "10"})),
                        ("size nil", P({"size": None})), ("a str", P("size")), ("an int", P(10)),
                        ("a truncated map", b"\x81\xa4size\xcd\x01"), ("nil with trailing bytes", b"\xc0\x00")]:
        check(f"blob: init {label} -> bad args", g.init(args), "bad args")
    check("blob: bad args keep the blob", g.call("size"), P(BLOB_MAX))
    check("blob: init smaller again", g.init(P({"size": 10})), None)
    check("blob: smaller blob's sum", g.call("sum"), P(45))

    # ints echo; anything else is an unknown message
    for n in [0, 1, -1, 127, 128, 2**32, -(2**63), 2**63 - 1]:
        check(f"blob: call int {n}", g.call(n), P(n))
    check("blob: call uint8 5 answers it shortest", g.call(b"\xcc\x05"), P(5))
    check("blob: cast int, no reply", g.cast(7), None)
    check("blob: cast size, no reply", g.cast("size"), None)
    check("blob: cast sum, no reply", g.cast("sum"), None)
    for label, msg in [("an unknown str", P("nope")), ("a float", P(1.5)), ("nil", P(None)), ("empty", b""),
                       ("a list", P(["size"])), ("size with trailing bytes", P("size") + b"\x00")]:
        check(f"blob: call {label} -> unknown message", g.call(msg), "unknown message")
    for kind in ["reply", "failed", "down", "timer"]:
        check(f"blob: {kind} envelope ignored", g.handle(kind, 1, P("size")), None)
    check("blob: exit envelope ignored", g.handle("exit", None, P("size"), "<x.1>"), None)

    # the bump heap lives above the blob: big payloads must not touch it
    g = Guest(path)
    g.init(P({"size": 100_000}))
    want = P(pattern_sum(100_000))
    check("blob: 1 MiB payload (unknown message)", g.call(P(b"\xff" * (1 << 20))), "unknown message")
    check("blob: 300 KB payload of 0xff", g.call(b"\xff" * 300_000), "unknown message")
    check("blob: sum kept after big payloads", g.call("sum"), want)
    check("blob: snapshot kept after big payloads", g.snapshot() == pattern(100_000), True)

    # snapshot -> upgrade into fresh instances, and into ones holding bigger / smaller blobs
    for n in [100, 10 << 10, 1 << 20]:
        old = Guest(path)
        old.init(P({"size": n}))
        state = old.snapshot()
        check(f"blob {n}: snapshot is raw, {n} bytes", (len(state), state[:3]), (n, pattern(3)))
        want_sum = old.call("sum")
        for label, setup in [("a fresh instance", None), ("an instance with 2 MiB", 2 << 20),
                             ("an instance with 10 bytes", 10)]:
            new = Guest(path)
            if setup is not None:
                new.init(P({"size": setup}))
            check(f"blob {n}: upgrade into {label}", new.upgrade("blob-v1", state), None)
            check(f"blob {n}: size after upgrade into {label}", new.call("size"), P(n))
            check(f"blob {n}: sum after upgrade into {label}", new.call("sum"), want_sum)
        check(f"blob {n}: snapshot of the upgraded one", new.snapshot() == state, True)
        check(f"blob {n}: calls after upgrade", (new.call(5), new.call("ping")), (P(5), P("pong")))
        check(f"blob {n}: sum still right after calls", new.call("sum"), want_sum)

    # arbitrary bytes as state, repeated upgrades in one instance
    g = Guest(path)
    for label, state in [("random bytes", bytes((i * 7919 + 13) % 256 for i in range(70_000))),
                         ("all 0xff", b"\xff" * 50_000), ("empty", b""), ("one byte", b"\x07")]:
        check(f"blob: upgrade {label}", g.upgrade("x", state), None)
        check(f"blob: {label} size", g.call("size"), P(len(state)))
        check(f"blob: {label} sum", g.call("sum"), P(sum(state) % 2**32))
        check(f"blob: {label} snapshot", g.snapshot() == state, True)

    # the 8 MiB limit of upgrade; a copy with a 4096-byte limit, as lowering 8 MiB through
    # wasmtime-py's dynamic API takes seconds
    text = path.read_text()
    check("blob: the limit appears twice in code", (text.count("(i64.const 8388608)"), text.count("(i32.const 8388608)")),
          (1, 1))
    with tempfile.TemporaryDirectory() as tmp:
        small = pathlib.Path(tmp) / "blob_4k.wat"
        small.write_text(text.replace("(i64.const 8388608)", "(i64.const 4096)")
                             .replace("(i32.const 8388608)", "(i32.const 4096)"))
        g = Guest(small)
        g.init(P({"size": 1000}))
        check("blob (4 KiB limit): init 4096", g.init(P({"size": 4096})), None)
        check("blob (4 KiB limit): init 4097 -> bad args", g.init(P({"size": 4097})), "bad args")
        check("blob (4 KiB limit): upgrade 4096", g.upgrade("v", b"\x01" * 4096), None)
        check("blob (4 KiB limit): upgrade 4097 -> state too large", g.upgrade("v", b"\x02" * 4097), "state too large")
        check("blob (4 KiB limit): blob kept after too large", (g.call("size"), g.call("sum")), (P(4096), P(4096)))
        check("blob (4 KiB limit): upgrade 1 MiB -> state too large", g.upgrade("v", b"\x02" * (1 << 20)), "state too large")
        check("blob (4 KiB limit): blob still kept", g.snapshot(), b"\x01" * 4096)

    # memory grows only as the blob needs: the default limit, then a tight one
    g = Guest(path, memory_limit=4 << 20)
    check("blob: 3 MiB under a 4 MiB memory limit", g.init(P({"size": 3 << 20})), None)
    check("blob: 3 MiB sum", g.call("sum"), P(pattern_sum(3 << 20)))
    check("blob: 8 MiB under a 4 MiB memory limit -> out of memory", g.init(P({"size": BLOB_MAX})), "out of memory")
    check("blob: 3 MiB kept after out of memory", g.call("size"), P(3 << 20))


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
                EXAMPLES / "counter_v2.wat": None, EXAMPLES / "counter_reject.wat": None,
                EXAMPLES / "counter_trap.wat": None, EXAMPLES / "blob.wat": None,
                EXAMPLES / "crasher.wat": None, EXAMPLES / "pinger.wat": None,
                EXAMPLES / "slow_upgrade.wat": None,
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
    for section in [check_targets, check_echo, check_counter, check_counter_downgrade, check_counter_v2,
                    check_upgrade_roundtrip, check_counter_variants, check_crasher, check_crasher_abuse, check_crasher_spin,
                    check_slow_upgrade,
                    check_blob, check_pinger, check_refused]:
        try:
            section()
        except Exception as e:  # a crash in one section should not hide the others
            failed.append(section.__name__)
            print(f"FAIL  {section.__name__} raised {type(e).__name__}: {e}"[:800])
    print(f"{passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
