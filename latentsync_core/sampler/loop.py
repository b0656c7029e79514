"""The denoising loop of one window: scheduler steps, classifier-free guidance on audio, DeepCache."""
from __future__ import annotations

from typing import Any, Callable

import torch

from .. import host
from ..errors import InputMismatchError
from .schedulers import make_scheduler

StepCallback = Callable[[int, int], None]


def deepcache_full_steps(steps: int, interval: int) -> list[int]:
    """Step indices that run the whole U-Net: every `interval`-th from 0 (all of them when interval <= 1).

    Official DeepCache (uniform, cache_interval 3) over 20 steps: 0, 3, ..., 18 -> 7 full passes.
    """
    if interval <= 1:
        return list(range(steps))
    return list(range(0, steps, interval))


def _check_shapes(noise, mask, masked_latents, ref_latents, audio) -> None:
    if noise.dim() != 5:
        raise InputMismatchError(f"noise must be [B, 4, F, h, w], got {list(noise.shape)}")
    b, _, f, h, w = noise.shape
    for name, t, channels in (("masked_latents", masked_latents, noise.shape[1]),
                              ("ref_latents", ref_latents, noise.shape[1]), ("mask", mask, 1)):
        if tuple(t.shape) != (b, channels, f, h, w):
            raise InputMismatchError(f"{name} must be {[b, channels, f, h, w]} like the noise, got {list(t.shape)}")
    if audio is not None:
        frames = audio.shape[-3] if audio.dim() == 4 else audio.shape[0]
        if audio.dim() not in (3, 4) or frames != f:
            raise InputMismatchError(f"audio must be [F={f}, L, C] (one chunk per frame), got {list(audio.shape)}")


@torch.no_grad()
def denoise(unet: Any, noise: torch.Tensor, mask: torch.Tensor, masked_latents: torch.Tensor,
            ref_latents: torch.Tensor, audio: torch.Tensor | None, steps: int = 20, guidance: float = 1.5,
            deepcache_interval: int = 0, scheduler: str | Any = "ddim", *, cfg_batch: bool = True,
            on_step: StepCallback | None = None, interruptible: bool = True) -> torch.Tensor:
    """Denoise one window and return its latents [B, 4, F, h, w] (the dtype of `noise`).

    noise / masked_latents / ref_latents [B, 4, F, h, w], mask [B, 1, F, h, w] (1 = keep, 0 = regenerate,
    at latent resolution), audio [F, L, C] (or [B, F, L, C]; None for a U-Net without audio layers),
    all already on the U-Net's device. The U-Net input is concat(noisy 4, mask 1, masked 4, reference 4).

    guidance > 1 runs classifier-free guidance against a zero-audio branch: eps = u + s * (a - u); with
    `cfg_batch` (official) both branches go through the U-Net as one doubled batch, else as two calls
    (less peak memory). guidance <= 1 (as the official: CFG only above 1) or audio None makes a
    single audio-conditioned pass per step.
    deepcache_interval N > 1 runs the full U-Net only on steps 0, N, 2N, ... and the shallow cached
    path in between (counter restarts with every call, i.e. per window); 0 or 1 is exact.
    `scheduler`: "ddim" (official), "dpmpp_2m", "euler", or a diffusers scheduler instance.
    `on_step(done, total)` is called after every step; with `interruptible` the host's interrupt
    check runs before every step.
    """
    _check_shapes(noise, mask, masked_latents, ref_latents, audio)
    device = noise.device
    sched = make_scheduler(scheduler, steps, device)
    timesteps = sched.timesteps
    use_cfg = audio is not None and guidance > 1.0
    batch = noise.shape[0]
    condition = torch.cat([mask, masked_latents, ref_latents], dim=1)

    if audio is not None and audio.dim() == 3:
        audio = audio.unsqueeze(0).expand(batch, *audio.shape)
    null_audio = torch.zeros_like(audio) if use_cfg else None

    cache_states = _deepcache_states(deepcache_interval, 2 if use_cfg and not cfg_batch else 1)
    full_steps = set(deepcache_full_steps(len(timesteps), deepcache_interval))

    # Scheduler arithmetic in float32 whatever the U-Net's dtype: the latents are tiny and the DDIM
    # update subtracts nearly equal terms near t=0.
    work = torch.promote_types(noise.dtype, torch.float32)
    latents = noise.to(work) * sched.init_noise_sigma
    for step_index, t in enumerate(timesteps):
        if interruptible:
            host.check_interrupt()
        refresh = step_index in full_steps
        model_input = torch.cat([sched.scale_model_input(latents, t).to(condition.dtype), condition], dim=1)
        if not use_cfg:
            eps = _call(unet, model_input, t, audio, cache_states[0], refresh)
        elif cfg_batch:
            both = _call(unet, torch.cat([model_input, model_input]), t, torch.cat([null_audio, audio]),
                         cache_states[0], refresh)
            uncond, cond = both.to(work).chunk(2)
            eps = uncond + guidance * (cond - uncond)
        else:
            uncond = _call(unet, model_input, t, null_audio, cache_states[0], refresh).to(work)
            cond = _call(unet, model_input, t, audio, cache_states[1], refresh).to(work)
            eps = uncond + guidance * (cond - uncond)
        latents = sched.step(eps.to(work), t, latents).prev_sample
        if on_step is not None:
            on_step(step_index + 1, len(timesteps))
    return latents.to(noise.dtype)


def _deepcache_states(interval: int, count: int) -> list[Any]:
    if interval is None or interval <= 1:
        return [None] * count
    from ..unet.deepcache import DeepCacheState

    return [DeepCacheState() for _ in range(count)]


def _call(unet, sample, t, audio, cache, refresh: bool) -> torch.Tensor:
    if cache is None:
        return unet(sample, t, audio)
    return unet(sample, t, audio, deep_cache=cache, deep_cache_refresh=refresh)
