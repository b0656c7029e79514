"""The official detector: insightface's ``buffalo_l`` pack (SCRFD det_10g + 2d106det landmarks).

Optional: it needs the ``insightface`` and ``onnxruntime`` (or ``onnxruntime-gpu``) packages and the
model folder ``models/insightface/models/buffalo_l`` (the layout other ComfyUI packs use), which is
not downloaded automatically. Runs on CUDA when onnxruntime offers it, else on CPU (the official
refuses CPU; nothing in the models requires CUDA).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ... import host
from ...errors import FaceError, MissingModel, ModelMissingError
from ..points import points_from_insightface_106
from .base import Detection, FaceDetector

PACK_NAME = "buffalo_l"
PACK_FILES = ("det_10g.onnx", "2d106det.onnx")
PACK_URL = "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip"
INSTALL_HINT = "pip install insightface onnxruntime  (onnxruntime-gpu instead of onnxruntime for CUDA)"

# The official filter (face_detector.py): confident, not tiny, plausible aspect ratio.
MIN_SCORE = 0.5
MIN_WIDTH, MIN_HEIGHT = 50, 80
MIN_ASPECT, MAX_ASPECT = 0.2, 1.5
DETECT_SIZE = 512


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
    x1, y1, x2, y2 = box.astype(np.int64).tolist()
    w, h = x2 - x1, y2 - y1
    return score >= MIN_SCORE and w >= MIN_WIDTH and h >= MIN_HEIGHT and MIN_ASPECT <= w / h <= MAX_ASPECT


class InsightFaceDetector(FaceDetector):
    name = "insightface"
    num_landmarks = 106

    def __init__(self, device: str | None = None, det_size: int = DETECT_SIZE):
        try:
            import onnxruntime
            from insightface.app import FaceAnalysis
            from insightface.app.common import Face
        except ImportError as exc:
            raise FaceError(f"the insightface face detector needs its packages: {INSTALL_HINT} ({exc})") from exc
        root = find_pack()
        if root is None:
            raise missing_pack_error()
        device = str(device if device is not None else host.get_device())
        use_cuda = device.startswith("cuda") and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]
        self._face_cls = Face
        self._app = FaceAnalysis(name=PACK_NAME, root=str(root), providers=providers,
                                 allowed_modules=["detection", "landmark_2d_106"])
        device_index = int(device.split(":")[1]) if use_cuda and ":" in device else 0
        self._app.prepare(ctx_id=device_index if use_cuda else -1, det_size=(det_size, det_size))
        self._det = self._app.models["detection"]
        self._lmk = self._app.models["landmark_2d_106"]

    # The official feeds RGB frames to insightface (whose models were trained on BGR); so do we, so that
    # this backend reproduces the official detections.
    def detect(self, frame: np.ndarray) -> list[Detection]:
        boxes, _ = self._det.detect(np.ascontiguousarray(frame), max_num=0, metric="default")
        found = []
        for row in np.asarray(boxes).reshape(-1, 5):
            box, score = row[:4].astype(np.float32), float(row[4])
            if passes_official_filter(box, score):
                found.append(Detection(box, score))
        return found

    def landmarks(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        face = self._face_cls(bbox=np.asarray(box, dtype=np.float32), kps=None, det_score=1.0)
        return np.asarray(self._lmk.get(np.ascontiguousarray(frame), face), dtype=np.float32)

    def points(self, landmarks: np.ndarray) -> np.ndarray:
        return points_from_insightface_106(landmarks)
