"""The ComfyUI VAE backend (`vae/comfy_backend.py`) on ComfyUI's own VAE object: the posterior the official
pipeline samples, through ComfyUI's batching and through its tiled fallback after an out-of-memory error."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("comfy_api.latest", reason="ComfyUI's source is not on the path: set COMFYUI_DIR (see conftest)")

import comfy.model_management as mm  # noqa: E402

from latentsync_core.vae import ComfyVAE, as_latent_vae, load_vae  # noqa: E402


def _faces(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """[n, 3, size, size] in [-1, 1]: smooth random images (a VAE's typical input, not white noise)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand((n, 3, size // 8, size // 8), generator=gen)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False) * 2 - 1


class _OutOfMemoryOnce:
    """Wraps first_stage_model.encode: the first (whole-batch) call raises ComfyUI's OOM exception, as a GPU
    that is too small would, so VAE.encode falls back to tiles; records the batch size of every call."""

    def __init__(self, encode):
        self.encode, self.calls = encode, []

    def __call__(self, x):
        self.calls.append(x.shape[0])
        if len(self.calls) == 1:
            raise mm.OOM_EXCEPTION("simulated out of memory")
        return self.encode(x)


@pytest.fixture(autouse=True)
def like_the_executor():
    """ComfyUI's executor runs nodes under inference mode; its tiled encode relies on that."""
    with torch.inference_mode():
        yield


@pytest.fixture()
def tiled_fallback(comfy_tiny_vae, monkeypatch):
    wrapper = _OutOfMemoryOnce(comfy_tiny_vae.first_stage_model.encode)
    monkeypatch.setattr(comfy_tiny_vae.first_stage_model, "encode", wrapper)
    return wrapper


def test_posterior_matches_the_diffusers_vae_on_the_same_weights(comfy_tiny_vae, fixture_models):
    comfy = as_latent_vae(comfy_tiny_vae)
    reference = load_vae(fixture_models / "vae" / "sd-vae-ft-mse")
    assert isinstance(comfy, ComfyVAE)
    x = _faces(5)
    torch.testing.assert_close(comfy.encode(x, sample=False), reference.encode(x, sample=False), atol=2e-5, rtol=1e-4)
    sampled = comfy.encode(x, generator=torch.Generator().manual_seed(3))
    expected = reference.encode(x, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(sampled, expected, atol=2e-5, rtol=1e-4)
    # the swapped-in regulariser and the channel count are put back
    assert type(comfy_tiny_vae.first_stage_model.regularization).__name__ == "DiagonalGaussianRegularizer"
    assert comfy_tiny_vae.latent_channels == 4


def test_posterior_survives_comfyuis_tiled_fallback(comfy_tiny_vae, tiled_fallback):
    """On OOM ComfyUI encodes tile by tile (three passes, averaged); the regulariser then runs once per tile.
    Mean and std must still come back for the whole batch, equal to the untiled ones (each 64 px face fits
    in one tile, so every pass sees the whole face)."""
    comfy = as_latent_vae(comfy_tiny_vae)
    x = _faces(4, seed=1)
    tiled_mean, tiled_std = comfy._posterior(x)
    assert tiled_fallback.calls[0] == 4 and tiled_fallback.calls[1:] == [1] * 12  # 3 passes x 4 images
    tiled_fallback.calls.append("no more OOM")
    mean, std = comfy._posterior(x)
    assert tiled_mean.shape == mean.shape == std.shape == tiled_std.shape == (4, 4, 8, 8)
    torch.testing.assert_close(tiled_mean, mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tiled_std, std, atol=1e-5, rtol=1e-5)
    assert float(std.min()) > 0


def test_tiled_posterior_of_a_large_image_is_assembled_like_comfyuis_own_tiles(comfy_tiny_vae, tiled_fallback):
    """A 576 px face needs several 512 px tiles: the mean equals ComfyUI's own tiled encode, the std is blended
    the same way and covers the whole latent."""
    comfy = as_latent_vae(comfy_tiny_vae)
    x = _faces(1, size=576, seed=2)
    mean, std = comfy._posterior(x)
    assert len(tiled_fallback.calls) > 4  # several tiles per pass
    tiled_fallback.calls.append("no more OOM")
    reference = comfy_tiny_vae.encode_tiled(((x + 1) / 2).movedim(1, -1), tile_x=512, tile_y=512, overlap=64)
    torch.testing.assert_close(mean, reference, atol=1e-5, rtol=1e-5)
    assert std.shape == (1, 4, 72, 72) and bool(torch.isfinite(std).all()) and float(std.min()) > 0
