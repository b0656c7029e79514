"""Grouping frames that need the U-Net into windows of (at most) 16, skipping frames that do not.

Frames without a face, and silent frames when silence gating is on, are *inactive*: they are not
sent to the U-Net, so a gap costs no work, and windows are formed over active frames only (a window
may therefore straddle a gap). `max_span` bounds how far a window may stretch over a gap, which is
what bounds the streaming pipeline's look-ahead: every frame from a window's first to its last
must stay in memory until that window has been restored.
"""
from __future__ import annotations

from typing import Iterable, Sequence

WINDOW_FRAMES = 16  # the motion modules' training length (config.data.num_frames)


class WindowBuilder:
    """Incremental window formation: push frames in order, get windows as they close."""

    def __init__(self, size: int = WINDOW_FRAMES, max_span: int | None = None):
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        if max_span is not None and max_span < size:
            raise ValueError(f"max_span ({max_span}) must be at least the window size ({size})")
        self.size = size
        self.max_span = max_span
        self._open: list[int] = []

    @property
    def pending(self) -> list[int]:
        return list(self._open)

    def push(self, index: int, active: bool) -> list[list[int]]:
        """Add frame `index`; returns the windows this closed (zero or one, rarely two)."""
        closed = []
        if self._open and self.max_span is not None and index - self._open[0] >= self.max_span:
            closed.append(self._open)
            self._open = []
        if active:
            self._open.append(index)
            if len(self._open) == self.size:
                closed.append(self._open)
                self._open = []
        return closed

    def flush(self) -> list[list[int]]:
        closed, self._open = ([self._open] if self._open else []), []
        return closed


def plan_windows(active: Sequence[bool] | Iterable[bool], size: int = WINDOW_FRAMES,
                 max_span: int | None = None) -> list[list[int]]:
    """Frame indices of each window, over the frames marked active, in order."""
    builder = WindowBuilder(size, max_span)
    windows: list[list[int]] = []
    for index, flag in enumerate(active):
        windows.extend(builder.push(index, bool(flag)))
    windows.extend(builder.flush())
    return windows
