"""Byte lists across the component boundary: both routes ``_abi.set_bytes`` takes."""

import os

import msgpack
import pytest

from airssys_actors import Component, Limits
from airssys_actors._host import _abi
from airssys_actors._host._instance import GuestInstance

from ..conftest import component_path

SIZES = [1, 100, 4095, _abi.BULK_MIN - 1, _abi.BULK_MIN, _abi.BULK_MIN + _abi._BULK_CHUNK + 7]


@pytest.mark.parametrize("n", SIZES)
def test_set_bytes_round_trips(n):
    data = os.urandom(n)
    val = _abi.Val()
    _abi.set_bytes(val, data)
    try:
        assert val.kind == _abi.K_LIST and val.of.list.size == n
        assert _abi.get_bytes(val) == data
        raw = _abi._string_at(val.of.list.data, n * _abi.VAL_SIZE)
        assert raw[0::_abi.VAL_SIZE] == _abi._U8_KIND_BYTE * n  # every element a u8
    finally:
        _abi.free(val)


class _Host:
    def self_address(self) -> str:
        return "<test>"


@pytest.mark.parametrize("n", [100, _abi.BULK_MIN + 3])
def test_a_state_moves_into_upgrade_intact(n):
    compiled = Component.load(component_path("blob.wat"))._compiled
    state = os.urandom(n)
    instance = GuestInstance(compiled, _Host(), Limits())
    try:
        instance.upgrade("v0", state)
        assert msgpack.unpackb(instance.handle(1, 1, None, msgpack.packb("size"))) == n
        assert msgpack.unpackb(instance.handle(1, 2, None, msgpack.packb("sum"))) == sum(state) % 2**32
        assert instance.snapshot() == state
    finally:
        instance.close()


@pytest.mark.parametrize("large", [False, True])
def test_upgrade_arguments_are_freed_later_and_the_instance_goes_on(large):
    from airssys_actors._host._instance import SPENT_MIN, free_spent

    size = SPENT_MIN if large else SPENT_MIN - 1
    compiled = Component.load(component_path("blob.wat"))._compiled
    source = GuestInstance(compiled, _Host(), Limits())
    target = GuestInstance(compiled, _Host(), Limits())
    try:
        source.init(msgpack.packb({"size": size}))
        state = source.snapshot()
        spent: list = []
        target.upgrade("v0", state, spent)
        assert len(spent) == (1 if large else 0)  # a smaller state's arguments are freed at once
        # The instance takes calls meanwhile: those values are no longer its own.
        assert target.snapshot() == state
        free_spent(spent)
        assert spent == []
        assert msgpack.unpackb(target.handle(1, 2, None, msgpack.packb("sum"))) == sum(state) % 2**32
    finally:
        source.close()
        target.close()
