"""Noise schedulers by name: DDIM exactly as the official inference configures it, plus diffusers alternatives.

All share LatentSync's training schedule (1000 steps, scaled_linear betas 0.00085-0.012, epsilon
prediction) and "leading" timestep spacing with steps_offset 1, so 20 steps visit 951, 901, ..., 1.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

# configs/scheduler_config.json of the official repository.
TRAINING_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "timestep_spacing": "leading",
}


def _ddim():
    from diffusers import DDIMScheduler

    return DDIMScheduler(**TRAINING_SCHEDULE, clip_sample=False, set_alpha_to_one=False)


def _dpmpp_2m():
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(**TRAINING_SCHEDULE, algorithm_type="dpmsolver++", solver_order=2)


def _euler():
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(**TRAINING_SCHEDULE)


SCHEDULERS: dict[str, Callable[[], Any]] = {"ddim": _ddim, "dpmpp_2m": _dpmpp_2m, "euler": _euler}
_ALIASES = {"dpm++": "dpmpp_2m", "dpm-solver++": "dpmpp_2m", "dpmpp": "dpmpp_2m", "dpm++_2m": "dpmpp_2m"}


def scheduler_names() -> list[str]:
    return list(SCHEDULERS)


def resolve_scheduler_name(name: str) -> str:
    """Canonical name for `name` or one of its aliases; ValueError listing the choices otherwise."""
    key = _ALIASES.get(name.lower(), name.lower()) if isinstance(name, str) else None
    if key not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {scheduler_names()}")
    return key


def make_scheduler(name: str | Any, steps: int, device: torch.device | str | None = None) -> Any:
    """A fresh scheduler with its timesteps set (fresh per window: multistep solvers keep history).

    `name` is one of `scheduler_names()` (or an alias such as "dpm++"), or an already built
    diffusers scheduler, whose timesteps are reset here.
    """
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if isinstance(name, str):
        scheduler = SCHEDULERS[resolve_scheduler_name(name)]()
    elif hasattr(name, "set_timesteps") and hasattr(name, "step"):
        scheduler = name
    else:
        raise ValueError(f"scheduler must be a name or a diffusers scheduler, got {type(name).__name__}")
    scheduler.set_timesteps(int(steps), device=device)
    return scheduler
