"""Data sources, one module per dataset scheme (as timm's `data/readers/`): the base every source subclasses
(`DataSource`, base.py), the registry of schemes and the `SCHEME:PATH` parsing (registry.py), the machinery shared
by the schemes over users' files (user.py), and the schemes imagefolder, csv, parquet and hf. Importing this package
registers every scheme."""

from . import csv, hf, imagefolder, parquet  # noqa: F401  (each registers its scheme)
from .base import DataSource
from .registry import SCHEMES, list_schemes, parse_dataset, scheme_of

__all__ = ["SCHEMES", "DataSource", "list_schemes", "parse_dataset", "scheme_of"]
