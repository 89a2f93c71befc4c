"""File locks, so that concurrent runs of the same work wait for each other and share it instead of colliding.

Two `clipprobe` processes that need the same cache entry, built-in weights, world or result file take the same
lock: the first does the work, the second says it is waiting, then finds the work done and reuses it. The locks
are `filelock` locks (flock on POSIX): the operating system releases them when a process dies, so a killed run
never leaves a lock that blocks the next one. Lock files live in the cache root's `locks` folder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from . import paths
from .errors import RunError
from .paths import slug
from .progress import err_console
from .storage import stable_hash, writing_error


def lock_path(target: Path) -> Path:
    """The lock file guarding `target` (a file or a folder): in the cache root's `locks` folder, so result and
    report folders hold only results and reports."""
    target = Path(target).absolute()
    return paths.home() / "locks" / f"{slug(target.name)[:80]}-{stable_hash(str(target))}.lock"


@contextmanager
def exclusive(target: Path, what: str) -> Iterator[None]:
    """Hold the lock of `target` while the block runs; when another process holds it, say so once and wait.

    Re-entrant within a process (the same lock object per path), so nested work never waits for itself."""
    path = lock_path(target)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path, is_singleton=True)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            err_console.print(f"Waiting for another clipprobe process {what} (lock: {path})", highlight=False)
            lock.acquire()
    except OSError as exc:
        raise RunError(writing_error(path, exc)) from None
    try:
        yield
    finally:
        lock.release()
