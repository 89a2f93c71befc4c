"""The one place where everything clipprobe offers by name is registered (as timm's `models/__init__.py` imports
every model module). Import it, or use the top-level API (`clipprobe.probe`, ...), which imports it for you.

Each module below fills a registry when it is imported:

- tasks (clipprobe.data.task.TASKS): the real photos of traffic-light-crops, the six dashcam-world tasks;
- dataset schemes (clipprobe.data.readers.SCHEMES): imagefolder, csv, parquet, hf;
- extractors (clipprobe.features.extractors.EXTRACTORS): open_clip, pixels;
- orbit groups (clipprobe.features.orbits.GROUP_FACTORS): translate, hflip;
- probes (clipprobe.probes.registry.PROBES): linear, mlp, knn, attentive; and the family linear-pca:K (PROBE_FAMILIES);
- baselines (clipprobe.baselines.registry.BASELINES): pixels, random, cnn, orbit-cnn, zero-shot;
- the dashcam application: caption policies, counterfactual attributes, built-in weights (mini-clip/dashcam-*),
  and the report's views of curation-experiment and blind-spots records.
"""

from __future__ import annotations

from .baselines import controls, trained, zeroshot  # noqa: F401
from .dashcam import blindspots_view, captions, pairs, pretrain, report, tasks  # noqa: F401
from .data import builtin, readers  # noqa: F401
from .features import extractors, orbits  # noqa: F401
from .probes import attentive, knn, linear, mlp, pca  # noqa: F401
