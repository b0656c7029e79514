"""Detect and track one face through a video, chunk by chunk, with temporal smoothing.

Per frame the tracker yields the three alignment points, the face box and a valid flag. It runs the
detector every ``every_k`` frames (near the tracked face: a small, cheap search) and in between moves
the box with the landmarks of the previous frame (landmark tracking). A whole-frame detection runs at
the start, after a frame without a face, and at a cut (a jump in a coarse thumbnail of the frame).
Frames where no face is found are flagged, never fatal; only a video with no face at all is an error.
State is carried across `FaceTracker.process` calls, so a long video can stream through in chunks.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .. import host
from ..errors import FaceError
from .detect import FaceDetector, get_detector
from .detect.base import Detection
from .frames import as_rgb_uint8

log = logging.getLogger("latentsync")

# Mean absolute change (0..255) of a coarse frame thumbnail above which a frame counts as a cut.
CUT_THRESHOLD = 40.0
THUMB_CELLS = 24  # thumbnail samples along the long side


@dataclass
class FaceTrack:
    """Per-frame face data of a video (or a chunk of one).

    points: float32 ``[N, 3, 2]`` (left brow, right brow, nose centre; frame pixels), NaN without a face.
    boxes: float32 ``[N, 4]`` ``x1, y1, x2, y2``, NaN without a face. valid: bool ``[N]``.
    frame_size: ``(height, width)``.
    """

    points: np.ndarray
    boxes: np.ndarray
    valid: np.ndarray
    frame_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.valid)

    @property
    def missing(self) -> int:
        return int((~self.valid).sum())

    def summary(self) -> str:
        n = len(self)
        if self.missing == 0:
            return f"face found in all {n} frames"
        return (f"face found in {n - self.missing} of {n} frames; {self.missing} frames without a face "
                f"are left unchanged")

    @classmethod
    def empty(cls, frame_size: tuple[int, int] = (0, 0)) -> "FaceTrack":
        return cls(np.zeros((0, 3, 2), np.float32), np.zeros((0, 4), np.float32), np.zeros(0, bool), frame_size)

    @classmethod
    def concat(cls, tracks: list["FaceTrack"]) -> "FaceTrack":
        tracks = [t for t in tracks if len(t)]
        if not tracks:
            return cls.empty()
        sizes = {t.frame_size for t in tracks}
        if len(sizes) != 1:
            raise FaceError(f"cannot join face tracks of different frame sizes {sorted(sizes)}")
        return cls(np.concatenate([t.points for t in tracks]), np.concatenate([t.boxes for t in tracks]),
                   np.concatenate([t.valid for t in tracks]), tracks[0].frame_size)


@dataclass(frozen=True)
class FaceChoice:
    """Which face to follow when a frame has several.

    ``largest`` (default): the largest box. ``index``: the ``index``-th face counted left to right.
    ``nearest``: the face whose box centre is nearest ``point`` (x, y as fractions of width, height).
    The choice is made when a face is (re)acquired; afterwards the tracker follows that face, except with
    a detector whose ``repick_each_detection`` is set (insightface without tracking, as the official runs
    it), where every detection makes the choice again on the whole frame.
    """

    mode: str = "largest"
    index: int = 0
    point: tuple[float, float] = (0.5, 0.5)

    @classmethod
    def parse(cls, value) -> "FaceChoice":
        if isinstance(value, FaceChoice):
            return value
        if value is None or value == "largest":
            return cls()
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if value < 0:
                raise FaceError(f"face index must be >= 0, got {value}")
            return cls("index", index=int(value))
        if isinstance(value, (tuple, list)) and len(value) == 2:
            x, y = (float(v) for v in value)
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise FaceError(f"face point must be (x, y) fractions of the frame in 0..1, got {value}")
            return cls("nearest", point=(x, y))
        raise FaceError(f"face choice must be 'largest', a face index (0 = leftmost) or an (x, y) point "
                        f"in 0..1, got {value!r}")

    def pick(self, detections: list[Detection], frame_hw: tuple[int, int]) -> Detection | None:
        if not detections:
            return None
        if self.mode == "index":
            ordered = sorted(detections, key=lambda d: d.center[0])
            return ordered[self.index] if self.index < len(ordered) else None
        if self.mode == "nearest":
            target = np.array([self.point[0] * frame_hw[1], self.point[1] * frame_hw[0]])
            return min(detections, key=lambda d: float(np.hypot(*(d.center - target))))
        return max(detections, key=lambda d: d.area)


class OneEuroFilter:
    """Adaptive low-pass on point sets (Casiez et al., 2012): strong smoothing when still, little lag when
    moving. Time is in frames; speed is measured in face sizes per frame so the filter is scale-free.

    ``strength`` 0..1 sets the cut-off at rest from 0.5 (barely smoothing) down to 0.016 cycles/frame.
    """

    SPEED_CUTOFF = 0.16  # cycles/frame for the velocity estimate
    BETA = 10.0  # cut-off gain per (face size / frame) of speed

    def __init__(self, strength: float):
        if not 0.0 <= strength <= 1.0:
            raise FaceError(f"smoothing must be between 0 (off) and 1 (strongest), got {strength}")
        self.strength = float(strength)
        self.min_cutoff = 10 ** (-0.3 - 1.5 * self.strength)
        self.reset()

    def reset(self) -> None:
        self._value: np.ndarray | None = None
        self._velocity: np.ndarray | None = None

    @staticmethod
    def _alpha(cutoff: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        if self.strength == 0.0:
            return points
        points = points.astype(np.float64)
        if self._value is None:
            self._value, self._velocity = points, np.zeros_like(points)
            return points.astype(np.float32)
        # Velocity is low-passed with its sign, so landmark noise (which flips direction from frame to
        # frame) averages out while a real head movement builds up and opens the filter.
        a_speed = self._alpha(self.SPEED_CUTOFF)
        self._velocity = a_speed * (points - self._value) + (1 - a_speed) * self._velocity
        scale = max(float(np.linalg.norm(points[1] - points[0])), 1.0)
        speed = float(np.abs(self._velocity).max()) / scale
        alpha = self._alpha(self.min_cutoff + self.BETA * speed)
        self._value = alpha * points + (1 - alpha) * self._value
        return self._value.astype(np.float32)


def _thumbnail(frame: np.ndarray) -> np.ndarray:
    step = max(max(frame.shape[:2]) // THUMB_CELLS, 1)
    return frame[step // 2::step, step // 2::step].astype(np.int16)


def _landmark_box(landmarks: np.ndarray) -> np.ndarray:
    return np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)]).astype(np.float64)


@dataclass
class _TrackState:
    box: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    box_from_landmarks: np.ndarray | None = None  # detector box relative to the landmarks' extent
    since_detection: int = 0
    thumbnail: np.ndarray | None = None
    frames_seen: int = 0
    frames_valid: int = 0
    frame_size: tuple[int, int] | None = None
    cuts: int = 0


class FaceTracker:
    """Streaming face tracker; feed chunks of frames to `process`, call `finish` at the end."""

    def __init__(self, detector: FaceDetector | str = "auto", every_k: int = 1, smoothing: float = 0.0,
                 face_choice="largest", round_points: bool = False, cut_threshold: float = CUT_THRESHOLD):
        if int(every_k) < 1:
            raise FaceError(f"every_k must be at least 1 (detect on every frame), got {every_k}")
        self.detector = get_detector(detector) if isinstance(detector, str) else detector
        self.every_k = int(every_k)
        self.choice = FaceChoice.parse(face_choice)
        self.round_points = bool(round_points)
        self.cut_threshold = float(cut_threshold)
        self.smoother = OneEuroFilter(float(smoothing))
        self.state = _TrackState()

    # ------------------------------------------------------------------ one frame
    def _lose(self) -> None:
        self.state.box = self.state.landmarks = None
        self.smoother.reset()

    def _is_cut(self, frame: np.ndarray) -> bool:
        thumb = _thumbnail(frame)
        previous, self.state.thumbnail = self.state.thumbnail, thumb
        if previous is None or previous.shape != thumb.shape:
            return False
        return float(np.abs(thumb - previous).mean()) > self.cut_threshold

    def _find(self, frame: np.ndarray, cut: bool) -> np.ndarray | None:
        """A fresh detector box for the face to follow, or None."""
        s = self.state
        hw = frame.shape[:2]
        if s.box is not None and not cut and not getattr(self.detector, "repick_each_detection", False):
            near = self.detector.detect_near(frame, s.box)
            if near:
                centre = (s.box[:2] + s.box[2:]) / 2
                return min(near, key=lambda d: float(np.hypot(*(d.center - centre)))).box
        chosen = self.choice.pick(self.detector.detect(frame), hw)
        return None if chosen is None else chosen.box

    def _step(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        s = self.state
        cut = self._is_cut(frame)
        if cut and s.box is not None:
            s.cuts += 1
            self._lose()
        detect_now = s.box is None or s.since_detection + 1 >= self.every_k
        if detect_now:
            box = self._find(frame, cut)
            if box is None:
                self._lose()
                return None
            s.since_detection = 0
        else:
            lbox = _landmark_box(s.landmarks)
            size = np.tile(lbox[2:] - lbox[:2], 2)
            box = lbox + s.box_from_landmarks * size
            s.since_detection += 1
        landmarks = self.detector.landmarks(frame, box)
        if detect_now:
            lbox = _landmark_box(landmarks)
            size = np.maximum(np.tile(lbox[2:] - lbox[:2], 2), 1.0)
            s.box_from_landmarks = (np.asarray(box, np.float64) - lbox) / size
        s.box, s.landmarks = np.asarray(box, np.float64), landmarks
        points = self.detector.points(landmarks)
        if self.round_points:
            points = np.round(points)
        return self.smoother(points), np.asarray(box, np.float32)

    # ------------------------------------------------------------------ chunks
    def process(self, frames) -> FaceTrack:
        """Track through one chunk ``[n, H, W, C]`` (any layout `as_rgb_uint8` accepts)."""
        frames = as_rgb_uint8(frames)
        n = len(frames)
        size = (int(frames.shape[1]), int(frames.shape[2]))
        if self.state.frame_size is not None and size != self.state.frame_size:
            raise FaceError(f"frame size changed from {self.state.frame_size} to {size} mid-video")
        self.state.frame_size = size
        points = np.full((n, 3, 2), np.nan, np.float32)
        boxes = np.full((n, 4), np.nan, np.float32)
        valid = np.zeros(n, bool)
        for i, frame in enumerate(frames):
            found = self._step(frame)
            if found is not None:
                points[i], boxes[i] = found
                valid[i] = True
        self.state.frames_seen += n
        self.state.frames_valid += int(valid.sum())
        return FaceTrack(points, boxes, valid, size)

    def finish(self) -> str:
        """Log the summary line; raise FaceError when no frame had a face."""
        s = self.state
        if s.frames_seen and s.frames_valid == 0:
            raise FaceError(
                f"no face found in any of the {s.frames_seen} frames (detector {self.detector.name}). "
                "Use a video with a clearly visible, roughly frontal face; for small faces lower the "
                "detector's minimum face size or try the insightface detector")
        missing = s.frames_seen - s.frames_valid
        line = (f"faces: found in {s.frames_valid} of {s.frames_seen} frames"
                + (f"; {missing} frames without a face are passed through unchanged" if missing else ""))
        log.info(line)
        return line


def frame_chunks(frames, chunk_size: int) -> Iterable[np.ndarray]:
    """Chunks of an array/tensor batch (``[N, H, W, C]`` or grayscale ``[N, H, W]``), or of an iterable
    whose items are frames (``[H, W]`` or ``[H, W, C]``) or chunks (``[n, H, W, C]``)."""
    if hasattr(frames, "shape"):
        for start in range(0, len(frames), chunk_size):
            yield frames[start:start + chunk_size]
        return
    pending: list = []
    for item in frames:
        if not hasattr(item, "shape"):
            item = np.asarray(item)
        if len(item.shape) == 4:
            if pending:
                yield np.stack(pending)
                pending = []
            yield item
            continue
        pending.append(item)
        if len(pending) == chunk_size:
            yield np.stack(pending)
            pending = []
    if pending:
        yield np.stack(pending)


def detect_faces(frames, detector: FaceDetector | str = "auto", every_k: int = 1, smoothing: float = 0.0,
                 face_choice="largest", round_points: bool = False, chunk_size: int = 32) -> FaceTrack:
    """Track one face through ``frames``: an array/tensor ``[N, H, W, C]``, or any iterable of frames
    ``[H, W, C]`` or chunks ``[n, H, W, C]`` (e.g. `iter_video_frames`), consumed chunk by chunk.

    ``every_k``: run the detector every k-th frame, landmark tracking in between (1 = every frame).
    ``smoothing``: 0 (off) .. 1 (strongest) adaptive smoothing of the points (`OneEuroFilter`), on top
    of the official bias smoothing `align_faces` applies. ``face_choice``: see `FaceChoice`.
    ``round_points``: round the points to whole pixels as the official does.
    Logs a summary line; raises FaceError when no frame has a face.
    """
    tracker = FaceTracker(detector, every_k, smoothing, face_choice, round_points)
    total = len(frames) if hasattr(frames, "__len__") and hasattr(frames, "shape") else 0
    parts = []
    with host.Progress(total, "detecting faces") as progress:
        for chunk in frame_chunks(frames, chunk_size):
            host.check_interrupt()
            parts.append(tracker.process(chunk))
            progress.update(len(chunk))
    track = FaceTrack.concat(parts)
    if len(track) == 0:
        raise FaceError("no frames were given to face detection")
    tracker.finish()
    return track
