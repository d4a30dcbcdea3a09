"""Loading a supervision tree from a Python file (``airssys run TREE.py``)."""

from __future__ import annotations

import runpy
from pathlib import Path

from supervisors import Supervisor


class TreeFileError(Exception):
    pass


def load_tree(path: str) -> Supervisor:
    """The module-level ``tree`` (a Supervisor) of the file, or what ``make_tree()`` returns."""
    file = Path(path)
    if file.is_dir():
        raise TreeFileError(f"{path} is a directory: give the Python file that defines `tree`")
    if not file.is_file():
        raise TreeFileError(f"no such file: {path}")
    if file.suffix != ".py":
        raise TreeFileError(f"{path} is not a tree file: give a Python file that defines `tree = Supervisor(...)`")
    try:
        namespace = runpy.run_path(str(file), run_name="airssys_tree")
    except Exception as exc:
        raise TreeFileError(f"{path} failed to load: {type(exc).__name__}: {exc}") from exc
    tree = namespace.get("tree")
    if tree is None and callable(namespace.get("make_tree")):
        tree = namespace["make_tree"]()
    if not isinstance(tree, Supervisor):
        raise TreeFileError(f"{path} must define `tree = Supervisor(...)` or `make_tree()`")
    return tree
