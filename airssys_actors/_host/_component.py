"""Loading components: compile once per content hash, cache on disk, check the world.

A component is checked against ``airssys:actor/process`` when it is loaded, before any
process runs it: every export the world requires must be present with the right type,
and every import must be one the host provides. The reference types come from
``world.wasm``, a dummy component generated from ``wit/`` (``make world``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import component as cm

from .._errors import ComponentWorldMismatch, InvalidComponent
from ._engine import cache_dir, cache_key, engine_host

TYPES_INTERFACE = "airssys:actor/types@0.1.0"
HOST_INTERFACE = "airssys:actor/host@0.1.0"
REQUIRED_EXPORTS = ("init", "handle", "snapshot", "upgrade")

_WORLD_PATH = Path(__file__).with_name("world.wasm")


class _World:
    """The reference export and import types of the process world."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        ref = cm.Component(engine, _WORLD_PATH.read_bytes())
        ty = ref.type
        self.exports = {name: ty.exports(engine)[name].ty for name in REQUIRED_EXPORTS}
        imports = ty.imports(engine)
        self.host_items = {
            name: ext.ty for name, ext in imports[HOST_INTERFACE].ty.exports(engine).items()
        }
        self.type_items = set(imports[TYPES_INTERFACE].ty.exports(engine))


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


def check_world(compiled: cm.Component, engine: wasmtime.Engine) -> None:
    """Raise :class:`ComponentWorldMismatch` naming everything that does not fit."""
    world = _world()
    ty = compiled.type
    exports = ty.exports(engine)
    problems: list[str] = []
    for name in REQUIRED_EXPORTS:
        if name not in exports:
            problems.append(f"missing export {name!r}")
        elif not _same_func(exports[name].ty, world.exports[name]):
            problems.append(f"export {name!r} has the wrong type")
    for name, ext in ty.imports(engine).items():
        if name == TYPES_INTERFACE or name.startswith("wasi:"):
            continue  # WASI imports trap unless the process is granted WASI
        if name != HOST_INTERFACE:
            problems.append(f"imports {name!r}, which the host does not provide")
            continue
        inst = ext.ty
        if not isinstance(inst, cm.ComponentInstanceType):
            problems.append(f"imports {name!r} as something other than an instance")
            continue
        for item, item_ext in inst.exports(engine).items():
            if item in world.type_items:
                continue
            if item not in world.host_items:
                problems.append(f"imports {HOST_INTERFACE}#{item}, which the host does not provide")
            elif not _same_func(item_ext.ty, world.host_items[item]):
                problems.append(f"imports {HOST_INTERFACE}#{item} with the wrong type")
    if problems:
        raise ComponentWorldMismatch(problems)


def _to_binary(source: bytes) -> bytes:
    if source[:4] == b"\0asm":
        return source
    try:
        return bytes(wasmtime.wat2wasm(source.decode("utf-8")))
    except UnicodeDecodeError as exc:
        raise InvalidComponent("not WebAssembly: neither a binary nor WAT text") from exc
    except wasmtime.WasmtimeError as exc:
        raise InvalidComponent(f"invalid WAT: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


def compile_component(source: bytes) -> tuple[cm.Component, str]:
    """Compile ``source`` (binary or WAT), reusing the in-memory and on-disk caches.

    Returns the compiled component and the sha256 of the source bytes.
    """
    digest = hashlib.sha256(source).hexdigest()
    # The same source again (a component spawned by path, every time): no WAT conversion.
    compiled = _MEMO_BY_SOURCE.get(digest)
    if compiled is not None:
        return compiled, digest
    binary = _to_binary(source)
    if _is_core_module(binary):
        raise InvalidComponent("this is a core wasm module, not a component")
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
            raise InvalidComponent(f"not a valid component: {_first_line(exc)}") from exc
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
