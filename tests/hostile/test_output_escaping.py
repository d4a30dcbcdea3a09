"""Guest and client text on the user's terminal: no control character (so no terminal
escape sequence: ESC, CSI, OSC, BEL, backspace, CR...) reaches it, and rich markup in that
text (``[bold]``, ``[link=...]``) is shown as typed, never interpreted. The same for the
node's own stderr."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .clients import assert_serves
from .conftest import COMPONENTS, RunningNode, start_node, stop_node

MOUTHPIECE = Path(__file__).parent / "guests" / "mouthpiece.wat"
HOSTILE_ID = "[link=http://evil.example]ev[/link]\x1b[2J\u202e"
HOSTILE_VERSION = "[bold]v\x1b]0;title\x07\x08"
# An OSC 8 hyperlink, a colour, a bell, a carriage return that would overwrite the line,
# a newline that would forge a log line of its own, and markup.
HOSTILE_TEXT = "\x1b]8;;http://evil.example\x07click\x1b]8;;\x07 \x1b[31mred\x9b2J\a\b\r[bold]b[/bold]\nFAKE exit"

TREE = f"""
from supervisors import Supervisor, Child
tree = Supervisor("root", children=[
    Child("echo", {str(COMPONENTS / "echo.wat")!r}, name="echo"),
    Child({HOSTILE_ID!r}, {str(MOUTHPIECE)!r}, name="mouth", version={HOSTILE_VERSION!r}),
])
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    running = start_node(tmp_path_factory.mktemp("escaping"), TREE)
    yield running
    stop_node(running)


def assert_no_control_characters(text: str) -> None:
    bad = [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0 or c in "\u202e\u2028\u2029"]
    assert not bad, f"control characters {bad!r} in {text!r}"


def test_tree_and_ps_show_ids_and_versions_escaped_and_without_markup(node: RunningNode) -> None:
    tree = node.cli("tree")
    assert tree.returncode == 0, tree.stderr
    assert_no_control_characters(tree.stdout)
    assert "[link=http://evil.example]ev[/link]\\x1b[2J\\u202e" in tree.stdout
    assert "mouthpiece@[bold]v\\x1b]0;title\\x07\\x08" in tree.stdout
    ps = node.cli("ps")
    assert ps.returncode == 0, ps.stderr
    assert_no_control_characters(ps.stdout)
    assert "[bold]v\\x1b]0;title\\x07\\x08" in ps.stdout


def test_a_guest_log_line_is_one_escaped_line_in_logs(node: RunningNode) -> None:
    assert node.cli("call", "mouth", json.dumps("l" + HOSTILE_TEXT)).returncode == 0
    logs = node.cli("logs", "--history", "100")
    assert logs.returncode == 0, logs.stderr
    assert_no_control_characters(logs.stdout)
    line = next(line for line in logs.stdout.splitlines() if "click" in line)
    assert line.endswith("\\x1b]8;;http://evil.example\\x07click\\x1b]8;;\\x07 \\x1b[31mred\\x9b2J\\x07\\x08\\r"
                         "[bold]b[/bold]\\nFAKE exit")
    assert not any(line.startswith("FAKE") for line in logs.stdout.splitlines())
    as_json = node.cli("logs", "--history", "100", "--json")
    assert_no_control_characters(as_json.stdout)
    assert any(json.loads(line).get("message") == HOSTILE_TEXT for line in as_json.stdout.splitlines())


def test_a_guest_exit_reason_is_escaped_in_errors_and_logs(node: RunningNode) -> None:
    reason = "[bold]b[/bold] \x1b[31mred\x07\x9b2J done"
    call = node.cli("call", "mouth", json.dumps("s" + reason))
    assert call.returncode == 1
    assert_no_control_characters(call.stderr)
    assert call.stderr.endswith("exit: [bold]b[/bold] \\x1b[31mred\\x07\\x9b2J done\n"), call.stderr
    logs = node.cli("logs", "--history", "100")
    assert_no_control_characters(logs.stdout)
    assert "reason=exit: [bold]b[/bold] \\x1b[31mred\\x07\\x9b2J done" in logs.stdout
    assert_serves(node)


def test_a_reply_with_control_characters_is_printed_as_json_escapes(node: RunningNode) -> None:
    call = node.cli("call", "echo", json.dumps(HOSTILE_TEXT))
    assert call.returncode == 0
    assert_no_control_characters(call.stdout)
    assert json.loads(call.stdout) == HOSTILE_TEXT


def test_client_text_in_errors_is_escaped_and_not_markup(node: RunningNode) -> None:
    bad = node.cli("inject", "[bold]no\x1b[2Jbody", "kill")
    assert bad.returncode == 1
    assert_no_control_characters(bad.stderr)
    assert "[bold]no\\x1b[2Jbody" in bad.stderr


def test_guest_text_reaches_the_node_stderr_escaped(tmp_path: Path) -> None:
    running = start_node(tmp_path, TREE)
    try:
        assert running.cli("call", "mouth", json.dumps("l" + HOSTILE_TEXT)).returncode == 0
    finally:
        stop_node(running)
    stderr = running.proc.stderr.read() if running.proc.stderr else ""
    assert "click" in stderr  # warnings of guests are logged there
    assert_no_control_characters(stderr)
