"""The attentive probe, as I-JEPA, V-JEPA and AIM report it: one learned query reads every token of the frozen
tower through multi-head cross-attention, then a LayerNorm and a linear layer classify what it read. A probe on a
pooled vector (the embedding, the mean of the tokens) sees only what pooling kept; this one can still find a
property that lives in a few positions, so it tells "gone from the tower" from "gone from the pooled vector".

It reads the `all-tokens` layer (Probe.layer): (n, positions, width) arrays, standardised per channel with the
train split's statistics. Trained with AdamW (class-balanced cross-entropy, the rule of every trained row:
select.balanced_sample_weights), each weight decay of WEIGHT_DECAYS (strongest first) trained for at most
MAX_EPOCHS epochs and stopped early on the validation split's balanced accuracy (PATIENCE epochs without a
better score); the weight decay and its best epoch are the one choice, made on validation only. Seeded: the same
inputs, seed and number of threads give the same predictions. On the CPU by default; on CUDA when torch has it."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from ..core.defaults import ALL_TOKENS
from .registry import PROBES, Probe
from .select import ProbeFit, balanced_accuracy_score, balanced_sample_weights, pick, score

WEIGHT_DECAYS = (1.0, 0.1, 0.01)
MAX_EPOCHS = 100
PATIENCE = 15
BATCH = 64
LEARNING_RATE = 3e-3


def heads_for(width: int) -> int:
    """The most attention heads, of 8, 4, 2 and 1, that divide the token width."""
    return next(h for h in (8, 4, 2, 1) if width % h == 0)


def _module(width: int, n_classes: int):
    import torch

    class AttentivePooler(torch.nn.Module):
        """One learned query, cross-attention over the tokens, LayerNorm, a linear classifier."""

        def __init__(self) -> None:
            super().__init__()
            self.query = torch.nn.Parameter(torch.zeros(1, 1, width))
            torch.nn.init.trunc_normal_(self.query, std=0.02)
            self.attention = torch.nn.MultiheadAttention(width, heads_for(width), batch_first=True)
            self.norm = torch.nn.LayerNorm(width)
            self.head = torch.nn.Linear(width, n_classes)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            query = self.query.expand(len(tokens), -1, -1)
            read, _ = self.attention(query, tokens, tokens, need_weights=False)
            return self.head(self.norm(read[:, 0]))

    return AttentivePooler()


@dataclass
class AttentiveModel:
    """A trained attentive probe: the module and the train split's per-channel mean and scale."""

    module: object
    mean: np.ndarray
    scale: np.ndarray
    device: str

    def predict(self, x: np.ndarray) -> np.ndarray:
        import torch

        z = torch.as_tensor((np.asarray(x, dtype=np.float32) - self.mean) / self.scale)
        out = []
        with torch.no_grad():
            self.module.eval()  # type: ignore[attr-defined]
            for start in range(0, len(z), 1024):
                logits = self.module(z[start : start + 1024].to(self.device))  # type: ignore[operator]
                out.append(logits.argmax(dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _train(train_z, train_y, val_z, val_y, n_classes, weight_decay, seed, device, max_epochs, patience):
    """One weight decay: AdamW, stopped early on validation; returns (best model, best epoch, its score)."""
    import torch

    width = train_z.shape[2]
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = _module(width, n_classes).to(device)
    weights = balanced_sample_weights(train_y)
    class_weight = None
    if weights is not None:
        per_class = np.zeros(n_classes, dtype=np.float32)
        per_class[train_y] = weights
        class_weight = torch.as_tensor(per_class, device=device)
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weight)
    optimiser = torch.optim.AdamW(module.parameters(), lr=LEARNING_RATE, weight_decay=weight_decay)
    x = torch.as_tensor(train_z)
    y = torch.as_tensor(train_y, dtype=torch.long)
    best, best_epoch, best_state, waited = -1.0, 0, None, 0
    for epoch in range(1, max_epochs + 1):
        module.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), BATCH):
            batch = order[start : start + BATCH]
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(module(x[batch].to(device)), y[batch].to(device))
            loss.backward()
            optimiser.step()
        model = AttentiveModel(module, np.zeros(1, np.float32), np.ones(1, np.float32), device)
        result = balanced_accuracy_score(val_y, model.predict(val_z))
        if result > best:
            best, best_epoch, best_state, waited = result, epoch, copy.deepcopy(module.state_dict()), 0
        else:
            waited += 1
            if waited >= patience:
                break
    assert best_state is not None
    module.load_state_dict(best_state)
    return module, best_epoch, best


def fit_attentive_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    weight_decays: tuple[float, ...] = WEIGHT_DECAYS,
    seed: int = 0,
    max_epochs: int = MAX_EPOCHS,
    patience: int = PATIENCE,
) -> ProbeFit:
    """The weight decay (strongest first, ties to the stronger) and its early-stopped epoch chosen on validation;
    `train_x` and `val_x` are (n, positions, width) tokens."""
    import torch

    if np.asarray(train_x).ndim != 3:
        raise ValueError("the attentive probe reads (n, positions, width) tokens: the all-tokens layer")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train_x = np.asarray(train_x, dtype=np.float32)
    mean = train_x.mean(axis=(0, 1))
    scale = train_x.std(axis=(0, 1))
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    train_z = (train_x - mean) / scale
    val_z = (np.asarray(val_x, dtype=np.float32) - mean) / scale
    labels = np.asarray(train_y, dtype=np.int64)
    n_classes = int(max(labels.max(initial=0), np.asarray(val_y).max(initial=0))) + 1
    grid = sorted((float(d) for d in weight_decays), reverse=True)

    def fits():
        for decay in grid:
            module, epoch, _ = _train(
                train_z, labels, val_z, val_y, n_classes, decay, seed, device, max_epochs, patience
            )
            yield decay, AttentiveModel(module, mean, scale, device), {"epoch": epoch}

    curve, models = score("weight_decay", fits(), lambda model: model.predict(val_x), val_y)
    fit = pick("weight_decay", grid, curve, models, None)  # the model standardises its own input
    # Where it trained: a GPU's sums (and the CPU's thread count) can move the last digits, so the record says.
    fit.note = f"trained on {device} ({torch.get_num_threads()} CPU threads)"
    return fit


PROBES.register(
    "attentive",
    Probe(
        name="attentive",
        method="attentive-probe",
        description="One learned query reads every token (multi-head cross-attention, LayerNorm, linear; "
        "I-JEPA's attentive probe), AdamW, weight decay and epoch chosen on validation",
        parameter="weight_decay",
        grid=WEIGHT_DECAYS,
        fit=fit_attentive_probe,
        layer=ALL_TOKENS,
    ),
)
