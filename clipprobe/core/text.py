"""Text from files and folders made inert for a terminal: control characters (an ANSI or OSC escape sequence in
a class folder's or a checkpoint's name, a carriage return that would overwrite a line) are written as Python
writes them in a string, `\\x1b`, never raw. Newlines and tabs stay."""

from __future__ import annotations

import unicodedata

_KEPT = {"\n", "\t"}


def inert(text: str) -> str:
    """`text` with every control character but newline and tab written as an escape (`\\x1b`, `\\r`)."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch in _KEPT or unicodedata.category(ch) != "Cc" else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )
