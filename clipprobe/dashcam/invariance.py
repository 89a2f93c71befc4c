"""How much a frozen embedding reacts to one attribute, measured on counterfactual pairs.

score = mean cosine distance between the two images of a pair (the same scene, one attribute changed)
      / mean cosine distance between unrelated images (image_a[i] against image_b[j(i)], j a seeded derangement).

0: the embedding cannot see the attribute; about 1: changing it moves the embedding as far as changing the scene.
The 95 % interval is a percentile bootstrap over pairs, the ratio recomputed for each resample."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import UsageError
from ..core.paths import slug
from ..core.storage import file_sha256, stable_hash
from ..features.cache import FeatureCache
from ..features.config import ExtractorConfig
from ..features.extractors import Extractor, make_extractor
from ..results import provenance, write_document
from .world import WorldConfig

# Bump when the shape of an invariance record changes.
SCHEMA_VERSION = 3
# Not under results/: `clipprobe report` reads every results/*/*.json as a probe record.
DEFAULT_INVARIANCE_DIR = Path("results-invariance")
DEFAULT_RESAMPLES = 1000
CONFIDENCE = 0.95
DISTANCE = "cosine"
UNRELATED = "image_a[i] vs image_b[j(i)], j a seeded random cyclic derangement of the pairs"
PAIR_COLUMNS = ("image_a", "image_b")


def cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - cos(a[i], b[i]) for each row, in float64; a zero vector is at distance 1 from everything."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.divide((a * b).sum(axis=1), norms, out=np.zeros(len(a)), where=norms > 0)
    return np.clip(1.0 - cos, 0.0, 2.0)


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """j with j[i] != i for every i: the pairs visited in a random order, each sent to the next (one n-cycle)."""
    if n < 2:
        raise UsageError(f"--n must be at least 2 (an unrelated pair needs two scenes), got {n}")
    order = rng.permutation(n)
    j = np.empty(n, dtype=np.int64)
    j[order] = np.roll(order, -1)
    return j


def invariance_statistics(
    a: np.ndarray,
    b: np.ndarray,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = CONFIDENCE,
    values: tuple[Sequence[str], Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The score, its bootstrap interval and the mean distances, from the embeddings of image_a and image_b.

    The score is on one scale for every attribute: the mean distance within the counterfactual pairs (which
    differ in the attribute alone) over the mean distance within unrelated pairs that also differ in the
    attribute (`values`: the attribute's value in image_a and in image_b of each pair). 0: blind to the
    attribute; 1: as sensitive as an embedding that encodes the attribute alone, whose unrelated pairs are
    apart exactly as far as their attribute values are. `ratio` keeps the earlier, unscaled measure (within
    pairs over all unrelated pairs), whose ceiling is 1 / P(an unrelated pair differs in the attribute) and so
    depends on the attribute. Without `values`, every unrelated pair counts as differing (score == ratio).

    One seeded generator draws the derangement, then the resamples (pairs drawn with replacement; a pair
    keeps its own unrelated pair), so the same seed gives the same numbers. An embedding that does not move
    within the pairs scores 0 even where unrelated images do not move either (a constant embedding)."""
    if len(a) != len(b):
        raise ValueError(f"image_a and image_b have {len(a)} and {len(b)} embeddings")
    if resamples < 1:
        raise UsageError(f"--resamples must be at least 1, got {resamples}")
    rng = np.random.default_rng(seed)
    n = len(a)
    unrelated_index = derangement(n, rng)
    pair = cosine_distances(a, b)
    unrelated = cosine_distances(a, np.asarray(b)[unrelated_index])
    if values is None:
        differs = np.ones(n, dtype=bool)
    else:
        value_a, value_b = (np.asarray(v, dtype=object) for v in values)
        differs = value_a != value_b[unrelated_index]
    stats: dict[str, Any] = {
        "n_pairs": int(n),
        "n_unrelated_differing": int(differs.sum()),
        "mean_pair_distance": float(pair.mean()),
        "mean_unrelated_distance": float(unrelated.mean()),
        "mean_unrelated_differing_distance": float(unrelated[differs].mean()) if differs.any() else None,
        "ratio": None,
        "score": None,
        "interval": None,
    }
    if stats["mean_unrelated_distance"] > 0:
        stats["ratio"] = stats["mean_pair_distance"] / stats["mean_unrelated_distance"]
    reference = stats["mean_unrelated_differing_distance"]
    if stats["mean_pair_distance"] == 0:
        stats["score"], stats["interval"] = 0.0, [0.0, 0.0]
        return stats
    if not reference:
        stats["error"] = "no unrelated pair differs in the attribute, or they are at distance 0: the score is undefined"
        return stats
    stats["score"] = stats["mean_pair_distance"] / reference
    draws = rng.integers(0, n, size=(resamples, n))
    weights = differs[draws]
    with np.errstate(divide="ignore", invalid="ignore"):
        reference_draws = (unrelated[draws] * weights).sum(axis=1) / weights.sum(axis=1)
        ratios = pair[draws].mean(axis=1) / reference_draws
    if np.isfinite(ratios).all():
        tail = (1 - confidence) / 2 * 100
        low, high = np.percentile(ratios, [tail, 100 - tail])
        stats["interval"] = [float(low), float(high)]
    else:
        stats["error"] = "some bootstrap resamples have no differing unrelated pair at a distance: no interval"
    return stats


