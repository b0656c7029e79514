"""Training noise: LatentSync's mixed noise (a clip-wide shared part + per-frame parts) and the forward process."""
from __future__ import annotations

import torch


def mixed_noise(shape: tuple[int, ...], alpha: float = 1.0, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Noise [B, C, F, h, w] whose frames share a common component (arXiv 2305.10474, the official stage 2).

    One draw for the first frame, std sqrt(a^2 / (1 + a^2)), is repeated over all frames and added to
    independent per-frame noise of std sqrt(1 / (1 + a^2)): unit variance per element, correlation
    a^2 / (1 + a^2) between any two frames (0.5 for the official a = 1). Drawn on the CPU from
    `generator`, so a seed gives the same noise on every device.
    """
    if len(shape) != 5:
        raise ValueError(f"mixed noise needs a video latent shape [B, C, F, h, w], got {shape}")
    shared_std = (alpha ** 2 / (1 + alpha ** 2)) ** 0.5
    own_std = (1 / (1 + alpha ** 2)) ** 0.5
    shared = torch.randn(shape, generator=generator)[:, :, :1] * shared_std
    own = torch.randn(shape, generator=generator) * own_std
    return (own + shared).to(device=device, dtype=dtype)


class ForwardProcess:
    """q(x_t | x_0) of the training schedule (scaled-linear betas 0.00085..0.012, 1000 steps) and x_0 from eps."""

    def __init__(self):
        from ..sampler import make_scheduler

        scheduler = make_scheduler("ddim", 1)  # the inference step count does not touch alphas_cumprod
        self.num_timesteps = int(scheduler.config.num_train_timesteps)
        self.alphas_cumprod = scheduler.alphas_cumprod.to(torch.float64)

    def _coefficients(self, timesteps: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.alphas_cumprod[timesteps.cpu().long()].to(like.device)
        shape = (-1,) + (1,) * (like.dim() - 1)
        return a.sqrt().view(shape), (1 - a).sqrt().view(shape)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        signal, sigma = self._coefficients(timesteps, x0)
        return (signal * x0.double() + sigma * noise.double()).to(x0.dtype)

    def predicted_x0(self, x_t: torch.Tensor, eps: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """One-step estimate of x_0 from an eps prediction, unclipped (as the official trainer)."""
        signal, sigma = self._coefficients(timesteps, x_t)
        dtype = torch.promote_types(eps.dtype, torch.float32)
        return (x_t.to(dtype) - sigma.to(dtype) * eps.to(dtype)) / signal.to(dtype)

    def sample_timesteps(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Uniform integer timesteps in [0, 1000)."""
        return torch.randint(0, self.num_timesteps, (batch,), generator=generator)
