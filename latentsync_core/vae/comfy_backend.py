"""ComfyUI `VAE` backend (comfy.sd.VAE, what the core VAELoader returns), used by duck typing.

`VAE.encode` returns the posterior *mean* (its regulariser runs with sample=False) of pixels
[B, H, W, C] in [0, 1], unscaled, and manages device placement itself. For the official posterior
*sample* we swap in, for the duration of one call, a regulariser that returns mean + std * eps with
eps from our generator, so ComfyUI still does the loading, batching and OOM fallback.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

from .base import LATENT_CHANNELS, SPATIAL_FACTOR, LatentVAE, wrong_vae_error


class _PosteriorCapture(torch.nn.Module):
    """Stands in for DiagonalGaussianRegularizer: records (mean, std) of each batch, returns the mean."""

    def __init__(self):
        super().__init__()
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, moments: torch.Tensor):
        mean, logvar = torch.chunk(moments, 2, dim=1)
        std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))
        self.batches.append((mean, std))
        return mean, None


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
    def _capturing_posterior(self) -> Iterator[_PosteriorCapture | None]:
        model = self.vae.first_stage_model
        original = getattr(model, "regularization", None)
        if original is None:  # not a KL autoencoder: only the mean is available
            yield None
            return
        capture = _PosteriorCapture()
        model.regularization = capture
        try:
            yield capture
        finally:
            model.regularization = original

    def _posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = ((images.float() + 1.0) / 2.0).movedim(1, -1)
        with self._capturing_posterior() as capture:
            mean = self.vae.encode(pixels)
        if capture is None or not capture.batches:
            return mean, torch.zeros_like(mean)
        std = torch.cat([s.to(mean.device, torch.float32) for _, s in capture.batches])
        return mean, std

    def _decode_unscaled(self, latents: torch.Tensor) -> torch.Tensor:
        pixels = self.vae.decode(latents)  # [B, H, W, C] in [0, 1] (clamped by ComfyUI)
        return pixels.movedim(-1, 1) * 2.0 - 1.0
