"""The hf scheme: a Hugging Face `datasets` dataset, saved to disk, in a local data folder, or on the hub."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import datasets

from ...core.errors import RunError
from .registry import SCHEMES
from .user import Listing, UserSource


@SCHEMES.register("hf")
@dataclass(frozen=True)
class HuggingFaceSource(UserSource):
    """A `datasets` dataset: a folder written by `save_to_disk`, a local data folder, or a hub name
    (ORG/NAME, read from the local cache when the hub is unreachable)."""

    scheme: ClassVar[str] = "hf"
    path: str
    config_name: str | None = None

    @classmethod
    def from_spec(cls, path: str, base: Path | None = None, **options) -> HuggingFaceSource:
        path, _, config = path.partition(":")  # hf:NAME:CONFIG
        if base is not None and not Path(path).is_absolute() and (base / path).exists():
            path = str(base / path)
        return cls(path, config or None, **options)

    def task_name(self) -> str:
        name = Path(self.path).name or self.path
        return f"{name}-{self.config_name}" if self.config_name else name

    def _load(self) -> datasets.DatasetDict | datasets.Dataset:
        from ...core.hub import hub_offline, hub_reachable

        local = Path(self.path)
        offline = False
        try:
            if (local / "dataset_dict.json").is_file() or (local / "state.json").is_file():
                return datasets.load_from_disk(self.path)
            if local.exists():
                return datasets.load_dataset(self.path, self.config_name)
            offline = not hub_reachable()
            with hub_offline() if offline else nullcontext():
                return datasets.load_dataset(self.path, self.config_name)
        except Exception as exc:  # datasets raises many types; the user needs the path and the reason
            if offline:
                raise RunError(
                    f"Cannot load dataset {self.path}: the Hugging Face hub is unreachable and it is not in "
                    f"the local cache. Save it with save_to_disk where there is network and use hf:FOLDER"
                ) from exc
            raise RunError(f"Cannot load dataset {self.path}: {exc}") from exc

    def read(self) -> Listing:
        data = self._load()
        if isinstance(data, datasets.Dataset):
            data = {"all": data}
        # `datasets` fingerprints every split from its content and history.
        content = {split: data[split]._fingerprint for split in sorted(data)}
        local = Path(self.path)
        return Listing(dict(data), content, str(local.resolve()) if local.exists() else self.path)
