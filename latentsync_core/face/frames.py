"""Normalise the frame batches the face code accepts into one layout: uint8 RGB ``[N, H, W, 3]`` numpy."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import FaceError


# Float frames are converted this many at a time: a float chunk of 32 1080p frames converted at once
# would make ~0.8 GB of float temporaries.
CONVERT_SLICE = 4


def _float_to_uint8(frames: np.ndarray) -> np.ndarray:
    out = np.empty(frames.shape, np.uint8)
    for start in range(0, len(frames), CONVERT_SLICE):
        part = frames[start:start + CONVERT_SLICE]
        out[start:start + len(part)] = np.clip(np.rint(part * 255.0), 0, 255)
    return out


def as_rgb_uint8(frames, what: str = "frames") -> np.ndarray:
    """``frames`` as a uint8 RGB ``[N, H, W, 3]`` array, without copying when it already is one.

    Accepted: numpy arrays or torch tensors shaped ``[N, H, W]`` (grayscale), ``[N, H, W, 1]``,
    ``[N, H, W, 3]`` (RGB) or ``[N, H, W, 4]`` (RGBA: alpha is dropped, the face code never reads it),
    of dtype uint8, or floating point in 0..1 (ComfyUI's IMAGE convention; rounded to 0..255).
    """
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4):
        raise FaceError(
            f"{what} must be a batch shaped [N, H, W, C] with C = 1, 3 or 4 (or [N, H, W] grayscale), "
            f"got shape {tuple(frames.shape)}; add a batch axis for a single image"
        )
    if frames.shape[1] < 2 or frames.shape[2] < 2:
        raise FaceError(f"{what} are {frames.shape[2]}x{frames.shape[1]} pixels; at least 2x2 is needed")
    if frames.dtype != np.uint8:
        if np.issubdtype(frames.dtype, np.floating):
            frames = _float_to_uint8(frames)
        elif np.issubdtype(frames.dtype, np.integer) or frames.dtype == np.bool_:
            frames = np.clip(frames, 0, 255).astype(np.uint8)
        else:
            raise FaceError(f"{what} must be uint8 (0..255) or float (0..1), got dtype {frames.dtype}")
    channels = frames.shape[-1]
    if channels == 1:
        frames = np.repeat(frames, 3, axis=-1)
    elif channels == 4:
        frames = frames[..., :3]
    return np.ascontiguousarray(frames)
