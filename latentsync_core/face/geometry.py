"""LatentSync's crop geometry: the three-point template, the crop box, and the similarity fit.

Facts of the official geometry (``latentsync/utils/affine_transform.py``), restated:

* for a model resolution ``R`` the scale is ``ratio = R / 256 * 2.8``; the template points are
  (17, 20), (58, 20), (37.5, 40) times ``ratio`` (left brow, right brow, nose centre), and the crop box is
  ``(floor(75 * ratio), floor(100 * ratio))`` pixels (w, h), 210x280 at 256;
* the affine maps frame pixels to crop-box pixels: a similarity (uniform scale, rotation, translation)
  fitted Umeyama-style on the mean-centred points, each set divided by its own standard deviation
  (unbiased, over all six coordinates), rotation from the SVD of the 2x2 covariance, reflection removed;
* with smoothing, the translation gets a bias added: template nose minus landmark nose in those
  normalised coordinates, blended ``0.8 * current + 0.2 * previous`` from frame to frame.
"""
from __future__ import annotations

import numpy as np

TEMPLATE_256 = np.array([[17.0, 20.0], [58.0, 20.0], [37.5, 40.0]])
CROP_256 = (75.0, 100.0)
BIAS_KEEP = 0.2  # weight of the previous frame's bias


def template_ratio(resolution: int) -> float:
    return resolution / 256 * 2.8


def crop_size(resolution: int) -> tuple[int, int]:
    """``(width, height)`` of the crop box for model resolution ``resolution`` (210x280 at 256)."""
    ratio = template_ratio(resolution)
    return int(CROP_256[0] * ratio), int(CROP_256[1] * ratio)


def face_template(resolution: int) -> np.ndarray:
    return TEMPLATE_256 * template_ratio(resolution)


def _normalised(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centre = points.mean(axis=-2, keepdims=True)
    centred = points - centre
    flat = centred.reshape(*centred.shape[:-2], -1)
    spread = flat.std(axis=-1, ddof=1)[..., None, None]
    return centred, centre, spread


def fit_similarity(points: np.ndarray, template: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Similarity transforms taking each ``points[i]`` ``[3, 2]`` onto ``template`` ``[3, 2]``.

    Returns ``(matrices [N, 2, 3], nose_bias [N, 2], ok [N] bool)``; ``ok`` is False where the points
    are not finite or coincide (no transform exists), and those matrices are NaN.
    """
    points = np.asarray(points, dtype=np.float64)
    n = points.shape[0]
    ok = np.isfinite(points).all(axis=(1, 2))
    safe = np.where(ok[:, None, None], points, template[None])
    p1, c1, s1 = _normalised(safe)
    p2, c2, s2 = _normalised(template[None])
    ok &= s1[:, 0, 0] > 1e-6
    s1 = np.where(s1 > 1e-6, s1, 1.0)
    n1, n2 = p1 / s1, p2 / s2
    covariance = np.einsum("nki,nkj->nij", n1, np.broadcast_to(n2, n1.shape))
    u, _, vh = np.linalg.svd(covariance)
    v = np.swapaxes(vh, -1, -2)
    rotation = v @ np.swapaxes(u, -1, -2)
    flip = np.linalg.det(rotation) < 0
    v[flip, :, -1] *= -1
    rotation = v @ np.swapaxes(u, -1, -2)
    scaled = (s2 / s1) * rotation
    translation = c2[..., 0, :] - np.einsum("nij,nj->ni", scaled, c1[:, 0, :])
    matrices = np.concatenate([scaled, translation[..., None]], axis=-1)
    bias = n2[:, 2, :] - n1[:, 2, :]
    matrices[~ok] = np.nan
    bias[~ok] = np.nan
    return matrices.reshape(n, 2, 3), bias, ok


class AffineTracker:
    """Frame-to-crop affines for a stream of point sets, carrying the official bias smoothing state.

    A frame without a face (NaN points) gets a NaN affine and resets the smoothing, so the bias of a
    face before a gap or a cut does not leak into the next one.
    """

    def __init__(self, resolution: int, smooth: bool = True):
        self.resolution = int(resolution)
        self.smooth = bool(smooth)
        self.template = face_template(self.resolution)
        self._previous_bias: np.ndarray | None = None

    def reset(self) -> None:
        self._previous_bias = None

    def __call__(self, points: np.ndarray) -> np.ndarray:
        matrices, bias, ok = fit_similarity(points, self.template)
        if self.smooth:
            for i in range(len(matrices)):
                if not ok[i]:
                    self._previous_bias = None
                    continue
                current = bias[i]
                if self._previous_bias is not None:
                    current = self._previous_bias * BIAS_KEEP + current * (1 - BIAS_KEEP)
                self._previous_bias = current
                matrices[i, :, 2] += current
        return matrices.astype(np.float32)


def invert_affines(affines: np.ndarray) -> np.ndarray:
    """Inverse of each ``[2, 3]`` affine (float64)."""
    affines = np.asarray(affines, dtype=np.float64)
    linear = affines[..., :2]
    inverse_linear = np.linalg.inv(linear)
    translation = -np.einsum("...ij,...j->...i", inverse_linear, affines[..., 2])
    return np.concatenate([inverse_linear, translation[..., None]], axis=-1)


def valid_affines(affines: np.ndarray) -> np.ndarray:
    """``[N]`` bool: affines that are finite and invertible."""
    affines = np.asarray(affines, dtype=np.float64)
    finite = np.isfinite(affines).all(axis=(-2, -1))
    det = np.where(finite, np.linalg.det(np.where(finite[..., None, None], affines[..., :2], 1.0)), 0.0)
    return finite & (np.abs(det) > 1e-9)
