"""Loading a supervision tree from a Python file (``airssys run TREE.py``).

Everything that can be checked is checked here, before any process starts: the file
runs, defines a tree, and every child's component loads. An error is one line that says
which file, which child (its id path in the tree, e.g. ``root/pool/echo1``) and which
component path. A relative component path means relative to the tree file's folder, so
a tree runs the same from any working directory.
"""

from __future__ import annotations

import os
import runpy
import unicodedata
from pathlib import Path
from typing import Any

import attrs

from airssys_actors import Component
from supervisors import Child, Supervisor

COMPONENT_SUFFIXES = (".wat", ".wasm")
MESSAGE_LIMIT = 400
"""Characters of a cause kept in a TreeFileError (a tree file can raise anything)."""


class TreeFileError(Exception):
    """The tree file cannot be run; the message is one line naming the file (and the
    child and component path, for a component that does not load)."""


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` as one printable line: control characters escaped, runs of whitespace
    (newlines too) made one space, cut to ``limit`` characters."""
    shown = "".join(c if not unicodedata.category(c).startswith("C") else
                    c.encode("unicode_escape").decode("ascii") for c in " ".join(text.split()))
    return shown if len(shown) <= limit else f"{shown[:limit]}... ({len(shown)} chars)"


def _cause(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a tree file's own exception class may fail to print
        text = ""
    return one_line(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def load_tree(path: str | os.PathLike[str]) -> Supervisor:
    """The module-level ``tree`` (a Supervisor) of the file, or what ``make_tree()``
    returns, with every child's component loaded once to check it and relative component
    paths resolved against the file's folder.

    Raises:
        TreeFileError: whatever is wrong, in one line (never another exception, except
            KeyboardInterrupt).
    """
    shown = one_line(os.fspath(path))
    if not shown:
        raise TreeFileError("no tree file given: give the Python file that defines `tree`")
    file = Path(path)
    try:
        if file.is_dir():
            raise TreeFileError(f"{shown} is a directory: give the Python file that defines `tree`")
        if not file.is_file():
            raise TreeFileError(f"no such file: {shown}")
    except OSError as exc:  # a name too long, a folder we may not read...
        raise TreeFileError(f"cannot read {shown}: {_cause(exc)}") from None
    if file.suffix != ".py":
        raise TreeFileError(f"{shown} is not a tree file: give a Python file that defines `tree = Supervisor(...)`")
    try:
        # SystemExit too: a tree file that calls sys.exit() is a tree file that failed.
        namespace = runpy.run_path(str(file), run_name="airssys_tree")
        tree = namespace.get("tree")
        if tree is None and callable(namespace.get("make_tree")):
            tree = namespace["make_tree"]()
    except (Exception, SystemExit) as exc:
        raise TreeFileError(f"{shown} failed to load: {_cause(exc)}") from exc
    if not isinstance(tree, Supervisor):
        raise TreeFileError(f"{shown} must define `tree = Supervisor(...)` or `make_tree()`")
    return _checked(tree, file.resolve().parent, shown, tree.id)


def _checked(spec: Supervisor, folder: Path, file: str, where: str) -> Supervisor:
    children = []
    changed = False
    for child in spec.children:
        at = f"{where}/{child.id}"
        new = _checked(child, folder, file, at) if isinstance(child, Supervisor) else _checked_child(child, folder, file, at)
        changed = changed or new is not child
        children.append(new)
    if not changed:
        return spec
    try:
        return attrs.evolve(spec, children=children)
    except Exception as exc:  # cannot happen for children that were valid; say so if it does
        raise TreeFileError(f"{file}: supervisor {where}: {_cause(exc)}") from exc


def _checked_child(child: Child, folder: Path, file: str, where: str) -> Child:
    """``child`` with its component path made absolute (against ``folder``), once that
    component has loaded; a TreeFileError naming the child and the path if it does not."""
    component: Any = child.component
    if isinstance(component, (bytes, bytearray)):
        _load(component, child, file, where, "(bytes)")
        return child
    if not isinstance(component, (str, os.PathLike)):
        return child  # a loaded Component, an Actor class or factory: nothing to resolve
    try:
        given = Path(component)
        resolved = given if given.is_absolute() else folder / given
        exists = resolved.exists()
    except (OSError, ValueError, TypeError) as exc:  # a NUL in the path, a name too long...
        raise TreeFileError(f"{file}: child {where}: component {one_line(repr(component))}: {_cause(exc)}") from None
    if not exists and resolved.suffix not in COMPONENT_SUFFIXES:
        # Not a file: the name of a component registered on the node by the time this
        # child starts (a Python actor of the tree may load one); the spawn checks it.
        return child
    shown = one_line(str(resolved))
    _load(resolved, child, file, where, shown)  # says "cannot read" for a missing file or a folder
    # The spec keeps a path (of the type it was given), now absolute: the supervisor
    # loads it as before (the compiled component is cached, so that costs no compile).
    absolute: Any = str(resolved) if isinstance(component, str) else resolved
    return child if absolute == component else attrs.evolve(child, component=absolute)


def _load(source: Path | bytes | bytearray, child: Child, file: str, where: str, shown: str) -> None:
    try:
        Component.load(source, version=child.version)
    except Exception as exc:
        raise TreeFileError(f"{file}: child {where}: component {shown}: {_cause(exc)}") from None
