"""WAT that does not parse is refused with an error that says where: ``FILE:LINE:COL:``
for a file (``<wat>:LINE:COL:`` for bytes), wasmtime's message and the offending text;
at Component.load, at spawn by path, and on deploy to a real node, which goes on
serving."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airssys_actors import Component, InvalidComponent

from ..isolation.guests import ECHO, assert_serving

ECHO_TEXT = Path(ECHO).read_text()
#: A line of echo.wat deep inside the file, damaged: the unknown instruction is the error.
GOOD_LINE = "      (i32.store8 (i32.const 0) (i32.const 0))"


def _damaged() -> tuple[str, int, int]:
    """echo.wat with one instruction misspelt; returns the text, its line and column."""
    lines = ECHO_TEXT.splitlines()
    index = next(i for i, line in enumerate(lines) if line == GOOD_LINE)
    lines[index] = GOOD_LINE.replace("i32.store8", "i32.stroe8")
    return "\n".join(lines) + "\n", index + 1, GOOD_LINE.index("i32.store8") + 1


DAMAGED, LINE, COL = _damaged()


@pytest.fixture
def damaged_file(tmp_path: Path) -> Path:
    path = tmp_path / "x.wat"
    path.write_text(DAMAGED)
    return path


def test_a_file_names_its_path_line_column_and_the_offending_text(damaged_file):
    assert LINE > 10  # the error is not on the first line: the position is worth reporting
    with pytest.raises(InvalidComponent) as info:
        Component.load(damaged_file)
    message = str(info.value)
    assert message.startswith(f"{damaged_file}:{LINE}:{COL}: invalid WAT: ")
    assert "near 'i32.stroe8 (i32.const 0) (i32.const 0))'" in message
    assert "<anon>" not in message and "\n" not in message


def test_bytes_are_named_wat(damaged_file):
    with pytest.raises(InvalidComponent) as info:
        Component.load(DAMAGED.encode())
    assert str(info.value).startswith(f"<wat>:{LINE}:{COL}: invalid WAT: ")


async def test_spawning_by_path_reports_the_position_and_the_node_serves(node, damaged_file):
    echo = await node.spawn(ECHO)
    with pytest.raises(InvalidComponent) as info:
        await node.spawn(str(damaged_file))
    assert str(info.value).startswith(f"{damaged_file}:{LINE}:{COL}: invalid WAT: ")
    with pytest.raises(InvalidComponent) as info:
        await node.spawn(DAMAGED.encode())
    assert str(info.value).startswith(f"<wat>:{LINE}:{COL}: invalid WAT: ")
    assert node.pids() == [echo]
    await assert_serving(node)


@pytest.mark.parametrize("text, line, col", [
    ("", 1, 1),
    ("(component (core module", 1, 24),
    ("(component)\n\n  )", 3, 3),
    ('(component\n  (import "unterminated', 2, 24),  # the end of the file
    ("(component\n  ;; fine\n  (; never closed", 3, 3),
])
def test_every_kind_of_syntax_error_has_a_position(tmp_path, text, line, col):
    path = tmp_path / "y.wat"
    path.write_text(text)
    with pytest.raises(InvalidComponent) as info:
        Component.load(path)
    assert str(info.value).startswith(f"{path}:{line}:{col}: invalid WAT: ")


def test_the_offending_text_is_bounded(tmp_path):
    path = tmp_path / "long.wat"
    path.write_text("(component " + "(bogus " * 50_000 + ")")
    with pytest.raises(InvalidComponent) as info:
        Component.load(path)
    assert str(info.value).startswith(f"{path}:1:13: invalid WAT: expected valid component field, near 'bogus (bogus")
    assert len(str(info.value)) < 300 + len(str(path))


def test_a_file_that_is_neither_binary_nor_text_is_named(tmp_path):
    path = tmp_path / "z.wat"
    path.write_bytes(b"(component \xff\xfe)")
    with pytest.raises(InvalidComponent, match=re.escape(f"{path}: not WebAssembly")):
        Component.load(path)


def test_deploying_bad_wat_to_a_real_node_reports_the_position(running_node, damaged_file):
    done = running_node.cli("deploy", "echo", str(damaged_file))
    assert done.returncode != 0
    assert f"{damaged_file}:{LINE}:{COL}: invalid WAT" in done.stderr + done.stdout
    running_node.assert_alive()
    answer = running_node.cli("call", "echo", '"still there"')
    assert answer.returncode == 0 and "still there" in answer.stdout


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=300).map(lambda t: "(component " + t))
def test_any_text_that_does_not_parse_gets_a_position_inside_it(text):
    try:
        Component.load(text.encode())
    except InvalidComponent as exc:
        message = str(exc)
    else:
        return  # it happened to be a valid component of the world: impossible, but fine
    found = re.match(r"<wat>:(\d+):(\d+): invalid WAT: ", message)
    if found is None:  # not a syntax error: a valid component that is not a process
        assert "<wat>" not in message and "<anon>" not in message
        return
    line, col = int(found.group(1)), int(found.group(2))
    lines = text.split("\n")
    assert 1 <= line <= len(lines) and 1 <= col <= len(lines[line - 1]) + 1
