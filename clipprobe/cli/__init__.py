"""The command line: `app` (Typer) with the tool's commands (clipprobe.cli.tool) and the dashcam application's
(clipprobe.cli.dashcam); `main` runs it."""

from __future__ import annotations

from . import dashcam, tool  # noqa: F401  (registers the commands on the app)
from .app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
