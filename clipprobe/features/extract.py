"""Extraction: features for every split of a data source, computed in chunks (resumable, shardable) and cached."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import UsageError
from ..core.locks import exclusive
from ..core.progress import progress_bar
from ..core.storage import stable_hash
from ..data.task import PROBE_SPLITS
from .cache import FeatureCache, FeatureKey, FeatureSet
from .chunks import DEFAULT_CHUNK_ROWS, Shard, encode_chunks, shard_plan
from .config import ExtractorConfig
from .extractors import Extractor, make_extractor

if TYPE_CHECKING:
    from ..data.readers import DataSource


@dataclass(frozen=True)
class FeaturePlan:
    """What a job knows of its features before any is extracted: how its row is named, in which precision its
    features are computed (None: an extractor that has one precision, such as raw pixels) and each split's cache
    key."""

    representation: str
    model: str
    pretrained: str
    precision: str | None
    precision_reason: str | None
    identity: dict[str, Any]
    keys: dict[str, str]


def plan_features(
    source: DataSource,
    config: ExtractorConfig,
    splits: tuple[str, ...] = PROBE_SPLITS,
    cache: FeatureCache | None = None,
) -> FeaturePlan:
    """The row name and cache keys of `config`'s features of `source` (weights resolved, no model built)."""
    extractor = make_extractor(config)
    _, keys = _keys(source, extractor, splits, cache or FeatureCache())
    named = extractor.describe()
    return FeaturePlan(
        representation=named["representation"],
        model=named["model"],
        pretrained=named["pretrained"],
        precision=named.get("precision"),
        precision_reason=named.get("precision_reason"),
        identity=extractor.identity(),
        keys=keys,
    )


def entry_meta(extractor: Extractor, config: ExtractorConfig, data: str) -> dict[str, Any]:
    """The metadata stored beside every cached array (extraction's splits and counterfactual pairs alike)."""
    return {
        "identity": extractor.identity(),
        **extractor.describe(),
        "data": data,
        "preprocess": extractor.preprocess_cfg(),
        "config": asdict(config),
        "token_width": extractor.token_width(),
    }


