"""The README's shell examples, as copied: every `clipprobe` line parses (its command and options exist, its values
have their types), and every `probe` line runs with `--dry-run` in a folder holding the data the README names
(`photos/`, `data/lights.parquet`, and `my_lights.toml` taken from the README's own TOML block): its options, task
file, data source, splits and labels are checked as a real run checks them, and its rows are planned. Lines that
name the user's own checkpoint files (`/models/...`) are parsed only; nothing here needs a network. A full run of
the quick start (it pretrains the default weights: minutes on 2 cores) is what `make demo` and the slow
end-to-end tests cover."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clipprobe.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def _commands() -> list[list[str]]:
    """Every `clipprobe ...` line of the README's bash blocks, split as a shell splits it (comments dropped)."""
    lines = [line for block in _blocks("bash") for line in block.splitlines()]
    return [shlex.split(line, comments=True)[1:] for line in lines if line.startswith("clipprobe ")]


class Parsed(Exception):
    """Raised where a command starts its work: everything before it (parsing, typed values) passed."""


def _parse(args: list[str], monkeypatch) -> None:
    """Run `clipprobe ARGS` up to where the command starts its work (the library's loading), and no further."""

    def stop(tasks_only: bool = False) -> None:
        raise Parsed

    monkeypatch.setattr("clipprobe.cli.tool.library", stop)
    result = CliRunner().invoke(app, args)
    # The CLI turns the unexpected exception into its one-line fault message (exit 1), naming it.
    reached = result.exit_code == 1 and result.output.startswith("Error: Parsed")
    assert reached or (result.exit_code == 0 and args == ["--version"]), (
        f"clipprobe {shlex.join(args)}: exit {result.exit_code}\n{result.output}"
    )


def test_the_readme_has_examples_to_check():
    commands = _commands()
    assert sum(c[0] == "probe" for c in commands) >= 4 and ["--version"] in commands
    assert len(_blocks("toml")) == 1


@pytest.mark.parametrize("args", _commands(), ids=lambda args: " ".join(args)[:60])
def test_every_readme_command_parses(args, monkeypatch):
    _parse(args, monkeypatch)


@pytest.mark.parametrize("args", [["probe", "--nope"], ["probe", "--seeds", "abc"], ["nope"]])
def test_a_command_that_does_not_parse_is_caught(args, monkeypatch):
    with pytest.raises(AssertionError, match="exit 2"):
        _parse(args, monkeypatch)


@pytest.fixture
def readme_data(tmp_path, monkeypatch):
    """The folder a README reader runs in: the data its examples name, and its task file as printed."""
    import datasets
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    colours = {"red": (220, 30, 30), "amber": (240, 160, 0), "green": (20, 200, 60)}
    images, labels = [], []
    for name, rgb in colours.items():
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(12):
            image = Image.new("RGB", (16, 24), tuple(max(0, c - 7 * i) for c in rgb))
            image.save(tmp_path / "photos" / name / f"{i:04d}.png")
            images.append(image)
            labels.append(name)
    (tmp_path / "data").mkdir()
    table = datasets.Dataset.from_dict({"jpeg": images, "colour": labels}).cast_column("jpeg", datasets.Image())
    table.to_parquet(str(tmp_path / "data" / "lights.parquet"))
    (tmp_path / "my_lights.toml").write_text(_blocks("toml")[0])
    return tmp_path


@pytest.mark.slow
def test_every_readme_probe_runs_as_copied_with_dry_run(readme_data):
    runner = CliRunner()
    checked = 0
    for args in _commands():
        if args[0] != "probe" or any(a.startswith("/models/") for a in args):
            continue
        result = runner.invoke(app, [*args, "--dry-run"])
        assert result.exit_code == 0, f"clipprobe {shlex.join(args)}:\n{result.output}"
        assert result.output.rstrip().endswith("rows planned; nothing run (--dry-run).")
        checked += 1
    assert checked >= 3  # the quick start, the parquet source, the task file
