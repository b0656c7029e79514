"""Face detector backends behind one interface (`FaceDetector`); `get_detector` builds one by name."""
from __future__ import annotations

from ...errors import FaceError
from .base import Detection, FaceDetector

DETECTORS = ("bundled", "insightface")


def get_detector(name: str = "bundled", device: str | None = None, **options) -> FaceDetector:
    """``bundled`` (dlib, offline, CPU) or ``insightface`` (official buffalo_l pack, CUDA or CPU).

    Options go to the backend: ``min_face`` / ``score_threshold`` (bundled), ``det_size`` (insightface).
    """
    if name == "bundled":
        from .bundled import BundledDetector

        return BundledDetector(**options)
    if name == "insightface":
        from .insightface_backend import InsightFaceDetector

        return InsightFaceDetector(device=device, **options)
    raise FaceError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")


__all__ = ["DETECTORS", "Detection", "FaceDetector", "get_detector"]