def extract_features(
    source: DataSource,
    config: ExtractorConfig | None = None,
    splits: tuple[str, ...] = PROBE_SPLITS,
    cache: FeatureCache | None = None,
    refresh: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> FeatureSet:
    """Features for `splits` of `source`, computing only what the cache lacks (or all with `refresh`).

    A missing split is extracted in chunks of `chunk_rows` rows (clipprobe.features.chunks): chunks that an earlier,
    killed run or other shards already wrote are kept, only the rest are computed, and the split is then
    assembled into its cache entry. The arrays come back memory-mapped."""
    config = config or ExtractorConfig()
    cache = cache or FeatureCache()
    extractor = make_extractor(config)
    fingerprint, keys = _keys(source, extractor, splits, cache)
    if not refresh and all(cache.has(key) for key in keys.values()):
        return _feature_set(cache, keys, splits, [], extractor)
    # Another process extracting the same entry: wait for it, then use what it stored.
    with exclusive(_lock_target(cache, keys), f"extracting {source.name} with {config.model}"):
        missing, data, stores, meta = _prepare(
            source, config, extractor, splits, cache, refresh, chunk_rows, fingerprint, keys
        )
        if missing:
            _compute(source, extractor, data, stores, shard_plan(stores.items(), None))
            for split in missing:
                cache.save_chunks(keys[split], stores[split], {**meta, "split": split})
        return _feature_set(cache, keys, splits, missing, extractor)


def extract_shard(
    source: DataSource,
    config: ExtractorConfig | None,
    shard: Shard,
    splits: tuple[str, ...] = PROBE_SPLITS,
    cache: FeatureCache | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> dict[str, int]:
    """Compute shard `shard`'s chunks of every split the cache lacks; assemble nothing (see `merge_features`).

    Returns the number of chunks computed per split. Every process must use the same `chunk_rows`."""
    config = config or ExtractorConfig()
    cache = cache or FeatureCache()
    extractor = make_extractor(config)
    missing, data, stores, _ = _prepare(source, config, extractor, splits, cache, False, chunk_rows)
    plan = shard_plan(stores.items(), shard)
    _compute(source, extractor, data, stores, plan, f" (shard {shard})")
    return {split: sum(1 for s, _, _ in plan if s == split) for split in missing}


def merge_features(
    source: DataSource,
    config: ExtractorConfig | None = None,
    splits: tuple[str, ...] = PROBE_SPLITS,
    cache: FeatureCache | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> FeatureSet:
    """Assemble the shards' chunks into cache entries, after checking that they cover every row exactly once.

    Computes nothing: a missing or damaged chunk is a RunError that names it (run its shard again)."""
    config = config or ExtractorConfig()
    cache = cache or FeatureCache()
    extractor = make_extractor(config)
    fingerprint, keys = _keys(source, extractor, splits, cache)
    with exclusive(_lock_target(cache, keys), f"assembling {source.name}"):
        missing, _, stores, meta = _prepare(
            source, config, extractor, splits, cache, False, chunk_rows, fingerprint, keys
        )
        for split in missing:
            stores[split].check()
        for split in missing:
            cache.save_chunks(keys[split], stores[split], {**meta, "split": split})
        return _feature_set(cache, keys, splits, missing, extractor)


def _fingerprint(source) -> str:
    # The same dataset read through another image column is other data.
    return f"{source.fingerprint()}:{source.image_column}"


def _keys(source, extractor, splits, cache) -> tuple[str, dict[str, str]]:
    """The data's fingerprint (computed once: it reads the source) and each split's cache key."""
    fingerprint = _fingerprint(source)
    identity = extractor.identity()
    return fingerprint, {split: FeatureKey(identity, fingerprint, split).digest for split in splits}


def _lock_target(cache: FeatureCache, keys: dict[str, str]) -> Path:
    """One lock for the entries of the splits of one extractor and data source, in the cache folder."""
    return cache.root / stable_hash(sorted(keys.values()), 32)


def _prepare(source, config, extractor, splits, cache, refresh, chunk_rows, fingerprint=None, keys=None):
    """The missing splits, and for those the data, their chunk stores and the entry's metadata (`fingerprint` and
    `keys` from `_keys`, computed here when not given)."""
    if keys is None:
        fingerprint, keys = _keys(source, extractor, splits, cache)
    missing = [s for s in splits if refresh or not cache.has(keys[s])]
    if not missing:
        return missing, None, {}, None
    # Build the model before touching the data, so a model that cannot load fails in seconds.
    meta = entry_meta(extractor, config, fingerprint)
    data = source.load()
    unknown = [s for s in missing if s not in data]
    if unknown:
        raise UsageError(f"Data source '{source.name}' has no split {unknown[0]!r}. Available: {', '.join(data)}")
    stores = {split: cache.parts(keys[split], len(data[split]), chunk_rows) for split in missing}
    if refresh:
        for store in stores.values():
            store.remove()
    return missing, data, stores, meta


def _compute(source, extractor, data, stores, plan, suffix: str = "") -> None:
    """Encode the planned chunks, one progress bar per split (its total: the rows this process computes)."""
    with progress_bar() as progress:
        jobs = {}
        for split, _, _ in plan:
            if split not in jobs:
                total = sum(b - a for s, a, b in plan if s == split)
                # Each split's clock starts with its own first chunk, so its elapsed time, rate and time left
                # are its own.
                jobs[split] = progress.add_task(f"Extracting {source.name}/{split}{suffix}", total=total, start=False)

        def encode(split: str, start: int, stop: int) -> np.ndarray:
            progress.start_task(jobs[split])
            return extractor.encode_rows(
                data[split], start, stop, source.image_column, lambda n: progress.advance(jobs[split], n)
            )

        encode_chunks(plan, stores, encode)


def _feature_set(cache, keys, splits, computed, extractor) -> FeatureSet:
    arrays = {split: cache.load(keys[split]) for split in splits}
    stored = cache.meta(keys[splits[0]])
    meta = {k: stored[k] for k in ("identity", "representation", "model", "pretrained", "data", "preprocess", "config")}
    meta["token_width"] = stored.get("token_width")  # entries stored before it was kept: not the all-tokens layer
    # How rows are named comes from this code, not from the entry: the key holds everything that decides the
    # numbers, and an entry stored under an older naming (or reached through another path) keeps its features.
    meta.update(extractor.describe())
    meta["keys"] = keys
    return FeatureSet(arrays=arrays, meta=meta, computed=list(computed))
