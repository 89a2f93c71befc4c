"""The k-nearest-neighbour probe, as DINO and DINOv2 report it beside the linear one: features L2-normalised,
cosine similarity to every training row, the k most similar voting for their class with weight exp(sim / T).

k is chosen on validation from KNN_GRID (largest first: more neighbours smooth more, so a tie goes to the larger
k, the stronger regularisation, as every probe's rule has it: clipprobe.probes.select); T is fixed at DINO's 0.07.
The votes are class-balanced as every trained row is (select.balanced_sample_weights: a training row of a rare
class votes with more weight), so that a majority class does not win by its count alone. Nothing is standardised:
cosine similarity on the features as they come, as in DINO.

Similarities are computed in chunks of rows against the whole train split, so a 100,000-row train split never
needs an n x n matrix: memory is CHUNK_FLOATS floats at a time whatever the split sizes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .registry import PROBES, Probe
from .select import ProbeFit, balanced_sample_weights, pick, score

# k, largest first: DINO's 20 among them.
KNN_GRID = (100.0, 50.0, 20.0, 10.0)
# DINO's temperature for the votes' weights exp(similarity / T).
TEMPERATURE = 0.07
# The most similarities held at once (a chunk of query rows x every training row): 2^25 float32, 128 MiB.
CHUNK_FLOATS = 1 << 25


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); a zero row stays zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def neighbours(train: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k most cosine-similar training rows of each query row, most similar first: (similarities, indices),
    each (n_query, k). Rows must be unit length (`normalise`). Computed CHUNK_FLOATS similarities at a time; ties
    in similarity go to the lower training index."""
    k = min(k, len(train))
    rows = max(1, CHUNK_FLOATS // max(1, len(train)))
    sims = np.empty((len(query), k), dtype=np.float32)
    index = np.empty((len(query), k), dtype=np.int64)
    for start in range(0, len(query), rows):
        block = query[start : start + rows] @ train.T
        # A stable sort on the negated similarities: the order, and ties, do not depend on the chunking.
        top = np.argsort(-block, axis=1, kind="stable")[:, :k]
        index[start : start + rows] = top
        sims[start : start + rows] = np.take_along_axis(block, top, axis=1)
    return sims, index


@dataclass
class KNNModel:
    """A fitted k-NN probe: the normalised training rows and their labels, k, the temperature (None: every
    neighbour votes 1, as scikit-learn's `weights="uniform"`) and the per-row class weights (None: unweighted)."""

    train: np.ndarray
    labels: np.ndarray
    n_classes: int
    k: int
    temperature: float | None = TEMPERATURE
    weights: np.ndarray | None = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.vote(*neighbours(self.train, normalise(x), self.k))

    def vote(self, sims: np.ndarray, index: np.ndarray) -> np.ndarray:
        """The class with the most weight among each row's first k neighbours (ties to the lower class)."""
        sims, index = sims[:, : self.k], index[:, : self.k]
        weight = np.exp((sims - 1.0) / self.temperature) if self.temperature is not None else np.ones_like(sims)
        if self.weights is not None:
            weight = weight * self.weights[index]
        votes = np.zeros((len(index), self.n_classes), dtype=np.float64)
        np.add.at(votes, (np.arange(len(index))[:, None], self.labels[index]), weight)
        return votes.argmax(axis=1)


def fit_knn_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    k_grid: tuple[float, ...] = KNN_GRID,
    seed: int = 0,
    temperature: float | None = TEMPERATURE,
    balanced: bool = True,
) -> ProbeFit:
    """k chosen on validation (largest first, ties to the larger); the model is the train split itself. Every k
    reads the same neighbours: the validation rows' largest-k neighbours are found once. `seed` is unused (k-NN
    draws nothing); it is the probes' common signature. exp(sim / T) is computed as exp((sim - 1) / T), the same
    votes' ratios without overflow."""
    del seed
    train = normalise(train_x)
    labels = np.asarray(train_y, dtype=np.int64)
    n_classes = int(max(labels.max(initial=0), np.asarray(val_y).max(initial=0))) + 1
    # A k beyond the train split's size reads every training row (its point on the curve says so).
    ks = sorted({int(k) for k in k_grid if k >= 1}, reverse=True)
    weights = balanced_sample_weights(labels) if balanced else None
    sims, index = neighbours(train, normalise(val_x), ks[0])

    def fits():
        for k in ks:
            used = min(k, len(train))
            yield float(k), KNNModel(train, labels, n_classes, used, temperature, weights), {"neighbours": used}

    curve, models = score("k", fits(), lambda model: model.vote(sims, index), val_y)
    return pick("k", [float(k) for k in ks], curve, models, None)  # no scaler: k-NN reads the features as they come


PROBES.register(
    "knn",
    Probe(
        name="knn",
        method="knn-probe",
        description=f"k nearest neighbours by cosine similarity, votes weighted exp(sim / {TEMPERATURE:g}) and "
        "class-balanced (DINO's k-NN), k from 10 to 100 chosen on validation",
        parameter="k",
        grid=KNN_GRID,
        fit=fit_knn_probe,
    ),
)
