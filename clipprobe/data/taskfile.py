"""Tasks over users' data: a task over a `SCHEME:PATH` dataset, TOML task files, zero-shot prompt files, and resolving
a task given as a name, a file or a Task."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..core.errors import UsageError
from .readers import parse_dataset, scheme_of
from .splits import SplitFractions
from .task import PROBE_SPLITS, Task, get_task, with_strict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


TASK_FILE_KEYS = (
    "allow_duplicates",
    "allow_outside_root",
    "auto_split",
    "classes",
    "description",
    "image_column",
    "label",
    "name",
    "prompts",
    "source",
    "splits",
)


def dataset_task(
    spec: str,
    label: str | None = None,
    image_column: str = "image",
    name: str | None = None,
    allow_outside_root: bool = False,
) -> Task:
    """A task over a dataset named on the command line, named `name` or after its path.

    `label` names the label column (default "label"); a scheme whose labels are folder names takes none."""
    reader, _ = scheme_of(spec)
    if label is not None and not reader.label_column:
        raise UsageError(
            f"{spec}: {reader.scheme} data takes its labels from its class folders' names, so --label does not "
            "apply (it names the label column of csv, parquet or hf data)"
        )
    label = label or "label"
    source = parse_dataset(spec, image_column=image_column, label=label, allow_outside_root=allow_outside_root)
    if name is not None and not name.strip():
        raise UsageError("--name must not be empty")
    return Task(name or source.task_name(), f"{label} of {spec}", source, label, source.class_names())


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"{what} not found: {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{what} {path} is not valid TOML: {exc}") from None


def load_task_file(path: str | Path) -> Task:
    """A task from a TOML file: `source = "SCHEME:PATH"` (relative to the file), columns, classes, splits."""
    path = Path(path)
    spec = _read_toml(path, "Task file")
    unknown = sorted(set(spec) - set(TASK_FILE_KEYS))
    if unknown:
        raise UsageError(f"Task file {path}: unknown key '{unknown[0]}'. Keys: {', '.join(TASK_FILE_KEYS)}")

    def get(key: str, kind: type, default: Any = None) -> Any:
        value = spec.get(key, default)
        if value is not None and not isinstance(value, kind):
            raise UsageError(f"Task file {path}: '{key}' must be a {_kind_name(kind)}, got {value!r}")
        return value

    source_spec = get("source", str)
    if not source_spec:
        raise UsageError(f'Task file {path} has no source, e.g. source = "imagefolder:photos"')
    classes = get("classes", list)
    if classes is not None and (not classes or not all(isinstance(c, str) for c in classes)):
        raise UsageError(f"Task file {path}: 'classes' must be a list of class names")
    splits = get("splits", dict, {})
    if not all(isinstance(v, str) for v in splits.values()):
        raise UsageError(f"Task file {path}: the [splits] table maps train, validation and test to names")
    auto = get("auto_split", dict, {})
    wrong = sorted(set(auto) - {*PROBE_SPLITS, "seed"})
    if wrong:
        raise UsageError(
            f"Task file {path}: unknown key '{wrong[0]}' in [auto_split]. Keys: {', '.join((*PROBE_SPLITS, 'seed'))}"
        )
    label = get("label", str, "label")
    source = parse_dataset(
        source_spec,
        base=path.parent,
        image_column=get("image_column", str, "image"),
        label=label,
        classes=tuple(classes) if classes else None,
        splits=splits,
        fractions=SplitFractions(**auto),
        allow_outside_root=get("allow_outside_root", bool, False),
        allow_duplicates=get("allow_duplicates", bool, False),
    )
    name = get("name", str, path.stem)
    description = get("description", str, f"{label} of {source_spec}")
    prompts = get("prompts", dict)
    if prompts is not None:
        prompts = prompt_table(prompts, f"Task file {path}")
    return Task(name, description, source, label, source.class_names(), prompts=prompts)


def prompt_table(table: dict[str, Any], where: str) -> dict[str, tuple[str, ...]]:
    """A [prompts] table: each class name -> a list of zero-shot prompts."""
    if not table or not all(isinstance(v, list) and v and all(isinstance(p, str) for p in v) for v in table.values()):
        raise UsageError(
            f'{where}: [prompts] must map each class to a list of prompts, e.g. red = ["a red traffic light"]'
        )
    return {str(name): tuple(texts) for name, texts in table.items()}


def read_prompt_file(path: str | Path) -> dict[str, tuple[str, ...]]:
    """Zero-shot prompts from a TOML file: `class = ["prompt", ...]` lines, or a task file's [prompts] table."""
    path = Path(path)
    data = _read_toml(path, "Prompt file")
    return prompt_table(data.get("prompts", data), f"Prompt file {path}")


def _kind_name(kind: type) -> str:
    return {str: "string", list: "list", dict: "table", bool: "boolean (true or false)"}.get(kind, kind.__name__)


def resolve_task(task: str | Task, strict: bool = False) -> Task:
    """A task object from a registered name, a task file (.toml), or a Task."""
    if isinstance(task, str):
        task = load_task_file(task) if task.endswith(".toml") else get_task(task)
    return with_strict(task) if strict else task
