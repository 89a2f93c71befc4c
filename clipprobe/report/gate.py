"""The CI gate: floors on metrics (`--fail-under`), and regressions against a reference report (`--compare`)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.defaults import PRECISION, PRECISION_NAMES
from ..core.errors import RunError, UsageError
from .tables import METRICS, full_data, named, row_precision

FLOOR_FORM = (
    "TASK:REPRESENTATION:METRIC=VALUE (TASK and REPRESENTATION may hold * wildcards; REPRESENTATION may end in a "
    "precision, ' (bf16)'; METRIC one of " + ", ".join(METRICS) + "), e.g. traffic-light:*:balanced_accuracy=0.3"
)
# A floor's REPRESENTATION that ends in " (PRECISION)" gates the rows computed in that precision only; without it,
# a floor gates a row by its name whatever its precision (names are the same on every machine).
_PINNED = re.compile(r"(?P<target>.*) \((?P<precision>" + "|".join(map(re.escape, PRECISION_NAMES)) + r")\)\Z")
# The kind of row a floor with a wildcard in its REPRESENTATION applies to: the model under test. A control, a
# network trained on the labels or zero-shot is gated only when the floor names it (no wildcard in the name).
GATED_BY_PATTERN = ("probe",)


def _pattern(text: str) -> re.Pattern[str]:
    """A shell-style pattern where only `*` is a wildcard: names hold brackets ("[tokens]") taken literally."""
    return re.compile("".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", text)) + r"\Z")


@dataclass(frozen=True)
class Floor:
    """`--fail-under TASK:REPRESENTATION:METRIC=VALUE`: every matched row's METRIC must be at least VALUE.

    TASK and REPRESENTATION may hold `*` wildcards. A REPRESENTATION with a wildcard matches the model rows only
    (kind `probe`: what is being measured), never a control, a CNN or zero-shot, which a floor gates only when it
    names them exactly. A row is matched by its name whatever its precision; a REPRESENTATION that ends in
    " (bf16)" (any precision of `--precision`, fp32 too) matches the rows computed in that precision only."""

    spec: str
    target: str  # "TASK:REPRESENTATION", either part possibly with "*", without the precision
    metric: str
    value: float
    precision: str | None = None  # the precision pinned with " (PRECISION)"; None: any

    def matches(self, row: dict[str, Any]) -> bool:
        if self.precision is not None and row.get("precision") != self.precision:
            return False
        # Task and row names may hold colons ("orbit-cnn/translate:4+hflip", "traffic-light[light_size=0.03:0.06]"):
        # every split of the target at a colon is tried.
        task, name = row["task"], row["representation"]
        for at in (i for i, c in enumerate(self.target) if c == ":"):
            task_part, name_part = self.target[:at], self.target[at + 1 :]
            if _pattern(task_part).match(task) and _pattern(name_part).match(name):
                if "*" not in name_part or row.get("kind", "probe") in GATED_BY_PATTERN:
                    return True
        return False


def parse_floor(spec: str) -> Floor:
    """Parse TASK:REPRESENTATION:METRIC=VALUE; a malformed spec is a UsageError showing the expected form."""
    target, equals, value = spec.rpartition("=")
    target, colon, metric = target.rpartition(":")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not equals or not colon or ":" not in target or metric not in METRICS or not math.isfinite(number):
        raise UsageError(f"--fail-under expects {FLOOR_FORM}; got '{spec}'")
    pinned = _PINNED.match(target)
    if pinned is not None:
        return Floor(spec, pinned["target"], metric, number, pinned["precision"])
    return Floor(spec=spec, target=target, metric=metric, value=number)


def _where(row: dict[str, Any], precision: bool = True) -> str:
    """ "traffic-light | ViT-B-32/openai | linear-probe | bf16 | seed 0": the precision when it is not fp32."""
    shots = f" | {row['shots']}-shot" if row.get("shots") is not None else ""
    shown = f" | {row_precision(row)}" if precision and row_precision(row) is not None else ""
    return f"{row['task']} | {row['representation']} | {row['method']}{shots}{shown} | seed {row['seed']}"


def _available(rows: list[dict[str, Any]]) -> str:
    """Per task, its rows' names, each precision other than fp32 beside its name ("ViT-B-32/openai (bf16)")."""
    by_task: dict[str, list[str]] = {}
    for row in rows:
        by_task.setdefault(row["task"], [])
        if named(row) not in by_task[row["task"]]:
            by_task[row["task"]].append(named(row))
    return "; ".join(f"{task}: {', '.join(names)}" for task, names in by_task.items())


