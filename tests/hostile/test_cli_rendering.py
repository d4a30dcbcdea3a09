"""Replies the CLI must render: whatever bytes a guest replies with (msgpack extension
types, odd map keys, bytes, 64-bit extremes, NaN and infinities, deep nesting) reach the
client as strict JSON or as a clear error for that request; the node serves on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .clients import ask, assert_serves, exchange, strict_json
from .conftest import COMPONENTS, RunningNode, start_node, stop_node

MOUTHPIECE = Path(__file__).parent / "guests" / "mouthpiece.wat"

TREE = f"""
from supervisors import Supervisor, Child
tree = Supervisor("root", children=[
    Child("echo", {str(COMPONENTS / "echo.wat")!r}, name="echo"),
    Child("mouth", {str(MOUTHPIECE)!r}, name="mouth"),
])
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    running = start_node(tmp_path_factory.mktemp("rendering"), TREE)
    yield running
    stop_node(running)


def reply(node: RunningNode, msgpack_hex: str) -> dict[str, Any]:
    """The control socket's answer when the guest replies with these bytes."""
    lines = exchange(node.socket, json.dumps({"cmd": "call", "args": {"to": "mouth", "message": "r" + msgpack_hex}})
                     .encode() + b"\n")
    assert len(lines) == 1
    return strict_json(lines[0])


RENDERED = [
    ("d6ff00000001", {"timestamp": {"seconds": 1, "nanoseconds": 0}}),                    # Timestamp 32
    ("c70cff" + "3b9ac9ff" + "7fffffffffffffff", {"timestamp": {"seconds": 2**63 - 1, "nanoseconds": 999_999_999}}),
    ("d40561", {"ext": 5, "data": "61"}),                                                  # ExtType
    ("c7037f01ff00", {"ext": 127, "data": "01ff00"}),
    ("c403ff0001", {"bytes": "ff0001"}),
    ("c40161", "a"),
    ("cb7ff8000000000000", {"float": "nan"}),
    ("cb7ff0000000000000", {"float": "inf"}),
    ("cbfff0000000000000", {"float": "-inf"}),
    ("ca7fc00000", {"float": "nan"}),                                                      # float32 NaN
    ("cfffffffffffffffff", 2**64 - 1),
    ("d38000000000000000", -(2**63)),
    ("81c4016101", {"a": 1}),                                                              # bytes key
    ("81c401ff01", {'{"bytes":"ff"}': 1}),
    ("81c001", {"null": 1}),
    ("810701", {"7": 1}),
    ("81cb3ff800000000000001", {"1.5": 1}),
    ("81cb7ff800000000000001", {'{"float":"nan"}': 1}),
    ("81c301", {"true": 1}),
    ("81d4056101", {'{"ext":5,"data":"61"}': 1}),
    ("81d6ff0000000101", {'{"timestamp":{"seconds":1,"nanoseconds":0}}': 1}),
    ("8201a161a131a162", {"map": [[1, "a"], ["1", "b"]]}),                                 # keys collide as text
    ("a31b5b41", "\x1b[A"),                                                                # stays text, \u-escaped
    ("91" * 200 + "c0", json.loads("[" * 200 + "null" + "]" * 200)),
]


@pytest.mark.parametrize(("raw", "expected"), RENDERED, ids=[r[:24] for r, _ in RENDERED])
def test_a_guest_reply_is_rendered_as_strict_json(node: RunningNode, raw: str, expected: Any) -> None:
    assert reply(node, raw) == {"ok": True, "result": expected}


@pytest.mark.parametrize(("raw", "error"), [
    ("91" * 300 + "c0", "reply nested deeper than 256 levels"),
    ("91" * 5000 + "c0", "UndecodableMessage"),                     # past msgpack's own 1024 levels
    ("819101" + "01", "UndecodableMessage"),                        # an array as a map key
    ("a1ff", "UndecodableMessage"),                                 # a str that is not UTF-8
    ("c7038001ff00", "UndecodableMessage"),                         # a reserved (negative) ext type
    ("c6ffffffff00", "UndecodableMessage"),                         # a bin claiming 4 GiB
    ("", "UndecodableMessage"),
    ("c0c0", "UndecodableMessage"),                                 # two values
])
def test_a_reply_that_cannot_be_rendered_is_an_error_for_that_request(node: RunningNode, raw: str, error: str) -> None:
    answer = reply(node, raw)
    assert answer["ok"] is False and error in answer["error"], answer
    assert_serves(node)


def test_the_cli_prints_strict_json_for_odd_replies(node: RunningNode) -> None:
    for raw, expected in RENDERED[:12]:
        out = node.cli("call", "mouth", json.dumps("r" + raw))
        assert out.returncode == 0, out.stderr
        assert strict_json(out.stdout.encode()) == expected
        assert all(c == "\n" or " " <= c <= "~" for c in out.stdout), out.stdout  # ASCII, no control characters
    deep = node.cli("call", "mouth", json.dumps("r" + "91" * 300 + "c0"))
    assert deep.returncode == 1
    assert deep.stderr.strip() == "airssys: reply nested deeper than 256 levels: cannot be shown as JSON"
    assert_serves(node)


def test_the_other_commands_still_answer(node: RunningNode) -> None:
    for command in ("tree", "ps", "stats"):
        assert ask(node.socket, command)["ok"] is True
