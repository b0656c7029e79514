"""The mouth mask: which pixels of the R x R face crop the model regenerates.

Reproduces the official fixed mask (``latentsync/utils/mask.png``, 256 x 256, 0 = regenerate) pixel
for pixel without shipping the image. Its geometry, measured on the file:

* a band across the face, rows 95..127, columns 9..246, minus a notch at columns 78..177 that keeps
  the nose;
* below it a hand-drawn bowl, rows 128..242: each row one run of columns, starting at 9..247 and
  narrowing towards the chin. The bowl is slightly lopsided (its lowest rows sit right of centre), so
  it is stored as the step by which each row's left edge moves right and its right edge moves left
  compared with the row above (`_LEFT_STEPS`, `_RIGHT_STEPS`), not as an ellipse.

Other resolutions are made as the official makes them: the 256 x 256 image resized with OpenCV's
Lanczos-4 on uint8 (so values saturate at 0 and 255), then divided by 255.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..errors import FaceError

SHAPES = ("bowl", "jaw")
BASE = 256
BAND_TOP, BAND_LEFT, BAND_RIGHT = 95, 9, 246          # rows 95..127, columns 9..246 (inclusive)
NOTCH_LEFT, NOTCH_RIGHT = 78, 177                     # kept columns of the nose notch (inclusive)
BOWL_TOP, BOWL_LEFT, BOWL_RIGHT = 128, 9, 247         # first bowl row and its columns (inclusive)
# Row r + 1 of the bowl starts _LEFT_STEPS[r - 128] columns further right and ends _RIGHT_STEPS[r - 128]
# columns further left than row r ("N" = 23: the last row is a short stroke at the bottom).
_LEFT_STEPS = ("0000000100000000000001000000000000010000001010101011010110101111011111111011111121112112"
               "1221212222222222232332454N")
_RIGHT_STEPS = ("0000001000000000000010000000000000100000010101010110110110110110110111110111111111111121"
                "12112121221222232322322444")


def _steps(code: str) -> np.ndarray:
    return np.array([23 if ch == "N" else int(ch) for ch in code], dtype=np.int64)


def bowl_extents() -> np.ndarray:
    """``[115, 3]`` rows of (row, first column, last column) of the bowl, rows 128..242."""
    left = BOWL_LEFT + np.concatenate([[0], np.cumsum(_steps(_LEFT_STEPS))])
    right = BOWL_RIGHT - np.concatenate([[0], np.cumsum(_steps(_RIGHT_STEPS))])
    rows = BOWL_TOP + np.arange(len(left))
    return np.stack([rows, left, right], axis=-1)


def official_mask_image(shape: str = "bowl") -> np.ndarray:
    """uint8 ``[256, 256]`` in the official image's convention: 255 = keep, 0 = regenerate."""
    image = np.full((BASE, BASE), 255, np.uint8)
    if shape == "bowl":
        image[BAND_TOP:BOWL_TOP, BAND_LEFT:BAND_RIGHT + 1] = 0
        image[BAND_TOP:BOWL_TOP, NOTCH_LEFT:NOTCH_RIGHT + 1] = 255
    for row, first, last in bowl_extents():
        image[row, first:last + 1] = 0
    return image


def _feathered(mask: torch.Tensor, feather: float) -> torch.Tensor:
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
    return image[0, 0]


def mouth_mask(resolution: int, shape: str = "bowl", feather: float = 0.0) -> torch.Tensor:
    """Float ``[R, R]`` mask, 1 where the model regenerates the face, 0 where the crop is kept.

    ``shape``: ``bowl`` (the official mask, equal to ``1 - mask.png`` resized as the official does) or
    ``jaw`` (the same without the band beside the nose: only rows from the bowl's top down).
    ``feather``: width in pixels of a soft edge (Gaussian, sigma = feather / 2); 0 = the official edge.
    """
    if shape not in SHAPES:
        raise FaceError(f"mouth mask shape must be one of {', '.join(SHAPES)}, got {shape!r}")
    if int(resolution) < 8:
        raise FaceError(f"mouth mask resolution must be at least 8, got {resolution}")
    if feather < 0:
        raise FaceError(f"mouth mask feather must be >= 0 pixels, got {feather}")
    r = int(resolution)
    image = official_mask_image(shape)
    if r != BASE:
        image = cv2.resize(image, (r, r), interpolation=cv2.INTER_LANCZOS4)
    mask = torch.from_numpy(1.0 - image.astype(np.float32) / 255.0)
    if feather > 0:
        mask = _feathered(mask, float(feather))
    return mask.clamp_(0.0, 1.0)
