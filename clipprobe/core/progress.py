"""Rich progress bars and consoles shared by the library and the CLI."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

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
from .text import inert

T = TypeVar("T")

# Piped output (CI logs, files) has no terminal width; rich would assume 80 columns and crush wide tables.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
# Messages and bars go to stderr so stdout stays clean for tables and piping. No markup: row names and
# messages hold brackets ("mini-clip/random [orbit:hflip]") that rich would otherwise swallow as tags.


class InertConsole(Console):
    """A Console whose text is inert (clipprobe.core.text.inert): an escape sequence in a file, folder or class
    name prints as `\x1b`, never reaches the terminal raw. Rich renderables (tables) carry their own cells."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        super().print(*(inert(o) if isinstance(o, str) else o for o in objects), **kwargs)


err_console = InertConsole(stderr=True, soft_wrap=True, markup=False)
console = InertConsole(soft_wrap=True, width=_WIDTH, markup=False)


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
    """Progress as plain lines on stderr, for logs. The subset of rich's Progress that clipprobe uses.

    Each task (a split, a training run) has its own clock: it starts when the task's work starts (its first advance,
    or the moment the task before it finished, whichever is later than its creation), so elapsed time, rate and
    time left are the task's own, never carried over from the split before. An operation that runs longer than
    `interval` seconds writes a line every `interval` seconds and one line per task when it finishes, the tasks
    that finished before the first line included; a short operation prints nothing, so a quick command's output
    stays as it is. A task may declare its `unit` ("epoch"): a rate under one per second reads "12.0 s/epoch"."""

    def __init__(self, interval: float = DEFAULT_PROGRESS_INTERVAL, clock=time.monotonic):
        self.interval, self.clock = interval, clock
        self.tasks: dict[int, dict] = {}
        self.last = clock()  # when the operation began or last wrote a line
        self.talking = False  # whether the operation has written a line: then every task's end gets one
        self.finished_at: float | None = None  # when the last task finished

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        for task in self.tasks.values():
            if task["printed"] and not task["finished"]:
                self._line(task, final=True)

    def add_task(
        self, description: str, total: float | None = None, unit: str | None = None, start: bool = True, **_
    ) -> TaskID:
        """A task; `start=False` (as in rich) for one queued behind others: its clock starts with `start_task` or
        its first advance."""
        now = self.clock()
        self.tasks[len(self.tasks)] = dict(
            description=description,
            total=total,
            unit=unit,
            done=0,
            added=now,
            start=now if start else None,
            end=None,
            printed=False,
            finished=False,
        )
        return TaskID(len(self.tasks) - 1)

    def start_task(self, task_id: TaskID) -> None:
        task = self.tasks[task_id]
        if task["start"] is None:
            task["start"] = self.clock()

    def update(self, task_id: TaskID, advance: float = 0, description: str | None = None, **_) -> None:
        task = self.tasks[task_id]
        if description is not None:
            task["description"] = description
        now = self.clock()
        if advance and task["start"] is None:
            task["start"] = max(task["added"], self.finished_at if self.finished_at is not None else task["added"])
        task["done"] += advance
        finishing = task["total"] is not None and task["done"] >= task["total"] and not task["finished"]
        due = now - self.last >= self.interval
        if due and not self.talking:
            self.talking = True
            for other in self.tasks.values():  # the tasks that finished quietly, in order, before the first line
                if other["finished"] and not other["printed"]:
                    self._line(other, final=True)
        if finishing:
            task["finished"], task["end"] = True, now
            self.finished_at = now
            if self.talking:
                self.last = now
                self._line(task, final=True)
        elif due:
            self.last = now
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
        task["printed"] = True
        started = task["start"] if task["start"] is not None else task["added"]
        elapsed = (task["end"] if task["end"] is not None else self.clock()) - started
        done, total = task["done"], task["total"]
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [f"{done:,.0f}/{total:,.0f} ({done / total:.0%})" if total else f"{done:,.0f}"]
        parts.append(f"{_clock(elapsed)} elapsed")
        if rate > 0:
            parts.append(_rate(rate, task["unit"]))
            if total and not final:
                parts.append(f"about {_clock((total - done) / rate)} left")
        status = "done: " if final else ""
        err_console.print(f"{task['description']}: {status}{' | '.join(parts)}", markup=False, highlight=False)


def _rate(rate: float, unit: str | None) -> str:
    """Items per second, or seconds per item when under one a second (a trained baseline's epochs)."""
    if rate >= 1:
        return f"{rate:,.1f} {unit}/s" if unit else f"{rate:,.1f}/s"
    return f"{1 / rate:,.1f} s/{unit or 'item'}"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on stderr (plain lines when stderr is not a terminal)."""
    with progress_bar() as progress:
        yield from progress.track(items, total=total, description=description)
