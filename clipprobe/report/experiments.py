"""How the report shows experiment records (headline tables across tasks, such as the dashcam curation experiment):
a registry of views by the record's `kind`. An application registers its view, which reads its own typed record;
the report knows none by name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rich.table import Table

from ..core.defaults import EXPERIMENTS_FOLDER
from ..core.errors import RunError
from ..core.registry import Registry
from ..results import read_json


class ExperimentView(Protocol):
    """Reads one kind of experiment record (its own typed document) and renders it in every format of the report."""

    schema_version: int

    def from_json(self, data: Any, where: str) -> Any:
        """The typed record from its JSON data (a RunError naming `where` and the field when it does not fit)."""

    def tasks(self, record: Any) -> list[str]: ...

    def title(self, record: Any) -> str: ...

    def tables(self, record: Any) -> list[Table]: ...

    def summary(self, record: Any) -> list[str]:
        """What the experiment found, a line each, for the opening of the terminal report."""

    def markdown(self, record: Any) -> str: ...

    def plots(self, record: Any) -> dict[str, bytes]: ...

    def html(self, anchor: str, record: Any, plots: dict[str, bytes]) -> str: ...


EXPERIMENT_VIEWS: Registry[ExperimentView] = Registry("experiment kind")


def list_experiment_views() -> list[str]:
    return EXPERIMENT_VIEWS.names()


def get_experiment_view(kind: str) -> ExperimentView:
    return EXPERIMENT_VIEWS.get(kind)


@dataclass
class Experiment:
    """An experiment record as its view read it, beside the view that renders it."""

    view: ExperimentView
    record: Any
    path: Path


def read_experiments(results_dir: Path) -> list[Experiment]:
    """The experiment records under `results_dir`/experiments, each read (and checked) by its kind's view."""
    found = []
    for path in sorted((Path(results_dir) / EXPERIMENTS_FOLDER).glob("*.json")):
        document = read_json(path, "Experiment file")
        if not isinstance(document, dict):
            raise RunError(f"Experiment file {path} is not a JSON object; delete it or re-run the experiment")
        view = get_experiment_view(str(document.get("kind")))
        if document.get("schema_version") != view.schema_version:
            raise RunError(
                f"Experiment file {path} has schema version {document.get('schema_version')}, this clipprobe reads "
                f"{view.schema_version}; re-run the experiment (or delete the file)"
            )
        data = {k: v for k, v in document.items() if k != "schema_version"}
        found.append(Experiment(view, view.from_json(data, f"Experiment file {path}"), path))
    return found
