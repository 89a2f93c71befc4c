"""Print docs/cli.md: every clipprobe command's --help, generated so that it cannot drift from the code.

Run `make docs` after changing a command; tests/test_docs.py fails while docs/cli.md differs from this output."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from clipprobe.cli.app import app

# Help is rendered at a fixed width, so the page is the same on every machine.
WIDTH = 100


def command_paths(command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group under `command` (a Typer click command), depth first, in name order; hidden ones (an
    old name kept to say it was renamed) are left out."""
    paths = [path]
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name in sorted(subcommands):
            if not subcommands[name].hidden:
                paths += command_paths(subcommands[name], (*path, name))
    return paths


def reference() -> str:
    runner = CliRunner()
    lines = [
        "# Command-line reference",
        "",
        "Generated from each command's `--help` by `make docs` (scripts/cli_reference.py); a test fails when this",
        "page and the code disagree. Exit codes everywhere: 0 success, 1 run failure (or a failed CI gate), 2 bad input.",
    ]
    for path in command_paths(typer.main.get_command(app)):
        result = runner.invoke(
            app, [*path, "--help"], env={"COLUMNS": str(WIDTH), "NO_COLOR": "1", "TERM": "dumb"}, prog_name="clipprobe"
        )
        if result.exit_code != 0:
            raise SystemExit(f"clipprobe {' '.join(path)} --help failed: {result.output}")
        title = " ".join(("clipprobe", *path))
        lines += [
            "",
            f"## {title}",
            "",
            "```text",
            *(line.rstrip() for line in result.output.strip("\n").splitlines()),
            "```",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference(), end="")
