"""Loading components: compile once per content hash, cache on disk, check the world.

A component is checked against ``airssys:actor/process`` when it is loaded, before any
process runs it: every export the world requires must be present with the right type,
and every import must be one the host provides. The reference types come from
``world.wasm``, a dummy component generated from ``wit/`` (``make world``).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import component as cm

from .._errors import ComponentWorldMismatch, InvalidComponent
from ._engine import cache_dir, cache_key, engine_host
from ._imports import HOST_INTERFACE, TYPES_INTERFACE, linker

REQUIRED_EXPORTS = ("init", "handle", "snapshot", "upgrade")

_WORLD_PATH = Path(__file__).with_name("world.wasm")


class _World:
    """The reference export and import types of the process world."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        ref = cm.Component(engine, _WORLD_PATH.read_bytes())
        ty = ref.type
        self.exports = {name: ty.exports(engine)[name].ty for name in REQUIRED_EXPORTS}
        imports = ty.imports(engine)
        #: Every item (function or type) of each interface the host provides, by name.
        self.interfaces: dict[str, dict[str, Any]] = {
            name: {item: ext.ty for item, ext in imports[name].ty.exports(engine).items()}
            for name in (TYPES_INTERFACE, HOST_INTERFACE)
        }


_WORLD: _World | None = None


def _world() -> _World:
    global _WORLD
    if _WORLD is None:
        _WORLD = _World(engine_host().engine)
    return _WORLD


def _same_func(a: Any, b: Any) -> bool:
    if not isinstance(a, cm.FuncType) or not isinstance(b, cm.FuncType):
        return False
    pa, pb = a.params, b.params
    if len(pa) != len(pb):
        return False
    for (na, ta), (nb, tb) in zip(pa, pb, strict=False):
        if na != nb or not ta == tb:
            return False
    ra, rb = a.result, b.result
    if (ra is None) != (rb is None):
        return False
    return ra is None or ra == rb


def _same_item(got: Any, want: Any) -> bool:
    """Whether an imported item (a function or a type) is the one the world defines.
    Types compare structurally (wasmtime's own equality), so a guest may declare them
    itself, as every WAT guest does, but must declare them exactly."""
    if isinstance(want, cm.FuncType):
        return _same_func(got, want)
    if isinstance(want, cm.ValType) and isinstance(got, cm.ValType):
        return bool(got == want)
    return False


#: How much of a type :func:`describe` spells out before it abbreviates.
_DESCRIBE_DEPTH = 4
_DESCRIBE_CHARS = 240


def describe(item: Any) -> str:
    """A short WIT-like rendering of a component function or type, for error messages.
    Bounded in depth and length: the types come from an untrusted component."""
    text = _describe(item, _DESCRIBE_DEPTH)
    return text if len(text) <= _DESCRIBE_CHARS else text[: _DESCRIBE_CHARS - 3] + "..."


def _describe(item: Any, depth: int) -> str:
    if depth < 0:
        return "..."
    d = depth - 1
    if isinstance(item, cm.FuncType):
        params = ", ".join(f"{name}: {_describe(t, d)}" for name, t in item.params)
        result = item.result
        return f"func({params})" + ("" if result is None else f" -> {_describe(result, d)}")
    if isinstance(item, cm.ComponentInstanceType):
        return "an instance"
    if isinstance(item, cm.ListType):
        return f"list<{_describe(item.element, d)}>"
    if isinstance(item, cm.OptionType):
        return f"option<{_describe(item.payload, d)}>"
    if isinstance(item, cm.ResultType):
        ok, err = item.ok, item.err
        return f"result<{'_' if ok is None else _describe(ok, d)}, {'_' if err is None else _describe(err, d)}>"
    if isinstance(item, cm.RecordType):
        return "record { " + ", ".join(f"{n}: {_describe(t, d)}" for n, t in item.fields) + " }"
    if isinstance(item, cm.TupleType):
        return "tuple<" + ", ".join(_describe(t, d) for t in item.elements) + ">"
    if isinstance(item, cm.VariantType):
        cases = (n if t is None else f"{n}({_describe(t, d)})" for n, t in item.cases)
        return "variant { " + ", ".join(cases) + " }"
    if isinstance(item, cm.EnumType):
        return "enum { " + ", ".join(item.names) + " }"
    if isinstance(item, cm.FlagsType):
        return "flags { " + ", ".join(item.names) + " }"
    if isinstance(item, cm.OwnType):
        return "own<resource>"
    if isinstance(item, cm.BorrowType):
        return "borrow<resource>"
    if isinstance(item, cm.ValType):
        return type(item).__name__.lower()  # bool, u32, string, ...
    return {cm.ComponentType: "a component", cm.ModuleType: "a core module",
            cm.ResourceType: "a resource"}.get(type(item), type(item).__name__)


