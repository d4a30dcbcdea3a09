"""Moving values across the component boundary through wasmtime's C API, in bulk.

wasmtime-py's ``Func.__call__`` looks the function type up on every call and converts
``list<u8>`` one Python object per byte. The world here has fixed signatures, so this
module builds and reads ``wasmtime_component_val_t`` structures directly: byte lists
are written and read with strided slices (one C loop per list, not one Python step
per byte). Only the host layer imports this module.
"""

from __future__ import annotations

import ctypes
from ctypes import byref

from wasmtime import _ffi as ffi

Val = ffi.wasmtime_component_val_t
VAL_SIZE = ctypes.sizeof(Val)
#: Offset of the value union inside ``wasmtime_component_val_t``.
UNION_OFFSET = Val.of.offset

K_BOOL = ffi.WASMTIME_COMPONENT_BOOL.value
K_U8 = ffi.WASMTIME_COMPONENT_U8.value
K_U32 = ffi.WASMTIME_COMPONENT_U32.value
K_U64 = ffi.WASMTIME_COMPONENT_U64.value
K_STRING = ffi.WASMTIME_COMPONENT_STRING.value
K_LIST = ffi.WASMTIME_COMPONENT_LIST.value
K_RECORD = ffi.WASMTIME_COMPONENT_RECORD.value
K_VARIANT = ffi.WASMTIME_COMPONENT_VARIANT.value
K_ENUM = ffi.WASMTIME_COMPONENT_ENUM.value
K_OPTION = ffi.WASMTIME_COMPONENT_OPTION.value
K_RESULT = ffi.WASMTIME_COMPONENT_RESULT.value

_U8_KIND_BYTE = bytes([K_U8])
_vallist_new = ffi.wasmtime_component_vallist_new
_vallist_new_empty = ffi.wasmtime_component_vallist_new_empty
_vallist_delete = ffi.wasmtime_component_vallist_delete
_byte_vec_new = ffi.wasm_byte_vec_new
_byte_vec_new_empty = ffi.wasm_byte_vec_new_empty
_byte_vec_delete = ffi.wasm_byte_vec_delete
_val_new = ffi.wasmtime_component_val_new
_val_delete = ffi.wasmtime_component_val_delete
_string_at = ctypes.string_at
_u8_array = ctypes.c_uint8


def new_name(text: bytes) -> ffi.wasm_byte_vec_t:
    """A wasmtime-owned byte vector holding ``text`` (names, strings)."""
    vec = ffi.wasm_byte_vec_t()
    if text:
        _byte_vec_new(byref(vec), len(text), (_u8_array * len(text)).from_buffer_copy(text))
    else:
        _byte_vec_new_empty(byref(vec))
    return vec


def set_bytes(val: Val, data: bytes) -> None:
    """Make ``val`` an owned ``list<u8>`` holding ``data``."""
    n = len(data)
    val.kind = K_LIST
    if n == 0:
        _vallist_new_empty(byref(val.of.list))
        return
    # One 32-byte value per element: kind byte at 0, the u8 in the union.
    buf = bytearray(VAL_SIZE * n)
    buf[0::VAL_SIZE] = _U8_KIND_BYTE * n
    buf[UNION_OFFSET::VAL_SIZE] = data
    _vallist_new(byref(val.of.list), n, (Val * n).from_buffer(buf))


def get_bytes(val: Val) -> bytes:
    """Read a ``list<u8>`` value (does not free it)."""
    lst = val.of.list
    n = lst.size
    if n == 0:
        return b""
    raw = _string_at(lst.data, n * VAL_SIZE)
    return raw[UNION_OFFSET::VAL_SIZE]


def set_string(val: Val, text: str) -> None:
    """Make ``val`` an owned ``string``."""
    val.kind = K_STRING
    val.of.string = new_name(text.encode())


def get_string(val: Val) -> str:
    """Read a ``string`` value (does not free it)."""
    vec = val.of.string
    if vec.size == 0:
        return ""
    return _string_at(vec.data, vec.size).decode("utf-8", "replace")


def boxed_string(text: str) -> ctypes._Pointer:
    """A heap ``string`` value, for option/result payloads (freed with its parent)."""
    tmp = Val()
    set_string(tmp, text)
    return _val_new(byref(tmp))


def boxed_u64(value: int) -> ctypes._Pointer:
    tmp = Val()
    tmp.kind = K_U64
    tmp.of.u64 = value
    return _val_new(byref(tmp))


def set_result(val: Val, ok: bool, payload: ctypes._Pointer | None = None) -> None:
    """Make ``val`` a ``result`` whose case holds ``payload`` (a boxed value or None)."""
    val.kind = K_RESULT
    val.of.result.is_ok = ok
    val.of.result.val = payload


def free(val: Val) -> None:
    """Free what ``val`` owns and leave it an inert ``bool`` (wasmtime drops the old
    contents of a value it writes into, so a freed value must not look owned)."""
    _val_delete(byref(val))
    val.kind = K_BOOL
    val.of.u64 = 0


def free_list(val: Val) -> None:
    _vallist_delete(byref(val.of.list))
