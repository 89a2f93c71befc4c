"""Hard invariance: finite groups of image transformations and averaging over an orbit.

A group is written `translate:N` (cyclic shifts by multiples of 1/N of the image in x and y: N*N
elements), `hflip` (identity and horizontal flip), or a product `translate:N+hflip`. Averaging a
network's features over {g.x : g in G} makes them exactly invariant to every g in G, by construction."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..core.errors import UsageError
from ..core.registry import Registry

Transform = Callable[[torch.Tensor], torch.Tensor]

# Every image is encoded once per group element: translate:N takes N up to MAX_TRANSLATE (N*N copies), and a
# product at most MAX_ORBIT elements; both are checked before any element is built.
MAX_TRANSLATE = 32
MAX_ORBIT = 2048


@dataclass(frozen=True)
class Group:
    """A finite group acting on (N, C, H, W) image batches, listed element by element."""

    spec: str
    elements: tuple[Transform, ...]

    def __len__(self) -> int:
        return len(self.elements)

    def orbit(self, images: torch.Tensor) -> torch.Tensor:
        """(|G|, N, C, H, W): every transformed copy of every image."""
        return torch.stack([g(images) for g in self.elements])


# A factor takes the text after its colon ("" when there is none) and returns its elements.
GROUP_FACTORS: Registry[Callable[[str], tuple[Transform, ...]]] = Registry("group")


@GROUP_FACTORS.register("translate")
def translate(argument: str) -> tuple[Transform, ...]:
    """Cyclic shifts by multiples of H/N rows and W/N columns: the group Z_N x Z_N."""
    try:
        n = int(argument)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_TRANSLATE:
        raise UsageError(
            f"Group 'translate:N' needs a whole number N from 1 to {MAX_TRANSLATE} (N*N copies of every image), "
            f"got 'translate:{argument}'"
        )

    def shift(i: int, j: int) -> Transform:
        def apply(x: torch.Tensor) -> torch.Tensor:
            h, w = x.shape[-2:]
            if h % n or w % n:
                raise UsageError(f"Group translate:{n} needs an image size divisible by {n}, got {h}x{w}")
            return torch.roll(x, shifts=(i * h // n, j * w // n), dims=(-2, -1))

        return apply

    return tuple(shift(i, j) for i in range(n) for j in range(n))


@GROUP_FACTORS.register("hflip")
def hflip(argument: str) -> tuple[Transform, ...]:
    """The identity and the mirror image."""
    if argument:
        raise UsageError(f"Group 'hflip' takes no argument, got 'hflip:{argument}'")
    return (lambda x: x, lambda x: torch.flip(x, dims=(-1,)))


def list_groups() -> list[str]:
    """The group factors; a group is one factor or a product of them joined by "+" (`translate:4+hflip`)."""
    return GROUP_FACTORS.names()


def get_group(spec: str) -> Group:
    """Parse `translate:8`, `hflip`, `translate:4+hflip`: the product of the factors' elements."""
    factors = []
    for part in spec.split("+"):
        name, _, argument = part.partition(":")
        factors.append(GROUP_FACTORS.get(name)(argument))
    size = 1
    for factor in factors:
        size *= len(factor)
    if size > MAX_ORBIT:
        raise UsageError(f"Group {spec} has {size} elements (copies of every image); at most {MAX_ORBIT}")
    elements = []
    for combination in itertools.product(*factors):

        def composed(x: torch.Tensor, gs=combination) -> torch.Tensor:
            for g in gs:
                x = g(x)
            return x

        elements.append(composed)
    return Group(spec, tuple(elements))


def orbit_average(features: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, group: Group) -> torch.Tensor:
    """Mean of `features(g.x)` over g in `group`: exactly invariant to the group."""
    orbit = group.orbit(images)  # (|G|, N, C, H, W)
    flat = features(orbit.flatten(0, 1))
    return flat.unflatten(0, (len(group), images.shape[0])).mean(dim=0)