def check_world(compiled: cm.Component, engine: wasmtime.Engine) -> None:
    """Raise :class:`ComponentWorldMismatch` naming everything that does not fit.

    Exports: each one the world requires, with exactly its type. Imports: every item of
    ``airssys:actor/types`` and ``airssys:actor/host`` must be one the world defines,
    with the same type; any other interface is refused, except ``wasi:*``, which is
    checked by wasmtime's own linker against the WASI it provides (see
    :func:`_link_problems`).
    """
    world = _world()
    ty = compiled.type
    exports = ty.exports(engine)
    problems: list[str] = []
    for name in REQUIRED_EXPORTS:
        want = world.exports[name]
        if name not in exports:
            problems.append(f"missing export {name!r}")
        elif not _same_func(got := exports[name].ty, want):
            problems.append(f"export {name!r} has the wrong type: {describe(got)}, "
                            f"the world wants {describe(want)}")
    for name, ext in ty.imports(engine).items():
        if name.startswith("wasi:"):
            continue
        expected = world.interfaces.get(name)
        if expected is None:
            problems.append(f"imports {name!r}, which the host does not provide")
            continue
        inst = ext.ty
        if not isinstance(inst, cm.ComponentInstanceType):
            problems.append(f"imports {name!r} as {describe(inst)}, not as an instance")
            continue
        for item, item_ext in inst.exports(engine).items():
            want = expected.get(item)
            got = item_ext.ty
            if want is None:
                problems.append(f"imports {name}#{item}, which the host does not provide")
            elif not _same_item(got, want):
                problems.append(f"imports {name}#{item} with the wrong type: {describe(got)}, "
                                f"the host provides {describe(want)}")
    if not problems:
        problems = _link_problems(compiled, engine)
    if problems:
        raise ComponentWorldMismatch(problems)


def _link_problems(compiled: cm.Component, engine: wasmtime.Engine) -> list[str]:
    """Type-check the component's imports against the linker a process would get.

    wasmtime checks every import before it creates anything; a store that may hold no
    instance then stops the instantiation right there, so nothing of the guest runs and
    nothing is allocated. This is what covers ``wasi:*`` (whose interfaces, resources
    included, only wasmtime knows) and backs up the checks above. wasmtime reports the
    first mismatch only.
    """
    wasi = imports_wasi(compiled)
    store = wasmtime.Store(engine)
    store.set_limits(instances=0, memories=0, tables=0)
    if wasi:
        store.set_wasi(wasmtime.WasiConfig())
    try:
        linker(engine, wasi=wasi).instantiate(store, compiled)
    except wasmtime.WasmtimeError as exc:
        text = str(exc)
        if "matching implementation was not found" in text or "has the wrong type" in text:
            return [_link_problem(text)]
        return []  # the type check passed; the instance limit stopped it
    return []


