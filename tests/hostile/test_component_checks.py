"""Hostile components: every import and export is checked against the world when the
component is loaded, before any process runs it.

Each bad component below is refused with ComponentWorldMismatch naming the offending
import or export (interface#item), at Component.load, at spawn on a live node, and when
a client deploys it to a real node over the control socket; the node goes on serving.
The guests are tests/guests/*.wat or echo.wat with one piece of text replaced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airssys_actors import Component, ComponentWorldMismatch

from ..conftest import COMPONENTS, GUESTS, PYTHON_GUEST
from ..isolation.guests import ECHO, FSPROBE, assert_serving

ECHO_TEXT = Path(ECHO).read_text()
TYPES_IMPORT = '(import "airssys:actor/types@0.1.0" (instance $types (type $types-t)))'
HOST_IMPORT = '(import "airssys:actor/host@0.1.0" (instance $host'
SEND_EXPORT = '(export "send" (func (param "to" $addr) (param "payload" (list u8)) (result (result (error string)))))'
LEVEL_EXPORT = '(export "level" (type (eq $level)))))'


def _echo_with(old: str, new: str) -> bytes:
    """echo.wat with one piece of text replaced (checked to be there once)."""
    assert ECHO_TEXT.count(old) == 1, old
    return ECHO_TEXT.replace(old, new).encode()


def _echo_importing(import_text: str) -> bytes:
    return _echo_with(TYPES_IMPORT, TYPES_IMPORT + "\n  " + import_text)


def _file(name: str) -> bytes:
    return (GUESTS / name).read_bytes()


ENVIRONMENT = "wasi:cli/environment@0.2.0"
GET_ENV = '(export "get-environment" (func (result (list (tuple string string)))))'

#: label -> (component source, the problems it must be refused with, each named).
BAD: dict[str, tuple[bytes, list[str]]] = {
    "types: a type declared differently, and one the world does not have": (_file("bad_types.wat"), [
        "imports airssys:actor/types@0.1.0#level with the wrong type: enum { trace, debug, panic }, "
        "the host provides enum { trace, debug, info, warn, error }",
        "imports airssys:actor/types@0.1.0#secret, which the host does not provide",
    ]),
    "types: a function in the types interface": (
        _echo_with(LEVEL_EXPORT, '(export "level" (type (eq $level)))\n    (export "steal" (func))))'),
        ["imports airssys:actor/types@0.1.0#steal, which the host does not provide"]),
    "types: a version that does not exist": (
        _echo_with("airssys:actor/types@0.1.0", "airssys:actor/types@0.2.0"),
        ["imports 'airssys:actor/types@0.2.0', which the host does not provide"]),
    "host: functions it does not have (one named like a type)": (_file("bad_import.wat"), [
        "imports airssys:actor/host@0.1.0#teleport, which the host does not provide",
        "imports airssys:actor/host@0.1.0#kind, which the host does not provide",
    ]),
    "host: the right name with the wrong signature": (
        _echo_with(SEND_EXPORT, SEND_EXPORT.replace('(param "payload" (list u8))', '(param "payload" string)')),
        ["imports airssys:actor/host@0.1.0#send with the wrong type: "
         "func(to: string, payload: string) -> result<_, string>, "
         "the host provides func(to: string, payload: list<u8>) -> result<_, string>"]),
    "host: a type declared differently": (
        _echo_with(SEND_EXPORT, SEND_EXPORT + '\n    (type $u u32) (export "level" (type (eq $u)))'),
        ["imports airssys:actor/host@0.1.0#level with the wrong type: u32, "
         "the host provides enum { trace, debug, info, warn, error }"]),
    "host: a version that does not exist": (
        _echo_with(HOST_IMPORT, HOST_IMPORT.replace("@0.1.0", "@9.9.9")),
        ["imports 'airssys:actor/host@9.9.9', which the host does not provide"]),
    "another package's interface": (
        _echo_with(HOST_IMPORT, HOST_IMPORT.replace("airssys:actor/host@0.1.0", "acme:evil/net@1.0.0")),
        ["imports 'acme:evil/net@1.0.0', which the host does not provide"]),
    "a bare function import": (
        _echo_importing('(import "teleport" (func))'),
        ["imports 'teleport', which the host does not provide"]),
    "wasi: the right name with the wrong signature": (_file("bad_wasi.wat"), [
        f"imports {ENVIRONMENT}#get-environment with the wrong type: "
        "type mismatch with results: expected `list` found `u32`",
    ]),
    "wasi: a function the interface does not have": (
        _echo_importing(f'(import "{ENVIRONMENT}" (instance {GET_ENV} (export "get-secrets" (func))))'),
        [f"imports {ENVIRONMENT}#get-secrets, which the host does not provide"]),
    "wasi: an interface that does not exist": (
        _echo_importing('(import "wasi:cli/teleport@0.2.0" (instance (export "go" (func))))'),
        ["imports wasi:cli/teleport@0.2.0#go, which the host does not provide"]),
    "wasi: a version the host does not have": (
        _echo_importing(f'(import "wasi:cli/environment@0.3.0" (instance {GET_ENV}))'),
        ["imports wasi:cli/environment@0.3.0#get-environment, which the host does not provide"]),
    "exports: two with the wrong signature": (_file("wrong_types.wat"), [
        "export 'handle' has the wrong type: func(x: u32) -> u32, the world wants "
        "func(msg: record { kind: variant { cast, call(u64), reply(u64), failed(u64), down(u64), exit, "
        "timer(u64) }, sender: option<string>, payload: list<u8> }) -> result<option<list<u8>>, string>",
        "export 'upgrade' has the wrong type: func(from-version: string, state: list<u8>) -> result<_, u32>, "
        "the world wants func(from-version: string, state: list<u8>) -> result<_, string>",
    ]),
    "exports: missing": ((COMPONENTS / "notaworld.wat").read_bytes(), [
        "missing export 'handle'", "missing export 'snapshot'", "missing export 'upgrade'",
    ]),
}


@pytest.mark.parametrize("label", list(BAD))
def test_a_bad_component_is_refused_at_load_naming_every_problem(label):
    source, problems = BAD[label]
    with pytest.raises(ComponentWorldMismatch) as info:
        Component.load(source)
    assert info.value.problems == problems
    for problem in problems:
        assert problem in str(info.value)


@pytest.mark.parametrize("label", list(BAD))
async def test_spawning_a_bad_component_starts_nothing_and_the_node_serves(node, label):
    echo = await node.spawn(ECHO)
    before = node.pids()
    with pytest.raises(ComponentWorldMismatch) as info:
        await node.spawn(BAD[label][0])
    assert info.value.problems == BAD[label][1]
    assert node.pids() == before
    assert await node.call(echo, label) == label
    await assert_serving(node)


def test_the_good_guests_pass_the_checks():
    """Nothing real is refused: every example WAT guest, and the componentize-py guests
    (which import all of airssys:actor/types, and WASI for fsprobe)."""
    for path in sorted(COMPONENTS.glob("*.wat")):
        if path.name != "notaworld.wat":
            Component.load(path)
    for path in (PYTHON_GUEST, FSPROBE):
        if path.exists():
            Component.load(path)


def test_a_hostile_type_does_not_make_the_message_unbounded():
    """Types are rendered in the message, but a deeply nested one is abbreviated."""
    deep = "u8"
    for _ in range(40):
        deep = f"(list {deep})"
    source = _echo_with(SEND_EXPORT, SEND_EXPORT.replace('(param "payload" (list u8))', f'(param "payload" {deep})'))
    with pytest.raises(ComponentWorldMismatch) as info:
        Component.load(source)
    (problem,) = info.value.problems
    assert problem.startswith("imports airssys:actor/host@0.1.0#send with the wrong type: func(to: string, payload: list<")
    assert len(problem) < 700


@pytest.mark.parametrize("label", ["host: functions it does not have (one named like a type)",
                                   "types: a type declared differently, and one the world does not have",
                                   "wasi: the right name with the wrong signature"])
def test_deploying_a_bad_component_to_a_real_node_is_refused_naming_it(running_node, tmp_path, label):
    source, problems = BAD[label]
    bad = tmp_path / "bad.wat"
    bad.write_bytes(source)
    done = running_node.cli("deploy", "echo", str(bad))
    assert done.returncode != 0
    for problem in problems:
        assert problem in done.stderr + done.stdout
    running_node.assert_alive()
    answer = running_node.cli("--json", "call", "echo", json.dumps(["still", "there"]))
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout) == ["still", "there"]
