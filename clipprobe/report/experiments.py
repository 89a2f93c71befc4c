"""How the report shows experiment records (headline tables across tasks, such as the dashcam curation experiment):
a registry of views by the record's `kind`. An application registers its view; the report knows none by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from rich.table import Table

from ..core.errors import RunError
from ..core.registry import Registry
from ..results import EXPERIMENTS_FOLDER, read_document


class ExperimentView(Protocol):
    """Renders one kind of experiment record in every format of the report."""

    schema_version: int

    def title(self, record: dict[str, Any]) -> str: ...

    def tables(self, record: dict[str, Any]) -> list[Table]: ...

    def markdown(self, record: dict[str, Any]) -> str: ...

    def plots(self, record: dict[str, Any]) -> dict[str, bytes]: ...

    def html(self, anchor: str, record: dict[str, Any], plots: dict[str, bytes]) -> str: ...


EXPERIMENT_VIEWS: Registry[ExperimentView] = Registry("experiment kind")


def list_experiment_views() -> list[str]:
    return EXPERIMENT_VIEWS.names()


def get_experiment_view(kind: str) -> ExperimentView:
    return EXPERIMENT_VIEWS.get(kind)


def read_experiments(results_dir: Path) -> list[dict[str, Any]]:
    """The experiment records under `results_dir`/experiments, each checked against its view's schema version."""
    records = []
    for path in sorted((Path(results_dir) / EXPERIMENTS_FOLDER).glob("*.json")):
        try:
            kind = json.loads(path.read_text()).get("kind")
        except (ValueError, AttributeError):
            raise RunError(f"Experiment file {path} is not a JSON object; delete it or re-run the experiment") from None
        view = get_experiment_view(str(kind))
        records.append(read_document(path, view.schema_version, "Experiment file"))
    return records
