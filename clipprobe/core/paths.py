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
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "none"
