"""Face detector backends behind one interface (`FaceDetector`); `get_detector` builds one by name."""
from __future__ import annotations

import importlib.util
import logging

from ...errors import FaceError
from .base import Detection, FaceDetector

DETECTORS = ("auto", "bundled", "insightface")
log = logging.getLogger("latentsync")

FALLBACK_NOTE = ("the bundled dlib detector runs: its alignment points are mapped from dlib's 68 landmarks "
                 "and only approximate the official insightface geometry the model was trained on")


def resolve_detector(name: str) -> str:
    """``auto`` -> ``insightface`` when the buffalo_l pack and onnxruntime are present, else ``bundled``."""
    if name != "auto":
        return name
    from .insightface_backend import find_pack

    if find_pack() is not None and _has_onnxruntime():
        return "insightface"
    return "bundled"


def _has_onnxruntime() -> bool:
    try:
        return importlib.util.find_spec("onnxruntime") is not None
    except (ImportError, ValueError):  # a module entry of None (blocked) or a broken install
        return False


def get_detector(name: str = "auto", device: str | None = None, **options) -> FaceDetector:
    """``auto`` (default): the official insightface buffalo_l detector when its pack and onnxruntime are
    installed, else the bundled one (logged, with a note that its geometry is an approximation).
    ``bundled``: dlib, offline, CPU. ``insightface``: buffalo_l on onnxruntime, CUDA or CPU.

    Options go to the backend: ``min_face`` / ``score_threshold`` (bundled); ``det_size``,
    ``threshold``, ``tracking`` (insightface). Options of the other backend are ignored under ``auto``.
    """
    if name not in DETECTORS:
        raise FaceError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
    chosen = resolve_detector(name)
    if name == "auto":
        from .insightface_backend import PACK_NAME, find_pack

        keys = ("min_face", "score_threshold") if chosen == "bundled" else ("det_size", "threshold", "tracking")
        options = {k: v for k, v in options.items() if k in keys}
        if chosen == "insightface":
            log.info("face detector (auto): insightface %s from %s, the official detector", PACK_NAME, find_pack())
        else:
            log.info("face detector (auto): insightface %s or onnxruntime not found; %s", PACK_NAME, FALLBACK_NOTE)
    if chosen == "bundled":
        from .bundled import BundledDetector

        return BundledDetector(**options)
    from .insightface_backend import InsightFaceDetector

    return InsightFaceDetector(device=device, **options)


__all__ = ["DETECTORS", "Detection", "FaceDetector", "get_detector", "resolve_detector"]
