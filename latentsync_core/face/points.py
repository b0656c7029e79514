"""Landmark sets -> the three alignment points LatentSync's geometry is defined on.

The official pipeline reduces insightface's 106 landmarks to three points, in this order:

0. the eyebrow on the image's left (the subject's right eyebrow), its centre;
1. the eyebrow on the image's right, its centre;
2. the centre of the nose.

Every backend maps its own landmark set onto the same three semantic points, so the alignment
template (``align.face_template``) works unchanged whatever the detector.
"""
from __future__ import annotations

import numpy as np

# insightface 2d106det, as the official `image_processor.py` uses it.
INSIGHTFACE_106_LEFT_BROW = (43, 48, 49, 51, 50)
INSIGHTFACE_106_RIGHT_BROW = (101, 102, 103, 104, 105)
INSIGHTFACE_106_NOSE = (74, 77, 83, 86)

# iBUG 300-W 68-point layout (dlib's shape_predictor_68_face_landmarks), 0-based.
IBUG_68_LEFT_BROW = (17, 18, 19, 20, 21)
IBUG_68_RIGHT_BROW = (22, 23, 24, 25, 26)
IBUG_68_NOSE = (29, 30, 31, 35)


def _three_points(landmarks: np.ndarray, left: tuple, right: tuple, nose: tuple, count: int) -> np.ndarray:
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape[-2:] != (count, 2):
        raise ValueError(f"expected landmarks shaped [..., {count}, 2], got {landmarks.shape}")
    return np.stack(
        [landmarks[..., list(left), :].mean(-2), landmarks[..., list(right), :].mean(-2),
         landmarks[..., list(nose), :].mean(-2)],
        axis=-2,
    ).astype(np.float32)


def points_from_insightface_106(landmarks: np.ndarray) -> np.ndarray:
    """``[..., 106, 2]`` -> ``[..., 3, 2]`` exactly as the official: the means of points
    43, 48, 49, 51, 50 (left eyebrow), 101-105 (right eyebrow) and 74, 77, 83, 86 (nose: a point low on
    the bridge, the two alae and the tip). The official also rounds the landmarks and the means to
    integers; that quantisation is left to the caller (``round_points`` in tracking)."""
    return _three_points(landmarks, INSIGHTFACE_106_LEFT_BROW, INSIGHTFACE_106_RIGHT_BROW,
                         INSIGHTFACE_106_NOSE, 106)


def official_points_106(landmarks: np.ndarray) -> np.ndarray:
    """``[106, 2]`` -> ``[3, 2]`` with the official quantisation (``face_detector.py`` then
    ``image_processor.py``): the landmarks are rounded to whole pixels first (``np.round``: halves to
    even), the three means are taken over those integers, and the means are rounded again. Both
    roundings move the crop by up to half a pixel, and the model was trained on crops made this way."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (106, 2):
        raise ValueError(f"expected insightface landmarks shaped [106, 2], got {landmarks.shape}")
    return np.round(points_from_insightface_106(np.round(landmarks)).astype(np.float64)).astype(np.float32)


def points_from_ibug_68(landmarks: np.ndarray) -> np.ndarray:
    """``[..., 68, 2]`` -> ``[..., 3, 2]`` for the 68-point iBUG layout (dlib, the bundled backend).

    Mapping, chosen point-for-point by meaning since insightface is not available to calibrate against:

    * left eyebrow centre = mean of 17-21, the five points of the image-left eyebrow. The official's
      five 106-points (43, 48, 49, 51, 50) are the ones insightface's own 106->68 adapter order
      (``LMK_ADAPT_ORIGIN_ORDER`` in the official ``face_detector.py``) puts in these five slots;
    * right eyebrow centre = mean of 22-26, likewise matched to 102, 103, 104, 105, 101;
    * nose centre = mean of 29 (lowest bridge point above the tip; the official's 74), 30 (tip; 86),
      31 and 35 (outer ends of the nostril base, the nearest 68-points to the alae 77 and 83).

    Both eyebrow sets cover the whole brow, so the eyebrow centres agree in meaning; the nose centre is
    the average of the same four anatomical spots. A residual offset between the two detectors'
    annotation conventions moves the crop slightly; it has not been measured (no insightface weights).
    """
    return _three_points(landmarks, IBUG_68_LEFT_BROW, IBUG_68_RIGHT_BROW, IBUG_68_NOSE, 68)
