"""The sensitivity score: how much a frozen embedding moves with one attribute, measured on counterfactual pairs.

score = mean cosine distance between the two images of a pair (the same scene, one attribute changed)
      / mean cosine distance between unrelated images that also differ in the attribute.

0: the embedding is blind to the attribute; 1: it moves as far as an embedding of the attribute alone would.
The 95 % interval is a percentile bootstrap over pairs, the ratio recomputed for each resample. (Sensitivity is
what is measured; an orbit, clipprobe.features.orbits, is what is imposed.)"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.defaults import SENSITIVITY_DIR
from ..core.errors import UsageError
from ..core.paths import slug
from ..core.storage import file_sha256, stable_hash
from ..data.task import Task
from ..features.cache import FeatureCache, FeatureKey
from ..features.config import ExtractorConfig
from ..features.extract import entry_meta
from ..features.extractors import Extractor, make_extractor
from ..jobs.precision import resolve_precision
from ..results import Provenance, RunInfo, write_document
from .world import WorldConfig

# Bump when the shape of a sensitivity record changes.
# 4: the sensitivity score (renamed from "invariance"), typed sections.
SCHEMA_VERSION = 4
RECORD_KIND = "sensitivity"
DEFAULT_RESAMPLES = 1000
CONFIDENCE = 0.95
DISTANCE = "cosine"
UNRELATED = "image_a[i] vs image_b[j(i)], j a seeded random cyclic derangement of the pairs"
PAIR_COLUMNS = ("image_a", "image_b")


@dataclass
class SensitivityStats:
    """One attribute's score: within-pair over unrelated-differing distance, with its bootstrap interval, and the
    distances it is made of (in the embedding's own units); `ratio` keeps the unscaled measure (within pairs over
    all unrelated pairs). `error` says why a score or interval is undefined."""

    n_pairs: int
    n_unrelated_differing: int
    mean_pair_distance: float
    mean_unrelated_distance: float
    mean_unrelated_differing_distance: float | None = None
    ratio: float | None = None
    score: float | None = None
    interval: list[float] | None = None
    error: str | None = None


@dataclass
class AttributeScore:
    """A stored score: the statistics, the pairs' fingerprint and the cache keys of their embeddings."""

    stats: SensitivityStats
    pairs: str
    cache_keys: dict[str, str]


@dataclass
class Bootstrap:
    resamples: int
    confidence: float
    interval: str = "percentile"
    unit: str = "pair"


@dataclass
class Method:
    distance: str
    unrelated: str
    bootstrap: Bootstrap


@dataclass
class SensitivityFeatures:
    dim: int
    layer: str
    precision: str
    orbit: str | None = None


@dataclass
class SensitivityRecord:
    """One representation's sensitivity scores for a set of attributes, one seed (one JSON file)."""

    kind: str
    representation: str
    attributes: list[str]
    seed: int
    key: str
    model: str
    pretrained: str
    n: int
    scores: dict[str, AttributeScore]
    method: Method
    world: str  # the world's fingerprint
    features: SensitivityFeatures
    provenance: Provenance
    run: RunInfo


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


def sensitivity_statistics(
    a: np.ndarray,
    b: np.ndarray,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = CONFIDENCE,
    values: tuple[Sequence[str], Sequence[str]] | None = None,
) -> SensitivityStats:
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
    stats = SensitivityStats(
        n_pairs=int(n),
        n_unrelated_differing=int(differs.sum()),
        mean_pair_distance=float(pair.mean()),
        mean_unrelated_distance=float(unrelated.mean()),
        mean_unrelated_differing_distance=float(unrelated[differs].mean()) if differs.any() else None,
    )
    if stats.mean_unrelated_distance > 0:
        stats.ratio = stats.mean_pair_distance / stats.mean_unrelated_distance
    reference = stats.mean_unrelated_differing_distance
    if stats.mean_pair_distance == 0:
        stats.score, stats.interval = 0.0, [0.0, 0.0]
        return stats
    if not reference:
        stats.error = "no unrelated pair differs in the attribute, or they are at distance 0: the score is undefined"
        return stats
    stats.score = stats.mean_pair_distance / reference
    draws = rng.integers(0, n, size=(resamples, n))
    weights = differs[draws]
    with np.errstate(divide="ignore", invalid="ignore"):
        reference_draws = (unrelated[draws] * weights).sum(axis=1) / weights.sum(axis=1)
        ratios = pair[draws].mean(axis=1) / reference_draws
    if np.isfinite(ratios).all():
        tail = (1 - confidence) / 2 * 100
        low, high = np.percentile(ratios, [tail, 100 - tail])
        stats.interval = [float(low), float(high)]
    else:
        stats.error = "some bootstrap resamples have no differing unrelated pair at a distance: no interval"
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


@dataclass
class PairEmbeddings:
    """The embeddings of image_a and image_b of an attribute's pairs, with where they are cached."""

    a: np.ndarray
    b: np.ndarray
    pairs: str  # the pairs' content fingerprint
    cache_keys: dict[str, str]
    computed: list[str]
    path: str
    # The attribute's value in image_a and image_b of each pair (the score's reference pairs differ in it).
    values: tuple[list[str], list[str]]