def _link_problem(text: str) -> str:
    """wasmtime's linker error as one problem line naming the import.

    The error reads ``component imports instance `NAME`, but a matching implementation
    was not found in the linker`` followed by a chain of causes (``instance export
    `ITEM` has the wrong type``, ..., ``function implementation is missing`` or what
    differs)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    head = lines[0] if lines else text
    causes = [line.split(":", 1)[1].strip() if line[:1].isdigit() and ":" in line else line
              for line in lines[1:] if line != "Caused by:"]
    name = head.split("`")[1] if head.count("`") >= 2 else head
    items = [c.split("`")[1] for c in causes if c.startswith("instance export `") and c.count("`") >= 2]
    what = name + "".join(f"#{item}" for item in items)
    rest = [c for c in causes if not c.startswith("instance export `")]
    if not rest or any("missing" in c or "not found" in c for c in rest):
        problem = f"imports {what}, which the host does not provide"
    else:
        problem = f"imports {what} with the wrong type: " + ": ".join(rest)
    return problem if len(problem) <= 500 else problem[:497] + "..."


def _to_binary(source: bytes, origin: str | None = None) -> bytes:
    if source[:4] == b"\0asm":
        return source
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidComponent(_located(origin, "not WebAssembly: neither a binary nor WAT text")) from None
    try:
        return bytes(wasmtime.wat2wasm(text))
    except wasmtime.WasmtimeError as exc:
        raise InvalidComponent(wat_error(str(exc), origin or "<wat>")) from None


def _located(origin: str | None, message: str) -> str:
    return message if origin is None else f"{origin}: {message}"


# wat2wasm points at the error as "--> <anon>:LINE:COL" (then the line and a caret), or
# ends its message with "at <anon>:LINE:COL".
_WAT_AT = re.compile(r"(?:-->|\bat)\s+<anon>:(\d+):(\d+)")
_NEAR_CHARS = 60


def wat_error(text: str, origin: str) -> str:
    """wasmtime's WAT syntax error as ``ORIGIN:LINE:COL: invalid WAT: MESSAGE, near 'TEXT'``.

    ``origin`` is the file's path, or ``<wat>`` for WAT given as bytes or text. The
    offending text is the source line from the column wat2wasm points at (as much of it
    as fits in a line)."""
    lines = text.strip().splitlines()
    match = _WAT_AT.search(text)
    if not lines:
        return f"{origin}: invalid WAT"
    message = _WAT_AT.sub("", lines[0]).strip()
    if match is None:
        return f"{origin}: invalid WAT: {message}"
    line, col = int(match.group(1)), int(match.group(2))
    near = _offending_text(lines, line, col)
    return f"{origin}:{line}:{col}: invalid WAT: {message}" + (f", near {near!r}" if near else "")


def _offending_text(lines: list[str], line: int, col: int) -> str:
    # The quoted source line reads "   12 |     (func ...)": the number, a bar, then the line.
    marker = f"{line} |"
    for quoted in lines[1:]:
        head, sep, source = quoted.partition("|")
        if sep and head.strip() == str(line) and quoted.lstrip().startswith(marker):
            source = source[1:] if source.startswith(" ") else source
            tail = source[col - 1:].strip()
            return tail if len(tail) <= _NEAR_CHARS else tail[: _NEAR_CHARS - 3] + "..."
    return ""


def _error_text(exc: BaseException) -> str:
    """wasmtime's error on one line: the message and its causes, without backtraces."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    head, _, causes = text.partition("Caused by:")
    parts = [head.strip()] + [
        line.strip().split(": ", 1)[1] if line.strip()[:1].isdigit() and ": " in line else line.strip()
        for line in causes.splitlines() if line.strip()
    ]
    joined = ": ".join(p for p in parts if p)
    return joined if len(joined) <= 500 else joined[:497] + "..."


def _is_core_module(binary: bytes) -> bool:
    # Layer/version field: core modules are version 1, components 0x0001000d-ish with layer 1.
    return len(binary) >= 8 and binary[4:8] == b"\x01\x00\x00\x00"


def imports_wasi(compiled: cm.Component) -> bool:
    """Whether the component imports any ``wasi:*`` interface."""
    engine = engine_host().engine
    return any(name.startswith("wasi:") for name in compiled.type.imports(engine))


_MEMO: dict[str, cm.Component] = {}
"""Compiled components by cache key (binary and engine configuration)."""
_MEMO_BY_SOURCE: dict[str, cm.Component] = {}
"""The same, by the sha256 of the source as given (WAT or binary)."""


def compile_component(source: bytes, origin: str | None = None) -> tuple[cm.Component, str]:
    """Compile ``source`` (binary or WAT), reusing the in-memory and on-disk caches.

    ``origin`` is the file it was read from, if any: errors name it (and a WAT syntax
    error its line and column). Returns the compiled component and the sha256 of the
    source bytes.
    """
    digest = hashlib.sha256(source).hexdigest()
    # The same source again (a component spawned by path, every time): no WAT conversion.
    compiled = _MEMO_BY_SOURCE.get(digest)
    if compiled is not None:
        return compiled, digest
    binary = _to_binary(source, origin)
    if _is_core_module(binary):
        raise InvalidComponent(_located(origin, "this is a core wasm module, not a component"))
    key = cache_key(binary)
    compiled = _MEMO.get(key)
    if compiled is not None:
        _MEMO_BY_SOURCE[digest] = compiled
        return compiled, digest
    engine = engine_host().engine
    path = cache_dir() / f"{key}.cwasm"
    if path.exists():
        try:
            compiled = cm.Component.deserialize_file(engine, str(path))
        except wasmtime.WasmtimeError:
            compiled = None  # stale or damaged: compile again and overwrite
    if compiled is None:
        try:
            compiled = cm.Component(engine, binary)
        except wasmtime.WasmtimeError as exc:
            raise InvalidComponent(_located(origin, f"not a valid component: {_error_text(exc)}")) from None
        check_world(compiled, engine)
        _store_artifact(path, compiled)
    else:
        check_world(compiled, engine)
    _MEMO[key] = _MEMO_BY_SOURCE[digest] = compiled
    return compiled, digest


def _store_artifact(path: Path, compiled: cm.Component) -> None:
    # Best effort: a read-only home only costs a recompile next time.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = compiled.serialize()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        pass
