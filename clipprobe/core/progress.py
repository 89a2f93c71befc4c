"""Rich progress bars and consoles shared by the library and the CLI."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .errors import UsageError

T = TypeVar("T")

# Piped output (CI logs, files) has no terminal width; rich would assume 80 columns and crush wide tables.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
# Messages and bars go to stderr so stdout stays clean for tables and piping. No markup: row names and
# messages hold brackets ("mini-clip/random [orbit:hflip]") that rich would otherwise swallow as tags.
err_console = Console(stderr=True, soft_wrap=True, markup=False)
console = Console(soft_wrap=True, width=_WIDTH, markup=False)


# Seconds between progress lines when stderr is not a terminal (CI logs, nohup, `2> log`).
PROGRESS_INTERVAL_VARIABLE = "CLIPPROBE_PROGRESS_INTERVAL"
DEFAULT_PROGRESS_INTERVAL = 15.0


def progress_bar(transient: bool = False) -> Progress | LineProgress:
    """A bar on stderr; a transient one is cleared when done. When stderr is not a terminal, plain lines instead
    (`LineProgress`): a log then shows how far a long step is while it runs, not only at the end."""
    if not err_console.is_terminal:
        return LineProgress(progress_interval())
    return Progress(
        TextColumn("{task.description}", markup=False, style="bold"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
        disable=transient and not err_console.is_terminal,
    )


def progress_interval() -> float:
    """Seconds between progress lines: $CLIPPROBE_PROGRESS_INTERVAL (0 or more; 0 writes a line per update), else
    DEFAULT_PROGRESS_INTERVAL. Any other value is a UsageError, not silently the default."""
    text = os.environ.get(PROGRESS_INTERVAL_VARIABLE)
    if text is None or not text.strip():
        return DEFAULT_PROGRESS_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{PROGRESS_INTERVAL_VARIABLE} must be a number of seconds, 0 or more, got '{text}'")
    return value


class LineProgress:
    """Progress as plain lines on stderr, for logs: a task that runs longer than `interval` seconds gets a line
    every `interval` seconds (done/total, elapsed, rate, time left) and one when it finishes; a short task prints
    nothing, so a quick command's output stays as it is. The subset of rich's Progress that clipprobe uses."""

    def __init__(self, interval: float = DEFAULT_PROGRESS_INTERVAL, clock=time.monotonic):
        self.interval, self.clock = interval, clock
        self.tasks: dict[int, dict] = {}

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        for task in self.tasks.values():
            if task["printed"] and not task["finished"]:
                self._line(task, final=True)

    def add_task(self, description: str, total: float | None = None, **_) -> TaskID:
        now = self.clock()
        self.tasks[len(self.tasks)] = dict(
            description=description, total=total, done=0, start=now, last=now, printed=False, finished=False
        )
        return TaskID(len(self.tasks) - 1)

    def update(self, task_id: TaskID, advance: float = 0, description: str | None = None, **_) -> None:
        task = self.tasks[task_id]
        task["done"] += advance
        if description is not None:
            task["description"] = description
        now = self.clock()
        if task["total"] is not None and task["done"] >= task["total"] and not task["finished"]:
            task["finished"] = True
            if task["printed"]:
                self._line(task, final=True)
        elif now - task["last"] >= self.interval:
            task["last"], task["printed"] = now, True
            self._line(task)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def track(self, items: Iterable[T], total: float | None = None, description: str = "Working") -> Iterator[T]:
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        task = self.add_task(description, total=total)
        for item in items:
            yield item
            self.advance(task)

    def _line(self, task: dict, final: bool = False) -> None:
        elapsed = self.clock() - task["start"]
        done, total = task["done"], task["total"]
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [f"{done:,.0f}/{total:,.0f} ({done / total:.0%})" if total else f"{done:,.0f}"]
        parts.append(f"{_clock(elapsed)} elapsed")
        if rate > 0:
            parts.append(f"{rate:,.1f}/s")
            if total and not final:
                parts.append(f"about {_clock((total - done) / rate)} left")
        status = "done: " if final else ""
        err_console.print(f"{task['description']}: {status}{' | '.join(parts)}", markup=False, highlight=False)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on stderr (plain lines when stderr is not a terminal)."""
    with progress_bar() as progress:
        yield from progress.track(items, total=total, description=description)
