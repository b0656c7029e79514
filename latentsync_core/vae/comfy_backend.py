"""ComfyUI `VAE` backend (comfy.sd.VAE, what the core VAELoader returns), used by duck typing.

`VAE.encode` returns the posterior *mean* (its regulariser runs with sample=False) of pixels
[B, H, W, C] in [0, 1], unscaled, and manages device placement itself. The official pipeline samples
the posterior, which needs its std too. For the duration of one call we swap in a regulariser that
returns mean and std stacked as 2 x 4 channels and tell the VAE it has 8 latent channels, so ComfyUI
still does the loading, batching and OOM fallback: its tiled fallback calls the regulariser once per
tile and blends the tiles linearly, which blends mean and std alike, so both come back assembled at
the full size whatever path ComfyUI took.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

from .base import LATENT_CHANNELS, SPATIAL_FACTOR, LatentVAE, wrong_vae_error


class _PosteriorMoments(torch.nn.Module):
    """Stands in for DiagonalGaussianRegularizer: returns (mean, std) stacked on the channel axis."""

    def forward(self, moments: torch.Tensor):
        mean, logvar = torch.chunk(moments, 2, dim=1)
        std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))
        return torch.cat([mean, std], dim=1), None


class ComfyVAE(LatentVAE):
    def __init__(self, vae: Any, input_name: str = "vae"):
        if getattr(vae, "first_stage_model", None) is None:
            raise wrong_vae_error(input_name, "has no weights (the checkpoint held no VAE)")
        channels = getattr(vae, "latent_channels", LATENT_CHANNELS)
        if channels != LATENT_CHANNELS:
            raise wrong_vae_error(input_name, f"has {channels}-channel latents")
        if getattr(vae, "latent_dim", 2) != 2:
            raise wrong_vae_error(input_name, "is a video/audio VAE")
        ratio = vae.spacial_compression_encode() if hasattr(vae, "spacial_compression_encode") else SPATIAL_FACTOR
        if ratio != SPATIAL_FACTOR:
            raise wrong_vae_error(input_name, f"downscales {ratio}x")
        self.vae = vae
        self.input_name = input_name
        # ComfyUI picks its own batch size from free memory; do not split again on our side.
        self.batch_size = 1 << 30

    @property
    def device(self) -> torch.device:
        return torch.device(getattr(self.vae, "device", "cpu"))

    @property
    def dtype(self) -> torch.dtype:
        return getattr(self.vae, "vae_dtype", torch.float32)

    @contextlib.contextmanager
    def _returning_moments(self) -> Iterator[bool]:
        """While active, `self.vae.encode` returns [mean, std] (8 channels); yields False for a VAE without a
        Gaussian posterior (then only its mean is available)."""
        model = self.vae.first_stage_model
        original = getattr(model, "regularization", None)
        if original is None:
            yield False
            return
        channels = self.vae.latent_channels
        model.regularization = _PosteriorMoments()
        self.vae.latent_channels = 2 * channels  # the tiled fallback sizes its output by this
        try:
            yield True
        finally:
            model.regularization = original
            self.vae.latent_channels = channels

    def _posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = ((images.float() + 1.0) / 2.0).movedim(1, -1)
        with self._returning_moments() as moments:
            out = self.vae.encode(pixels)
        if not moments:
            return out, torch.zeros_like(out)
        mean, std = torch.chunk(out, 2, dim=1)
        return mean, std

    def _decode_unscaled(self, latents: torch.Tensor) -> torch.Tensor:
        pixels = self.vae.decode(latents)  # [B, H, W, C] in [0, 1] (clamped by ComfyUI)
        return pixels.movedim(-1, 1) * 2.0 - 1.0
