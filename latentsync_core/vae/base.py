"""The VAE interface the pipeline stages use, and the duck-typed dispatch to a backend."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from ..errors import CheckpointError

# sd-vae-ft-mse as LatentSync was trained with it (scripts/inference.py overrides the config to these).
SCALING_FACTOR = 0.18215
SHIFT_FACTOR = 0.0
LATENT_CHANNELS = 4
SPATIAL_FACTOR = 8


def scale_latents(latents: torch.Tensor) -> torch.Tensor:
    """Raw VAE latents (ComfyUI's LATENT convention, what VAE Encode gives) -> the U-Net's scaled latents."""
    return (latents - SHIFT_FACTOR) * SCALING_FACTOR


def unscale_latents(latents: torch.Tensor) -> torch.Tensor:
    """The U-Net's scaled latents -> raw VAE latents, which ComfyUI's VAE Decode and LATENT sockets expect."""
    return latents / SCALING_FACTOR + SHIFT_FACTOR


class LatentVAE(ABC):
    """Encode faces to scaled latents and back.

    `encode(images, sample=True, generator=g)` draws z = mean + std * eps with eps from `g` (a CPU
    generator, so a seed gives the same latents on every device), as the official pipeline samples
    the posterior; `sample=False` returns the posterior mean. Work is split into batches of
    `batch_size` images so a 16-frame window at 512 px does not need all activations at once.
    """

    batch_size: int = 8

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @property
    @abstractmethod
    def dtype(self) -> torch.dtype: ...

    @abstractmethod
    def _posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unscaled posterior (mean, std) of a batch of images in [-1, 1]."""

    @abstractmethod
    def _decode_unscaled(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from a batch of unscaled latents."""

    @torch.no_grad()
    def encode(self, images: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"VAE.encode expects images [B, 3, H, W], got {tuple(images.shape)}")
        if images.shape[-1] % SPATIAL_FACTOR or images.shape[-2] % SPATIAL_FACTOR:
            raise ValueError(f"image size {tuple(images.shape[-2:])} is not a multiple of {SPATIAL_FACTOR}")
        out = []
        for start in range(0, images.shape[0], max(1, self.batch_size)):
            mean, std = self._posterior(images[start:start + self.batch_size])
            work = torch.promote_types(mean.dtype, torch.float32)
            z = mean.to(work)
            if sample:
                eps = torch.randn(mean.shape, generator=generator, dtype=torch.float32, device="cpu")
                z = z + std.to(work) * eps.to(mean.device, work)
            out.append(scale_latents(z))
        return torch.cat(out)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        if latents.ndim != 4 or latents.shape[1] != LATENT_CHANNELS:
            raise ValueError(f"VAE.decode expects latents [B, 4, h, w], got {tuple(latents.shape)}")
        out = []
        for start in range(0, latents.shape[0], max(1, self.batch_size)):
            z = unscale_latents(latents[start:start + self.batch_size])
            out.append(self._decode_unscaled(z))
        return torch.cat(out)


def _looks_like_comfy_vae(obj: Any) -> bool:
    return hasattr(obj, "first_stage_model") and hasattr(obj, "patcher") and callable(getattr(obj, "encode", None))


def _looks_like_diffusers_vae(obj: Any) -> bool:
    config = getattr(obj, "config", None)
    return config is not None and hasattr(config, "latent_channels") and callable(getattr(obj, "encode", None))


def as_latent_vae(obj: Any, input_name: str = "vae") -> LatentVAE:
    """Wrap a ComfyUI VAE or a diffusers AutoencoderKL; pass a LatentVAE through unchanged.

    Raises CheckpointError naming `input_name` when the VAE is not the 4-channel, 8x SD kind.
    """
    from .comfy_backend import ComfyVAE
    from .diffusers_backend import DiffusersVAE

    if isinstance(obj, LatentVAE):
        return obj
    if _looks_like_comfy_vae(obj):
        return ComfyVAE(obj, input_name)
    if _looks_like_diffusers_vae(obj):
        return DiffusersVAE(obj, input_name)
    raise CheckpointError(
        f"the {input_name!r} input is a {type(obj).__name__}, not a VAE: connect a VAELoader with "
        "sd-vae-ft-mse (the Stable Diffusion 1.x VAE LatentSync was trained with)")


def wrong_vae_error(input_name: str, what: str) -> CheckpointError:
    return CheckpointError(
        f"the VAE on the {input_name!r} input {what}; LatentSync needs the Stable Diffusion 1.x VAE "
        f"({LATENT_CHANNELS}-channel latents, {SPATIAL_FACTOR}x downscale), i.e. sd-vae-ft-mse: "
        "load vae/sd-vae-ft-mse.safetensors with a VAELoader")
