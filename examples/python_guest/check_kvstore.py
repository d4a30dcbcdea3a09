#!/usr/bin/env python3
"""Check the kvstore Python guest with the stock wasmtime-py component API.

    python examples/python_guest/check_kvstore.py [--no-build]

Builds build/guests/kvstore.wasm first through scripts/build_python_guest.py (a no-op
when it is up to date; ``--no-build`` skips that), then loads it with
``wasmtime.component``, links a fake ``airssys:actor/host@0.1.0`` whose calls are
recorded, and walks through the guest's whole protocol: init, every call and cast,
snapshot/upgrade, a deferred reply, the trap of "crash" and the err of "fail".
The bundled minipack codec is also checked against the reference ``msgpack``
package when that is installed.

Prints one line per check and ends with ``N passed, N failed``; exits 1 on a failure.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

import wasmtime
from wasmtime import component as wc

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
WASM = REPO / "build" / "guests" / "kvstore.wasm"
SELF = "<test.1>"

sys.dont_write_bytecode = True  # leave no __pycache__ in the guest's source folder
sys.path.insert(0, str(HERE / "common"))
import minipack  # noqa: E402 - the guest's own codec, importable on the host too

try:
    import msgpack as reference  # the C-accelerated reference implementation
except ImportError:  # pragma: no cover - msgpack is optional here
    reference = None


def pack(obj: Any) -> bytes:
    return reference.packb(obj, use_bin_type=True) if reference else minipack.packb(obj)


def unpack(data: bytes) -> Any:
    if reference:
        return reference.unpackb(data, raw=False, strict_map_key=False, use_list=True)
    return minipack.unpackb(data)


# --------------------------------------------------------------------------- results

passed = 0
failed = 0


def check(name: str, ok: bool, detail: Any = "") -> None:
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {name}")
    else:
        failed += 1
        print(f"FAIL  {name}: {detail}")


def expect(name: str, got: Any, want: Any) -> None:
    check(name, got == want and type(got) is type(want), f"got {got!r}, want {want!r}")


# --------------------------------------------------------------------------- host + guest


class FakeHost:
    """Every import of airssys:actor/host@0.1.0, answering ok and recording calls."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.logs: list[tuple[str, str]] = []
        self.replies: list[tuple[int, bytes]] = []

    def define(self, linker: wc.Linker) -> None:
        def rec(name: str, result: Callable[..., Any]) -> Callable[..., Any]:
            def func(_store: Any, *args: Any) -> Any:
                self.calls.append((name, *args))
                return result(*args)
            return func

        # A result<T, string> whose T is not string lifts/lowers untagged in
        # wasmtime-py: ok is the bare value (None for `_`), err is the bare str.
        # result<address, string> has str on both sides, so it takes a Variant.
        funcs: dict[str, Callable[..., Any]] = {
            "self": lambda: SELF,
            "send": lambda to, payload: None,
            "request": lambda to, payload, timeout_ms: 1,
            "send-after": lambda to, payload, delay_ms: 2,
            "cancel-timer": lambda timer: True,
            "spawn": lambda component, args: wc.Variant("ok", "<test.2>"),
            "link": lambda target: None,
            "monitor": lambda target: 3,
            "stop": lambda reason: None,
            "log": lambda level, message: self.logs.append((level, message)),
            "now-ms": lambda: int(time.time() * 1000),
            "reply": lambda call, payload: self.replies.append((call, bytes(payload))),
        }
        with linker.root() as root:
            with root.add_instance("airssys:actor/types@0.1.0"):
                pass  # types only: nothing to define
            with root.add_instance("airssys:actor/host@0.1.0") as host:
                for name, result in funcs.items():
                    host.add_func(name, rec(name, result))


class Guest:
    """One instance of the component, with its four exports."""

    def __init__(self, engine: wasmtime.Engine, component: wc.Component) -> None:
        self.host = FakeHost()
        linker = wc.Linker(engine)
        self.host.define(linker)
        self.store = wasmtime.Store(engine)
        instance = linker.instantiate(self.store, component)
        self.funcs = {n: instance.get_func(self.store, n) for n in ("init", "handle", "snapshot", "upgrade")}
        missing = [n for n, f in self.funcs.items() if f is None]
        if missing:
            raise SystemExit(f"component does not export {missing}")

    def _call(self, name: str, *args: Any) -> Any:
        func = self.funcs[name]
        result = func(self.store, *args)
        func.post_return(self.store)
        return result

    def init(self, args: bytes) -> Any:
        return self._call("init", args)

    def handle(self, kind: wc.Variant, payload: bytes, sender: str | None = None) -> Any:
        env = wc.Record()
        env.kind = kind
        env.sender = sender
        env.payload = payload
        return self._call("handle", env)

    def call(self, request: Any, call_id: int = 7) -> Any:
        """The reply decoded, or ("err", reason), or None for no reply."""
        r = self.handle(wc.Variant("call", call_id), pack(request), sender="<test.9>")
        if isinstance(r, str):
            return ("err", r)
        return None if r is None else unpack(r)

    def cast(self, request: Any) -> Any:
        return self.handle(wc.Variant("cast"), pack(request), sender="<test.9>")

    def snapshot(self) -> bytes:
        return self._call("snapshot")

    def upgrade(self, from_version: str, state: bytes) -> Any:
        return self._call("upgrade", from_version, state)


