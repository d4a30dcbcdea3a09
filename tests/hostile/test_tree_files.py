"""Tree files (`airssys run TREE.py`) are input too: a missing or broken component is
reported with the child (its id path in the tree) and the path, before anything starts;
relative component paths mean relative to the tree file; and whatever the file holds,
loading it gives a tree or a one-line TreeFileError, never another exception."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airssys_cli.treefile import TreeFileError, load_tree
from supervisors import Child, Supervisor

from ..conftest import COMPONENTS, GUESTS, ROOT
from .conftest import AIRSSYS, start_node, stop_node

CORE_MODULE = b"\x00asm\x01\x00\x00\x00"  # a valid, empty core module: not a component


def tree_text(component: str, *, nested: bool = True) -> str:
    child = f"Child('echo1', {component!r}, name='echo1')"
    inner = f"Supervisor('pool', children=[Child('ok', 'echo.wat'), {child}])" if nested else child
    return f"from supervisors import Supervisor, Child\ntree = Supervisor('root', children=[{inner}])\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A tree folder with a good echo.wat and the kinds of bad component a user can name."""
    shutil.copy(COMPONENTS / "echo.wat", tmp_path / "echo.wat")
    (tmp_path / "syntax.wat").write_text("(component\n  (core module $m\n    (func (result i32) i32.const))\n")
    (tmp_path / "core.wasm").write_bytes(CORE_MODULE)
    (tmp_path / "noise.wasm").write_bytes(os.urandom(64))
    (tmp_path / "world.wat").write_text((COMPONENTS / "notaworld.wat").read_text())
    (tmp_path / "adir.wat").mkdir()
    return tmp_path


BAD = [
    ("missing.wat", "cannot read"),
    ("sub/missing.wasm", "cannot read"),
    ("syntax.wat", ""),
    ("core.wasm", ""),
    ("noise.wasm", ""),
    ("world.wat", ""),
    ("adir.wat", "cannot read"),
]


@pytest.mark.parametrize("component, problem", BAD)
def test_a_bad_component_names_the_child_and_the_path(folder, component, problem, monkeypatch):
    monkeypatch.chdir("/")  # the working directory plays no part
    tree = folder / "tree.py"
    tree.write_text(tree_text(component))
    with pytest.raises(TreeFileError) as info:
        load_tree(tree)
    message = str(info.value)
    assert "\n" not in message
    assert "root/pool/echo1" in message
    assert str(folder / component) in message
    assert problem in message


def test_airssys_run_reports_it_before_anything_starts(folder):
    tree = folder / "tree.py"
    tree.write_text(tree_text("syntax.wat"))
    socket = folder / "sock" / "control.sock"
    env = {**os.environ, "AIRSSYS_SOCKET": str(socket)}
    result = subprocess.run([*AIRSSYS, "run", str(tree)], capture_output=True, text=True, cwd=ROOT, env=env,
                            timeout=60)
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "root/pool/echo1" in lines[0] and str(folder / "syntax.wat") in lines[0]
    assert not socket.exists()  # no node was started
    assert "running tree" not in result.stdout + result.stderr


def test_relative_paths_are_resolved_against_the_tree_files_folder(folder, monkeypatch):
    (folder / "parts").mkdir()
    shutil.copy(COMPONENTS / "echo.wat", folder / "parts" / "echo2.wat")
    (folder / "tree.py").write_text(
        "from pathlib import Path\nfrom supervisors import Supervisor, Child\n"
        "tree = Supervisor('root', children=[Child('a', 'echo.wat'), Child('b', Path('parts/echo2.wat')),"
        f" Child('c', {str(COMPONENTS / 'echo.wat')!r})])\n")
    monkeypatch.chdir(GUESTS)  # a folder with no echo.wat
    tree = load_tree(folder / "tree.py")
    a, b, c = tree.children
    assert isinstance(a, Child) and a.component == str(folder / "echo.wat")
    assert isinstance(b, Child) and b.component == folder / "parts" / "echo2.wat"
    assert isinstance(c, Child) and c.component == str(COMPONENTS / "echo.wat")  # absolute: as given


