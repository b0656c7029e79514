"""A tiny StableSyncNet, random weights, and the fixture writer for ``latentsync/stable_syncnet.pt`` in the
official ``{"state_dict"}`` form.

The audio encoder has the official layout (depth, strides, attention positions) at 32-64 channels and
takes the official [B, 1, 80, 52] mel windows. The visual encoder is the official one without its two
last levels, so it takes 64 px faces ([B, 48, 32, 64] halves) instead of 256 px: at 256 px a CPU
training step of even a 32-channel net takes seconds. Widths stay at 32+ because every norm uses
32 groups (not recorded in the weights), and grow to 256 at the 1x1 end: a GroupNorm over two values
per group (64 channels at 1x1) turns the embedding into a sign pattern, useless to train or compare.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoints import save_checkpoint_file
from ..fixtures.random_init import randomize_ as _randomize
from .config import OFFICIAL_CONFIG
from .model import StableSyncNet

TINY_CONFIG: dict[str, Any] = copy.deepcopy(OFFICIAL_CONFIG)
TINY_CONFIG["audio_encoder"]["block_out_channels"] = [32, 32, 32, 32, 64, 128, 256]
TINY_CONFIG["visual_encoder"].update(block_out_channels=[32, 32, 32, 64, 128, 256],
                                     downsample_factors=[[1, 2], 2, 2, 2, 2, 2], attn_blocks=[0, 0, 0, 1, 0, 0])

FIXTURE_RELPATH = Path("latentsync") / "stable_syncnet.pt"


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random non-degenerate weights: N(0, 1/fan_in) matrices, norm scales near 1, small biases."""
    return _randomize(model, seed)


def tiny_syncnet(seed: int = 0, config: dict[str, Any] | None = None) -> StableSyncNet:
    return randomize_(StableSyncNet(config or TINY_CONFIG), seed).eval()


def write_fixture(models_root: Path, seed: int) -> list[Path]:
    path = Path(models_root) / FIXTURE_RELPATH
    path.parent.mkdir(parents=True, exist_ok=True)
    state_dict = {k: v.contiguous() for k, v in tiny_syncnet(seed).state_dict().items()}
    save_checkpoint_file({"state_dict": state_dict}, path)
    return [path]