def embed_pairs(
    attribute: str,
    config: ExtractorConfig | None = None,
    n: int = 200,
    world: WorldConfig | None = None,
    cache: FeatureCache | None = None,
    refresh: bool = False,
    extractor: Extractor | None = None,
) -> PairEmbeddings:
    """Embeddings of image_a and image_b of `n` pairs for `attribute` (rendered and cached by make_pairs).

    Images go through `make_extractor(config).encode` as in extraction, keyed with the same FeatureKey (the
    pairs' content fingerprint as the data, the column as the split) and stored with the same metadata. `config`
    must have a concrete precision (see clipprobe.jobs.precision.resolve_precision)."""
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
    keys = {column: FeatureKey(identity, fingerprint, column).digest for column in PAIR_COLUMNS}
    missing = [column for column in PAIR_COLUMNS if refresh or not cache.has(keys[column])]
    if missing:
        meta = entry_meta(extractor, config, fingerprint)
        for column in missing:
            array = extractor.encode(pairs, f"Embedding {attribute} pairs ({column})", column)
            cache.save(keys[column], array, {**meta, "split": column})
    a, b = (np.asarray(cache.load(keys[column])) for column in PAIR_COLUMNS)
    return PairEmbeddings(
        a=a,
        b=b,
        pairs=fingerprint,
        cache_keys=keys,
        computed=missing,
        path=str(path),
        values=(list(pairs["value_a"]), list(pairs["value_b"])),
    )


def sensitivity_score(
    attribute: str,
    config: ExtractorConfig | None = None,
    n: int = 200,
    world: WorldConfig | None = None,
    seed: int | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    cache: FeatureCache | None = None,
    refresh: bool = False,
    extractor: Extractor | None = None,
) -> tuple[SensitivityStats, PairEmbeddings]:
    """How much `config`'s embedding moves with `attribute` (a name in clipprobe.dashcam.pairs.COUNTERFACTUALS):
    the statistics and the pairs' embeddings. `seed` (default: config.seed) fixes the unrelated pairs and the
    resamples."""
    config = config or ExtractorConfig()
    seed = config.seed if seed is None else seed
    if resamples < 1:
        raise UsageError(f"--resamples must be at least 1, got {resamples}")
    embedded = embed_pairs(attribute, config, n=n, world=world, cache=cache, refresh=refresh, extractor=extractor)
    stats = sensitivity_statistics(embedded.a, embedded.b, seed=seed, resamples=resamples, values=embedded.values)
    return stats, embedded


def measure_sensitivity(
    attributes: Sequence[str] | None = None,
    config: ExtractorConfig | None = None,
    n: int = 200,
    world: WorldConfig | None = None,
    seed: int | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    results_dir: Path = SENSITIVITY_DIR,
    cache: FeatureCache | None = None,
    refresh: bool = False,
    precision_task: Task | None = None,
) -> tuple[SensitivityRecord, Path]:
    """`sensitivity_score` for each attribute (default: every registered counterfactual) with one extractor,
    written as one JSON record per (representation, attribute set, seed) under `results_dir`; returns the record
    and its path. A `config` with precision `auto` is resolved on `precision_task` (default: the world's
    traffic-light task), as a run plan resolves it."""
    from .pairs import COUNTERFACTUALS, list_counterfactuals

    attributes = list(dict.fromkeys(attributes)) if attributes else list_counterfactuals()
    for attribute in attributes:  # every name and value checked before any work
        COUNTERFACTUALS.get(attribute)
    if n < 2:
        raise UsageError(f"--n must be at least 2 (an unrelated pair needs two scenes), got {n}")
    if resamples < 1:
        raise UsageError(f"--resamples must be at least 1, got {resamples}")
    world = world or WorldConfig()
    config = config or ExtractorConfig()
    if precision_task is None:
        from ..data.task import get_task
        from .tasks import with_world

        precision_task = with_world(get_task("traffic-light"), world)
    config = resolve_precision(config, precision_task)
    seed = config.seed if seed is None else seed
    started = time.perf_counter()
    extractor = make_extractor(config)
    described = extractor.describe()
    scores: dict[str, AttributeScore] = {}
    extracted: dict[str, list[str]] = {}
    pairs_paths: dict[str, str] = {}
    dim = 0
    for attribute in attributes:
        stats, embedded = sensitivity_score(
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
        extracted[attribute] = embedded.computed
        pairs_paths[attribute] = embedded.path
        scores[attribute] = AttributeScore(stats=stats, pairs=embedded.pairs, cache_keys=embedded.cache_keys)
        dim = int(embedded.a.shape[1])
    identity = {
        "kind": RECORD_KIND,
        "representation": described["representation"],
        "attributes": attributes,
        "seed": seed,
    }
    key = stable_hash(
        {**identity, "n": n, "resamples": resamples, "embeddings": {k: v.cache_keys for k, v in scores.items()}}
    )
    record = SensitivityRecord(
        kind=RECORD_KIND,
        representation=described["representation"],
        attributes=attributes,
        seed=seed,
        key=key,
        model=described["model"],
        pretrained=described["pretrained"],
        n=n,
        scores=scores,
        method=Method(DISTANCE, UNRELATED, Bootstrap(resamples=resamples, confidence=CONFIDENCE)),
        world=world.fingerprint(),
        features=SensitivityFeatures(dim=dim, layer=config.layer, precision=config.precision, orbit=config.orbit),
        provenance=Provenance.now(),
        run=RunInfo.since(started, extracted=extracted, pairs_paths=pairs_paths),
    )
    path = sensitivity_path(results_dir, record, world)
    write_document(path, record, SCHEMA_VERSION)
    return record, path


def sensitivity_path(results_dir: Path, record: SensitivityRecord, world: WorldConfig) -> Path:
    """<results_dir>/<representation>__<attributes>[__world-<fingerprint>]__seed<seed>.json: a changed world gets
    its own file."""
    parts = [slug(record.representation), "+".join(sorted(record.attributes))]
    if world != WorldConfig():
        parts.append(f"world-{world.fingerprint()[:8]}")
    return Path(results_dir) / f"{'__'.join(parts)}__seed{record.seed}.json"
