"""Shared helpers for the benchmarks: pinning, machine info, percentiles, a progress bar,
tables, the JSON report and a chart next to it.

Every benchmark built on this module reports the same way:

* a rich progress bar on stderr while it runs (plain one-line phase notes when stderr
  is not a terminal, so logs and CI output stay readable);
* a rich table on stdout;
* ``--json FILE``: the report as JSON, with the machine, the pinning, the load average
  and the exact command that produced it;
* a PNG chart next to the JSON (``FILE.png``, or ``FILE-<part>.png``) when matplotlib is
  importable (``pip install airssys-actors[plots]``); without it the chart is skipped
  with a one-line note. The JSON and the table never depend on matplotlib.

Targets are rows ``{"benchmark", "figure", "measured", "target", "status"}`` with status
``PASS``, ``MISS`` or ``n/a``, so that ``benchmarks.all`` can print one summary of them.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import io
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable, Sequence

clock = time.perf_counter


# -- machine, pinning, load ------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU, memory, OS and the versions of everything a figure depends on."""
    cpu_model = None
    mem_total = None
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
        with open("/proc/meminfo") as f:
            mem_total = next((int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal")), None)
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_total_bytes": mem_total,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "wasmtime": _version("wasmtime"),
        "trio": _version("trio"),
        "msgpack": _version("msgpack"),
        "rich": _version("rich"),
        "pykka": _version("pykka"),
        "matplotlib": _version("matplotlib"),
        "airssys_actors": _version("airssys-actors"),
        "hostname": platform.node(),
    }


def _cpu_busy(seconds: float = 0.3) -> dict[int, float]:
    """Fraction of time each CPU was busy over ``seconds`` (from /proc/stat)."""

    def sample() -> dict[int, tuple[int, int]]:
        out = {}
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu") and line[3].isdigit():
                    name, *fields = line.split()
                    values = [int(v) for v in fields]
                    idle = values[3] + values[4]
                    out[int(name[3:])] = (sum(values) - idle, sum(values))
        return out

    a = sample()
    time.sleep(seconds)
    b = sample()
    return {cpu: (b[cpu][0] - a[cpu][0]) / max(1, b[cpu][1] - a[cpu][1]) for cpu in a if cpu in b}


def pin_to_one_core(which: str = "auto") -> dict[str, Any]:
    """Pin this process (and the threads it starts afterwards) to one CPU with
    ``os.sched_setaffinity``. ``which``: a CPU number, ``auto`` (CPU 0, unless another
    CPU was clearly idler just now: on a shared machine two benchmarks pinned to CPU 0
    would share it) or ``none``. Returns what happened, for the report."""
    info: dict[str, Any] = {"requested": which, "pinned": False, "cpu": None, "error": None}
    if which == "none":
        return info
    try:
        allowed = sorted(os.sched_getaffinity(0))
        cpu = 0 if 0 in allowed else allowed[0]
        if which == "auto" and len(allowed) > 1:
            try:
                busy = _cpu_busy()
                info["cpu_busy_before"] = busy
                # Keep CPU 0 unless another is idler by a clear margin.
                best = min(allowed, key=lambda c: (busy.get(c, 1.0), c))
                if busy.get(cpu, 1.0) - busy.get(best, 1.0) > 0.15:
                    cpu = best
            except (OSError, ValueError):
                pass
        elif which != "auto":
            cpu = int(which)
        os.sched_setaffinity(0, {cpu})
        now = os.sched_getaffinity(0)
        info.update(pinned=now == {cpu}, cpu=cpu, affinity_before=allowed)
    except (AttributeError, OSError, ValueError) as exc:  # not Linux, or not allowed
        info["error"] = repr(exc)
    return info


def proc_status(keys: Iterable[str] = ("VmRSS", "VmSize", "VmHWM", "RssAnon", "RssFile")) -> dict[str, int]:
    """The given memory lines of /proc/self/status, in bytes (Linux; empty elsewhere)."""
    wanted = set(keys)
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in wanted:
                    out[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def sched_wait_seconds() -> float | None:
    """Seconds the main thread has spent runnable but waiting for a CPU (other work on
    the pinned core shows up here)."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


class Contention:
    """``with Contention() as c:``; afterwards ``c.result``: wall time, CPU share and the
    fraction of the wall time spent waiting for the CPU."""

    def __enter__(self) -> Contention:
        self._wall, self._cpu, self._wait = clock(), time.process_time(), sched_wait_seconds()
        self.result: dict[str, float | None] = {}
        return self

    def __exit__(self, *exc: object) -> None:
        wall = clock() - self._wall
        cpu = time.process_time() - self._cpu
        wait = sched_wait_seconds()
        self.result = {
            "wall_seconds": wall,
            "cpu_share": cpu / wall if wall > 0 else None,
            "runqueue_wait_fraction": None if wait is None or self._wait is None or wall <= 0
            else (wait - self._wait) / wall,
        }


# -- statistics --------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (NaN when empty)."""
    n = len(sorted_values)
    if n == 0:
        return math.nan
    return sorted_values[min(n - 1, max(0, math.ceil(q * n) - 1))]


def latency_stats(samples: Iterable[float], scale: float = 1e6) -> dict[str, float]:
    """p50/p90/p99/p999/mean/max of samples (seconds), scaled (µs by default)."""
    s = sorted(samples)
    if not s:
        return {"n": 0, "p50": math.nan, "p90": math.nan, "p99": math.nan, "p999": math.nan,
                "mean": math.nan, "min": math.nan, "max": math.nan}
    return {
        "n": len(s), "p50": percentile(s, 0.50) * scale, "p90": percentile(s, 0.90) * scale,
        "p99": percentile(s, 0.99) * scale, "p999": percentile(s, 0.999) * scale,
        "mean": statistics.fmean(s) * scale, "min": s[0] * scale, "max": s[-1] * scale,
    }


def finite_numbers(obj: Any, path: str = "") -> list[tuple[str, float]]:
    """Every number in a nested report, with its path (for checks that all are finite)."""
    out: list[tuple[str, float]] = []
    if isinstance(obj, bool):
        return out
    if isinstance(obj, (int, float)):
        out.append((path, float(obj)))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.extend(finite_numbers(v, f"{path}.{k}" if path else str(k)))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.extend(finite_numbers(v, f"{path}[{i}]"))
    return out


# -- targets ----------------------------------------------------------------------------


def target(benchmark: str, figure: str, measured: str, goal: str, ok: bool | None, **extra: Any) -> dict[str, Any]:
    """One target row: ``ok`` None means informational (status ``n/a``)."""
    return {"benchmark": benchmark, "figure": figure, "measured": measured, "target": goal,
            "status": "n/a" if ok is None else ("PASS" if ok else "MISS"), **extra}


# -- progress ---------------------------------------------------------------------------


class Progress:
    """A progress bar on stderr that never starts a thread of its own (a refresh thread
    would compete with the benchmark for its one pinned core): the benchmark calls
    :meth:`update`, which redraws at most ``every`` seconds.

    When stderr is not a terminal (or ``enabled`` is False) it prints one line per phase
    instead, so captured output stays short."""

    def __init__(self, enabled: bool = True, every: float = 0.2, live: bool | None = None) -> None:
        self.every = every
        self.live = enabled and sys.stderr.isatty() if live is None else (enabled and live)
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None
        self._last = 0.0
        self._started = clock()
        if self.live:
            try:
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
                from rich.progress import Progress as RichProgress
            except ImportError:
                self.live = False
            else:
                self._progress = RichProgress(
                    TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[note]}"), TimeElapsedColumn(),
                    console=Console(stderr=True), auto_refresh=False, transient=False,
                )

    def __enter__(self) -> Progress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.refresh()
            self._progress.stop()

    def phase(self, description: str, total: float) -> None:
        """Start a new phase (a new bar) of ``total`` steps."""
        if self._progress is not None:
            if self._task is not None:
                self._progress.update(self._task, completed=self._progress.tasks[self._task].total)
            self._task = self._progress.add_task(description, total=total, note="")
            self._progress.refresh()
            self._last = clock()
        elif self.enabled:
            print(f"[{clock() - self._started:6.1f} s] {description} ...", file=sys.stderr, flush=True)

    def update(self, completed: float, note: str = "", force: bool = False) -> None:
        if self._progress is None or self._task is None:
            return
        now = clock()
        if force or now - self._last >= self.every:
            self._last = now
            self._progress.update(self._task, completed=completed, note=note)
            self._progress.refresh()


# -- tables -----------------------------------------------------------------------------


def render_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]],
                 right: Iterable[int] = (), width: int = 150) -> str:
    """A table as text: rich when available (PASS green, MISS red), else aligned columns."""
    cells = [[str(c) for c in r] for r in rows]
    right = set(right)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
        lines = [title, "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)),
                 "  ".join("-" * w for w in widths)]
        for r in cells:
            lines.append("  ".join(c.rjust(w) if i in right else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(r, widths, strict=False))).rstrip())
        return "\n".join(lines) + "\n"
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None)
    table = Table(title=title, title_justify="left")
    for i, h in enumerate(headers):
        table.add_column(h, justify="right" if i in right else "left", overflow="fold")
    for r in cells:
        table.add_row(*r)
    console.print(table)
    return buf.getvalue()


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]],
                right: Iterable[int] = (), width: int = 150) -> None:
    """Print a table to stdout; PASS/MISS cells are coloured on a terminal."""
    if sys.stdout.isatty():
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            pass
        else:
            right = set(right)
            table = Table(title=title, title_justify="left")
            for i, h in enumerate(headers):
                table.add_column(h, justify="right" if i in right else "left", overflow="fold")
            for r in rows:
                table.add_row(*[
                    f"[green]{c}[/]" if c == "PASS" else f"[red]{c}[/]" if c == "MISS" else str(c) for c in r
                ])
            Console(width=width).print(table)
            return
    sys.stdout.write(render_table(title, headers, rows, right, width))
    sys.stdout.flush()


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Iterable[int] = ()) -> str:
    right = set(right)
    lines = ["| " + " | ".join(headers) + " |",
             "| " + " | ".join("---:" if i in right else "---" for i in range(len(headers))) + " |"]
    for r in rows:
        lines.append("| " + " | ".join(
            f"**{c}**" if c in ("PASS", "MISS") else str(c).replace("|", "\\|") for c in r) + " |")
    return "\n".join(lines) + "\n"


