"""The sensitivity score: how much a frozen embedding moves with one attribute, measured on counterfactual pairs.

Each counterfactual pair (the same scene, one attribute changed) is matched with the unrelated image pairs (two
images of two different scenes) whose attribute values make the same change, as an unordered pair of values
(red-green and green-red are one change; cosine distance is symmetric):

score = numerator / denominator
numerator   = mean cosine distance within the pairs
denominator = mean over the pairs of the mean cosine distance within the unrelated image pairs that make the
              pair's value change

i.e. a weighted mean over value changes of (pair distance / unrelated distance) per change, each change weighted
by its number of pairs times its unrelated distance. 0: the embedding is blind to the attribute; 1: it is as
sensitive as an embedding of the attribute alone, for the same value changes (for such an embedding a pair and
an unrelated pair that make the same change are equally far apart, however unequally its values are spaced);
larger is more sensitive. The denominator moves with everything else the embedding encodes, so the numerator is
reported too, in the embedding's own units. The 95 % interval is a percentile bootstrap over pairs (each
resampled pair brings its scene's two images into the unrelated pairs), the score recomputed for each resample.
(Sensitivity is what is measured; an orbit, clipprobe.features.orbits, is what is imposed.)

The blind-pair rate is MMVP's measure on the same pairs: the share of counterfactual pairs whose two embeddings are
nearly identical (cosine similarity above a threshold, 0.95 by default as in "Eyes Wide Shut?", Tong et al. 2024),
with a Wilson 95 % interval over pairs; beside it the same share among the unrelated image pairs, without which a
rate cannot be read (an embedding that puts every image at cosine 0.99 has every pair "blind")."""

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
from ..results import Provenance, RunInfo, distinct_precision, write_document
from .world import WorldConfig

# Bump when the shape or the meaning of a sensitivity record changes, so that stored scores are not read as new.
# 4: the sensitivity score (renamed from "invariance"), typed sections.
# 5: each pair normalised by the unrelated image pairs that make the same value change (it was every unrelated
# pair that differs in the attribute), over pairs that cover every value change (clipprobe.dashcam.pairs,
# PAIRS_VERSION 2); numerator, denominator and the value changes reported; every unrelated image pair is used.
SCHEMA_VERSION = 5
RECORD_KIND = "sensitivity"
DEFAULT_RESAMPLES = 1000
CONFIDENCE = 0.95
DISTANCE = "cosine"
UNRELATED = "every two images (image_a or image_b) of two different pairs"
VALUE_CHANGE = "unordered pair of values: a pair is normalised by the unrelated image pairs that make its change"
PAIR_COLUMNS = ("image_a", "image_b")
# A counterfactual pair is "blind" when its two embeddings have cosine similarity above this (MMVP's threshold).
BLIND_THRESHOLD = 0.95


@dataclass
class ValueChange:
    """One change of the attribute's value (an unordered pair of values): its counterfactual pairs, the unrelated
    image pairs that make the same change, and their mean cosine distances (None: no unrelated pair makes it)."""

    values: list[str]
    n_pairs: int
    n_unrelated: int
    pair_distance: float
    unrelated_distance: float | None = None


