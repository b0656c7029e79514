"""insightface ``2d106det.onnx`` landmarks on onnxruntime, without the insightface package.

As insightface runs it: a 192 x 192 crop centred on the face box, scaled so that 1.5 x the box's
longer side fills it (no rotation; OpenCV bilinear warp, black border); the blob is the crop with
its channels reversed and no mean/scale (the model normalises inside its graph, which is why
insightface reports mean 0 / std 1 for it); the output ``[1, 212]`` is 106 (x, y) pairs in
``[-1, 1]`` that map to crop pixels by ``(v + 1) * 96``, then back to frame pixels through the
inverse of the crop transform.
"""
from __future__ import annotations

import cv2
import numpy as np

from .scrfd import to_blob

CROP = 192
BOX_MARGIN = 1.5
INPUT_MEAN, INPUT_STD = 0.0, 1.0
NUM_POINTS = 106


def crop_transform(box: np.ndarray, size: int = CROP) -> np.ndarray:
    """The ``[2, 3]`` affine matrix taking frame pixels into the landmark model's crop."""
    box = np.asarray(box, dtype=np.float64)
    w, h = box[2] - box[0], box[3] - box[1]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    scale = size / (max(w, h) * BOX_MARGIN)
    return np.array([[scale, 0.0, size / 2 - cx * scale], [0.0, scale, size / 2 - cy * scale]])


def crop_to_frame(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Crop-pixel points ``[n, 2]`` -> frame pixels through the inverse of ``matrix``."""
    inverse = cv2.invertAffineTransform(np.asarray(matrix, np.float64))
    pts = np.asarray(points, np.float64)
    return (np.hstack([pts, np.ones((len(pts), 1))]) @ inverse.T).astype(np.float32)


def decode_landmarks(raw: np.ndarray, matrix: np.ndarray, size: int = CROP) -> np.ndarray:
    """Raw model output (``[1, 212]`` or ``[212]``) -> ``[106, 2]`` frame pixels."""
    pred = np.asarray(raw, np.float32).reshape(-1)
    if pred.size < NUM_POINTS * 2:
        raise ValueError(f"the 106-point landmark model should output {NUM_POINTS * 2} values, got {pred.size}")
    pred = pred[-NUM_POINTS * 2:].reshape(NUM_POINTS, 2)
    pred = (pred + 1) * (size // 2)
    return crop_to_frame(pred, matrix)


class Landmark106:
    """``2d106det.onnx`` on an onnxruntime session; `get` places 106 points inside a face box."""

    def __init__(self, session):
        self.session = session
        cfg = session.get_inputs()[0]
        self.input_name = cfg.name
        self.output_names = [o.name for o in session.get_outputs()]
        size = cfg.shape[2]
        self.size = int(size) if isinstance(size, int) else CROP

    def get(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        matrix = crop_transform(box, self.size)
        crop = cv2.warpAffine(frame, matrix, (self.size, self.size), borderValue=0.0)
        raw = self.session.run(self.output_names, {self.input_name: to_blob(crop, INPUT_MEAN, INPUT_STD)})[0]
        return decode_landmarks(raw[0], matrix, self.size)
