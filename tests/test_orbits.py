import pytest
import torch

from clipprobe.core.errors import UsageError
from clipprobe.features.orbits import get_group, list_groups, orbit_average

GROUPS = ["translate:4", "hflip", "translate:2+hflip", "translate:8"]


def _random_network():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 16 * 16, 5)
    ).eval()


@pytest.mark.parametrize("spec", GROUPS)
def test_orbit_average_is_exactly_invariant_for_every_element(spec):
    network, group = _random_network(), get_group(spec)
    images = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        reference = orbit_average(network, images, group)
        for g in group.elements:
            torch.testing.assert_close(orbit_average(network, g(images), group), reference, rtol=1e-5, atol=1e-5)
        # ...while the network alone is not invariant (the test could fail).
        assert not torch.allclose(network(group.elements[-1](images)), network(images), atol=1e-3)


def test_group_sizes_and_closure():
    assert len(get_group("translate:4")) == 16
    assert len(get_group("hflip")) == 2
    assert len(get_group("translate:4+hflip")) == 32
    images = torch.randn(1, 3, 8, 8)
    group = get_group("translate:2+hflip")
    orbit = {tuple(g(images).flatten().tolist()) for g in group.elements}
    for g in group.elements:  # applying any element permutes the orbit
        assert {tuple(h(g(images)).flatten().tolist()) for h in group.elements} == orbit


def test_bad_groups_name_the_choices():
    assert list_groups() == ["hflip", "translate"]
    with pytest.raises(UsageError, match=r"^Unknown group 'rotate'\. Available: hflip, translate$"):
        get_group("rotate:4")
    with pytest.raises(
        UsageError, match=r"^Group 'translate:N' needs a whole number N from 1 to 32 \(N\*N copies of every image\), "
    ):
        get_group("translate:x")
    # Refused before any element is built (translate:100000 would build 10^10 closures).
    with pytest.raises(UsageError, match=r"got 'translate:100000'$"):
        get_group("translate:100000")
    with pytest.raises(UsageError, match=r"^Group translate:32\+hflip\+hflip has 4096 elements .*; at most 2048$"):
        get_group("translate:32+hflip+hflip")
    with pytest.raises(UsageError, match=r"^Group translate:3 needs an image size divisible by 3, got 16x16$"):
        get_group("translate:3").orbit(torch.zeros(1, 3, 16, 16))
