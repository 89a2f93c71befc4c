"""Where clipprobe keeps generated data, trained weights and cached features."""

from __future__ import annotations

import os
import re
from pathlib import Path


def home() -> Path:
    """The cache root: $CLIPPROBE_HOME, else ~/.cache/clipprobe."""
    root = os.environ.get("CLIPPROBE_HOME")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "clipprobe"


def worlds_dir() -> Path:
    return home() / "worlds"


def models_dir() -> Path:
    return home() / "models"


def features_dir() -> Path:
    return home() / "features"


def slug(text: str) -> str:
    """`text` as one file or folder name: runs of other characters become "-"; never "." or ".." (leading and
    trailing dots and dashes go), never empty ("none")."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "none"


# The longest task name: with the row's name and method it must fit a file name (255 bytes on most systems).
MAX_NAME_LENGTH = 100


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a task (its results folder is `slug(name)` under --results), None if it can: it is
    non-empty, printable (no control or escape characters), at most MAX_NAME_LENGTH characters, holds no path
    separator, no leading or trailing space, and is not "." or ".."."""
    if not name.strip():
        return "is empty"
    if name in (".", ".."):
        return f"is '{name}', a folder of its own"
    if not name.isprintable():
        return "holds a control or escape character"
    if "/" in name or "\\" in name:
        return "holds a path separator (/ or \\)"
    if name != name.strip():
        return "begins or ends with a space"
    if len(name) > MAX_NAME_LENGTH:
        return f"has {len(name)} characters; at most {MAX_NAME_LENGTH}"
    return None
