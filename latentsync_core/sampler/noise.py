"""Initial noise for the denoising windows, reproducible from a seed on any device.

Modes:
- "shared" (official): ONE [1, 4, 1, h, w] draw repeated over every frame of the video, so every
  window starts from identical noise and a face that does not move gets the same texture throughout.
- "per-window": one such draw per window (repeated over that window's frames).
- "per-frame": an independent draw per video frame, keyed on the frame's index (not its window), so
  a frame's noise does not depend on how frames were grouped.
- "official": what the official pipeline draws (``lipsync_pipeline.prepare_latents`` after
  ``set_seed(seed)`` in ``scripts/inference.py``): ONE ``torch.randn([1, 4, 1, h, w])`` on the compute
  device in the model dtype from a generator freshly seeded with ``seed``, repeated over every frame.
  With the same device type, dtype, seed and weights this is the official's noise bit for bit (CUDA
  and CPU generators differ, so a CPU run does not match an official CUDA run).
The other modes draw on the CPU in float32 and only then move, so a seed gives bit-identical noise on
CPU and GPU.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

NOISE_MODES = ("shared", "per-window", "per-frame", "official")
_MODE_ALIASES = {"per_window": "per-window", "per_frame": "per-frame"}
_STREAM_TAGS = {"per-window": 1, "per-frame": 2}


def normalize_noise_mode(mode: str) -> str:
    key = _MODE_ALIASES.get(mode, mode)
    if key not in NOISE_MODES:
        raise ValueError(f"unknown noise mode {mode!r}; choose one of {list(NOISE_MODES)}")
    return key


def derived_seed(seed: int, tag: int, index: int) -> int:
    """A well-mixed 63-bit seed for (seed, stream, index): neighbouring indices give unrelated noise."""
    state = np.random.SeedSequence([int(seed) % (1 << 64), tag, int(index)]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def _draw(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def official_draw(seed: int, shape: tuple[int, ...], device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Generator]:
    """The official's initial noise: ``set_seed(seed)`` seeds the device's default generator, then
    ``randn`` on that device in the model dtype (MPS draws on the CPU, as the official does).
    Returns the noise and the generator, which the official goes on drawing from (its VAE posterior
    samples, masked image then reference latents per window)."""
    device = torch.device(device)
    draw_on = torch.device("cpu") if device.type == "mps" else device
    generator = torch.Generator(device=draw_on).manual_seed(int(seed))
    return torch.randn(shape, generator=generator, device=draw_on, dtype=dtype).to(device), generator


class NoiseSource:
    """Hands each window its initial noise [1, channels, F, h, w]: float32 on the CPU, except mode
    ``official``, which is drawn (once) on ``device`` in ``dtype``, the compute device and model dtype."""

    def __init__(self, mode: str, seed: int, latent_size: tuple[int, int], channels: int = 4,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        self.mode = normalize_noise_mode(mode)
        self.seed = int(seed)
        self.frame_shape = (1, channels, 1, int(latent_size[0]), int(latent_size[1]))
        #: official mode: the generator after the noise draw; the official's VAE samples continue from it
        self.generator: torch.Generator | None = None
        if self.mode == "official":
            self._shared, self.generator = official_draw(self.seed, self.frame_shape, device or "cpu",
                                                         dtype or torch.float32)
        else:
            self._shared = _draw(self.seed, self.frame_shape) if self.mode == "shared" else None

    def for_window(self, window_index: int, frame_indices: Sequence[int]) -> torch.Tensor:
        count = len(frame_indices)
        if self.mode in ("shared", "official"):
            return self._shared.repeat(1, 1, count, 1, 1)
        tag = _STREAM_TAGS[self.mode]
        if self.mode == "per-window":
            return _draw(derived_seed(self.seed, tag, window_index), self.frame_shape).repeat(1, 1, count, 1, 1)
        frames = [_draw(derived_seed(self.seed, tag, i), self.frame_shape) for i in frame_indices]
        return torch.cat(frames, dim=2) if frames else torch.empty(self.frame_shape[:2] + (0,) + self.frame_shape[3:])
