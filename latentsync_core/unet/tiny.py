"""A tiny U-Net with the full model's code path (both block kinds, audio attention, motion modules everywhere),
random weights for it or for any config, and the fixture writer for ``latentsync/latentsync_unet.pt``.

Only shape-bearing choices differ from the official model, so `load_unet` infers this config from the
file as it does for the real checkpoint. Why these sizes: norms keep the official 32 groups (head
counts and groups cannot be read from weights), so widths are 64 to leave two channels per group
(with one, GroupNorm would erase the time embedding); and three blocks take 64 px frames (8x8
latents) down to 2x2, since a 1x1 level makes per-frame norms of two values numerically chaotic.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..checkpoints import save_checkpoint_file
from ..fixtures.random_init import randomize_ as _randomize
from .config import CROSS_DOWN, CROSS_UP, PLAIN_DOWN, PLAIN_UP
from .model import LatentSyncUNet

TINY_CONFIG: dict[str, Any] = {
    "block_out_channels": [64, 64, 64],
    "down_block_types": [CROSS_DOWN, CROSS_DOWN, PLAIN_DOWN],
    "up_block_types": [PLAIN_UP, CROSS_UP, CROSS_UP],
    "layers_per_block": 1,
    "cross_attention_dim": 64,  # the tiny Whisper fixture's n_audio_state
}

FIXTURE_RELPATH = Path("latentsync") / "latentsync_unet.pt"


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and buffer random non-degenerate values, in place.

    The official initialisation zeroes conv_in, conv_out and the motion modules' output projections,
    which would make outputs trivially zero; here weights get N(0, 1/fan_in), norm scales 1 + N(0, 0.1^2),
    biases and position tables small noise, so every path of the network shows in the output.
    """
    return _randomize(model, seed, include_buffers=True, scale_overrides={"pe": 0.5})


def random_state_dict(config: Mapping[str, Any] | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    return randomize_(LatentSyncUNet(config), seed).state_dict()


def tiny_unet(seed: int = 0) -> LatentSyncUNet:
    return randomize_(LatentSyncUNet(TINY_CONFIG), seed).eval()


def write_fixture(models_root: Path, seed: int) -> list[Path]:
    """Write the tiny U-Net in the official file format: ``{"state_dict": ..., "global_step": 0}``."""
    path = Path(models_root) / FIXTURE_RELPATH
    path.parent.mkdir(parents=True, exist_ok=True)
    state_dict = {k: v.contiguous() for k, v in tiny_unet(seed).state_dict().items()}
    save_checkpoint_file({"state_dict": state_dict, "global_step": 0}, path)
    return [path]
