"""Hostile clients of the control socket: garbage, resets, silence, floods, too many
connections, file-descriptor exhaustion. Each test asserts that the offending client
alone gets an error naming the field or limit (or is disconnected) and that the node
still answers a call afterwards."""

from __future__ import annotations

import json
import os
import resource
import socket as socketlib
import subprocess
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airssys_cli.commands import HANDLERS
from airssys_cli.control import CHOICES, RANGES, arguments

from .clients import (ask, assert_serves, closed_by_peer, connect, exchange, read_to_end, refused, reset,
                      strict_json)
from .conftest import COMPONENTS, RunningNode, rss_of, start_node, stop_node

TIMEOUT = 1.0  # --client-timeout for these nodes, so that waiting for it stays short
CAP = 8

TREE = f"""
import trio
from airssys_actors import Actor
from supervisors import Supervisor, Child


class Mute(Actor):
    async def handle(self, ctx, msg):
        await trio.sleep_forever()  # never answers


tree = Supervisor("root", children=[
    Child("echo", {str(COMPONENTS / "echo.wat")!r}, name="echo"),
    Child("crasher", {str(COMPONENTS / "crasher.wat")!r}, name="crasher"),
    Child("mute", Mute, name="mute"),
    Child("full", Mute, name="full", mailbox_capacity=1),
])
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    running = start_node(tmp_path_factory.mktemp("control"), TREE, "--client-timeout", str(TIMEOUT),
                         "--max-clients", str(CAP))
    yield running
    stop_node(running)
    stderr = running.proc.stderr.read() if running.proc.stderr else ""
    # every failure was the client's alone: no handler raised, nothing reached the node's log
    assert "connection failed" not in stderr and "Traceback" not in stderr, stderr[-2000:]


def line(request: object) -> bytes:
    return json.dumps(request).encode() + b"\n"


BAD_REQUESTS = [
    (b"garbage\n", "not strict JSON"),
    (b"\xff\xfe{}\n", "not UTF-8"),
    (b"[1, 2]\n", "must be a JSON object"),
    (b'"stats"\n', "must be a JSON object"),
    (b'{"cmd": "stats", "args": [], "x": 1}\n', "unknown request field \"x\""),
    (b'{"args": {}}\n', "field 'cmd'"),
    (b'{"cmd": 7}\n', "field 'cmd'"),
    (line({"cmd": "stats", "args": []}), "field 'args' must be an object"),
    (line({"cmd": "nope"}), "unknown command \"nope\""),
    (line({"cmd": "call", "args": {"to": "echo"}}), "call: missing argument 'message'"),
    (line({"cmd": "call", "args": {"to": "echo", "message": 1, "bogus": 2}}), "call: unknown argument \"bogus\""),
    (line({"cmd": "call", "args": {"to": 5, "message": 1}}), "call: argument 'to' must be a string"),
    (line({"cmd": "call", "args": {"to": "echo", "message": 1, "timeout": "5"}}), "argument 'timeout' must be a number"),
    (line({"cmd": "call", "args": {"to": "echo", "message": 1, "timeout": True}}), "argument 'timeout' must be a number"),
    (line({"cmd": "call", "args": {"to": "echo", "message": 1, "timeout": -1}}), "argument 'timeout' must be > 0"),
    (line({"cmd": "call", "args": {"to": "echo", "message": 1, "timeout": 0}}), "argument 'timeout' must be > 0"),
    (line({"cmd": "call", "args": {"to": "echo", "message": 1, "timeout": 1e9}}), "argument 'timeout' must be > 0 and <= 3600"),
    (b'{"cmd": "call", "args": {"to": "echo", "message": NaN}}\n', "NaN is not JSON"),
    (b'{"cmd": "call", "args": {"to": "echo", "message": 1, "timeout": Infinity}}\n', "Infinity is not JSON"),
    (b'{"cmd": "call", "args": {"to": "echo", "message": -Infinity}}\n', "-Infinity is not JSON"),
    (b'{"cmd": "call", "args": {"to": "echo", "message": 1, "timeout": 1e999}}\n', "out of range"),
    (b'{"cmd": "call", "args": {"to": "echo", "message": 1' + b"0" * 5000 + b"}}\n", "not strict JSON"),
    (b'{"cmd": "call", "args": {"to": "echo", "message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}\n",
     "nested too deeply"),
    (line({"cmd": "inject", "args": {"target": "crasher", "fault": "meteor"}}), "argument 'fault' must be one of kill"),
    (line({"cmd": "inject", "args": {"target": "crasher", "fault": "delay", "seconds": 1e308}}),
     "argument 'seconds' must be >= 0 and <= 3600"),
    (line({"cmd": "inject", "args": {"target": "crasher", "fault": "drop", "count": 0}}), "argument 'count' must be >= 1"),
    (line({"cmd": "inject", "args": {"target": "crasher", "fault": "drop", "count": 1.5}}),
     "argument 'count' must be an integer"),
    (line({"cmd": "logs", "args": {"history": -1}}), "logs: argument 'history' must be >= 0"),
    (line({"cmd": "logs", "args": {"follow": "yes"}}), "logs: argument 'follow' must be true or false"),
    (line({"cmd": "deploy", "args": {"target": "echo", "path": "/nonexistent.wat", "strategy": "yolo"}}),
     "argument 'strategy' must be one of atomic, rolling"),
    (line({"cmd": "deploy", "args": {"target": "echo", "path": "/x.wat", "canary": -1}}), "argument 'canary' must be >= 0"),
    (line({"cmd": "stats"}) + b"more\n", "one request per connection"),
    (b"{" + b" " * (1 << 20) + b"}\n", "request too large"),
]


@pytest.mark.parametrize(("data", "error"), BAD_REQUESTS, ids=[f"bad{i}" for i in range(len(BAD_REQUESTS))])
def test_a_bad_request_gets_one_error_line_naming_the_field(node: RunningNode, data: bytes, error: str) -> None:
    assert error in refused(node.socket, data)
    assert_serves(node)


def test_every_declared_range_and_choice_names_a_real_argument() -> None:
    declared = {(command, name) for command, handler in HANDLERS.items() for name in arguments(command, handler)}
    assert set(RANGES) | set(CHOICES) <= declared


def test_a_reply_that_is_not_json_is_an_error_for_that_request(node: RunningNode) -> None:
    assert "not a msgpack value" in ask(node.socket, "call", to="crasher", message="liar")["error"]
    assert "nested deeper than" in ask(node.socket, "call", to="crasher", message=["deep", 500])["error"]
    assert_serves(node)


def test_a_reset_mid_request_ends_that_connection_alone(node: RunningNode) -> None:
    for partial in (b"", b'{"cmd": "call", "args": {"to": "ec', line({"cmd": "call", "args": {"to": "mute", "message": 1}})):
        sock = connect(node.socket)
        sock.sendall(partial)
        reset(sock)
    assert_serves(node)


@pytest.mark.parametrize("partial", [b"", b'{"cmd": "ps"', b'{"cmd": "call", "args": {"to": "echo", "message": "'])
def test_a_silent_client_is_told_and_disconnected_after_the_client_timeout(node: RunningNode, partial: bytes) -> None:
    with connect(node.socket) as sock:
        sock.sendall(partial)
        started = time.monotonic()
        answer = read_to_end(sock, deadline=30)
        waited = time.monotonic() - started
    assert waited >= TIMEOUT * 0.9
    assert "within 1 s (the client timeout)" in strict_json(answer)["error"]
    assert_serves(node)


def test_connections_beyond_the_cap_are_refused_while_the_node_serves(node: RunningNode) -> None:
    # CAP clients whose calls never get an answer hold every slot for as long as they
    # stay connected (past the client timeout: they are waiting, not silent).
    holders = []
    for _ in range(CAP):
        sock = connect(node.socket)
        sock.sendall(line({"cmd": "call", "args": {"to": "mute", "message": 1, "timeout": 600}}))
        holders.append(sock)
    try:
        deadline = time.monotonic() + 20
        while True:
            error = ask(node.socket, "stats").get("error", "")
            if "too many clients" in error or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert f"too many clients: the node serves at most {CAP} at once" in error
        node.assert_alive()
    finally:
        for sock in holders:
            sock.close()
    # Their clients are gone: the calls are cancelled and the slots free again.
    assert_serves(node)


def test_a_stalled_logs_reader_is_disconnected_and_memory_stays_bounded(node: RunningNode) -> None:
    before = rss_of(node.proc.pid)
    with connect(node.socket) as stalled:
        stalled.setsockopt(socketlib.SOL_SOCKET, socketlib.SO_RCVBUF, 4096)
        stalled.sendall(line({"cmd": "logs", "args": {"follow": True, "history": 0}}))
        # Each "spam" makes the crasher flood its own mailbox (capacity 1000): dead letters,
        # of which the event bus passes up to 1000 a second to subscribers; the reader
        # takes none. Flood until the node gives up on the reader.
        deadline = time.monotonic() + 90
        while not closed_by_peer(stalled):
            assert time.monotonic() < deadline, "the node kept a reader that took nothing"
            answer = ask(node.socket, "call", to="crasher", message=["spam", "crasher", 3000], timeout=60)
            assert answer["ok"], answer
    assert rss_of(node.proc.pid) - before < 64 << 20
    assert_serves(node)


def test_a_logs_follower_that_goes_away_is_let_go(node: RunningNode) -> None:
    for _ in range(20):
        sock = connect(node.socket)
        sock.sendall(line({"cmd": "logs", "args": {"follow": True, "history": 5}}))
        sock.recv(1)
        sock.close()
    assert_serves(node)


def test_the_node_survives_fd_exhaustion_and_serves_again(tmp_path) -> None:
    running = start_node(tmp_path, TREE, "--max-clients", "1000", "--client-timeout", "30")
    try:
        limit = 64
        resource.prlimit(running.proc.pid, resource.RLIMIT_NOFILE, (limit, limit))
        clients = []
        try:
            for _ in range(120):
                # connect() succeeds while the listen backlog has room, accepted or not
                sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
                sock.settimeout(5)
                try:
                    sock.connect(str(running.socket))
                except OSError:
                    sock.close()
                    break
                clients.append(sock)
            deadline = time.monotonic() + 20
            while len(os.listdir(f"/proc/{running.proc.pid}/fd")) < limit and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(os.listdir(f"/proc/{running.proc.pid}/fd")) >= limit  # accept now fails with EMFILE
            running.assert_alive()
        finally:
            for sock in clients:
                sock.close()
        assert_serves(running, deadline=30)
    finally:
        stop_node(running)
    stderr = running.proc.stderr.read() if running.proc.stderr else ""
    assert "control socket: accept failed (EMFILE)" in stderr and "accepting again" in stderr, stderr[-2000:]
    assert stderr.count("accept failed") == 1  # one line per exhaustion, not one per retry


# ---------------------------------------------------------------------------------------
# Property: whatever a client sends, it gets strict-JSON lines (one, if an error) or a
# closed connection, and the node serves on.

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# Only commands that answer at once whatever their arguments (no streaming, no faults,
# no deployments), so that a generated request cannot harm the node on purpose.
COMMANDS = st.sampled_from(["tree", "ps", "stats", "call"]) | st.text(max_size=10)
ARG_NAMES = st.sampled_from(["to", "message", "timeout", "follow", "history", "target"]) | st.text(max_size=8)
ARGS = st.dictionaries(ARG_NAMES, JSON_VALUES, max_size=4) | JSON_VALUES
REQUESTS = st.fixed_dictionaries({"cmd": COMMANDS | JSON_VALUES}, optional={"args": ARGS, "extra": JSON_VALUES})


def _check_answer(lines: list[bytes]) -> None:
    answers = [strict_json(item) for item in lines]
    assert len(answers) <= 1, answers
    for answer in answers:
        assert isinstance(answer, dict) and isinstance(answer.get("ok"), bool), answer
        if not answer["ok"]:
            assert isinstance(answer["error"], str) and answer["error"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=REQUESTS)
def test_property_any_json_request_gets_one_strict_json_answer(node: RunningNode, request: dict) -> None:
    if isinstance(request.get("args"), dict) and request["cmd"] == "call":
        request["args"].pop("to", None)  # never a real process: "call" must not reach mute
    _check_answer(exchange(node.socket, json.dumps(request).encode() + b"\n"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300))
def test_property_any_bytes_get_one_strict_json_answer_or_a_close(node: RunningNode, data: bytes) -> None:
    _check_answer(exchange(node.socket, data + b"\n"))


def test_the_node_serves_after_the_properties(node: RunningNode) -> None:
    assert_serves(node)


def test_a_flood_of_oversized_requests_keeps_memory_bounded(node: RunningNode) -> None:
    before = rss_of(node.proc.pid)
    blob = b"x" * ((1 << 20) + 10)
    for _ in range(40):
        assert "request too large" in refused(node.socket, blob)
    assert rss_of(node.proc.pid) - before < 64 << 20
    assert_serves(node)


@pytest.mark.parametrize(("flag", "value", "error"), [
    ("--client-timeout", "nan", "must be a finite number of seconds > 0 and <= 3600, got nan"),
    ("--client-timeout", "inf", "must be a finite number of seconds > 0 and <= 3600, got inf"),
    ("--client-timeout", "0", "> 0"),
    ("--client-timeout", "-1", "> 0"),
    ("--client-timeout", "1e9", "<= 3600"),
    ("--client-timeout", "soon", "not a number: 'soon'"),
    ("--max-clients", "0", "must be >= 1 and <= 100000, got 0"),
    ("--max-clients", "1000001", "<= 100000"),
    ("--max-clients", "1.5", "not a number: '1.5'"),
])
def test_bad_client_limit_flags_are_refused_naming_the_flag(tmp_path, flag: str, value: str, error: str) -> None:
    from .conftest import AIRSSYS, ROOT

    tree = tmp_path / "tree.py"
    tree.write_text(TREE)
    result = subprocess.run([*AIRSSYS, "run", str(tree), flag, value], capture_output=True, text=True, timeout=60,
                            cwd=ROOT, env={**os.environ, "AIRSSYS_SOCKET": str(tmp_path / "s" / "control.sock")})
    assert result.returncode == 2
    assert f"argument {flag}: " in result.stderr and error in result.stderr, result.stderr
    assert not (tmp_path / "s" / "control.sock").exists()  # refused before any node started


def test_a_send_to_a_full_mailbox_fails_at_the_client_timeout(node: RunningNode):
    """`send` waits for room as node.send does, but a client of the socket only as long
    as its timeout: then it is told the message was not sent, and its slot is free."""
    assert ask(node.socket, "send", to="full", message=1) == {"ok": True, "result": "sent"}  # taken, never done
    assert ask(node.socket, "send", to="full", message=2) == {"ok": True, "result": "sent"}  # queued: full now
    answer = ask(node.socket, "send", to="full", message=3)  # ask fails if no answer comes
    assert answer["ok"] is False and "mailbox" in answer["error"] and "not sent" in answer["error"], answer
    assert_serves(node)
