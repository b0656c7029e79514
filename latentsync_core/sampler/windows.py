"""Grouping frames that need the U-Net into windows of (at most) 16, skipping frames that do not.

Frames without a face, and silent frames when silence gating is on, are *inactive*: they are not
sent to the U-Net, so a gap costs no work, and windows are formed over active frames only (a window
may therefore straddle a gap). `max_span` bounds how far a window may stretch over a gap, which is
what bounds the streaming pipeline's look-ahead: every frame from a window's first to its last
must stay in memory until that window has been restored.

Training-rate spacing (`stride` s > 1): the motion modules were trained on 16 frames at 25 fps, so
at 50/60 fps a block of s * 16 consecutive active frames is dealt into s interleaved windows (block
frames 0, s, 2s, ... then 1, s+1, ...): each window sees frames ~1/25 s apart, every frame is still
generated once, with its own audio chunk. The look-ahead bound becomes s * max_span frames.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Iterable, Sequence

WINDOW_FRAMES = 16  # the motion modules' training length (config.data.num_frames)
TRAINED_FPS = 25  # the official pipeline resamples every video to 25 fps
SPACING_AUTO_ABOVE = Fraction(75, 2)  # 37.5 fps: from here on a stride of 2 is closer to 25 fps than 1


def frame_stride(fps, spacing: str | int = "auto") -> int:
    """Frames between neighbours of one window. spacing "auto": round(fps / 25) above 37.5 fps, else 1;
    "off" (or 1): consecutive frames, as the video's own rate gives them; an int: that stride."""
    if spacing is None or spacing is False or spacing == "off":
        return 1
    if spacing == "auto":
        rate = Fraction(fps)
        return max(1, round(rate / TRAINED_FPS)) if rate > SPACING_AUTO_ABOVE else 1
    try:
        stride = int(spacing)
    except (TypeError, ValueError):
        raise ValueError(f"frame spacing must be 'auto', 'off' or a stride >= 1, got {spacing!r}") from None
    if stride < 1 or stride != spacing:
        raise ValueError(f"frame spacing must be 'auto', 'off' or a whole stride >= 1, got {spacing!r}")
    return stride


class WindowBuilder:
    """Incremental window formation: push frames in order, get windows as they close."""

    def __init__(self, size: int = WINDOW_FRAMES, max_span: int | None = None, stride: int = 1):
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        if max_span is not None and max_span < size:
            raise ValueError(f"max_span ({max_span}) must be at least the window size ({size})")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.size = size
        self.stride = stride
        self.max_span = None if max_span is None else max_span * stride
        self._open: list[int] = []

    @property
    def pending(self) -> list[int]:
        return list(self._open)

    def _deal(self) -> list[list[int]]:
        block, self._open = self._open, []
        return [block[k::self.stride] for k in range(self.stride) if block[k::self.stride]]

    def push(self, index: int, active: bool) -> list[list[int]]:
        """Add frame `index`; returns the windows this closed (zero, one, or a block's `stride` windows)."""
        closed = []
        if self._open and self.max_span is not None and index - self._open[0] >= self.max_span:
            closed.extend(self._deal())
        if active:
            self._open.append(index)
            if len(self._open) == self.size * self.stride:
                closed.extend(self._deal())
        return closed

    def flush(self) -> list[list[int]]:
        return self._deal() if self._open else []


def plan_windows(active: Sequence[bool] | Iterable[bool], size: int = WINDOW_FRAMES,
                 max_span: int | None = None, stride: int = 1) -> list[list[int]]:
    """Frame indices of each window, over the frames marked active, in order."""
    builder = WindowBuilder(size, max_span, stride)
    windows: list[list[int]] = []
    for index, flag in enumerate(active):
        windows.extend(builder.push(index, bool(flag)))
    windows.extend(builder.flush())
    return windows