def test_a_node_runs_a_tree_with_relative_paths_from_another_folder(folder):
    # start_node runs `airssys run` with the repository as working directory.
    node = start_node(folder, "from supervisors import Supervisor, Child\n"
                              "tree = Supervisor('root', children=[Child('echo', 'echo.wat', name='echo')])\n")
    try:
        result = node.cli("call", "echo", '"relative"')
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == '"relative"'
    finally:
        stop_node(node)


def test_a_name_that_is_no_file_is_left_for_the_node_to_resolve(folder):
    (folder / "tree.py").write_text(tree_text("registered-later"))
    tree = load_tree(folder / "tree.py")
    assert tree.children[0].children[1].component == "registered-later"
    assert tree.children[0].children[0].component == str(folder / "echo.wat")


def test_components_given_as_bytes_are_checked_too(tmp_path):
    (tmp_path / "tree.py").write_text(
        "from supervisors import Supervisor, Child\n"
        f"tree = Supervisor('root', children=[Child('raw', {CORE_MODULE!r})])\n")
    with pytest.raises(TreeFileError, match="root/raw"):
        load_tree(tmp_path / "tree.py")


@pytest.mark.parametrize("text, needle", [
    ("raise SystemExit(3)", "SystemExit"),
    ("import sys; sys.exit('bye')", "bye"),
    ("raise KeyError('a\\nb\\x1b[31m')", "KeyError"),
    ("tree = 5", "must define"),
    ("def make_tree():\n    raise ValueError('x\\ny')", "ValueError"),
    ("from supervisors import Supervisor\ntree = Supervisor('r', within=float('nan'))", "within"),
    ("from supervisors import Supervisor, Child\ntree = Supervisor('r', children=[Child('c', 'e.wat', shutdown=1e999)])",
     "shutdown"),
    ("class E(Exception):\n    def __str__(self): raise RuntimeError\nraise E()", "E"),
    ("x = '" + "y" * 100_000 + "'\nraise ValueError(x)", "ValueError"),
])
def test_a_tree_file_that_fails_gives_one_short_line(tmp_path, text, needle):
    (tmp_path / "tree.py").write_text(text)
    with pytest.raises(TreeFileError) as info:
        load_tree(tmp_path / "tree.py")
    message = str(info.value)
    assert "\n" not in message and "\x1b" not in message and len(message) < 1000
    assert needle in message


@pytest.mark.parametrize("path", ["", "missing.py", "\x00.py", "x" * 5000 + ".py", "tree.txt", "/"])
def test_bad_tree_paths(path):
    with pytest.raises(TreeFileError) as info:
        load_tree(path)
    assert "\n" not in str(info.value)


# -- property: any file content gives a tree or a one-line TreeFileError -------------------

_FOLDER = Path(tempfile.mkdtemp(prefix="airssys-treefile-"))


def _load_content(data: bytes) -> None:
    path = _FOLDER / "tree.py"
    path.write_bytes(data)
    try:
        tree = load_tree(path)
    except TreeFileError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message
        return
    assert isinstance(tree, Supervisor)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_property_any_text_is_a_tree_or_a_tree_file_error(text):
    _load_content(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=200, deadline=None)
@given(st.binary())
def test_property_any_bytes_are_a_tree_or_a_tree_file_error(data):
    _load_content(data)


ATOMS = st.sampled_from([
    "tree", "=", "Supervisor", "Child", "(", ")", "[", "]", "'root'", "'c'", "'echo.wat'", ",", "children=",
    "within=", "max_restarts=", "shutdown=", "float('nan')", "1e999", "-1", "True", "None", "\n",
    "from supervisors import Supervisor, Child\n", "make_tree", "def", ":", "lambda", "0", "'brutal_kill'",
])


@settings(max_examples=200, deadline=None)
@given(st.lists(ATOMS, max_size=30))
def test_property_tree_like_text_is_a_tree_or_a_tree_file_error(atoms):
    """Closer to real tree files than random text: most examples reach the spec checks."""
    shutil.copy(COMPONENTS / "echo.wat", _FOLDER / "echo.wat")
    _load_content(" ".join(atoms).encode())