def check_floors(rows: list[dict[str, Any]], floors: Sequence[Floor | str]) -> list[str]:
    """One message per (floor, row) whose metric is below the floor; [] when every floor holds.

    Floors apply to the full-data rows: a few-shot run is not meant to reach them. A floor that matches no row
    at all is a UsageError (a typo must not pass the gate silently)."""
    return list(dict.fromkeys(m for _, _, messages in floor_checks(rows, floors) for m in messages))


def floor_checks(rows: list[dict[str, Any]], floors: Sequence[Floor | str]) -> list[tuple[Floor, int, list[str]]]:
    """Per floor: (the floor, how many full-data entries it matched, one message per entry below it)."""
    parsed = [parse_floor(f) if isinstance(f, str) else f for f in floors]
    rows = full_data(rows)
    for floor in parsed:
        if not any(floor.matches(row) for row in rows):
            raise UsageError(f"--fail-under '{floor.spec}' matches no entry. Available: {_available(rows)}")
    checks = []
    for floor in parsed:
        matched = [row for row in rows if floor.matches(row)]
        failures = []
        for row in matched:
            if row.get("incomplete"):
                failures.append(incomplete_failure(row, f"--fail-under {floor.spec}"))
            elif not row[floor.metric] >= floor.value:  # a NaN metric fails too
                failures.append(
                    f"Below floor: {_where(row)}: {floor.metric} {row[floor.metric]:.4f} < {floor.value:g} (--fail-under {floor.spec})"
                )
        checks.append((floor, len(matched), failures))
    return checks


def incomplete_failure(row: dict[str, Any], gate: str) -> str:
    """The gate's message for an entry that a time limit stopped: its numbers depend on the machine, not the inputs."""
    return f"Incomplete: {_where(row)}: {row['incomplete']}; an incomplete result cannot pass the gate ({gate})"


def _key(row: dict[str, Any]) -> tuple:
    return (row["task"], row["representation"], row["method"], row.get("shots"), row["seed"])


# Precisions that clipprobe once wrote into row names as a tag ("ViT-B-32/openai [tokens, bf16]"), before names
# stopped depending on the machine; fp32 never was one.
_TAGGED = frozenset(PRECISION_NAMES) - {PRECISION}
_TAGS = re.compile(r"(?P<name>.*) \[(?P<tags>[^\[\]]*)\]\Z")


def _untagged(name: str) -> tuple[str, str | None]:
    """A row name without the precision tag that older clipprobe wrote into it, and that precision:
    "ViT-B-32/openai [tokens, bf16]" -> ("ViT-B-32/openai [tokens]", "bf16"); a name without one is itself."""
    match = _TAGS.match(name)
    if match is None:
        return name, None
    tags = match["tags"].split(", ")
    precision = next((tag for tag in tags if tag in _TAGGED), None)
    if precision is None:
        return name, None
    rest = [tag for tag in tags if tag != precision]
    return match["name"] + (f" [{', '.join(rest)}]" if rest else ""), precision


def _compared(row: dict[str, Any]) -> tuple[tuple, str | None]:
    """(the entry's key by name, its precision other than fp32): what the comparison matches entries by."""
    name, tagged = _untagged(row["representation"])
    return (row["task"], name, row["method"], row.get("shots"), row["seed"]), row_precision(row) or tagged


def _precision(row: dict[str, Any]) -> str:
    """An entry's precision as a message says it ("fp32" for an entry that says none)."""
    return _compared(row)[1] or row.get("precision") or "fp32"