def pairs_fingerprint(path: Path) -> str:
    """A hash of the pairs' stored content (not their path): the same pixels give the same feature cache keys."""
    files = sorted(Path(path).glob("*.arrow"))
    return stable_hash([file_sha256(f) for f in files], 32)


def _pairs(attribute: str, n: int, world: WorldConfig | None):
    import datasets

    from .pairs import make_pairs
    from .world import quiet_datasets

    path = make_pairs(attribute, n=n, config=world or WorldConfig())
    with quiet_datasets():
        return path, datasets.load_from_disk(str(path))


def embed_pairs(
    attribute: str,
    config: ExtractorConfig | None = None,
    n: int = 200,
    world: WorldConfig | None = None,
    cache: FeatureCache | None = None,
    refresh: bool = False,
    extractor: Extractor | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Embeddings of image_a and image_b of `n` pairs for `attribute` (rendered and cached by make_pairs).

    Images go through `make_extractor(config).encode` as in `extract`; the extractor gets the whole pairs
    dataset and the column to read, so it may also read `region` or `index`. Embeddings are cached in the
    feature cache under a key that includes the pairs' content fingerprint."""
    from .pairs import COUNTERFACTUALS

    COUNTERFACTUALS.get(attribute)
    if n < 2:
        raise UsageError(f"--n must be at least 2 (an unrelated pair needs two scenes), got {n}")
    config = config or ExtractorConfig()
    cache = cache or FeatureCache()
    extractor = extractor or make_extractor(config)
    identity = extractor.identity()
    path, pairs = _pairs(attribute, n, world)
    fingerprint = f"pairs-{attribute}-{pairs_fingerprint(path)}"
    keys = {column: cache.key(identity, fingerprint, column) for column in PAIR_COLUMNS}
    missing = [column for column in PAIR_COLUMNS if refresh or not cache.has(keys[column])]
    if missing:
        meta = {
            "identity": identity,
            **extractor.describe(),
            "data": fingerprint,
            "preprocess": extractor.preprocess_cfg(),
            "config": asdict(config),
        }
        for column in missing:
            array = extractor.encode(pairs, f"Embedding {attribute} pairs ({column})", column)
            cache.save(keys[column], array, {**meta, "split": column})
    a, b = (np.asarray(cache.load(keys[column])) for column in PAIR_COLUMNS)
    meta = {
        "pairs": fingerprint,
        "cache_keys": keys,
        "computed": missing,
        "path": str(path),
        "dim": int(a.shape[1]),
        # The attribute's value in image_a and image_b of each pair (the score's reference pairs differ in it).
        "values": (pairs["value_a"], pairs["value_b"]),
    }
    return a, b, meta


def invariance_score(
    attribute: str,
    config: ExtractorConfig | None = None,
    n: int = 200,
    world: WorldConfig | None = None,
    seed: int | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    cache: FeatureCache | None = None,
    refresh: bool = False,
    extractor: Extractor | None = None,
) -> dict[str, Any]:
    """How much `config`'s embedding reacts to `attribute` (a name in clipprobe.dashcam.pairs.COUNTERFACTUALS).

    Returns score, interval ([low, high], 95 % bootstrap), n_pairs, mean_pair_distance, mean_unrelated_distance,
    and under "embedding" the pairs' fingerprint and the feature cache keys. `seed` (default: config.seed)
    fixes the unrelated pairs and the resamples."""
    config = config or ExtractorConfig()
    seed = config.seed if seed is None else seed
    if resamples < 1:
        raise UsageError(f"--resamples must be at least 1, got {resamples}")
    a, b, meta = embed_pairs(attribute, config, n=n, world=world, cache=cache, refresh=refresh, extractor=extractor)
    values = meta.pop("values")
    return {**invariance_statistics(a, b, seed=seed, resamples=resamples, values=values), "embedding": meta}


def measure_invariance(
    attributes: Sequence[str] | None = None,
    config: ExtractorConfig | None = None,
    n: int = 200,
    world: WorldConfig | None = None,
    seed: int | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    results_dir: Path = DEFAULT_INVARIANCE_DIR,
    cache: FeatureCache | None = None,
    refresh: bool = False,
) -> tuple[dict[str, Any], Path]:
    """`invariance_score` for each attribute (default: every registered counterfactual) with one extractor,
    written as one JSON record per (row, attribute set, seed) under `results_dir`; returns the record and its path."""
    from .pairs import COUNTERFACTUALS, list_counterfactuals

    attributes = list(dict.fromkeys(attributes)) if attributes else list_counterfactuals()
    for attribute in attributes:  # every name and value checked before any work
        COUNTERFACTUALS.get(attribute)
    if n < 2:
        raise UsageError(f"--n must be at least 2 (an unrelated pair needs two scenes), got {n}")
    if resamples < 1:
        raise UsageError(f"--resamples must be at least 1, got {resamples}")
    config = config or ExtractorConfig()
    seed = config.seed if seed is None else seed
    world = world or WorldConfig()
    started = time.perf_counter()
    extractor = make_extractor(config)
    describe = extractor.describe()
    scores, run = {}, {"extracted": {}, "pairs_paths": {}}
    for attribute in attributes:
        stats = invariance_score(
            attribute,
            config,
            n=n,
            world=world,
            seed=seed,
            resamples=resamples,
            cache=cache,
            refresh=refresh,
            extractor=extractor,
        )
        embedding = stats.pop("embedding")
        run["extracted"][attribute] = embedding.pop("computed")
        run["pairs_paths"][attribute] = embedding.pop("path")
        scores[attribute] = {**stats, "pairs": embedding["pairs"], "cache_keys": embedding["cache_keys"]}
        dim = embedding["dim"]
    identity = {
        "kind": "invariance",
        "representation": describe["representation"],
        "attributes": attributes,
        "seed": seed,
    }
    record = {
        **identity,
        "key": stable_hash(
            {**identity, "n": n, "resamples": resamples, "embeddings": {k: v["cache_keys"] for k, v in scores.items()}}
        ),
        "model": describe["model"],
        "pretrained": describe["pretrained"],
        "identity": extractor.identity(),
        "n": n,
        "scores": scores,
        "method": {
            "distance": DISTANCE,
            "unrelated": UNRELATED,
            "bootstrap": {"resamples": resamples, "confidence": CONFIDENCE, "interval": "percentile", "unit": "pair"},
        },
        "world": {"fingerprint": world.fingerprint(), **asdict(world)},
        "features": {"dim": dim, "layer": config.layer, "precision": config.precision, "orbit": config.orbit},
        **provenance(started, **run),
    }
    path = invariance_path(results_dir, record, world)
    write_document(path, record, SCHEMA_VERSION)
    return record, path


def invariance_path(results_dir: Path, record: dict[str, Any], world: WorldConfig) -> Path:
    """<results_dir>/<row>__<attributes>[__world-<fingerprint>]__seed<seed>.json: a changed world gets its own file."""
    parts = [slug(record["representation"]), "+".join(sorted(record["attributes"]))]
    if world != WorldConfig():
        parts.append(f"world-{world.fingerprint()[:8]}")
    return Path(results_dir) / f"{'__'.join(parts)}__seed{record['seed']}.json"
