"""Atomic writes and content hashes: a killed run never leaves a half file that a later run trusts."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import RunError


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    with _writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        with _writing(target):
            yield tmp_path
            # mkstemp makes the file private (0600); give it the permissions a plain open() would.
            os.chmod(tmp_path, 0o666 & ~_umask())
            os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def _writing(target: Path) -> Iterator[None]:
    """A failed write (disk full, read-only folder) becomes a RunError that names `target` and what to do."""
    try:
        yield
    except OSError as exc:
        if "requested and" in str(exc) and exc.errno is None:  # numpy's short write: the disk filled up
            exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        raise RunError(writing_error(target, exc)) from None


def writing_error(path: Path, exc: OSError) -> str:
    """A one-line message for a failed write: the path, what went wrong and what to do."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        return f"No space left on the device while writing {path}: free some space (or set CLIPPROBE_HOME to another disk) and run again"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"Cannot write {path} ({reason}): the folder is read-only for this user; make it writable, or point "
            "CLIPPROBE_HOME (the cache) or --results / --out at a writable folder"
        )
    return f"Could not write {path}: {reason}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Like `atomic_path` for a folder: build it under a temporary name, then rename."""
    target = Path(target)
    with _writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        with _writing(target):
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically, with sorted keys so equal data gives identical bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def stable_hash(data: Any, length: int = 16) -> str:
    """A short, stable hash of JSON-serialisable data (dict order does not matter)."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