@dataclass
class Comparison:
    """Entries of the current report against a reference report's, matched by (task, representation, method, shots,
    seed) and precision; an entry that finds no twin in its precision is matched by its name alone (a reference
    made where `--precision auto` chose bf16, compared with a run where it chose fp32), and a note says that the
    precision differs.

    A matched entry has *regressed* when even the top of its current balanced-accuracy interval is more than
    `max_drop` below the reference's balanced accuracy: current_high < reference - max_drop (an entry without an
    interval uses its point estimate as current_high). An entry of the reference that this run lacks is a failure
    (a renamed or dropped row must not pass unseen); an entry only in this run is a note. A comparison that
    matches no entry at all fails."""

    max_drop: float
    regressed: list[dict[str, Any]] = field(
        default_factory=list
    )  # {"entry": current entry, "reference": float, "high": float}
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    matched: int = 0
    # Entries matched by name in another precision: {"entry": current entry, "reference": the reference's entry}.
    other_precision: list[dict[str, Any]] = field(default_factory=list)

    def failures(self) -> list[str]:
        found = [
            incomplete_failure(r["entry"], "--compare")
            if r["entry"].get("incomplete")
            else f"Regression: {_where(r['entry'])}: balanced_accuracy {r['entry']['balanced_accuracy']:.4f} "
            f"(interval top {r['high']:.4f}) < reference {r['reference']:.4f} - max drop {self.max_drop:g}"
            for r in self.regressed
        ]
        for entry in self.removed:
            found.append(f"Missing (in the reference, not in this run): {_where(entry)}")
        if self.matched == 0:
            found.append(
                "The reference matched no entry of this run (another task set, or renamed rows): nothing was compared"
            )
        return found

    def notes(self) -> list[str]:
        changed = []
        for pair in self.other_precision:
            entry, before = pair["entry"], pair["reference"]
            named_as = (
                f" (named {before['representation']!r})" if before["representation"] != entry["representation"] else ""
            )
            changed.append(
                f"Precision differs: {_where(entry, precision=False)}: {_precision(before)} in the reference"
                f"{named_as}, {_precision(entry)} in this run; compared by name"
            )
        return changed + [f"Added (not in the reference): {_where(entry)}" for entry in self.added]


DEFAULT_MAX_DROP = 0.02


def check_max_drop(max_drop: float) -> None:
    if not (max_drop >= 0 and math.isfinite(max_drop)):
        raise UsageError(f"--max-drop must be a number >= 0, got {max_drop}")


def regressions(
    entries: list[dict[str, Any]], reference: list[dict[str, Any]], max_drop: float = DEFAULT_MAX_DROP
) -> Comparison:
    """Compare balanced accuracy entry by entry against a reference report's entries (see Comparison for the rule)."""
    check_max_drop(max_drop)
    result = Comparison(max_drop=max_drop)
    # Each reference entry answers one entry of this run: first in the same precision, then by name alone.
    exact: dict[tuple, int] = {}
    by_name: dict[tuple, list[int]] = {}
    for i, before in enumerate(reference):
        key, precision = _compared(before)
        exact.setdefault((key, precision), i)
        by_name.setdefault(key, []).append(i)
    twins: dict[int, int] = {}  # this run's entry -> the reference's
    answered: set[int] = set()
    for j, entry in enumerate(entries):
        same = exact.get(_compared(entry))
        if same is not None and same not in answered:
            twins[j] = same
            answered.add(same)
    for j, entry in enumerate(entries):
        if j not in twins:
            left = [i for i in by_name.get(_compared(entry)[0], []) if i not in answered]
            if left:
                twins[j] = left[0]
                answered.add(left[0])
                result.other_precision.append({"entry": entry, "reference": reference[left[0]]})
    for j, entry in enumerate(entries):
        if j not in twins:
            result.added.append(entry)
            continue
        before = reference[twins[j]]
        result.matched += 1
        interval = (entry.get("intervals") or {}).get("balanced_accuracy")
        high = interval[1] if interval else entry["balanced_accuracy"]
        # An incomplete entry, or a NaN, is never within the reference's reach.
        if entry.get("incomplete") or not high >= before["balanced_accuracy"] - max_drop:
            result.regressed.append({"entry": entry, "reference": before["balanced_accuracy"], "high": high})
    result.removed = [entry for i, entry in enumerate(reference) if i not in answered]
    return result


