"""The imagefolder scheme: a folder with one sub-folder of images per class; and an image folder shipped inside an
installed Python package (the built-in traffic-light-crops)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ...core.errors import RunError, UsageError
from ...core.storage import stable_hash
from ..task import PROBE_SPLITS
from .registry import SCHEMES
from .user import Listing, UserSource, file_hash, image_extensions, path_images, resolve_path, visible


@SCHEMES.register("imagefolder")
@dataclass(frozen=True)
class ImageFolderSource(UserSource):
    """A folder with one sub-folder of images per class (`root/red/x.jpg`), optionally inside split folders
    (`root/train/red/x.jpg`; split folders are train, validation, test or the names in `splits`)."""

    scheme: ClassVar[str] = "imagefolder"
    labelled: ClassVar[bool] = True
    label_column: ClassVar[bool] = False
    root: str

    @classmethod
    def from_spec(cls, path: str, base: Path | None = None, **options) -> ImageFolderSource:
        return cls(root=resolve_path(path, base), **options)

    def task_name(self) -> str:
        return Path(self.root).resolve().name

    def folder(self) -> Path:
        root = Path(self.root)
        if not root.is_dir():
            raise UsageError(f"No image folder at {self.root}")
        return root

    def read(self) -> Listing:
        root = self.folder().resolve()  # rows hold absolute paths: they stay valid if the working folder changes
        extensions = image_extensions()

        def images(folder: Path) -> list[Path]:
            return sorted(
                p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions and visible(p, root)
            )

        def has_images(folder: Path) -> bool:
            return any(p.suffix.lower() in extensions and p.is_file() and visible(p, root) for p in folder.rglob("*"))

        def folders(parent: Path) -> list[Path]:  # folders without any image (e.g. __pycache__) do not count
            return [d for d in sorted(parent.iterdir()) if d.is_dir() and not d.name.startswith(".") and has_images(d)]

        def loose(parent: Path) -> None:
            files = [
                p
                for p in sorted(parent.iterdir())
                if p.is_file() and p.suffix.lower() in extensions and visible(p, root)
            ]
            if files:
                raise UsageError(
                    f"{self.name}: {files[0].relative_to(root).as_posix()} is not inside a class folder "
                    f"(expected {self.root}/CLASS/IMAGE or {self.root}/SPLIT/CLASS/IMAGE)"
                )

        split_names = set(PROBE_SPLITS) | {theirs for _, theirs in self.splits}
        top = folders(root)
        split_dirs = [d for d in top if d.name in split_names]
        if split_dirs and len(split_dirs) < len(top):
            others = [d.name for d in top if d.name not in split_names]
            raise UsageError(
                f"{self.name} mixes split folders ({', '.join(d.name for d in split_dirs)}) and other folders "
                f"({', '.join(others)}); name every split folder in a task file's [splits] table"
            )
        loose(root)
        layout = {d.name: d for d in split_dirs} if split_dirs else {"all": root}
        label = self.label
        assert label is not None, "a labelled scheme always has a label column (UserSource.__post_init__)"
        data, content = {}, []
        for split_name, split_dir in layout.items():
            if split_dir is not root:
                loose(split_dir)
            files, labels = [], []
            for class_dir in folders(split_dir):
                for path in images(class_dir):
                    files.append(path)
                    labels.append(class_dir.name)
                    content.append((split_name, class_dir.name, path.relative_to(root).as_posix(), file_hash(path)))
            data[split_name] = path_images(files, labels, self.image_column, label)
        if not content:
            raise UsageError(
                f"No images in {self.root} (expected {self.root}/CLASS/IMAGE, e.g. {self.root}/red/0001.jpg)"
            )
        return Listing(data, stable_hash(content, 32), str(root), root)


@dataclass(frozen=True)
class PackagedImageFolder(ImageFolderSource):
    """An image folder shipped inside an installed Python package (found without importing the package)."""

    package: str = ""
    requirement: str = ""

    def folder(self) -> Path:
        package = _package_folder(self.package)
        if package is None:
            raise RunError(f"{self.name} needs the package {self.requirement}: pip install '{self.requirement}'")
        folder = package / self.root
        if not folder.is_dir():
            raise RunError(
                f"The installed {self.package} has no {self.root} folder; "
                f"pip install --force-reinstall '{self.requirement}'"
            )
        return folder

    def task_name(self) -> str:
        return self.package


def _package_folder(package: str) -> Path | None:
    """Where an installed package lives, found without importing it (importing may fail or be slow)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0])
