"""The docs cannot drift from the code.

* Every ```python block in README.md and docs/*.md is a complete program: it is run with
  the venv's Python from the repository root and must exit with status 0. Mark a block
  that is deliberately not runnable (a signature, a fragment, guest code) with
  ```python no-run, or use ```text.
* Listings that claim to be a file are that file: the ```wit block of docs/wit.md is
  wit/actor.wit, and a ```wat file=PATH block is PATH. A ```wat from=PATH block is an
  excerpt: each of its lines is a line of PATH.
* Relative links point at files that exist, and #anchors at headings that exist.
* examples/demo.py (``make demo``) runs to the end and accounts for every message.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PYTHON) if _VENV_PYTHON.exists() else sys.executable
TIMEOUT = 60

#: Docs that other pages link to but that are written separately; a link to one of these
#: may dangle until it lands (its anchors are not checked meanwhile).
PENDING_DOCS = {"supervision.md", "hot-deployment.md", "security.md", "cli.md", "benchmarks.md"}


@attrs.frozen
class Block:
    path: Path
    line: int
    """1-based line of the opening fence."""
    info: tuple[str, ...]
    """The fence's info string, split: ("python", "no-run"), ("wat", "from=x.wat")."""
    body: str

    @property
    def language(self) -> str:
        return self.info[0] if self.info else ""

    def option(self, key: str) -> str | None:
        for word in self.info[1:]:
            if word.startswith(key + "="):
                return word[len(key) + 1:]
        return None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, in order."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence[0] * len(fence))
                                      and lines[j].strip().strip(fence[0]) == ""):
            line = lines[j]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            j += 1
        found.append(Block(path, i + 1, tuple(opening["info"].split()), "\n".join(body) + "\n"))
        i = j + 1
    return found


ALL_BLOCKS = [b for path in DOCS for b in blocks(path)]
RUNNABLE = [b for b in ALL_BLOCKS if b.language == "python" and "no-run" not in b.info[1:]]


def test_the_docs_have_runnable_examples():
    assert len(RUNNABLE) >= 15, [b.where for b in RUNNABLE]
    assert any(b.path.name == "README.md" for b in RUNNABLE)


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.where for b in RUNNABLE])
def test_python_block_runs(block: Block, tmp_path: Path):
    script = tmp_path / "block.py"
    script.write_text(block.body, encoding="utf-8")
    # The script is not in ROOT, so without PYTHONPATH it would import whatever copy of
    # the package the venv has installed (another checkout, for a git worktree).
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    result = subprocess.run(
        [PYTHON, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": path},
    )
    assert result.returncode == 0, (
        f"{block.where} exited with {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


# -- listings ---------------------------------------------------------------------------


def test_the_wit_listing_is_the_wit_file():
    (listing,) = [b for b in blocks(ROOT / "docs" / "wit.md") if b.language == "wit"]
    assert listing.body == (ROOT / "wit" / "actor.wit").read_text(encoding="utf-8")


FILE_LISTINGS = [b for b in ALL_BLOCKS if b.option("file")]
EXCERPTS = [b for b in ALL_BLOCKS if b.option("from")]


@pytest.mark.parametrize("block", FILE_LISTINGS, ids=[b.where for b in FILE_LISTINGS])
def test_a_file_listing_is_the_file(block: Block):
    assert block.body == (ROOT / block.option("file")).read_text(encoding="utf-8")


@pytest.mark.parametrize("block", EXCERPTS, ids=[b.where for b in EXCERPTS])
def test_an_excerpt_is_taken_from_its_file(block: Block):
    text = (ROOT / block.option("from")).read_text(encoding="utf-8")
    source = {line.strip() for line in text.splitlines()}
    missing = [line for line in block.body.splitlines() if line.strip() and line.strip() not in source]
    assert missing == [], f"{block.where}: lines not in {block.option('from')}"


def test_the_wat_guide_lists_adder_and_echo():
    guide = blocks(ROOT / "docs" / "guests-wat.md")
    assert any(b.option("file") == "examples/components/adder.wat" for b in guide)
    assert any(b.option("from") == "examples/components/echo.wat" for b in guide)


def test_adder_is_a_valid_component():
    tool = shutil.which("wasm-tools") or str(Path(PYTHON).with_name("wasm-tools"))
    if not os.path.exists(tool):
        pytest.skip("wasm-tools is not installed")
    adder = str(ROOT / "examples" / "components" / "adder.wat")
    subprocess.run([tool, "validate", adder], check=True, timeout=TIMEOUT)
    subprocess.run([tool, "component", "targets", str(ROOT / "wit"), adder, "--world", "process"],
                   check=True, timeout=TIMEOUT)


# -- links ------------------------------------------------------------------------------

_LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    fenced = {b.line for b in blocks(path)}
    anchors = set()
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            inside = (number in fenced) if not inside else False
            continue
        if not inside and line.startswith("#"):
            anchors.add(_slug(line.lstrip("#")))
    return anchors


def _links(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    for block in blocks(path):
        text = text.replace(block.body, "")
    return [m["target"] for m in _LINK.finditer(text)]


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_relative_links_resolve(path: Path):
    broken = []
    for target in _links(path):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            if resolved.name not in PENDING_DOCS:
                broken.append(target)
            continue
        if anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(target)
    assert broken == []


# -- the demo ---------------------------------------------------------------------------


def test_the_demo_runs_and_loses_nothing():
    result = subprocess.run(
        [PYTHON, str(ROOT / "examples" / "demo.py")], cwd=ROOT, capture_output=True, text=True,
        timeout=TIMEOUT,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert re.search(r"\blost\b\W*0\b", result.stdout), result.stdout
