#!/usr/bin/env python3
"""Build the Python guests under examples/python_guest/ into wasm components.

    python scripts/build_python_guest.py            # every guest (folders with app.py)
    python scripts/build_python_guest.py kvstore    # just that one
    python scripts/build_python_guest.py --force    # rebuild even when up to date

Each guest folder ``examples/python_guest/NAME/`` holds ``app.py`` (the module that
defines ``class WitWorld``) and whatever pure-Python modules it imports. It becomes
``build/guests/NAME.wasm`` through componentize-py, run as

    componentize-py -d wit -w process componentize -p examples/python_guest/NAME \\
        --stub-wasi -o build/guests/NAME.wasm app

``--stub-wasi`` leaves the component importing only airssys:actor/types and
airssys:actor/host, as the ``process`` world says: WASI calls (files, clocks,
stdout, random) trap inside the guest instead of needing a WASI host.

A guest that is meant to use WASI opts out: an (empty) file named ``WASI`` in its
folder drops ``--stub-wasi``, so the component imports the WASI 0.2 interfaces its
Python runtime uses (``wasi:filesystem``, ``wasi:cli``, ``wasi:clocks``, ``wasi:random``,
...). The node gives such a guest what ``Capabilities(wasi=WasiGrant(...))``
grants; without a grant, an empty WASI context (docs/security.md).

A build takes several seconds, so it is skipped when ``NAME.wasm.sha256`` beside the
output records the same source hash: the WIT files, every .py file of the guest,
the componentize-py version, the command line above and whether the ``WASI`` marker
is present. The output path of each guest is printed on stdout (one line each);
progress goes to stderr.

componentize-py is looked for next to the running interpreter (``sys.executable``),
then in the repo's ``.venv``; install it with ``pip install componentize-py==0.25.1``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parent.parent
WIT_DIR = REPO / "wit"
WORLD = "process"
GUESTS_DIR = REPO / "examples" / "python_guest"
OUT_DIR = REPO / "build" / "guests"
APP_MODULE = "app"
#: A file of this name in a guest's folder builds it without ``--stub-wasi``.
WASI_MARKER = "WASI"
COMPONENTIZE_PY_PIN = "0.25.1"


def fail(message: str) -> NoReturn:
    print(f"build_python_guest: error: {message}", file=sys.stderr)
    sys.exit(1)


def find_componentize_py() -> Path:
    """componentize-py next to sys.executable, else in the repo's own .venv."""
    here = Path(sys.executable).parent  # not resolved: a venv's bin/ is what counts
    for bindir in (here, REPO / ".venv" / "bin", REPO / ".venv" / "Scripts"):
        for name in ("componentize-py", "componentize-py.exe"):
            candidate = bindir / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    fail(
        f"componentize-py is not installed next to {sys.executable}; "
        f"install it with: {sys.executable} -m pip install componentize-py=={COMPONENTIZE_PY_PIN}"
    )


def componentize_py_version(exe: Path) -> str:
    if exe.parent == Path(sys.executable).parent:
        try:
            from importlib.metadata import version

            return version("componentize-py")
        except Exception:  # not importable from this interpreter: ask the tool itself
            pass
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    if proc.returncode != 0:
        fail(f"`{exe} --version` failed: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout.strip().split()[-1]  # "componentize-py 0.25.1"


def guest_names() -> list[str]:
    if not GUESTS_DIR.is_dir():
        return []
    return sorted(p.name for p in GUESTS_DIR.iterdir()
                  if p != COMMON_DIR and (p / f"{APP_MODULE}.py").is_file())


#: Modules every guest may import (the msgpack codec), put on each guest's path.
COMMON_DIR = GUESTS_DIR / "common"


def source_files(guest_dir: Path) -> list[Path]:
    wit = sorted(p for p in WIT_DIR.rglob("*.wit") if p.is_file())
    py = sorted(
        p for d in (guest_dir, COMMON_DIR) for p in d.rglob("*.py")
        if p.is_file() and "__pycache__" not in p.parts
    )
    return wit + py


def uses_wasi(guest_dir: Path) -> bool:
    """Whether the guest opted out of ``--stub-wasi`` (a ``WASI`` file in its folder)."""
    return (guest_dir / WASI_MARKER).is_file()


def componentize_args(exe: Path, guest_dir: Path, output: Path) -> list[str]:
    return [
        str(exe),
        "-d", str(WIT_DIR),
        "-w", WORLD,
        "componentize",
        "-p", str(guest_dir),
        "-p", str(COMMON_DIR),
        *([] if uses_wasi(guest_dir) else ["--stub-wasi"]),
        "-o", str(output),
        APP_MODULE,
    ]


def source_hash(guest_dir: Path, tool_version: str) -> str:
    h = hashlib.sha256()

    def feed(label: str, data: bytes) -> None:
        h.update(f"{label}\0{len(data)}\0".encode())
        h.update(data)

    feed("componentize-py", tool_version.encode())
    if uses_wasi(guest_dir):  # (absent for stubbed guests, so their hashes stay as they were)
        feed("wasi-marker", b"no --stub-wasi")
    # The command line, with paths made repo-relative so the hash survives a move.
    args = componentize_args(Path("componentize-py"), guest_dir, Path("OUT"))
    feed("args", "\0".join(a.replace(str(REPO), "<repo>") for a in args).encode())
    for path in source_files(guest_dir):
        feed(path.relative_to(REPO).as_posix(), path.read_bytes())
    return h.hexdigest()


def display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def build(name: str, exe: Path, tool_version: str, force: bool) -> Path:
    guest_dir = GUESTS_DIR / name
    if not (guest_dir / f"{APP_MODULE}.py").is_file():
        fail(f"no guest {name!r}: {display(guest_dir / (APP_MODULE + '.py'))} does not exist")
    output = OUT_DIR / f"{name}.wasm"
    stamp = OUT_DIR / f"{name}.wasm.sha256"
    digest = source_hash(guest_dir, tool_version)

    if not force and output.is_file() and stamp.is_file():
        recorded = stamp.read_text().split()
        if recorded and recorded[0] == digest:
            print(f"{name}: up to date", file=sys.stderr)
            return output

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    partial = output.with_name(output.name + ".partial")
    partial.unlink(missing_ok=True)
    print(f"{name}: building with componentize-py {tool_version} ...", file=sys.stderr)
    started = time.monotonic()
    proc = subprocess.run(
        componentize_args(exe, guest_dir, partial),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if proc.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        sys.stderr.write(proc.stdout)
        fail(f"componentize-py failed for {name} (exit {proc.returncode}); its output is above")
    os.replace(partial, output)
    stamp.write_text(f"{digest}  {output.name}\n")
    took = time.monotonic() - started
    size_mb = output.stat().st_size / 1e6
    print(f"{name}: built in {took:.1f} s, {size_mb:.1f} MB", file=sys.stderr)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Python guests into wasm components.")
    parser.add_argument("guests", nargs="*", help="guest folder names (default: every guest)")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)

    exe = find_componentize_py()
    tool_version = componentize_py_version(exe)
    names = args.guests or guest_names()
    if not names:
        fail(f"no guests found under {display(GUESTS_DIR)}")
    for name in names:
        print(display(build(name, exe, tool_version, args.force)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
