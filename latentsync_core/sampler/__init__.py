"""Sampling the face latents of a window: schedulers, the denoising loop (CFG, DeepCache), noise, windows.

Stable entry point: `denoise(unet, noise, mask, masked_latents, ref_latents, audio, steps=20,
guidance=1.5, deepcache_interval=0, scheduler="ddim") -> latents [1, 4, F, h, w]`.
"""
from .loop import deepcache_full_steps, denoise
from .noise import NOISE_MODES, NoiseSource, derived_seed, normalize_noise_mode
from .schedulers import SCHEDULERS, TRAINING_SCHEDULE, make_scheduler, resolve_scheduler_name, scheduler_names
from .windows import WINDOW_FRAMES, WindowBuilder, frame_stride, plan_windows

__all__ = [
    "NOISE_MODES", "NoiseSource", "SCHEDULERS", "TRAINING_SCHEDULE", "WINDOW_FRAMES", "WindowBuilder",
    "deepcache_full_steps", "denoise", "derived_seed", "make_scheduler", "normalize_noise_mode",
    "plan_windows", "resolve_scheduler_name", "scheduler_names", "frame_stride",
]