# --------------------------------------------------------------------------- checks


def check_codec() -> None:
    samples = [
        None, True, False, 0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32,
        2**64 - 1, -1, -32, -33, -128, -129, -32768, -32769, -2**31, -2**31 - 1, -2**63,
        0.0, -1.5, 1e300, math.inf, "", "a", "é" * 40, "x" * 300, "y" * 70000,
        b"", b"\x00\xff", b"z" * 300, b"w" * 70000, [], [1, [2, [3]]], list(range(20)),
        list(range(70000)), {}, {"a": 1, 2: [None]}, {str(i): i for i in range(20)},
    ]
    for value in samples:
        encoded = minipack.packb(value)
        label = repr(value)[:40]
        if reference:
            expect(f"codec: packb {label} matches msgpack", encoded,
                   reference.packb(value, use_bin_type=True))
            ref_decoded = reference.unpackb(encoded, raw=False, strict_map_key=False)
            check(f"codec: msgpack reads packb {label}", ref_decoded == value, ref_decoded)
        check(f"codec: round trip {label}", minipack.unpackb(encoded) == value)
    # Widths the encoder never picks, and float32, must still decode.
    expect("codec: uint64 of small value", minipack.unpackb(b"\xcf" + (5).to_bytes(8, "big")), 5)
    expect("codec: int8 positive", minipack.unpackb(b"\xd0\x05"), 5)
    expect("codec: float32", minipack.unpackb(b"\xca\x3f\xc0\x00\x00"), 1.5)
    expect("codec: str8 short", minipack.unpackb(b"\xd9\x01a"), "a")
    expect("codec: array key becomes tuple", minipack.unpackb(b"\x81\x92\x01\x02\xc0"), {(1, 2): None})
    for label, bad in [("ext", b"\xd4\x01\x00"), ("0xc1", b"\xc1"), ("truncated", b"\xcd\x01"),
                       ("trailing", b"\xc0\xc0"), ("bad utf-8", b"\xa1\xff"), ("empty", b""),
                       ("huge array", b"\xdd\xff\xff\xff\xff"), ("map key", b"\x81\x80\x01"),
                       ("deep", b"\x91" * 600 + b"\xc0")]:
        try:
            minipack.unpackb(bad)
        except minipack.MsgpackError:
            check(f"codec: rejects {label}", True)
        else:
            check(f"codec: rejects {label}", False, "no error")
    for label, bad in [("int 2**64", 2**64), ("int -2**63-1", -2**63 - 1), ("set", {1}),
                       ("object", object()), ("lone surrogate", "\ud800")]:
        try:
            minipack.packb(bad)
        except minipack.MsgpackError:
            check(f"codec: refuses {label}", True)
        else:
            check(f"codec: refuses {label}", False, "no error")


