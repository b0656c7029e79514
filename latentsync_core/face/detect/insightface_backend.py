"""The official detector: insightface's ``buffalo_l`` pack (SCRFD det_10g + 2d106det landmarks).

Runs the two ONNX files with our own pre/post-processing on onnxruntime (`scrfd`, `landmark106`);
the ``insightface`` package is not needed. Needs the ``onnxruntime`` package (``onnxruntime-gpu`` for
CUDA) and the model folder ``models/insightface/models/buffalo_l`` (the layout other ComfyUI packs
use), which is not downloaded automatically.

Official behaviour (``latentsync/utils/face_detector.py`` + ``image_processor.py``), the default:
every frame gets a whole-frame detection at 512 x 512 with detection threshold 0.5; boxes smaller than
50 x 80, with width/height outside 0.2..1.5 or scoring under 0.5 are dropped; the largest remaining
face is used; its 106 landmarks are rounded to whole pixels and the three alignment points are
rounded again (`points.official_points_106`). ``tracking=True`` is a speed option that departs from
this: re-detection only in a window around the last face.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ... import host
from ...errors import FaceError, MissingModel, ModelMissingError
from ..points import official_points_106
from .base import Detection, FaceDetector

PACK_NAME = "buffalo_l"
DETECTOR_FILE, LANDMARK_FILE = "det_10g.onnx", "2d106det.onnx"
PACK_FILES = (DETECTOR_FILE, LANDMARK_FILE)
PACK_URL = "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip"
INSTALL_HINT = "pip install onnxruntime  (or onnxruntime-gpu for CUDA; only one of the two)"

# The official settings (face_detector.py).
DETECT_SIZE = 512
DETECT_THRESHOLD = 0.5
MIN_SCORE = 0.5
MIN_WIDTH, MIN_HEIGHT = 50, 80
MIN_ASPECT, MAX_ASPECT = 0.2, 1.5


def find_pack() -> Path | None:
    """The insightface models root (the folder holding ``models/buffalo_l``) when the pack is complete."""
    for root in host.model_dirs("insightface"):
        if all((root / "models" / PACK_NAME / name).is_file() for name in PACK_FILES):
            return root
    return None


def missing_pack_error() -> ModelMissingError:
    expected = host.model_dirs("insightface")[0] / "models" / PACK_NAME
    return ModelMissingError([MissingModel(
        f"insightface {PACK_NAME} face pack ({', '.join(PACK_FILES)} are used)",
        expected,
        f"download {PACK_URL} and unzip it so that {expected / PACK_FILES[0]} exists",
    )])


def passes_official_filter(box: np.ndarray, score: float) -> bool:
    """The official's filter, on the box truncated to integers as it does."""
    x1, y1, x2, y2 = np.asarray(box).astype(np.int64).tolist()
    w, h = x2 - x1, y2 - y1
    if w < MIN_WIDTH or h < MIN_HEIGHT:
        return False
    return MIN_ASPECT <= w / h <= MAX_ASPECT and score >= MIN_SCORE


def official_size(box: np.ndarray) -> int:
    """The area the official compares to pick the largest face (integer box, as it does)."""
    x1, y1, x2, y2 = np.asarray(box).astype(np.int64).tolist()
    return (x2 - x1) * (y2 - y1)


def onnx_session(path: Path, device: str):
    try:
        import onnxruntime
    except ImportError as exc:
        raise FaceError(f"the insightface face detector needs onnxruntime: {INSTALL_HINT} ({exc})") from exc
    use_cuda = device.startswith("cuda") and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    providers = ["CPUExecutionProvider"]
    if use_cuda:
        index = int(device.split(":")[1]) if ":" in device else 0
        providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
        raise FaceError(f"cannot load {path}: {exc}. Re-download the {PACK_NAME} pack ({PACK_URL})") from exc


class InsightFaceDetector(FaceDetector):
    """buffalo_l on onnxruntime. ``tracking``: re-detect only near the last face (faster, not official)."""

    name = "insightface"
    num_landmarks = 106

    def __init__(self, device: str | None = None, det_size: int = DETECT_SIZE,
                 threshold: float = DETECT_THRESHOLD, tracking: bool = False, root: Path | str | None = None):
        from .landmark106 import Landmark106
        from .scrfd import SCRFD

        root = Path(root) if root is not None else find_pack()
        if root is None or not all((root / "models" / PACK_NAME / n).is_file() for n in PACK_FILES):
            raise missing_pack_error()
        folder = root / "models" / PACK_NAME
        device = str(device if device is not None else host.get_device())
        self.tracking = bool(tracking)
        self._scrfd = SCRFD(onnx_session(folder / DETECTOR_FILE, device), det_size, threshold)
        self._landmark = Landmark106(onnx_session(folder / LANDMARK_FILE, device))

    # The official feeds RGB frames to insightface (whose models were trained on BGR); so do we, so that
    # this backend reproduces the official detections.
    def detect(self, frame: np.ndarray) -> list[Detection]:
        dets, _ = self._scrfd.detect(np.ascontiguousarray(frame))
        return [Detection(row[:4].astype(np.float32), float(row[4]))
                for row in dets if passes_official_filter(row[:4], float(row[4]))]

    @property
    def repick_each_detection(self) -> bool:
        # Official: whole-frame detection and the largest face on every frame, not the one followed so far.
        return not self.tracking

    def detect_near(self, frame: np.ndarray, box: np.ndarray, search: float = 2.0) -> list[Detection]:
        if self.tracking:
            return super().detect_near(frame, box, search)
        # Official: a whole-frame detection on every frame; the caller keeps following its face.
        return self.detect(frame)

    def landmarks(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        return self._landmark.get(np.ascontiguousarray(frame), np.asarray(box, dtype=np.float32))

    def points(self, landmarks: np.ndarray) -> np.ndarray:
        return official_points_106(landmarks)
