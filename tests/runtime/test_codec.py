import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airssys_actors import MessageTooLarge, UndecodableMessage, UnencodableMessage, decode, encode

scalars = st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) \
    | st.floats(allow_nan=False) | st.text() | st.binary()
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=8) | st.integers(-1000, 1000), children, max_size=5),
    max_leaves=30,
)


@given(values)
def test_round_trip(value):
    assert decode(encode(value)) == value


@given(st.lists(st.integers(-(2**63), 2**64 - 1), max_size=5).map(tuple))
def test_tuples_come_back_as_lists(value):
    assert decode(encode(value)) == list(value)


def test_nan_round_trips_as_nan():
    assert math.isnan(decode(encode(float("nan"))))


@pytest.mark.parametrize("value", [object(), {1, 2}, 2**64, -(2**63) - 1, {"k": object()}, complex(1, 2)])
def test_unencodable_values_raise_a_typed_error(value):
    with pytest.raises(UnencodableMessage, match="cannot encode"):
        encode(value)


def test_deeply_nested_values_are_refused_not_crashing():
    value: list = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(UnencodableMessage):
        encode(value)


def test_size_limit_is_checked_on_encoded_bytes():
    assert encode(b"x" * 90, limit=100)
    with pytest.raises(MessageTooLarge) as info:
        encode(b"x" * 200, limit=100)
    assert info.value.size > 100 and info.value.limit == 100


@given(st.binary(max_size=64))
def test_decoding_random_bytes_gives_a_value_or_a_typed_error(data):
    try:
        decode(data)
    except UndecodableMessage:
        pass


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x92\x01", b"\x01\x02"])
def test_undecodable_bytes(data):
    with pytest.raises(UndecodableMessage):
        decode(data)
