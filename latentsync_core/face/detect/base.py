"""The interface every face detector backend implements.

A backend does three things on uint8 RGB frames: find face boxes in a whole frame (`detect`), find
them again cheaply near a known position (`detect_near`), and place its landmarks inside a given box
(`landmarks`), which is what tracking between detections runs on. `points` turns its landmarks into
the three alignment points (see `latentsync_core.face.points`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass
class Detection:
    """One face found in a frame: box ``[x1, y1, x2, y2]`` in frame pixels and a confidence score."""

    box: np.ndarray
    score: float

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])


def expand_box(box: np.ndarray, factor: float, frame_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """Integer region ``(x1, y1, x2, y2)`` of ``box`` grown ``factor`` times around its centre, clipped."""
    h, w = frame_hw
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half_w, half_h = (box[2] - box[0]) * factor / 2, (box[3] - box[1]) * factor / 2
    x1, y1 = max(int(np.floor(cx - half_w)), 0), max(int(np.floor(cy - half_h)), 0)
    x2, y2 = min(int(np.ceil(cx + half_w)), w), min(int(np.ceil(cy + half_h)), h)
    return x1, y1, x2, y2


class FaceDetector(ABC):
    """A face detector + landmark model. Frames are uint8 RGB ``[H, W, 3]``."""

    name: str = "?"
    #: Number of landmarks `landmarks` returns.
    num_landmarks: int = 0
    #: True when each scheduled detection should choose the face afresh from a whole-frame detection (the
    #: official insightface use: largest face per frame) instead of following the face tracked so far.
    repick_each_detection: bool = False

    @abstractmethod
    def detect(self, frame: np.ndarray) -> list[Detection]:
        """All faces in the whole frame that pass the backend's size and score filters."""

    @abstractmethod
    def landmarks(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """``[num_landmarks, 2]`` landmark positions (frame pixels) of the face in ``box``."""

    @abstractmethod
    def points(self, landmarks: np.ndarray) -> np.ndarray:
        """The three alignment points ``[3, 2]`` (left brow, right brow, nose centre) from `landmarks`."""

    def detect_near(self, frame: np.ndarray, box: np.ndarray, search: float = 2.0) -> list[Detection]:
        """Faces inside ``box`` grown ``search`` times: a cheap re-detection while tracking a face."""
        x1, y1, x2, y2 = expand_box(box, search, frame.shape[:2])
        if x2 - x1 < 2 or y2 - y1 < 2:
            return []
        found = self.detect(np.ascontiguousarray(frame[y1:y2, x1:x2]))
        offset = np.array([x1, y1, x1, y1], dtype=np.float32)
        return [Detection(d.box + offset, d.score) for d in found]