# -- the report --------------------------------------------------------------------------


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """The exact command that reproduces this run (relative to the repository root)."""
    args = list(argv) if argv is not None else sys.argv[1:]
    return shlex.join(["python", "-m", module, *args])


def git_info() -> dict[str, Any]:
    """The commit the runtime was at, and whether the runtime had uncommitted changes."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "airssys_actors", "supervisors"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "runtime_dirty": None}
    return {"commit": commit, "runtime_dirty": bool(dirty)}


def base_report(benchmark: str, module: str, argv: Sequence[str] | None, size: str, pin: dict[str, Any]) -> dict[str, Any]:
    """The fields every report starts with."""
    return {
        "git": git_info(),
        "benchmark": benchmark,
        "size": size,
        "command": command_line(module, argv),
        "python_executable": sys.executable,
        "cwd": os.getcwd(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "pin": pin,
        "load_average": {"before": load_average()},
    }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike[str] | None, report: dict[str, Any]) -> Path | None:
    """Write ``report`` (NaN as null, ±inf as strings: always valid JSON)."""
    if path is None:
        return None
    report.setdefault("load_average", {})["after"] = load_average()
    target_path = Path(path)
    target_path.parent.mkdir(parents=True, exist_ok=True)
    target_path.write_text(json.dumps(_jsonable(report), indent=2) + "\n")
    return target_path


def chart_path(json_path: str | os.PathLike[str], part: str | None = None) -> Path:
    """``FILE.png`` (or ``FILE-part.png``) next to ``FILE.json``."""
    p = Path(json_path)
    stem = p.stem if p.suffix == ".json" else p.name
    return p.with_name(f"{stem}-{part}.png" if part else f"{stem}.png")


def write_chart(json_path: str | os.PathLike[str] | None, draw: Callable[[Any], Any],
                part: str | None = None, size: tuple[float, float] = (12, 8), dpi: int = 80) -> Path | None:
    """Draw a chart with ``draw(plt)`` (which returns a Figure) and save it as PNG next to
    the JSON report. Without matplotlib: a one-line note, and None."""
    if json_path is None:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("chart skipped: matplotlib is not installed (pip install 'airssys-actors[plots]')",
              file=sys.stderr)
        return None
    out = chart_path(json_path, part)
    plt.rcParams.update({"figure.figsize": size, "font.size": 9})
    fig = draw(plt)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def fmt_us(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if v >= 10_000:
        return f"{v / 1000:,.1f} ms"
    return f"{v:,.1f} µs"


def fmt_rate(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.0f}/s"
