"""Rich progress bars and consoles shared by the library and the CLI."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")

# Piped output (CI logs, files) has no terminal width; rich would assume 80 columns and crush wide tables.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
# Messages and bars go to stderr so stdout stays clean for tables and piping. No markup: row names and
# messages hold brackets ("mini-clip/random [orbit:hflip]") that rich would otherwise swallow as tags.
err_console = Console(stderr=True, soft_wrap=True, markup=False)
console = Console(soft_wrap=True, width=_WIDTH, markup=False)


def progress_bar(transient: bool = False) -> Progress:
    """A bar on stderr. A transient one is cleared when done, and is not shown at all when stderr is not a
    terminal (logs keep only what matters, and a one-line error stays one line)."""
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


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar on stderr (rich hides it when stderr is not a terminal)."""
    with progress_bar() as progress:
        yield from progress.track(items, total=total, description=description)