def load_reference(path: Path) -> list[dict[str, Any]]:
    """The entries of a results.json written by an earlier `clipprobe report`; a missing or invalid file is a UsageError."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"Reference file not found: {path}")
    try:
        entries = json.loads(path.read_text(encoding="utf-8-sig"))["entries"]
        if entries == {}:
            entries = []
        if not isinstance(entries, list):
            raise TypeError(f"'entries' is {type(entries).__name__}, not a list")
        for entry in entries:
            _key(entry)
            value = entry["balanced_accuracy"]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"balanced_accuracy {value!r} of {_where(entry)} is not a number")
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise UsageError(
            f"Reference file {path} is not a results.json written by `clipprobe report` ({type(exc).__name__}: {exc})"
        ) from None
    if not entries:
        raise RunError(f"Reference file {path} has no entries: a gate against it would compare nothing")
    return entries


@dataclass(frozen=True)
class Gate:
    """What the CI gate checks: floors (`--fail-under`) and a reference report (`--compare`, loaded) with the
    largest drop it tolerates. `build_report(..., gate=...)` checks it before writing anything, so that report.md
    (the job summary) shows the outcome."""

    floors: tuple[Floor, ...] = ()
    reference: Path | None = None
    reference_entries: tuple[dict[str, Any], ...] | None = None
    max_drop: float = DEFAULT_MAX_DROP

    @classmethod
    def from_options(
        cls, fail_under: list[str] | None = None, compare: Path | None = None, max_drop: float | None = None
    ) -> Gate | None:
        """The gate of `clipprobe report`'s options, None without any; every bad input is a UsageError now,
        before any result is read."""
        floors = tuple(parse_floor(spec) for spec in fail_under or ())
        if max_drop is not None and compare is None:
            raise UsageError("--max-drop needs --compare REFERENCE.json")
        drop = DEFAULT_MAX_DROP if max_drop is None else max_drop
        check_max_drop(drop)
        if not floors and compare is None:
            return None
        entries = tuple(load_reference(compare)) if compare is not None else None
        return cls(floors, Path(compare) if compare is not None else None, entries, drop)

    def check(self, entries: list[dict[str, Any]]) -> GateOutcome:
        """The outcome on the report's entries; a floor that matches no entry is a UsageError."""
        checks = floor_checks(entries, list(self.floors))
        floors = [{"spec": floor.spec, "matched": matched, "failed": len(below)} for floor, matched, below in checks]
        failures = list(dict.fromkeys(message for _, _, below in checks for message in below))
        comparison, notes = None, []
        if self.reference_entries is not None:
            compared = regressions(entries, list(self.reference_entries), self.max_drop)
            failures += compared.failures()
            notes = compared.notes()
            comparison = {
                "reference": str(self.reference),
                "max_drop": self.max_drop,
                "matched": compared.matched,
                "other_precision": len(compared.other_precision),
                "regressed": len(compared.regressed),
                "added": len(compared.added),
                "removed": len(compared.removed),
            }
        return GateOutcome(floors=floors, comparison=comparison, failures=failures, notes=notes)


@dataclass
class GateOutcome:
    """What the gate found: per floor the entries it matched and how many fell below it; the comparison with the
    reference (counts); the failures (one message each, as printed on stderr) and the notes (added, removed)."""

    floors: list[dict[str, Any]]
    comparison: dict[str, Any] | None
    failures: list[str]
    notes: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, **{k: getattr(self, k) for k in ("floors", "comparison", "failures", "notes")}}

    def summary(self) -> str:
        """ "passed" or "FAILED (2 problems)", for the headings of report.md and report.html."""
        count = len(self.failures)
        return "passed" if self.passed else f"FAILED ({count} problem{'s' if count != 1 else ''})"

    def checks(self) -> list[tuple[str, str, str]]:
        """One line per check, (what, entries, outcome), for the gate's table in report.md and report.html."""
        lines = [
            (
                f"--fail-under {floor['spec']}",
                str(floor["matched"]),
                "held" if not floor["failed"] else f"{floor['failed']} below the floor",
            )
            for floor in self.floors
        ]
        if self.comparison is not None:
            c = self.comparison
            regressed = "no regression" if not c["regressed"] else f"{c['regressed']} regressed"
            other = f" ({c['other_precision']} in another precision)" if c.get("other_precision") else ""
            lines.append(
                (
                    f"--compare {c['reference']} --max-drop {c['max_drop']:g}",
                    f"{c['matched']} matched{other}",
                    f"{regressed}; {c['added']} added, {c['removed']} removed",
                )
            )
        return lines
