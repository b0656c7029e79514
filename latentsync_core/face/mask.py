"""The mouth mask: which pixels of the R x R face crop the model regenerates.

Drawn procedurally (no image file) after the shape of the official fixed mask at 256 x 256: a
rectangle across the face from row 95 down to the ellipse centre (row 139), then the lower half of an
ellipse (centre x 128, semi-axes 119.5 x 104) down to row 243, spanning columns 9..247; minus a notch
at columns 78..177 above row 128 that keeps the nose. That covers 40.7 % of the crop, like the
official. Everything is in fractions of R, so any resolution gets the same shape.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import FaceError

SHAPES = ("bowl", "jaw")
_REF = 256.0
TOP, ELLIPSE_CY, BOTTOM = 95 / _REF, 139 / _REF, 243 / _REF
CENTER_X, HALF_WIDTH = 128 / _REF, 119.5 / _REF
NOTCH_LEFT, NOTCH_RIGHT, NOTCH_BOTTOM = 78 / _REF, 178 / _REF, 128 / _REF
SUPERSAMPLE = 4  # per axis, for anti-aliased edges


def _inside(u: np.ndarray, v: np.ndarray, shape: str) -> np.ndarray:
    top = TOP if shape == "bowl" else NOTCH_BOTTOM
    dx = (u - CENTER_X) / HALF_WIDTH
    dy = np.maximum(v - ELLIPSE_CY, 0.0) / (BOTTOM - ELLIPSE_CY)
    region = (v >= top) & (dx * dx + dy * dy <= 1.0)
    if shape == "bowl":
        region &= ~((v < NOTCH_BOTTOM) & (u >= NOTCH_LEFT) & (u < NOTCH_RIGHT))
    return region


def mouth_mask(resolution: int, shape: str = "bowl", feather: float = 0.0) -> torch.Tensor:
    """Float ``[R, R]`` mask, 1 where the model regenerates the face, 0 where the crop is kept.

    ``shape``: ``bowl`` (official shape: lower face with the nose kept by a notch) or ``jaw`` (only below
    the nose line: no notch, starts at the notch's bottom). ``feather``: width in pixels of a soft
    edge (Gaussian, sigma = feather / 2); 0 gives a hard edge with anti-aliased boundary pixels.
    The official mask image has the opposite convention (1 = keep): that is ``1 - mouth_mask(...)``.
    """
    if shape not in SHAPES:
        raise FaceError(f"mouth mask shape must be one of {', '.join(SHAPES)}, got {shape!r}")
    if int(resolution) < 8:
        raise FaceError(f"mouth mask resolution must be at least 8, got {resolution}")
    if feather < 0:
        raise FaceError(f"mouth mask feather must be >= 0 pixels, got {feather}")
    r = int(resolution)
    samples = (np.arange(r * SUPERSAMPLE) + 0.5) / (r * SUPERSAMPLE)
    v, u = np.meshgrid(samples, samples, indexing="ij")
    mask = _inside(u, v, shape).reshape(r, SUPERSAMPLE, r, SUPERSAMPLE).mean(axis=(1, 3))
    mask = torch.from_numpy(mask.astype(np.float32))
    if feather > 0:
        sigma = feather / 2
        half = max(int(np.ceil(3 * sigma)), 1)
        x = torch.arange(-half, half + 1, dtype=torch.float32)
        kernel = torch.exp(-x * x / (2 * sigma * sigma))
        kernel = kernel / kernel.sum()
        image = mask[None, None]
        image = torch.nn.functional.conv2d(torch.nn.functional.pad(image, (half, half, 0, 0), mode="replicate"),
                                           kernel.view(1, 1, 1, -1))
        image = torch.nn.functional.conv2d(torch.nn.functional.pad(image, (0, 0, half, half), mode="replicate"),
                                           kernel.view(1, 1, -1, 1))
        mask = image[0, 0]
    return mask.clamp_(0.0, 1.0)
