"""Noise mode ``official``: the same draw as the official pipeline (``set_seed`` then one
``torch.randn([1, 4, 1, h, w])`` on the device in the model dtype, repeated over all frames)."""
from __future__ import annotations

import pytest
import torch

from latentsync_core.sampler import NOISE_MODES, NoiseSource, normalize_noise_mode


def _official_reference(seed: int, shape, device: str, dtype: torch.dtype, frames: int) -> torch.Tensor:
    """The official sequence re-stated: seed the global generators (accelerate's set_seed does
    torch.manual_seed), draw from the default generator on the device, repeat over the frames."""
    with torch.random.fork_rng(devices=[torch.device(device)] if device.startswith("cuda") else []):
        torch.manual_seed(seed)
        latents = torch.randn(shape, generator=None, device=device, dtype=dtype)
    return latents.repeat(1, 1, frames, 1, 1)


def _devices():
    yield "cpu"
    if torch.cuda.is_available():
        yield "cuda"


@pytest.mark.parametrize("device", list(_devices()))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_official_noise_equals_the_official_draw(device, dtype):
    seed, size = 1247, (8, 8)
    source = NoiseSource("official", seed, size, channels=4, device=device, dtype=dtype)
    total = 40  # the official draws once for the whole video; windows slice the same frame
    reference = _official_reference(seed, (1, 4, 1) + size, device, dtype, total)
    first = source.for_window(0, list(range(16)))
    third = source.for_window(2, list(range(32, 40)))
    assert first.dtype == dtype and first.device.type == device
    assert torch.equal(first, reference[:, :, :16]) and torch.equal(third, reference[:, :, 32:40])


def test_official_is_a_mode_of_its_own():
    assert "official" in NOISE_MODES and normalize_noise_mode("official") == "official"
    with pytest.raises(ValueError, match="unknown noise mode"):
        normalize_noise_mode("fresh")


def test_the_generator_continues_the_official_stream():
    """The official's next draws (VAE posterior samples) come from the same seeded generator."""
    source = NoiseSource("official", 5, (4, 4))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        torch.randn((1, 4, 1, 4, 4))
        expected_next = torch.randn((16, 4, 4, 4))
    assert torch.equal(torch.randn((16, 4, 4, 4), generator=source.generator), expected_next)
    assert NoiseSource("shared", 5, (4, 4)).generator is None
