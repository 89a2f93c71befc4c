"""The baselines' networks: a small ResNet from torchvision's building blocks, plain or averaged over an orbit.

torchvision's `resnet18` costs about 0.15 GFLOPs per 64 px image, too slow to train from scratch in about a
minute on two CPU cores (and 32 times that inside an orbit average), so the trunk is a narrow ResNet-10:
torchvision's `BasicBlock`, one per stage, widths 16-32-64-128, the usual stride-2 stem and max-pool. At
64 px the stages see 16, 8, 4 and 2 pixel maps; global average pooling gives a 128-d feature."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock
from torchvision.ops import Conv2dNormActivation

from ..features.orbits import Group, orbit_average

WIDTHS = (16, 32, 64, 128)
ARCHITECTURE = "resnet10-w16"


def resnet_trunk(widths: tuple[int, ...] = WIDTHS) -> nn.Sequential:
    """Stem (3x3 stride 2 conv, BN, ReLU, 3x3 stride 2 max-pool), one BasicBlock per stage, global pooling."""
    layers: list[nn.Module] = [Conv2dNormActivation(3, widths[0], kernel_size=3, stride=2), nn.MaxPool2d(3, 2, 1)]
    channels = widths[0]
    for stage, width in enumerate(widths):
        stride = 1 if stage == 0 else 2
        downsample = None
        if stride != 1 or channels != width:
            downsample = nn.Sequential(nn.Conv2d(channels, width, 1, stride, bias=False), nn.BatchNorm2d(width))
        layers.append(BasicBlock(channels, width, stride, downsample))
        channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    trunk = nn.Sequential(*layers)
    # torchvision's ResNet initialisation, with the last BN of each residual branch at zero (zero_init_residual).
    for module in trunk.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    for module in trunk.modules():
        if isinstance(module, BasicBlock):
            nn.init.zeros_(module.bn2.weight)
    return trunk


class Standardise(nn.Module):
    """(x - mean) / std per channel, with the train split's statistics kept as buffers (saved with the model)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: torch.Tensor | None = None, std: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("mean", (mean if mean is not None else torch.full((3,), 0.5)).view(1, 3, 1, 1).float())
        self.register_buffer("std", (std if std is not None else torch.full((3,), 0.25)).view(1, 3, 1, 1).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class CNN(nn.Module):
    """Images in [0, 1] -> standardise -> ResNet trunk -> pooled features -> linear classifier."""

    def __init__(self, num_classes: int, standardise: Standardise | None = None, widths: tuple[int, ...] = WIDTHS):
        super().__init__()
        self.standardise = standardise or Standardise()
        self.trunk = resnet_trunk(widths)
        self.head = nn.Linear(widths[-1], num_classes)
        self.trunk.to(memory_format=torch.channels_last)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last is about twice as fast for these small convolutions on CPU (oneDNN).
        return self.trunk(self.standardise(x).contiguous(memory_format=torch.channels_last))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def training_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)


class OrbitCNN(CNN):
    """The same CNN with its pooled features averaged over the orbit {g.x : g in G} before the classifier.

    Since the head is linear, the logits are the mean of the plain CNN's logits over the orbit, and they are
    exactly invariant to every g in G (up to float summation order), whatever the weights.

    `train_elements` (k) makes training affordable: in each training step every image averages its features over
    k elements of G drawn at random for that image alone (without replacement), an unbiased estimate of the orbit
    mean of the features. In eval
    mode, and whenever k is None or >= |G|, the whole orbit is used: every prediction that is scored or
    selected on is the exact orbit average."""

    def __init__(
        self,
        num_classes: int,
        group: Group,
        standardise: Standardise | None = None,
        widths: tuple[int, ...] = WIDTHS,
        train_elements: int | None = None,
    ):
        super().__init__(num_classes, standardise, widths)
        self.group = group
        self.train_elements = train_elements

    def features(self, x: torch.Tensor, group: Group | None = None) -> torch.Tensor:
        return orbit_average(self.embed, x, group or self.group)

    def training_logits(self, x: torch.Tensor) -> torch.Tensor:
        k = self.train_elements
        if not self.training or k is None or k >= len(self.group):
            return self(x)
        n = x.shape[0]
        # (n, k) element indices, drawn per image: the first k of a random permutation of G for each.
        chosen = torch.rand(n, len(self.group)).argsort(dim=1)[:, :k]
        transformed = x.new_empty((k, *x.shape))
        for g, element in enumerate(self.group.elements):
            images, slots = (chosen == g).nonzero(as_tuple=True)
            if len(images):
                transformed[slots, images] = element(x[images])
        features = self.embed(transformed.flatten(0, 1)).unflatten(0, (k, n)).mean(dim=0)
        return self.head(features)


def parameter_count(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))
