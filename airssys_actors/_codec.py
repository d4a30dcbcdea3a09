"""Messages cross process boundaries as msgpack bytes, never as shared Python objects.

Only nil, bool, int, float, str, bytes, lists/tuples and str- or int-keyed maps of those
encode; anything else is refused with :class:`UnencodableMessage`. Tuples come back as
lists. Size limits are checked on the encoded bytes.
"""

from __future__ import annotations

import threading
from typing import Any

import msgpack

from ._errors import ActorError, MessageTooLarge, UnencodableMessage

_packer_options = {"use_bin_type": True, "datetime": False}
# msgpack.packb makes a Packer (and a 1 MiB buffer) per call; a Packer kept per thread
# encodes a small message about four times faster. One per thread, as a Packer is not
# meant to be shared.
_local = threading.local()


def _packer() -> msgpack.Packer:
    packer = _local.__dict__.get("packer")
    if packer is None:
        packer = _local.packer = msgpack.Packer(**_packer_options)
    return packer


class UndecodableMessage(ActorError, ValueError):
    """The bytes are not one complete msgpack value."""


def encode(value: Any, limit: int | None = None) -> bytes:
    """Encode ``value``; raise :class:`UnencodableMessage` or :class:`MessageTooLarge`."""
    try:
        data = _packer().pack(value)
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
