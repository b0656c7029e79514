"""Scene-cut detection on a frame stream: an adaptive content-difference detector in numpy + OpenCV colour maths.

The official pipeline runs PySceneDetect's adaptive detector (`detect-adaptive --threshold 2`). We do
the same computation here rather than depend on the `scenedetect` package: it requires the
`opencv-python` distribution, so in a ComfyUI environment that has `opencv-python-headless` or
`opencv-contrib-python` pip would install a second, conflicting cv2; it also decodes the video itself,
while here the frames we already decode (PyAV) are reused.

Per frame, the content score is the mean absolute change of hue, saturation and value from the previous
frame (on a small copy). A cut is placed before frame i when its score is at least `threshold` times the
average score of the `window` frames on each side, at least `min_content` in absolute terms, and the
previous cut is at least `min_scene_frames` back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np

ANALYSIS_WIDTH = 160  # content scores of a 160 px wide copy: cuts are large changes, fine detail is noise


@dataclass(frozen=True)
class SceneOptions:
    threshold: float = 2.0       # adaptive ratio (the official `--threshold 2`)
    min_content: float = 15.0    # absolute floor of the content score (PySceneDetect's default)
    window: int = 2              # frames on each side averaged for the ratio
    min_scene_frames: int = 15   # no two cuts closer than this


def _hsv_small(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    if width > ANALYSIS_WIDTH:
        frame = cv2.resize(frame, (ANALYSIS_WIDTH, max(1, round(height * ANALYSIS_WIDTH / width))),
                           interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2HSV).astype(np.int16)


class ContentScorer:
    """Streams frames (uint8 RGB [H, W, 3] or chunks [n, H, W, 3]) into per-frame content scores."""

    def __init__(self):
        self.previous: np.ndarray | None = None
        self.scores: list[float] = []

    def feed(self, frames: np.ndarray) -> None:
        frames = frames[None] if frames.ndim == 3 else frames
        for frame in frames:
            hsv = _hsv_small(frame)
            if self.previous is None or self.previous.shape != hsv.shape:
                self.scores.append(0.0)
            else:
                # Hue is circular (OpenCV: 0..179): a change of 170 is really 10.
                delta = np.abs(hsv - self.previous)
                delta[..., 0] = np.minimum(delta[..., 0], 180 - delta[..., 0])
                self.scores.append(float(delta.reshape(-1, 3).mean(axis=0).mean()))
            self.previous = hsv


def cuts_from_scores(scores: Iterable[float], options: SceneOptions = SceneOptions()) -> list[int]:
    """Frame indices where a new scene starts (never 0), from per-frame content scores."""
    values = np.asarray(list(scores), dtype=np.float64)
    cuts: list[int] = []
    last = 0
    w = max(1, options.window)
    for i in range(1, len(values)):
        neighbours = np.concatenate([values[max(1, i - w):i], values[i + 1:i + 1 + w]])
        average = neighbours.mean() if len(neighbours) else 0.0
        ratio = values[i] / average if average > 0 else (np.inf if values[i] > 0 else 0.0)
        if ratio >= options.threshold and values[i] >= options.min_content and i - last >= options.min_scene_frames:
            cuts.append(i)
            last = i
    return cuts


def detect_scene_cuts(frames: Iterable[np.ndarray], options: SceneOptions = SceneOptions()) -> list[int]:
    """Scene starts (frame indices > 0) of a stream of frames or chunks."""
    scorer = ContentScorer()
    for item in frames:
        scorer.feed(np.asarray(item))
    return cuts_from_scores(scorer.scores, options)


def scene_spans(num_frames: int, cuts: Iterable[int]) -> list[tuple[int, int]]:
    """[(start, stop)] covering 0 .. num_frames split at `cuts`."""
    edges = [0, *sorted(c for c in set(cuts) if 0 < c < num_frames), num_frames]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]
