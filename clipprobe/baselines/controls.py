"""Floors and controls: the same probe on features that owe nothing to pretraining."""

from __future__ import annotations

import dataclasses

from ..core.kinds import SeedPolicy
from ..features.config import ExtractorConfig
from .registry import BASELINES, ProbeControl


class PixelsControl(ProbeControl):
    """Raw pixels: what the input gives without any network."""

    name = "pixels"
    description = (
        "Linear probe on the raw pixels downsampled to 32x32 (3,072 numbers): what the input gives without any network"
    )
    uses_model = False
    layered = False  # pixels have one "layer": the pixels themselves
    seeds = SeedPolicy.OWN  # the probe's own seed (a few-shot sample, an MLP's initialisation)

    def configure(self, config: ExtractorConfig) -> ExtractorConfig:
        return dataclasses.replace(
            config, extractor="pixels", pretrained=None, layer="embedding", precision="fp32", precision_reason=None
        )


class RandomWeightsControl(ProbeControl):
    """The probed architecture with random weights: what the architecture gives without pretraining."""

    name = "random"
    description = (
        "Linear probe on the probed architecture with random weights: what the architecture gives without pretraining"
    )
    uses_model = True
    layered = True
    seeds = SeedPolicy.PRETRAINING  # its weights are drawn with the seed: the seed is its pretraining

    def configure(self, config: ExtractorConfig) -> ExtractorConfig:
        return dataclasses.replace(config, extractor="open_clip", pretrained="random")


BASELINES.register("pixels", PixelsControl())
BASELINES.register("random", RandomWeightsControl())
