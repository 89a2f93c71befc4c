"""Pretrain a small CLIP-style model on the dashcam world under one caption policy, with open_clip's loss."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core import paths
from ..core.errors import RunError, UsageError
from ..core.locks import exclusive
from ..core.paths import slug
from ..core.progress import err_console, progress_bar
from ..core.storage import atomic_dir, stable_hash, write_json
from ..features.weights import BUILTIN_FAMILIES, OPEN_CLIP_CONFIG, BuiltinWeights, register_builtin_weights
from .captions import caption_for, get_caption_policy
from .world import WorldConfig, load_world, scene_at

if TYPE_CHECKING:
    import torch

WEIGHTS_FILE = "open_clip_model.safetensors"
# Bump when the training code changes what it trains, so that stored built-in weights are trained again.
PRETRAIN_VERSION = 2


@dataclass(frozen=True)
class PretrainConfig:
    """Same world, steps and seed for every policy: only the captions differ."""

    model: str = "mini-clip"
    captions: str = "salient"
    world: WorldConfig = field(default_factory=WorldConfig)
    steps: int = 250
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 25
    seed: int = 0
    # Scale the image tower without writing a config: None keeps the model config's own width / input size.
    width: int | None = None
    image_size: int | None = None

    def fingerprint(self) -> str:
        """Everything that decides the trained weights: the recipe, the world (its fingerprint carries the
        generator's version), the captions themselves (so an edited template or phrase retrains) and the
        training code's version."""
        fields = {k: v for k, v in asdict(self).items() if not (k in SCALE_FIELDS and v is None)}
        return stable_hash(
            {
                **fields,
                "world": self.world.fingerprint(),
                "captions_sha": captions_fingerprint(self),
                "code": PRETRAIN_VERSION,
            }
        )


SCALE_FIELDS = ("width", "image_size")


def architecture(config: PretrainConfig) -> str:
    """The open_clip config to build: `config.model`'s own, or a copy with the image tower's width or input size
    changed, registered with open_clip as MODEL-wWIDTH-SIZEpx (its folder then loads with `--model local-dir:`)."""
    import copy

    import open_clip

    if config.width is None and config.image_size is None:
        return config.model
    for name in SCALE_FIELDS:
        value = getattr(config, name)
        if value is not None and value < 1:
            raise UsageError(
                f"--{name.replace('_', '-')} must be a positive number of {'channels' if name == 'width' else 'pixels'}, got {value}"
            )
    cfg = copy.deepcopy(open_clip.get_model_config(config.model))
    vision = cfg["vision_cfg"]
    vision.update({name: getattr(config, name) for name in SCALE_FIELDS if getattr(config, name) is not None})
    name = f"{config.model}-w{vision['width']}-{vision['image_size']}px"
    path = paths.models_dir() / "configs" / f"{name}.json"
    write_json(path, cfg)
    open_clip.add_model_config(path)
    return name


@dataclass
class TrainedModel:
    """An in-memory pretrained model with what `save` writes beside its weights."""

    model: torch.nn.Module
    config: PretrainConfig
    log: list[dict]
    seconds: float
    device: str
    architecture: str  # the open_clip config name it was built from (see `architecture`)


def train(config: PretrainConfig, device: str = "cpu") -> TrainedModel:
    """Contrastive pretraining on the world's `pretrain` split with open_clip's ClipLoss."""
    import open_clip
    import torch

    get_caption_policy(config.captions)  # fail fast on an unknown policy
    if config.model not in open_clip.list_models():
        raise UsageError(f"Unknown model '{config.model}'. Available: {', '.join(open_clip.list_models())}")
    if config.steps < 1 or config.batch_size < 2:
        raise UsageError("--steps must be at least 1 and --batch-size at least 2")

    name = architecture(config)
    split = load_world(config.world)["pretrain"]
    torch.manual_seed(config.seed)
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None, device=device)
    tokenizer = open_clip.get_tokenizer(name)
    images = _preprocessed_images(split, preprocess, (config.world.fingerprint(), name))
    tokens = tokenizer(_captions(split, config))

    loss_fn = open_clip.ClipLoss()
    # The fused kernel updates all parameters in one pass: on 2 CPU cores it made mini-clip's step ~30 % faster
    # (most parameters are the token embedding, which the unfused loop walks several times per step).
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: _cosine_with_warmup(step, config))
    order = np.random.default_rng(config.seed)
    batch = min(config.batch_size, len(images))
    log = []
    started = time.perf_counter()
    model.train()
    with progress_bar() as progress:
        job = progress.add_task(
            f"Pretraining {config.model} ({config.captions} captions)", total=config.steps, unit="step"
        )
        for step in range(config.steps):
            index = torch.from_numpy(order.choice(len(images), size=batch, replace=False))
            image_features, text_features, logit_scale = model(images[index].to(device), tokens[index].to(device))[:3]
            loss = loss_fn(image_features, text_features, logit_scale)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            with torch.no_grad():  # as in CLIP: keep the temperature within 1/100
                model.logit_scale.clamp_(0, math.log(100))
            log.append({"step": step + 1, "loss": round(loss.item(), 6), "lr": schedule.get_last_lr()[0]})
            progress.advance(job)
    model.eval()
    return TrainedModel(model, config, log, round(time.perf_counter() - started, 2), device, name)


