"""A small pure-Python msgpack codec for guests.

componentize-py cannot bundle msgpack's C extension, so guests carry this module.
It covers the subset of msgpack that airssys payloads use:

=============  ==========================================  =======================
msgpack        decoded as                                  encoded from
=============  ==========================================  =======================
nil            ``None``                                    ``None``
bool           ``bool``                                    ``bool``
int            ``int`` (-2**63 .. 2**64-1, every width)    ``int`` in that range
float          ``float`` (float32 and float64 read)        ``float`` (as float64)
str            ``str`` (UTF-8, strict)                     ``str``
bin            ``bytes``                                   ``bytes``/``bytearray``/``memoryview``
array          ``list``                                    ``list``/``tuple``
map            ``dict`` (array keys become tuples)         ``dict``
=============  ==========================================  =======================

Anything else (ext types, the never-used byte 0xc1, out-of-range ints, other Python
types, truncated or trailing input, invalid UTF-8, nesting deeper than
``MAX_DEPTH``) raises :class:`MsgpackError`. Ints use the smallest encoding, as the
reference implementation does, so ``packb`` output matches ``msgpack.packb``.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["MAX_DEPTH", "MsgpackError", "hashable_key", "packb", "unpackb"]

#: Deepest nesting of arrays and maps accepted in either direction.
MAX_DEPTH = 128

_pack_be = struct.pack
_unpack_from = struct.unpack_from


class MsgpackError(ValueError):
    """The value cannot be encoded, or the bytes are not (supported) msgpack."""


# --------------------------------------------------------------------------- encode


def packb(obj: Any) -> bytes:
    """Encode ``obj`` as msgpack bytes."""
    out = bytearray()
    _pack(obj, out, 0)
    return bytes(out)


def _pack(obj: Any, out: bytearray, depth: int) -> None:
    if obj is None:
        out.append(0xC0)
    elif obj is True:
        out.append(0xC3)
    elif obj is False:
        out.append(0xC2)
    elif isinstance(obj, int):  # bool was handled above
        _pack_int(int(obj), out)
    elif isinstance(obj, float):
        out.append(0xCB)
        out += _pack_be(">d", obj)
    elif isinstance(obj, str):
        try:
            data = obj.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MsgpackError(f"str is not encodable as UTF-8: {exc}") from None
        _pack_header(len(data), out, "str", 0xDA, 0xDB, fix=0xA0, fix_below=32, b8=0xD9)
        out += data
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        _pack_header(len(data), out, "bin", 0xC5, 0xC6, b8=0xC4)
        out += data
    elif isinstance(obj, (list, tuple)):
        if depth >= MAX_DEPTH:
            raise MsgpackError("nesting too deep")
        _pack_header(len(obj), out, "array", 0xDC, 0xDD, fix=0x90, fix_below=16)
        for item in obj:
            _pack(item, out, depth + 1)
    elif isinstance(obj, dict):
        if depth >= MAX_DEPTH:
            raise MsgpackError("nesting too deep")
        _pack_header(len(obj), out, "map", 0xDE, 0xDF, fix=0x80, fix_below=16)
        for key, value in obj.items():
            _pack(key, out, depth + 1)
            _pack(value, out, depth + 1)
    else:
        raise MsgpackError(f"cannot encode {type(obj).__name__}")


def _pack_header(n: int, out: bytearray, what: str, b16: int, b32: int, *,
                 fix: int | None = None, fix_below: int = 0, b8: int | None = None) -> None:
    """The header of a str, bin, array or map of ``n`` items in its shortest form: fixed
    (``fix | n`` below ``fix_below``), then 8-bit (if the type has one), 16- or 32-bit."""
    if fix is not None and n < fix_below:
        out.append(fix | n)
    elif b8 is not None and n < 0x100:
        out += _pack_be(">BB", b8, n)
    elif n < 0x10000:
        out += _pack_be(">BH", b16, n)
    elif n < 0x100000000:
        out += _pack_be(">BI", b32, n)
    else:
        raise MsgpackError(f"{what} too long")


def _pack_int(n: int, out: bytearray) -> None:
    if n >= 0:
        if n < 0x80:
            out.append(n)
        elif n < 0x100:
            out += _pack_be(">BB", 0xCC, n)
        elif n < 0x10000:
            out += _pack_be(">BH", 0xCD, n)
        elif n < 0x100000000:
            out += _pack_be(">BI", 0xCE, n)
        elif n < 0x10000000000000000:
            out += _pack_be(">BQ", 0xCF, n)
        else:
            raise MsgpackError("int too big for msgpack")
    else:
        if n >= -32:
            out.append(n & 0xFF)
        elif n >= -0x80:
            out += _pack_be(">Bb", 0xD0, n)
        elif n >= -0x8000:
            out += _pack_be(">Bh", 0xD1, n)
        elif n >= -0x80000000:
            out += _pack_be(">Bi", 0xD2, n)
        elif n >= -0x8000000000000000:
            out += _pack_be(">Bq", 0xD3, n)
        else:
            raise MsgpackError("int too small for msgpack")


# --------------------------------------------------------------------------- decode

# Fixed-width scalars: first byte -> (struct format, size).
_SCALARS = {
    0xCA: (">f", 4),
    0xCB: (">d", 8),
    0xCC: (">B", 1),
    0xCD: (">H", 2),
    0xCE: (">I", 4),
    0xCF: (">Q", 8),
    0xD0: (">b", 1),
    0xD1: (">h", 2),
    0xD2: (">i", 4),
    0xD3: (">q", 8),
}
# Length-prefixed kinds: first byte -> (kind, struct format of the length, its size).
_SIZED = {
    0xC4: ("bin", ">B", 1),
    0xC5: ("bin", ">H", 2),
    0xC6: ("bin", ">I", 4),
    0xD9: ("str", ">B", 1),
    0xDA: ("str", ">H", 2),
    0xDB: ("str", ">I", 4),
    0xDC: ("array", ">H", 2),
    0xDD: ("array", ">I", 4),
    0xDE: ("map", ">H", 2),
    0xDF: ("map", ">I", 4),
}


def unpackb(data: bytes | bytearray | memoryview) -> Any:
    """Decode exactly one msgpack value from ``data`` (trailing bytes are an error)."""
    buf = bytes(data)
    obj, pos = _unpack(buf, 0, 0)
    if pos != len(buf):
        raise MsgpackError(f"{len(buf) - pos} trailing byte(s) after the value")
    return obj


def _need(buf: bytes, pos: int, n: int) -> None:
    if pos + n > len(buf):
        raise MsgpackError("truncated msgpack data")


def _unpack(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    _need(buf, pos, 1)
    b = buf[pos]
    pos += 1
    if b <= 0x7F:
        return b, pos
    if b >= 0xE0:
        return b - 0x100, pos
    if 0xA0 <= b <= 0xBF:
        return _str(buf, pos, b & 0x1F)
    if 0x90 <= b <= 0x9F:
        return _array(buf, pos, b & 0x0F, depth)
    if 0x80 <= b <= 0x8F:
        return _map(buf, pos, b & 0x0F, depth)
    if b == 0xC0:
        return None, pos
    if b == 0xC2:
        return False, pos
    if b == 0xC3:
        return True, pos
    scalar = _SCALARS.get(b)
    if scalar is not None:
        fmt, size = scalar
        _need(buf, pos, size)
        return _unpack_from(fmt, buf, pos)[0], pos + size
    sized = _SIZED.get(b)
    if sized is not None:
        kind, fmt, size = sized
        _need(buf, pos, size)
        n = _unpack_from(fmt, buf, pos)[0]
        pos += size
        if kind == "str":
            return _str(buf, pos, n)
        if kind == "bin":
            _need(buf, pos, n)
            return buf[pos:pos + n], pos + n
        if kind == "array":
            return _array(buf, pos, n, depth)
        return _map(buf, pos, n, depth)
    if b == 0xC1:
        raise MsgpackError("byte 0xc1 is never used in msgpack")
    raise MsgpackError(f"unsupported msgpack type byte 0x{b:02x} (ext types are not supported)")


def _str(buf: bytes, pos: int, n: int) -> tuple[str, int]:
    _need(buf, pos, n)
    try:
        return buf[pos:pos + n].decode("utf-8"), pos + n
    except UnicodeDecodeError as exc:
        raise MsgpackError(f"invalid UTF-8 in str: {exc}") from None


def _array(buf: bytes, pos: int, n: int, depth: int) -> tuple[list, int]:
    if depth >= MAX_DEPTH:
        raise MsgpackError("nesting too deep")
    # Every element takes at least one byte: reject absurd lengths before looping.
    _need(buf, pos, n)
    items = []
    for _ in range(n):
        item, pos = _unpack(buf, pos, depth + 1)
        items.append(item)
    return items, pos


def _map(buf: bytes, pos: int, n: int, depth: int) -> tuple[dict, int]:
    if depth >= MAX_DEPTH:
        raise MsgpackError("nesting too deep")
    _need(buf, pos, 2 * n)
    result: dict = {}
    for _ in range(n):
        key, pos = _unpack(buf, pos, depth + 1)
        value, pos = _unpack(buf, pos, depth + 1)
        try:
            result[hashable_key(key)] = value
        except TypeError:
            raise MsgpackError(f"map key of type {type(key).__name__} is not usable as a key") from None
    return result, pos


def hashable_key(key: Any) -> Any:
    """Array keys become tuples (recursively); map keys stay unhashable and are refused."""
    if isinstance(key, list):
        return tuple(hashable_key(k) for k in key)
    return key
