"""What a new user meets first (issue 27): `--help` that reads whole at any width, with examples that paste as they
are; one line `Error: ...` and exit code 2 for every command line that does not parse; "Did you mean ...?"."""

from __future__ import annotations

import dataclasses
import re
import shlex

import pytest
import typer.core
import typer.main
from typer.testing import CliRunner

from clipprobe.cli.app import app
from clipprobe.cli.help import example_lines, reflow, split_help
from clipprobe.cli.tool import name_matches
from clipprobe.core.errors import did_you_mean
from clipprobe.core.registry import Registry

runner = CliRunner()
ROOT = typer.main.get_command(app)


def _visible(command, path: tuple[str, ...] = ()):
    """Every command and group a user can see (hidden ones, old names kept to say they were renamed, left out)."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not sub.hidden:
            yield from _visible(sub, (*path, name))


COMMANDS = dict(_visible(ROOT))
LEAVES = [path for path, command in COMMANDS.items() if not getattr(command, "commands", None)]


def parse(argv: list[str]) -> None:
    """Parse a command line as `clipprobe` would, converting every value, without running the command."""
    command = ROOT
    while getattr(command, "commands", None):
        assert argv and argv[0] in command.commands, f"no command {argv[:1]} under {command.name}"
        command, argv = command.commands[argv[0]], argv[1:]
    with command.make_context(command.name, list(argv)):
        pass


def render_help(path: tuple[str, ...], width: int) -> str:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(width)}, prog_name="clipprobe")
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda path: " ".join(path) or "clipprobe")
def test_examples_are_whole_commands_at_any_width(path, width):
    """Each example is one line that starts `clipprobe ` and parses; nothing else runs past the width."""
    output = render_help(path, width)
    examples = example_lines(output)
    if path in LEAVES:
        assert examples, f"clipprobe {' '.join(path)} --help has no example"
    assert examples == COMMANDS[path].examples  # each shown whole, in the docstring's order
    for example in examples:
        words = shlex.split(example)  # no comment after it: zsh would pass it on as arguments
        assert words[: len(path) + 1] == ["clipprobe", *path], example
        parse(words[1:])
    prose = output.split(" Example")[0]
    assert all(len(line) <= width for line in prose.splitlines()), prose


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda path: " ".join(path) or "clipprobe")
def test_help_paragraphs_have_no_hard_line_breaks(path):
    """A docstring's paragraphs reach the help as one line each (list items apart), so the terminal wraps them
    evenly; a group's list shows each command's summary in one piece."""
    command = COMMANDS[path]
    assert not re.search(r"[^\n]\n(?!\n|- )", command.help or ""), command.help
    for sub in getattr(command, "commands", {}).values():
        assert "\n" not in (sub.short_help or ""), sub.short_help


def test_the_root_lists_sensitivity_in_one_sentence():
    output = render_help((), 120)
    row = [line for line in output.splitlines() if "│ sensitivity" in line]
    assert len(row) == 1 and row[0].rstrip(" │").endswith("when one attribute of the scene changes."), output


def test_split_help_reflows_prose_and_keeps_examples():
    text = """Summary
    on two lines.

    A paragraph wrapped
    in the source.
    - a list item
      that goes on
    - another

    Examples:
        clipprobe a --x 1
        clipprobe b
    """
    prose, examples = split_help(text)
    assert prose == "Summary on two lines.\n\nA paragraph wrapped in the source.\n- a list item that goes on\n- another"
    assert examples == ["clipprobe a --x 1", "clipprobe b"]
    assert split_help("Only a summary.") == ("Only a summary.", [])
    assert split_help("Summary.\n\nExample: clipprobe tasks") == ("Summary.", ["clipprobe tasks"])
    assert reflow("one\n  two") == "one two"


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_every_option_is_in_a_named_panel(path):
    """No option is left in the catch-all "Options" panel beside --help."""
    render_help(path, 80)  # panels are assigned when the help is built
    command = COMMANDS[path]
    loose = [p.name for p in command.params if isinstance(p, typer.core.TyperOption) and p.rich_help_panel == "Options"]
    assert loose == []


@pytest.mark.parametrize(
    "path, option, panel",
    [
        (("data", "show"), "--seed", "Data"),
        (("pretrain",), "--steps", "Pretraining"),
        (("pretrain",), "--width", "Pretraining"),
        (("pretrain",), "--image-size", "Pretraining"),
        (("sensitivity",), "--image-size", "World"),
        (("probe",), "--seed", "Probe"),
        (("experiment", "curation"), "--part", "Execution"),
    ],
)
def test_options_sit_in_their_panel(path, option, panel):
    output = render_help(path, 120)
    panels = re.split(r"^╭─ (\w+) ─+╮$", output, flags=re.M)
    found = [title for title, body in zip(panels[1::2], panels[2::2]) if re.search(rf"│ +{option} ", body)]
    assert found == [panel], output


def test_the_budget_help_lists_every_key():
    from clipprobe.baselines.training import Budget
    from clipprobe.cli.options import BUDGET_KEYS

    keys = [part.strip() for part in re.sub(r" \([^)]*\)", "", BUDGET_KEYS).split(",")]
    assert keys == [field.name for field in dataclasses.fields(Budget)]
    listed = render_help(("probe",), 120).split("--budget")[1].split("Keys:")[1].split("--")[0]
    assert "..." not in listed and "eval_batch_images" in listed


# Every kind of command line that does not parse: a bad value for a typed option, an unknown option, a missing
# value or option, an unknown command.
PARSE_ERRORS = [
    (["probe", "--precision", "bf32"], "Error: Invalid value for '--precision': 'bf32' is not one of 'auto', "),
    (["probe", "--seeds", "abc"], "Error: Invalid value for '--seeds': "),
    (["probe", "--no-such-flag"], "Error: No such option: --no-such-flag."),
    (["probe", "--seed-s", "3"], "Error: No such option: --seed-s. Did you mean --seeds or --seed?"),
    (["probe", "--task"], "Error: Option '--task' requires an argument."),
    (["report", "--max-drop", "x"], "Error: Invalid value for '--max-drop': "),
    (["extract", "--batch-size", "1.5"], "Error: Invalid value for '--batch-size': "),
    (["data", "show", "--n", "many"], "Error: Invalid value for '--n': "),
    (["experiment", "curation", "--pairs", "some"], "Error: Invalid value for '--pairs': "),
    (["pretrain"], "Error: Missing option '--out'."),
    (["probee"], "Error: No such command 'probee'. Did you mean 'probe'"),
    (["--no-such-flag"], "Error: No such option: --no-such-flag."),
]


@pytest.mark.parametrize("argv, start", PARSE_ERRORS, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_a_command_line_that_does_not_parse_is_one_error_line(argv, start):
    result = runner.invoke(app, argv, prog_name="clipprobe")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), result.stderr
    assert "╭" not in result.stderr and "Traceback" not in result.stderr


def test_parse_errors_point_to_the_help_and_suggest_close_choices():
    result = runner.invoke(app, ["probe", "--precision", "fp61"], prog_name="clipprobe")
    assert result.stderr.rstrip("\n").endswith("Did you mean fp16? (see 'clipprobe probe --help')")


@pytest.mark.parametrize(
    "argv, line",
    [
        (
            ["probe", "--task", "trafic-light"],
            "Error: Unknown task 'trafic-light'. Did you mean traffic-light? Available: ",
        ),
        (
            ["probe", "--task", "traffic-light", "--pretrained", "dashcam-salent"],
            "Error: Unknown pretrained tag 'dashcam-salent' for model 'mini-clip'. Did you mean dashcam-salient? "
            "Available: dashcam-descriptive, dashcam-salient, dashcam-POLICY, ",
        ),
        (
            ["probe", "--task", "traffic-light", "--pretrained", "dashcam-mixd:0.1"],
            "Error: Unknown caption policy 'mixd'. Did you mean mixed? Available: ",
        ),
        (
            ["probe", "--task", "traffic-light", "--probe", "linar", "--baselines", "none"],
            "Error: Unknown probe 'linar'. Did you mean linear? Available: attentive, knn, linear, mlp",
        ),
        (
            ["probe", "--task", "traffic-light", "--baselines", "cnnn"],
            "Error: Unknown baseline 'cnnn'. Did you mean cnn",
        ),
        (["probe", "--task", "traffic-light", "--budget", "epoch=3"], "Error: Budget expects KEY=VALUE"),
        (["probe", "--task", "traffic-light", "--resize", "crp"], "Error: Unknown resize 'crp'. Did you mean crop? "),
        (["data", "show", "--task", "pedestrain"], "Error: Unknown task 'pedestrain'. Did you mean pedestrian"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_unknown_names_suggest_the_close_ones(argv, line):
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), result.stderr


def test_a_budget_key_typo_suggests_the_key():
    result = runner.invoke(app, ["probe", "--task", "traffic-light", "--budget", "epoch=3"])
    assert result.stderr.rstrip("\n").endswith("got 'epoch=3'. Did you mean epochs?")


def test_registry_suggests_close_names():
    registry: Registry[int] = Registry("thing")
    for name in ("alpha", "beta", "Gamma"):
        registry.register(name, 0)
    with pytest.raises(
        Exception, match=r"^Unknown thing 'alpah'\. Did you mean alpha\? Available: Gamma, alpha, beta$"
    ):
        registry.get("alpah")
    with pytest.raises(Exception, match=r"^Unknown thing 'zzz'\. Available: "):
        registry.get("zzz")
    assert did_you_mean("gamma", ["Gamma"]) == "Did you mean Gamma? "  # any case
    assert did_you_mean("fp61", ["fp16", "fp32", "amp"]) == "Did you mean fp16? "
    assert did_you_mean("cats", ["bats", "cuts", "dog"]) == "Did you mean bats or cuts? "  # equally close
    assert did_you_mean("nope", ["openai"]) == ""  # 0.6 alike: not close
    assert did_you_mean("trafic-light", ["traffic-light", "traffic-light-crops"]) == "Did you mean traffic-light? "


def test_name_patterns_are_wildcards_in_any_case():
    assert name_matches("vit-b-32*", "ViT-B-32-quickgelu")
    assert not name_matches("vit-b-32", "ViT-B-16")
    assert name_matches("convnext", "convnext_base_w")  # no wildcard: contains it
    assert not name_matches("ViT-B-32*", "RN50")
    assert name_matches(None, "RN50")


def test_models_filters_by_pattern():
    result = runner.invoke(app, ["models", "vit-b-32*"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    names = re.findall(r"^  (\S+)  tags:", result.stdout, re.M)
    assert names and all(name.lower().startswith("vit-b-32") for name in names), result.stdout
    assert "ViT-B-32" in names and "mini-clip@" not in result.stdout

    result = runner.invoke(app, ["models", "MINI-CLIP*"], env={"COLUMNS": "200"})
    assert "mini-clip@dashcam-salient" in result.stdout and "mini-clip@dashcam-POLICY" in result.stdout
    assert re.findall(r"^  (\S+)  tags:", result.stdout, re.M) == ["mini-clip"]

    result = runner.invoke(app, ["models", "no-such-model*"])
    assert result.exit_code == 0 and result.stderr.strip() == "No model matches 'no-such-model*'"
