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
_vallist_delete = ffi.wasmtime_component_vallist_delete
_byte_vec_new_empty = ffi.wasm_byte_vec_new_empty
_byte_vec_delete = ffi.wasm_byte_vec_delete
_val_new = ffi.wasmtime_component_val_new
_val_delete = ffi.wasmtime_component_val_delete
_string_at = ctypes.string_at
_memmove = ctypes.memmove
_c_char = ctypes.c_char
_addressof = ctypes.addressof


def _raw(name: str, restype: object, *argtypes: object) -> ctypes._CFuncPtr:
    """A C function of wasmtime's taking and returning plain addresses (ints). A fresh
    function object (``dll[name]``), so wasmtime-py's own binding is left as it is;
    these let callers keep addresses instead of one ctypes object per value."""
    fn = ffi.dll[name]
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


_VP = ctypes.c_void_p
_raw_vallist_new = _raw("wasmtime_component_vallist_new", None, _VP, ctypes.c_size_t, _VP)
_raw_vallist_new_empty = _raw("wasmtime_component_vallist_new_empty", None, _VP)
_raw_byte_vec_new = _raw("wasm_byte_vec_new", None, _VP, ctypes.c_size_t, ctypes.c_char_p)
_raw_vallist_new_uninit = _raw("wasmtime_component_vallist_new_uninit", None, _VP, ctypes.c_size_t)
#: Frees a ``list`` (by the address of its size/data pair) and leaves it empty.
vallist_delete_at = _raw("wasmtime_component_vallist_delete", None, _VP)
#: Boxes a value (moved out of the given address) on the heap; returns its address.
val_new_at = _raw("wasmtime_component_val_new", _VP, _VP)
#: Frees a value boxed by ``val_new_at`` (its contents too).
val_free_at = _raw("wasmtime_component_val_free", None, _VP)
#: The size/data pair of a list or string, read from its address (one object per read).
_Pair = ctypes.c_size_t * 2
_pair_at = _Pair.from_address


def new_name(text: bytes) -> ffi.wasm_byte_vec_t:
    """A wasmtime-owned byte vector holding ``text`` (names, strings)."""
    vec = ffi.wasm_byte_vec_t()
    if text:
        # The bytes object itself is the source: no ``c_uint8 * n`` array type (see
        # _buffer_addr on why such types are avoided).
        _raw_byte_vec_new(ctypes.addressof(vec), len(text), text)
    else:
        _byte_vec_new_empty(byref(vec))
    return vec


def set_bytes(val: Val, data: bytes) -> None:
    """Make ``val`` an owned ``list<u8>`` holding ``data``."""
    val.kind = K_LIST
    set_list_at(ctypes.addressof(val) + UNION_OFFSET, data)


def set_list_at(list_addr: int, data: bytes) -> None:
    """Write an owned ``list<u8>`` holding ``data`` into the list (size/data pair) at
    ``list_addr``, which must hold nothing owned; the value's kind is the caller's."""
    n = len(data)
    if n == 0:
        _raw_vallist_new_empty(list_addr)
        return
    if n >= BULK_MIN:
        _set_bytes_bulk(list_addr, data)
        return
    # One 32-byte value per element: kind byte at 0, the u8 in the union.
    buf = bytearray(VAL_SIZE * n)
    buf[0::VAL_SIZE] = _U8_KIND_BYTE * n
    buf[UNION_OFFSET::VAL_SIZE] = data
    _raw_vallist_new(list_addr, n, _buffer_addr(buf))


#: Lists of this many bytes or more are written straight into wasmtime's own list, a
#: small staging chunk at a time, instead of through a staging array of the whole list
#: that wasmtime then copies. It only pays where both arrays would be fresh memory:
#: glibc's malloc maps blocks of 32 MiB and more (its largest mmap threshold) anew on
#: every call, and touching fresh pages is then most of the cost (a 1 MiB state moving
#: into ``upgrade``: 37 ms -> 23 ms on the benchmark machine). Below that, freed memory
#: is reused and the one-array route, whose list wasmtime does not initialise first, is
#: faster.
BULK_MIN = (32 << 20) // VAL_SIZE
#: Elements written per step of the bulk route (64 KiB of values, reused for each step).
_BULK_CHUNK = 2048


def _buffer_addr(buf: bytearray) -> int:
    """The address of ``buf``'s bytes (valid while ``buf`` lives and is not resized).

    Not ``(Val * n).from_buffer(buf)``: ctypes caches array types only weakly, so a
    length whose type is not alive makes a new type (~9 us) that dies as cyclic garbage
    (a type, its StgDict, descriptors, tuples) for the GC to collect; a hit still costs
    ~640 ns against ~260 ns for this."""
    return _addressof(_c_char.from_buffer(buf))


def _set_bytes_bulk(list_addr: int, data: bytes) -> None:
    n = len(data)
    _raw_vallist_new_uninit(list_addr, n)
    base = _pair_at(list_addr)[1]
    stage = bytearray(VAL_SIZE * _BULK_CHUNK)
    stage[0::VAL_SIZE] = _U8_KIND_BYTE * _BULK_CHUNK  # the kind bytes stay put; only the u8s change
    stage_addr = _buffer_addr(stage)
    view = memoryview(data)
    step = _BULK_CHUNK * VAL_SIZE
    for start in range(0, n, _BULK_CHUNK):
        k = min(_BULK_CHUNK, n - start)
        stage[UNION_OFFSET:UNION_OFFSET + k * VAL_SIZE:VAL_SIZE] = view[start:start + k]
        _memmove(base, stage_addr, k * VAL_SIZE)
        base += step


def get_bytes(val: Val) -> bytes:
    """Read a ``list<u8>`` value (does not free it)."""
    lst = val.of.list
    n = lst.size
    if n == 0:
        return b""
    raw = _string_at(lst.data, n * VAL_SIZE)
    return raw[UNION_OFFSET::VAL_SIZE]


def get_bytes_at(val_addr: int) -> bytes:
    """Read the ``list<u8>`` value at ``val_addr`` (does not free it)."""
    n, data = _pair_at(val_addr + UNION_OFFSET)
    if n == 0:
        return b""
    return _string_at(data, n * VAL_SIZE)[UNION_OFFSET::VAL_SIZE]


def get_string_at(val_addr: int) -> str:
    """Read the ``string`` value at ``val_addr`` (does not free it)."""
    n, data = _pair_at(val_addr + UNION_OFFSET)
    if n == 0:
        return ""
    return _string_at(data, n).decode("utf-8", "replace")


def get_string_prefix_at(val_addr: int, limit: int) -> tuple[bytes, int]:
    """The first ``limit`` bytes of the ``string`` value at ``val_addr`` and its size in
    bytes (does not free it): guest text that may be huge is read no further than the
    host keeps of it."""
    n, data = _pair_at(val_addr + UNION_OFFSET)
    if n == 0:
        return b"", 0
    return _string_at(data, min(n, limit)), n


def get_string_prefix(val: Val, limit: int) -> tuple[bytes, int]:
    """:func:`get_string_prefix_at` for a ``string`` value object."""
    vec = val.of.string
    if vec.size == 0:
        return b"", 0
    return _string_at(vec.data, min(vec.size, limit)), vec.size


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


def boxed_string_at(text: str) -> int:
    """Like :func:`boxed_string`, as an address (free it with ``val_free_at``)."""
    tmp = Val()
    set_string(tmp, text)
    return val_new_at(ctypes.addressof(tmp))


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
