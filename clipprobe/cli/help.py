"""A command's docstring as its `--help`: prose reflowed to the terminal, examples kept whole.

A docstring is a summary sentence, paragraphs of prose (wrapped in the source as convenient: single line breaks
are joined, so the terminal's width decides where lines break; a line starting with "- " starts a new line), and
last an Examples section, one command a line, which is never wrapped: a line longer than the terminal runs past
its edge rather than breaking inside the command, so each one pastes as it is (so no comments after it either:
zsh does not take them by default).

    Examples:
        clipprobe probe --task traffic-light
        clipprobe probe --task pedestrian --baselines none
"""

from __future__ import annotations

import inspect
import re

from rich.console import Console
from rich.text import Text

# "Example:" or "Examples:" on a line of its own (an example may follow it on the same line).
_HEADING = re.compile(r"Examples?:\s*(?P<rest>.*)")
# How far the examples are indented under their heading (the heading lines up with the help text above it).
HEADING_INDENT = " "
EXAMPLE_INDENT = "   "


def split_help(text: str | None) -> tuple[str, list[str]]:
    """A docstring -> (its prose, each paragraph on one line; its examples, one command each)."""
    text = inspect.cleandoc(text or "").partition("\f")[0]
    prose: list[str] = []
    examples: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        first, _, rest = paragraph.strip().partition("\n")
        heading = _HEADING.fullmatch(first.strip())
        if examples or heading:  # the Examples section runs to the end of the docstring
            lines = [heading["rest"], *rest.splitlines()] if heading else paragraph.splitlines()
            examples += [line.strip() for line in lines if line.strip()]
        elif paragraph.strip():
            prose.append(reflow(paragraph))
    return "\n\n".join(prose), examples


def reflow(paragraph: str) -> str:
    """One paragraph's lines joined with spaces; a line starting with "- " (a list item) stays a line of its own."""
    lines: list[str] = []
    for line in paragraph.strip().splitlines():
        line = line.strip()
        if lines and not line.startswith("- "):
            lines[-1] += " " + line
        else:
            lines.append(line)
    return "\n".join(lines)


def summary(text: str) -> str:
    """The first paragraph of reflowed help: what a group's list of commands shows."""
    return text.partition("\n\n")[0].replace("\n", " ")


def print_examples(examples: list[str], console: Console | None = None) -> None:
    """The Examples section after the options: each example on one line, never wrapped nor cut (soft wrap: a line
    longer than the terminal runs on, and the terminal, not the text, breaks it)."""
    if not examples:
        return
    console = console or Console(highlight=False)
    heading = "Example:" if len(examples) == 1 else "Examples:"
    console.print()
    console.print(Text(f"{HEADING_INDENT}{heading}", style="bold"), soft_wrap=True)
    for example in examples:
        console.print(Text(f"{EXAMPLE_INDENT}{example}"), soft_wrap=True)


def example_lines(help_output: str) -> list[str]:
    """The example lines of a rendered `--help` (for tests and the docs): every line after the heading."""
    lines = help_output.splitlines()
    for index, line in enumerate(lines):
        if line.strip() in ("Example:", "Examples:"):
            return [line.strip() for line in lines[index + 1 :] if line.strip()]
    return []
