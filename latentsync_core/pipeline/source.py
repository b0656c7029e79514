"""Which source frame each output frame shows, and reading them in that order with bounded memory.

The output length follows the audio (official): when the audio is longer than the video the video is
extended (`loop_mode`: "pingpong" as the official loop_video does - forward, backward, forward ... with
the turning frames shown twice -, "loop", "freeze" on the last frame, or "trim_audio": stop with the
video); when the video is longer (`tail_mode`): "trim" it to the audio (official) or "keep" the rest
of the video unchanged. A still image is a one-frame video, so any mode freezes it.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputMismatchError, MediaError
from ..media.rate import exact_fps

LOOP_MODES = ("pingpong", "loop", "freeze", "trim_audio")
TAIL_MODES = ("trim", "keep")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
STILL_FPS = Fraction(25)
# Decoded frames held for a backward (pingpong) run: ~26 frames of 1080p, ~210 of 512 x 512.
REVERSE_BUDGET_BYTES = 160 << 20


def check_modes(loop_mode: str, tail_mode: str) -> None:
    if loop_mode not in LOOP_MODES:
        raise InputMismatchError(f"loop_mode must be one of {', '.join(LOOP_MODES)}, got {loop_mode!r}")
    if tail_mode not in TAIL_MODES:
        raise InputMismatchError(f"tail_mode must be one of {', '.join(TAIL_MODES)}, got {tail_mode!r}")


def output_length(video_frames: int, audio_frames: int, loop_mode: str = "pingpong", tail_mode: str = "trim") -> int:
    """Frames in the output for a video of `video_frames` and audio covering `audio_frames` frames."""
    check_modes(loop_mode, tail_mode)
    if video_frames < 1:
        raise InputMismatchError("the video has no frames")
    if audio_frames >= video_frames:
        return video_frames if loop_mode == "trim_audio" else audio_frames
    return audio_frames if tail_mode == "trim" else video_frames


def source_index(i: int, video_frames: int, loop_mode: str) -> int:
    """Source frame shown at output frame `i` (i may exceed the video only in the looping modes)."""
    n = video_frames
    if i < n:
        return i
    if loop_mode == "loop":
        return i % n
    if loop_mode == "pingpong":
        k = i % (2 * n)
        return k if k < n else 2 * n - 1 - k
    return n - 1  # freeze (and trim_audio, which never gets here)


@dataclass(frozen=True)
class Run:
    """Output frames [out_start, out_start + length) showing source frames first, first+step, ..."""

    out_start: int
    first: int
    step: int  # +1 forward, -1 backward, 0 repeat
    length: int


def plan_runs(total: int, video_frames: int, loop_mode: str) -> list[Run]:
    """The output as runs of consecutive source frames (what a decoder can stream), per `source_index`."""
    runs: list[Run] = []
    n = video_frames
    out = 0

    def add(first: int, step: int, length: int) -> None:
        nonlocal out
        if length > 0:
            runs.append(Run(out, first, step, length))
            out += length

    add(0, 1, min(total, n))
    backward = True
    while out < total:
        rest = total - out
        if loop_mode == "loop":
            add(0, 1, min(n, rest))
        elif loop_mode == "pingpong":
            add(n - 1, -1, min(n, rest)) if backward else add(0, 1, min(n, rest))
            backward = not backward
        else:
            add(n - 1, 0, rest)
    return runs


class FrameSource:
    """Frames of a video file, an image file, or an in-memory array, read run by run in output order.

    Only one chunk (plus, for backward runs, one decoded block of `reverse_block` frames) is in memory at a time.
    """

    def __init__(self, num_frames: int, fps: Fraction, size: tuple[int, int], *, path: Path | None = None,
                 frames: np.ndarray | None = None, name: str = ""):
        self.num_frames = int(num_frames)
        self.fps = exact_fps(fps)
        self.size = size  # (height, width)
        self.path = path
        self._frames = frames
        self.name = name or (str(path) if path else "frames")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def open(cls, video: str | Path | np.ndarray, fps: float | Fraction | None = None,
             max_frames: int | None = None) -> "FrameSource":
        """A video file (at its own rate), an image file (one frame) or uint8 frames [N, H, W, 3].

        `fps` is the rate of images and arrays (default 25); for a video file it may only repeat the
        file's own rate.
        """
        if isinstance(video, np.ndarray):
            frames = video if video.ndim == 4 else video[None]
            if frames.dtype != np.uint8 or frames.shape[-1] != 3 or len(frames) == 0:
                raise InputMismatchError(f"frames must be uint8 [N, H, W, 3] with N >= 1, got {frames.dtype} "
                                         f"{frames.shape}")
            if max_frames is not None:
                frames = frames[:max_frames]
            return cls(len(frames), exact_fps(fps or STILL_FPS), frames.shape[1:3], frames=frames)
        path = Path(video)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return cls.open(_read_image(path), fps or STILL_FPS).__with_name(str(path))
        from ..media.video import probe_video

        info = probe_video(path)
        count = info.num_frames if max_frames is None else min(info.num_frames, int(max_frames))
        if count < 1:
            raise MediaError(f"cannot read video '{path}': it has no frames")
        if fps is not None and exact_fps(fps) != info.fps:
            raise InputMismatchError(f"fps {fps} was given but '{path}' runs at {info.fps}; leave fps unset for files")
        return cls(count, info.fps, (info.height, info.width), path=path)

    def __with_name(self, name: str) -> "FrameSource":
        self.name = name
        return self

    # ------------------------------------------------------------------ reading
    def reverse_block(self, chunk: int) -> int:
        """Frames decoded at once for a backward run: as many as fit REVERSE_BUDGET_BYTES (at least a chunk)."""
        frame_bytes = max(1, self.size[0] * self.size[1] * 3)
        return max(int(chunk), REVERSE_BUDGET_BYTES // frame_bytes)

    def _forward(self, first: int, count: int, chunk: int) -> Iterator[np.ndarray]:
        if self._frames is not None:
            for s in range(first, first + count, chunk):
                yield self._frames[s:min(s + chunk, first + count)]
            return
        from ..media.video import iter_video_frames

        got = 0
        for block in iter_video_frames(self.path, start=first, max_frames=count, chunk_size=chunk):
            got += len(block)
            yield block
        if got < count:
            raise MediaError(f"cannot read video '{self.path}': only {got} of frames {first}..{first + count - 1} "
                             "could be decoded (truncated file?)")

    def _block(self, first: int, count: int, chunk: int) -> np.ndarray:
        """Frames first .. first+count-1 in one array, filled chunk by chunk (no second copy of the block)."""
        out = None
        filled = 0
        for part in self._forward(first, count, chunk):
            if out is None:
                out = np.empty((count,) + part.shape[1:], part.dtype)
            out[filled:filled + len(part)] = part
            filled += len(part)
        return out

    def read_run(self, run: Run, chunk: int) -> Iterator[np.ndarray]:
        """uint8 chunks [n <= chunk, H, W, 3] of the run's frames, in output order."""
        if run.step == 1:
            yield from self._forward(run.first, run.length, chunk)
        elif run.step == -1:
            # One decode (one open + keyframe seek) per block of up to `reverse_block` frames, not per
            # chunk: seeking costs up to a GOP of decoding, so small blocks multiply the decoding 5-15x.
            lowest = run.first - run.length + 1
            block = self.reverse_block(chunk)
            end = run.first
            while end >= lowest:
                start = max(lowest, end - block + 1)
                frames = self._block(start, end - start + 1, chunk)
                for stop in range(len(frames), 0, -chunk):
                    yield frames[max(0, stop - chunk):stop][::-1]
                end = start - 1
        else:
            frame = next(self._forward(run.first, 1, 1))[0]
            for s in range(0, run.length, chunk):
                yield np.repeat(frame[None], min(chunk, run.length - s), axis=0)


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    if not path.is_file():
        raise MediaError(f"cannot read image '{path}': no such file")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)  # phone photos store rotation in EXIF
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except OSError as exc:
        raise MediaError(f"cannot read image '{path}': {exc}") from exc