def save(trained: TrainedModel, out: Path) -> Path:
    """Write the open_clip / Hugging Face hub layout, so `--pretrained` and `local-dir:` both load it."""
    import open_clip
    import safetensors.torch

    state = {k: v.detach().cpu().contiguous() for k, v in trained.model.state_dict().items()}
    preprocess_cfg = open_clip.get_model_preprocess_cfg(trained.model)
    with atomic_dir(Path(out)) as tmp:
        safetensors.torch.save_file(state, tmp / WEIGHTS_FILE)
        write_json(
            tmp / OPEN_CLIP_CONFIG,
            {"model_cfg": open_clip.get_model_config(trained.architecture), "preprocess_cfg": _plain(preprocess_cfg)},
        )
        write_json(tmp / "train_log.json", {"config": asdict(trained.config), "steps": trained.log})
        write_json(tmp / "timing.json", {"seconds": trained.seconds, "device": trained.device})
    return Path(out)


def pretrain(config: PretrainConfig, out: Path, device: str = "cpu") -> Path:
    """Train and save an open_clip-format folder (config + safetensors + training log) at `out`."""
    return save(train(config, device), out)


# The last corpus prepared, keyed by (world fingerprint, model): policies of one experiment share it.
_PREPARED: dict[tuple[str, str], object] = {}


def _preprocessed_images(split, preprocess, key: tuple[str, str]):
    """Decode and preprocess every image once: the pretraining corpus is small enough to hold."""
    import torch

    if key in _PREPARED:
        return _PREPARED[key]
    with progress_bar() as progress:
        job = progress.add_task("Preparing pretraining images", total=len(split))
        tensors = []
        for row in split.select_columns(["image"]):
            tensors.append(preprocess(row["image"].convert("RGB")))
            progress.advance(job)
    _PREPARED.clear()
    _PREPARED[key] = torch.stack(tensors)
    return _PREPARED[key]


def pretraining_captions(config: PretrainConfig) -> list[str]:
    """One caption per pretraining image under the policy, seeded per image (never dependent on batch order),
    computed from the world's scenes without rendering them: the captions the model is trained on."""
    captions = []
    for index in range(config.world.sizes.get("pretrain", 0)):
        scene, _ = scene_at(config.world, "pretrain", index)
        rng = np.random.default_rng([config.seed, 7, index])
        captions.append(caption_for(scene, config.captions, rng))
    return captions


_CAPTION_HASHES: dict[str, str] = {}


def captions_fingerprint(config: PretrainConfig) -> str:
    """A hash of every pretraining caption (remembered per world, policy and seed within a process)."""
    key = stable_hash([config.world.fingerprint(), config.captions, config.seed])
    if key not in _CAPTION_HASHES:
        _CAPTION_HASHES[key] = stable_hash(pretraining_captions(config), 32)
    return _CAPTION_HASHES[key]


def _captions(split, config: PretrainConfig) -> list[str]:
    """The pretraining captions, row by row of the stored pretraining split (whose rows are its scenes in order)."""
    captions = pretraining_captions(config)
    if list(split["index"]) != list(range(len(captions))):
        raise RunError(
            f"The stored pretraining split of world {config.world.fingerprint()} is not in scene order; "
            "delete it from the cache to render it again"
        )
    return captions


def _cosine_with_warmup(step: int, config: PretrainConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _plain(cfg: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}


def builtin_weights_dir(config: PretrainConfig) -> Path:
    return paths.models_dir() / f"{config.model}-{slug(config.captions)}-{config.fingerprint()}"


def policy_tag(config: PretrainConfig) -> str:
    """`dashcam-POLICY` for the default recipe; a recipe with other steps, sizes or seed adds its fingerprint."""
    default = dataclasses.replace(PretrainConfig(), model=config.model, captions=config.captions)
    return (
        f"dashcam-{config.captions}" if config == default else f"dashcam-{config.captions}@{config.fingerprint()[:8]}"
    )


# The policies whose default-recipe weights `--pretrained` lists by name; any other policy or recipe is a member of
# the dashcam-POLICY family, registered on first use and not listed.
LISTED_POLICIES = ("salient", "descriptive")


def policy_weights(config: PretrainConfig) -> BuiltinWeights:
    """Built-in weights for one caption policy and recipe, registered under `policy_tag(config)`: trained on first use."""
    get_caption_policy(config.captions)  # an unknown policy fails here, listing the policies

    def materialise() -> Path:
        folder = builtin_weights_dir(config)
        if not (folder / WEIGHTS_FILE).exists():
            with exclusive(folder, f"pretraining {config.model}/{policy_tag(config)}"):  # then it loads them
                if not (folder / WEIGHTS_FILE).exists():
                    err_console.print(
                        f"Pretraining {config.model}/{policy_tag(config)} on first use: {config.steps} steps on the "
                        f"dashcam world with {config.captions} captions (the progress measures the time left); "
                        f"kept in {folder}",
                        highlight=False,
                    )
                    pretrain(config, folder)
        return folder

    return register_builtin_weights(
        BuiltinWeights(
            model=config.model,
            tag=policy_tag(config),
            description=f"{config.model} pretrained by clipprobe on the dashcam world with {config.captions} captions",
            materialise=materialise,
            # The essay's case: web captions that name only the salient object.
            default=config == PretrainConfig(),
            trained=lambda: (builtin_weights_dir(config) / WEIGHTS_FILE).exists(),
            listed=config.captions in LISTED_POLICIES and config == PretrainConfig(captions=config.captions),
        ),
        replace=True,
    )


for _policy in LISTED_POLICIES:
    policy_weights(PretrainConfig(captions=_policy))
# Any other policy, e.g. `--pretrained dashcam-mixed:0.05`, is trained with the default recipe on first use.
BUILTIN_FAMILIES[("mini-clip", "dashcam-")] = lambda policy: policy_weights(PretrainConfig(captions=policy))