def check_guest(engine: wasmtime.Engine, component: wc.Component) -> None:
    g = Guest(engine, component)
    expect("init nil", g.init(pack(None)), None)
    expect("size of empty", g.call("size"), 0)
    expect("ping", g.call("ping"), "pong")
    expect("put a", g.call(["put", "a", 1]), "ok")
    expect("put b (map value)", g.call(["put", "b", {"x": [1, 2.5, None, True]}]), "ok")
    expect("put negative int key", g.call(["put", -2**63, b"\x00bin"]), "ok")
    expect("get a", g.call(["get", "a"]), 1)
    expect("get b", g.call(["get", "b"]), {"x": [1, 2.5, None, True]})
    expect("get int key, bin value", g.call(["get", -2**63]), b"\x00bin")
    expect("get missing is nil", g.call(["get", "nope"]), None)
    expect("size", g.call("size"), 3)
    expect("delete existing", g.call(["delete", -2**63]), True)
    expect("delete missing", g.call(["delete", -2**63]), False)
    expect("keys sorted", g.call(["put", "0", 0]) and g.call("keys"), ["0", "a", "b"])
    expect("put u64 max", g.call(["put", "big", 2**64 - 1]), "ok")
    expect("get u64 max", g.call(["get", "big"]), 2**64 - 1)
    expect("array key", g.call(["put", [1, "k"], "v"]) and g.call(["get", [1, "k"]]), "v")
    g.call(["delete", [1, "k"]])
    g.call(["delete", "big"])

    # Casts: put works and returns no reply; everything else is ignored.
    expect("cast put returns none", g.cast(["put", "c", 3]), None)
    expect("cast put stored", g.call(["get", "c"]), 3)
    expect("cast get ignored", g.cast(["get", "c"]), None)
    expect("cast crash ignored", g.cast("crash"), None)
    expect("cast garbage ignored", g.handle(wc.Variant("cast"), b"\xc1"), None)
    expect("other kinds ignored", [g.handle(wc.Variant(k, 1), pack("crash"))
                                   for k in ("reply", "failed", "down", "timer")]
           + [g.handle(wc.Variant("exit"), pack("crash"))], [None] * 5)
    expect("keys after casts", g.call("keys"), ["0", "a", "b", "c"])

    # Host calls.
    expect("whoami", g.call("whoami"), SELF)
    expect("log replies ok", g.call("log"), "ok")
    expect("log recorded", g.host.logs, [("info", "kv says hi")])
    expect("deferred reply: handle returns none", g.call("ping-later", call_id=42), None)
    expect("deferred reply: host.reply called", g.host.replies, [(42, pack("pong"))])

    # Errors that are not traps.
    expect("fail is err", g.call("fail"), ("err", "asked to fail"))
    expect("unknown request is err", g.call("bogus")[0], "err")
    expect("undecodable call is err",
           isinstance(g.handle(wc.Variant("call", 8), b"\xc1"), str), True)
    for label, payload in [("invalid UTF-8", b"\xa1\xff"), ("ext type", b"\xd4\x01\x00"),
                           ("deep nesting", b"\x91" * 300 + b"\xc0"), ("trailing bytes", b"\xc0\xc0"),
                           ("map key", pack(["get", {"k": 1}]))]:
        r = g.handle(wc.Variant("call", 8), payload)
        check(f"{label} in a call is err", isinstance(r, str) and r.startswith("bad request"), r)
    nested: Any = "leaf"
    for _ in range(100):
        nested = [nested]
    expect("put 100-deep value", g.call(["put", "deep", nested]), "ok")
    expect("get 100-deep value", g.call(["get", "deep"]), nested)
    g.call(["delete", "deep"])
    big = bytes(range(256)) * 400
    expect("put 100 KB value", g.call(["put", "big", big]), "ok")
    expect("get 100 KB value", g.call(["get", "big"]), big)
    expect("delete 100 KB value", g.call(["delete", "big"]), True)
    expect("still alive after errs", g.call("size"), 4)

    # Snapshot / upgrade.
    snap = g.snapshot()
    expect("snapshot", unpack(snap),
           {"version": 1, "data": {"0": 0, "a": 1, "b": {"x": [1, 2.5, None, True]}, "c": 3}})
    g2 = Guest(engine, component)
    expect("init with data", g2.init(pack({"data": {"p": 1}})), None)
    expect("init data loaded", g2.call(["get", "p"]), 1)
    expect("upgrade from snapshot", g2.upgrade("0.1.0", snap), None)
    expect("upgrade replaced state", g2.call("keys"), ["0", "a", "b", "c"])
    for label, state in [("wrong version", pack({"version": 2, "data": {}})),
                         ("version true", pack({"version": True, "data": {}})),
                         ("no data", pack({"version": 1})),
                         ("not a map", pack([1])),
                         ("not msgpack", b"\xc1")]:
        expect(f"upgrade rejects {label}", g2.upgrade("0.1.0", state), "bad state")
    expect("rejected upgrade kept state", g2.call("size"), 4)

    g4 = Guest(engine, component)
    g4.init(pack(None))
    for key in ["a", [1, "x"], 2, b"b", None, -1.5, True]:
        g4.call(["put", key, 0])
    expect("keys of mixed types sorted by type, then value", g4.call("keys"),
           [None, True, -1.5, 2, "a", b"b", [1, "x"]])

    g3 = Guest(engine, component)
    for label, args in [("a list", pack([1])), ("a string", pack("x")),
                        ("data not a map", pack({"data": 1})),
                        ("extra key", pack({"data": {}, "other": 1})),
                        ("not msgpack", b"\xc1")]:
        r = g3.init(args)
        check(f"init rejects {label}", isinstance(r, str) and r.startswith("bad init args"), r)

    # "crash" raises inside the guest: the call traps and the instance is done.
    try:
        g.call("crash")
    except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
        check("crash traps", True)
        print(f"      ({type(exc).__name__}: {str(exc).splitlines()[-1].strip()})")
    else:
        check("crash traps", False, "no trap")
    expect("crash logged before the trap", g.host.logs[-1],
           ("error", "kvstore crashed: RuntimeError: asked to crash"))
    try:
        g.call("ping")
    except (wasmtime.Trap, wasmtime.WasmtimeError):
        check("trapped instance refuses further calls", True)
    else:
        check("trapped instance refuses further calls", False, "call went through")
    expect("other instances unaffected", g2.call("ping"), "pong")


def main() -> int:
    if "--no-build" not in sys.argv[1:]:
        build = subprocess.run([sys.executable, str(REPO / "scripts" / "build_python_guest.py"), "kvstore"])
        if build.returncode != 0:
            return build.returncode
    if not WASM.is_file():
        print(f"{WASM} is missing: run python scripts/build_python_guest.py", file=sys.stderr)
        return 2

    check_codec()
    engine = wasmtime.Engine()
    started = time.monotonic()
    component = wc.Component.from_file(engine, str(WASM))
    print(f"      (compiled {WASM.stat().st_size / 1e6:.1f} MB in {time.monotonic() - started:.1f} s)")
    started = time.monotonic()
    check_guest(engine, component)
    print(f"      (guest checks took {time.monotonic() - started:.2f} s)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
