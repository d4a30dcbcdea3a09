"""Messages cross process boundaries as msgpack bytes, never as shared Python objects.

Only nil, bool, int, float, str, bytes, lists/tuples and str- or int-keyed maps of those
encode; anything else is refused with :class:`UnencodableMessage`. Tuples come back as
lists. Size limits are checked on the encoded bytes.
"""

from __future__ import annotations

from typing import Any

import msgpack

from ._errors import ActorError, MessageTooLarge, UnencodableMessage

_packer_options = {"use_bin_type": True, "datetime": False}


class UndecodableMessage(ActorError, ValueError):
    """The bytes are not one complete msgpack value."""


def encode(value: Any, limit: int | None = None) -> bytes:
    """Encode ``value``; raise :class:`UnencodableMessage` or :class:`MessageTooLarge`."""
    try:
        data = msgpack.packb(value, **_packer_options)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise UnencodableMessage(f"cannot encode {type(value).__name__} as msgpack: {exc}") from None
    if limit is not None and len(data) > limit:
        raise MessageTooLarge(len(data), limit)
    return data


def decode(data: bytes) -> Any:
    """Decode one msgpack value; raise :class:`UndecodableMessage` on anything else."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError,
            TypeError, RecursionError) as exc:
        raise UndecodableMessage(f"not a msgpack value: {exc}") from None