@dataclass
class SensitivityStats:
    """One attribute's score (`numerator` / `denominator`) with its bootstrap interval, and the distances it is
    made of, in the embedding's own units (cosine distance). `numerator` is the mean distance within the pairs
    whose value change some unrelated pair makes too (`n_matched_pairs`; normally all of them, so it equals
    `mean_pair_distance`); `denominator` the mean over those pairs of the distance within the unrelated image
    pairs that make the same change. `ratio` keeps the unscaled measure: `mean_pair_distance` over
    `mean_unrelated_distance`, the mean over every unrelated image pair. `error` says why a score or interval is
    undefined."""

    n_pairs: int
    n_unrelated: int
    n_matched_pairs: int
    mean_pair_distance: float
    mean_unrelated_distance: float
    changes: list[ValueChange]
    numerator: float | None = None
    denominator: float | None = None
    ratio: float | None = None
    score: float | None = None
    interval: list[float] | None = None
    numerator_interval: list[float] | None = None
    error: str | None = None
    # The blind-pair rate: pairs whose embeddings have cosine similarity above `threshold`, their share with a
    # Wilson 95 % interval, and the share among the unrelated image pairs (the rate an embedding gives any two
    # scenes).
    threshold: float = BLIND_THRESHOLD
    blind_pairs: int = 0
    blind_pair_rate: float = 0.0
    blind_pair_interval: list[float] | None = None
    unrelated_blind_rate: float = 0.0


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
    value_change: str
    bootstrap: Bootstrap
    blind_threshold: float = BLIND_THRESHOLD


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


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - cos(a[i], b[i]) for each row, in float64, as half the squared distance between the unit vectors (so two
    equal rows are at distance exactly 0). A zero vector has no direction: it is at distance 1 from any other
    vector and 0 from another zero vector (a constant embedding, even of zeros, does not move)."""
    unit_a, unit_b = _unit_rows(a), _unit_rows(b)
    distances = 0.5 * ((unit_a - unit_b) ** 2).sum(axis=1)
    zero_a, zero_b = ~(np.abs(unit_a).sum(axis=1) > 0), ~(np.abs(unit_b).sum(axis=1) > 0)
    return np.clip(np.where(zero_a ^ zero_b, 1.0, distances), 0.0, 2.0)


def _cross_distances(x: np.ndarray) -> np.ndarray:
    """1 - cos(x[p], x[q]) for every two rows, zero vectors as in `cosine_distances`."""
    unit = _unit_rows(x)
    distances = 1.0 - unit @ unit.T
    zero = ~(np.abs(unit).sum(axis=1) > 0)
    distances[np.logical_xor.outer(zero, zero)] = 1.0
    distances[np.logical_and.outer(zero, zero)] = 0.0
    return np.clip(distances, 0.0, 2.0)


@dataclass
class _Changes:
    """The pairs and the unrelated image pairs grouped by value change, per pair of scenes: `reference[c][i, j]`
    sums the distances of the unrelated image pairs (one image of scene i, one of scene j != i) that make change
    c, `counts[c][i, j]` counts them. With per-scene weights w (how often a resample draws each pair), change c's
    unrelated distance is w.reference[c].w / w.counts[c].w."""

    names: list[list[str]]
    pair_change: np.ndarray  # each pair's change, an index into names
    reference: list[np.ndarray]
    counts: list[np.ndarray]


def _group_changes(unrelated: np.ndarray, value_a: np.ndarray, value_b: np.ndarray) -> _Changes:
    n = len(value_a)
    values = sorted(set(value_a.tolist()) | set(value_b.tolist()))
    code = {value: i for i, value in enumerate(values)}
    k = len(values)
    image_code = np.array([code[v] for v in (*value_a.tolist(), *value_b.tolist())], dtype=np.int64)
    low, high = np.minimum.outer(image_code, image_code), np.maximum.outer(image_code, image_code)
    image_change = (low * k + high).reshape(2, n, 2, n)  # (image_a or image_b of scene i, ... of scene j)
    pair_key = np.minimum(image_code[:n], image_code[n:]) * k + np.maximum(image_code[:n], image_code[n:])
    keys, pair_change = np.unique(pair_key, return_inverse=True)
    blocks = unrelated.reshape(2, n, 2, n)
    other_scene = ~np.eye(n, dtype=bool)
    reference, counts = [], []
    for key in keys:
        same = (image_change == key) & other_scene[None, :, None, :]
        reference.append(np.where(same, blocks, 0.0).sum(axis=(0, 2)))
        counts.append(same.sum(axis=(0, 2)).astype(np.float64))
    names = [[values[int(key) // k], values[int(key) % k]] for key in keys]
    return _Changes(names=names, pair_change=pair_change.reshape(-1), reference=reference, counts=counts)


def _matched(pair: np.ndarray, changes: _Changes, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numerator, denominator and the weight of the matched pairs for each row of `weights` (per-pair weights,
    one row per resample): a pair counts where some unrelated image pair with a weight makes its change."""
    numerator = np.zeros(len(weights))
    denominator = np.zeros(len(weights))
    matched = np.zeros(len(weights))
    for c, (reference, counts) in enumerate(zip(changes.reference, changes.counts)):
        mine = changes.pair_change == c
        weight = weights[:, mine].sum(axis=1)
        n_unrelated = ((weights @ counts) * weights).sum(axis=1)
        ok = (weight > 0) & (n_unrelated > 0)
        distance = np.divide(
            ((weights @ reference) * weights).sum(axis=1), n_unrelated, where=ok, out=np.zeros_like(weight)
        )
        numerator += np.where(ok, weights[:, mine] @ pair[mine], 0.0)
        denominator += np.where(ok, weight * distance, 0.0)
        matched += np.where(ok, weight, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return numerator / matched, denominator / matched, matched


def _score(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the pairs do not move (even over a denominator of 0); nan where undefined."""
    with np.errstate(divide="ignore", invalid="ignore"):
        score = numerator / denominator
    score = np.where(numerator == 0, 0.0, score)
    return np.where(np.isfinite(score), score, np.nan)


def _percentile_interval(draws: np.ndarray, confidence: float) -> list[float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return [float(low), float(high)]


def sensitivity_statistics(
    a: np.ndarray,
    b: np.ndarray,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = CONFIDENCE,
    values: tuple[Sequence[str], Sequence[str]] | None = None,
    threshold: float = BLIND_THRESHOLD,
) -> SensitivityStats:
    """The score, its bootstrap interval and the distances it is made of, from the embeddings of image_a and
    image_b of each pair and `values`, the attribute's value in image_a and in image_b of each pair.

    Each pair is normalised by the unrelated image pairs (one image of another pair's scene) whose values make the
    same change, as an unordered pair of values; the score is the pairs' mean distance over the mean of their
    matched unrelated distances, i.e. numerator and denominator matched change by change. 0: blind to the
    attribute; 1: as sensitive as an embedding that encodes the attribute alone, for the same value changes. A
    pair whose two values are equal (none from `make_pairs`) is matched with unrelated images of that value;
    without `values` every pair and every unrelated pair make one change, and the score equals `ratio`. Pairs
    whose change no unrelated pair makes are left out of the score (`n_matched_pairs` counts the rest).

    0 / 0 is 0: an embedding that does not move within the pairs scores 0 even where unrelated images do not move
    either (a constant embedding); pairs that move over a denominator of 0 leave the score undefined (`error`).
    The score does not change when the embedding is scaled. A generator seeded with `seed` draws the resamples
    (pairs drawn with replacement), so the same seed gives the same numbers. `threshold`: the cosine similarity
    above which a pair counts as blind (the blind-pair rate)."""
    check_threshold(threshold)
    if len(a) != len(b):
        raise ValueError(f"image_a and image_b have {len(a)} and {len(b)} embeddings")
    if resamples < 1:
        raise UsageError(f"--resamples must be at least 1, got {resamples}")
    n = len(a)
    if n < 2:
        raise UsageError(f"--n must be at least 2 (an unrelated pair needs two scenes), got {n}")
    value_a, value_b = (
        (np.asarray(v, dtype=object) for v in values) if values is not None else (np.full(n, "", dtype=object),) * 2
    )
    if len(value_a) != n or len(value_b) != n:
        raise ValueError(f"{n} pairs but {len(value_a)} and {len(value_b)} values")
    pair = cosine_distances(a, b)
    unrelated = _cross_distances(np.concatenate([np.asarray(a), np.asarray(b)]))
    changes = _group_changes(unrelated, value_a, value_b)
    other_scene = np.tile(~np.eye(n, dtype=bool), (2, 2))
    stats = SensitivityStats(
        n_pairs=int(n),
        n_unrelated=int(other_scene.sum()),
        n_matched_pairs=0,
        mean_pair_distance=float(pair.mean()),
        mean_unrelated_distance=float(unrelated[other_scene].mean()),
        changes=[
            ValueChange(
                values=[str(v) for v in names],
                n_pairs=int((changes.pair_change == c).sum()),
                n_unrelated=int(counts.sum()),
                pair_distance=float(pair[changes.pair_change == c].mean()),
                unrelated_distance=float(reference.sum() / counts.sum()) if counts.sum() > 0 else None,
            )
            for c, (names, reference, counts) in enumerate(zip(changes.names, changes.reference, changes.counts))
        ],
    )
    if stats.mean_unrelated_distance > 0:
        stats.ratio = stats.mean_pair_distance / stats.mean_unrelated_distance
    blind = int((1.0 - pair > threshold).sum())
    stats.threshold, stats.blind_pairs, stats.blind_pair_rate = threshold, blind, blind / n
    stats.blind_pair_interval = wilson_interval(blind, n, confidence)
    stats.unrelated_blind_rate = float((1.0 - unrelated[other_scene] > threshold).mean())
    numerator, denominator, matched = _matched(pair, changes, np.ones((1, n)))
    stats.n_matched_pairs = int(matched[0])
    if stats.n_matched_pairs == 0:
        stats.error = "no unrelated pair makes any of the pairs' value changes: the score is undefined"
        return stats
    stats.numerator, stats.denominator = float(numerator[0]), float(denominator[0])
    score = _score(numerator, denominator)[0]
    if np.isnan(score):
        stats.error = "the unrelated pairs that make the pairs' value changes are at distance 0: the score is undefined"
        return stats
    stats.score = float(score)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    weights = np.zeros((resamples, n))
    np.add.at(weights, (np.arange(resamples)[:, None], draws), 1.0)
    numerators, denominators, _ = _matched(pair, changes, weights)
    scores = _score(numerators, denominators)
    if np.isfinite(numerators).all():
        stats.numerator_interval = _percentile_interval(numerators, confidence)
    if np.isfinite(scores).all():
        stats.interval = _percentile_interval(scores, confidence)
    else:
        stats.error = (
            "in some bootstrap resamples no pair's value change has an unrelated pair at a distance: no interval"
        )
    return stats


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> list[float]:
    """The Wilson score interval of a proportion (scipy.stats.binomtest), right for shares near 0 or 1."""
    from scipy.stats import binomtest

    interval = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return [float(interval.low), float(interval.high)]


def check_threshold(threshold: float) -> None:
    if not -1.0 < threshold < 1.0:
        raise UsageError(f"--blind-threshold must be a cosine similarity between -1 and 1 (exclusive), got {threshold}")


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
    threshold: float = BLIND_THRESHOLD,
) -> tuple[SensitivityStats, PairEmbeddings]:
    """How much `config`'s embedding moves with `attribute` (a name in clipprobe.dashcam.pairs.COUNTERFACTUALS):
    the statistics and the pairs' embeddings. `seed` (default: config.seed) fixes the unrelated pairs and the
    resamples."""
    config = config or ExtractorConfig()
    seed = config.seed if seed is None else seed
    if resamples < 1:
        raise UsageError(f"--resamples must be at least 1, got {resamples}")
    embedded = embed_pairs(attribute, config, n=n, world=world, cache=cache, refresh=refresh, extractor=extractor)
    stats = sensitivity_statistics(
        embedded.a, embedded.b, seed=seed, resamples=resamples, values=embedded.values, threshold=threshold
    )
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
    threshold: float = BLIND_THRESHOLD,
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
    check_threshold(threshold)
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
            threshold=threshold,
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
        {
            **identity,
            "n": n,
            "resamples": resamples,
            "blind_threshold": threshold,
            "embeddings": {k: v.cache_keys for k, v in scores.items()},
        }
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
        method=Method(
            DISTANCE, UNRELATED, VALUE_CHANGE, Bootstrap(resamples=resamples, confidence=CONFIDENCE), threshold
        ),
        world=world.fingerprint(),
        features=SensitivityFeatures(dim=dim, layer=config.layer, precision=config.precision, orbit=config.orbit),
        provenance=Provenance.now(),
        run=RunInfo.since(started, extracted=extracted, pairs_paths=pairs_paths),
    )
    path = sensitivity_path(results_dir, record, world)
    write_document(path, record, SCHEMA_VERSION)
    return record, path


def sensitivity_path(results_dir: Path, record: SensitivityRecord, world: WorldConfig) -> Path:
    """<results_dir>/<representation>__<attributes>[__<precision>][__world-<fingerprint>]__seed<seed>.json: another
    precision than fp32 (not in the representation's name) and a changed world get their own file."""
    parts = [slug(record.representation), "+".join(sorted(record.attributes))]
    if (precision := distinct_precision(record.features.precision)) is not None:
        parts.append(slug(precision))
    if world != WorldConfig():
        parts.append(f"world-{world.fingerprint()[:8]}")
    return Path(results_dir) / f"{'__'.join(parts)}__seed{record.seed}.json"
