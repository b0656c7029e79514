"""DeepCache hook: reuse the deep decoder features of the last full U-Net pass on the steps in between.

This is DeepCache with ``cache_branch_id=0`` as the official inference runs it (DeepCacheSDHelper,
``cache_interval=3``): on a cached step every block is served from the cache except the last layer
(resnet, spatial transformer, motion module) of the last decoder block, which reruns on the cached
input of that layer concatenated with the fresh ``conv_in`` skip; the time embedding, ``conv_in`` and
the output head are fresh. Which steps refresh is the sampler's decision.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import InputMismatchError, LatentSyncError


@dataclass
class DeepCacheState:
    """What the shallow path needs from the last full pass.

    `features`: the input of the last decoder layer, before its concat with the conv_in skip.
    """

    features: torch.Tensor | None = None
    frames: int | None = field(default=None, repr=False)

    def reset(self) -> None:
        self.features = None
        self.frames = None

    def store(self, features: torch.Tensor, frames: int) -> None:
        self.features = features.detach()
        self.frames = frames

    def take(self, batch: int, frames: int, skip: torch.Tensor) -> torch.Tensor:
        """The cached features, after checking they were computed for the same batch, frames, size, dtype and device."""
        if self.features is None:
            raise LatentSyncError(
                "DeepCache: a shallow U-Net step was requested but no deep features are cached; "
                "run a step with deep_cache_refresh=True first (and after every reset)"
            )
        cached = self.features
        if (self.frames != frames or cached.shape[0] != batch * frames or cached.shape[-2:] != skip.shape[-2:]
                or cached.device != skip.device):
            raise InputMismatchError(
                f"DeepCache: cached features are for {cached.shape[0] // max(self.frames or 1, 1)} x {self.frames} "
                f"frames of {tuple(cached.shape[-2:])} on {cached.device}, but this step has {batch} x {frames} "
                f"frames of {tuple(skip.shape[-2:])} on {skip.device}; call reset() when the window shape changes"
            )
        return cached.to(skip.dtype)
