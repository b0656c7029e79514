"""StableSyncNet architectures: the official configs and inference of one from a checkpoint's tensors.

Widths, depths, attention positions and input channels are read from the weights; the strides of the
down-sampling convolutions are not stored in them, so they come from the official family the
checkpoint's layout belongs to (16-frame pixel, 25-frame pixel, 16-frame latent). A layout of none of
these needs an explicit `config`.
"""
from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any, Mapping, Sequence

from ..errors import CheckpointError

# configs/syncnet/syncnet_16_pixel_attn.yaml: the `stable_syncnet.pt` LatentSync 1.5/1.6 ship.
OFFICIAL_CONFIG: dict[str, Any] = {
    "audio_encoder": {
        "in_channels": 1,
        "block_out_channels": [32, 64, 128, 256, 512, 1024, 2048],
        "downsample_factors": [[2, 1], 2, 2, 1, 2, 2, [2, 3]],
        "attn_blocks": [0, 0, 0, 1, 1, 0, 0],
        "dropout": 0.0,
    },
    "visual_encoder": {
        "in_channels": 48,
        "block_out_channels": [64, 128, 256, 256, 512, 1024, 2048, 2048],
        "downsample_factors": [[1, 2], 2, 2, 2, 2, 2, 2, 2],
        "attn_blocks": [0, 0, 0, 0, 1, 1, 0, 0],
        "dropout": 0.0,
    },
}

# (audio depth, visual depth, visual input channels) -> (audio strides, visual strides, input description)
_STRIDE_FAMILIES: dict[tuple[int, int, int], tuple[list, list, str]] = {
    (7, 8, 48): ([[2, 1], 2, 2, 1, 2, 2, [2, 3]], [[1, 2], 2, 2, 2, 2, 2, 2, 2], "16 frames, pixels"),
    (6, 8, 75): ([2, 2, 2, 2, 2, 2], [[1, 2], 2, 2, 2, 2, 2, 2, 2], "25 frames, pixels"),
    (6, 6, 64): ([[2, 1], 2, 2, 2, 2, [2, 3]], [2, 2, 2, 1, 2, 2], "16 frames, latents"),
    # Not an official release: the test fixture's layout (tiny.py), the 16-frame pixel model cut to 64 px faces.
    (7, 6, 48): ([[2, 1], 2, 2, 1, 2, 2, [2, 3]], [[1, 2], 2, 2, 2, 2, 2], "16 frames, 64 px test layout"),
}

_BLOCK = re.compile(r"^(audio_encoder|visual_encoder)\.down_blocks\.(\d+)\.")


def _shape(shapes: Mapping[str, Sequence[int]], key: str, source: str) -> tuple[int, ...]:
    if key not in shapes:
        raise CheckpointError(f"{source} is not a StableSyncNet checkpoint: tensor {key!r} is missing")
    return tuple(shapes[key])


def _encoder_layout(shapes: Mapping[str, Sequence[int]], name: str, source: str) -> dict[str, Any]:
    indices = sorted({int(m.group(2)) for k in shapes if (m := _BLOCK.match(k)) and m.group(1) == name})
    if not indices or indices != list(range(len(indices))):
        raise CheckpointError(f"{source} is not a StableSyncNet checkpoint: no consecutive {name}.down_blocks")
    widths, attn, has_down = [], [], []
    for i in indices:
        prefix = f"{name}.down_blocks.{i}."
        if f"{prefix}attn.to_q.weight" in shapes:
            if not attn:
                raise CheckpointError(f"{source}: {name} starts with an attention block, which no SyncNet has")
            attn[-1] = 1
            continue
        widths.append(_shape(shapes, f"{prefix}conv1.weight", source)[0])
        attn.append(0)
        has_down.append(f"{prefix}downsample_conv.weight" in shapes)
    return {
        "in_channels": _shape(shapes, f"{name}.conv_in.weight", source)[1],
        "block_out_channels": widths,
        "attn_blocks": attn,
        "dropout": 0.0,
        "_has_downsample": has_down,
    }


def infer_config(shapes: Mapping[str, Sequence[int]], source: str = "state dict") -> dict[str, Any]:
    """The model config of a StableSyncNet state dict, given its tensor shapes."""
    audio = _encoder_layout(shapes, "audio_encoder", source)
    visual = _encoder_layout(shapes, "visual_encoder", source)
    family = (len(audio["block_out_channels"]), len(visual["block_out_channels"]), visual["in_channels"])
    if family not in _STRIDE_FAMILIES:
        known = ", ".join(f"{a} audio / {v} visual blocks with {c} input channels ({what})"
                          for (a, v, c), (_, _, what) in _STRIDE_FAMILIES.items())
        raise CheckpointError(
            f"{source}: a SyncNet with {family[0]} audio and {family[1]} visual blocks and {family[2]} input "
            f"channels is not an official layout (known: {known}); its down-sampling strides are not stored in "
            "the weights, so pass its config explicitly")
    audio_strides, visual_strides, _ = _STRIDE_FAMILIES[family]
    for encoder, strides in ((audio, audio_strides), (visual, visual_strides)):
        expected = [s != 1 for s in strides]
        if encoder.pop("_has_downsample") != expected:
            raise CheckpointError(f"{source}: the down-sampling layers do not follow the official layout "
                                  f"for this depth; pass the SyncNet config explicitly")
        encoder["downsample_factors"] = [list(s) if isinstance(s, list) else s for s in strides]
    return {"audio_encoder": audio, "visual_encoder": visual}


def _output_size(size: tuple[int, int], strides: Sequence[Any]) -> tuple[int, int]:
    height, width = size
    for stride in strides:
        sh, sw = (stride if isinstance(stride, (list, tuple)) else (stride, stride))
        # A strided axis is padded by one at the end, an unstrided one keeps its size (model.py).
        height = height if sh == 1 else (height + 1 - 3) // sh + 1
        width = width if sw == 1 else (width + 1 - 3) // sw + 1
        if height < 1 or width < 1:
            return (0, 0)
    return height, width


def face_resolution(config: Mapping[str, Any]) -> int | None:
    """The square face size whose lower half ([R/2, R]) this SyncNet reduces to one embedding (256 official)."""
    strides = config["visual_encoder"]["downsample_factors"]
    for resolution in (32, 64, 128, 256, 512, 1024):
        if _output_size((resolution // 2, resolution), strides) == (1, 1):
            return resolution
    return None


def frames_per_window(config: Mapping[str, Any]) -> int:
    """Video frames one SyncNet window covers (pixel models stack 3 channels per frame)."""
    channels = int(config["visual_encoder"]["in_channels"])
    return channels // 4 if channels == 64 else channels // 3


def mel_window_frames(num_frames: int, fps: float = 25.0, mel_per_second: float = 80.0) -> int:
    """Mel frames matching `num_frames` video frames (52 for 16 at 25 fps, as the official datasets cut)."""
    return math.ceil(Fraction(num_frames) / Fraction(fps).limit_denominator(100000) * Fraction(mel_per_second))
