"""Reading video frames with PyAV: probing, streaming decode, whole-clip reads.

Conventions every reader here follows:

* Frames come out as uint8 RGB ``[H, W, 3]`` (``read_video`` can give float32 0..1).
* **Rotation**: when the stream carries a display matrix (phones store portrait video as landscape
  pixels plus "rotate 90"), frames are rotated so they come out upright, as players show them.
  Only the rotation part is applied; mirror flips in the matrix are ignored. ``VideoInfo.width`` /
  ``height`` are the upright size.
* **Constant frame rate**: the output always has the constant rate ``VideoInfo.fps`` (the stream's
  average rate, snapped to its nominal rate such as 30000/1001 when they agree). Each decoded
  frame is placed in the output slot nearest to its timestamp, ``round((pts - start) * fps)``;
  a slot with no frame repeats the previous one, and when several frames land in one slot the
  last of them is kept. For ordinary constant-rate files this is the identity (every frame once);
  for variable-frame-rate files (screen and phone recordings) it is what ffmpeg's ``fps`` filter
  does, so the frame count matches the audio duration. The last frame is emitted once.
* **Errors**: missing, empty, directory, non-media, video-less, corrupt or truncated inputs raise
  ``MediaError`` naming the file; the PyAV exception, if any, is chained as ``__cause__``.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from .container import PathLike, media_error, open_input

READ = "read video"
# Relative tolerance under which the average rate is replaced by the stream's nominal rate:
# mp4 average rates are frames/duration and come out as 2997/100 or 24999/1000 for 29.97/25 fps.
_NOMINAL_RATE_TOLERANCE = 2e-3


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int   # upright (after rotation)
    height: int
    fps: Fraction
    num_frames: int  # exactly what iter_video_frames yields (constant-rate slots)
    duration: float  # num_frames / fps, seconds
    has_audio: bool
    audio_sample_rate: int | None
    audio_channels: int | None
    rotation: int = 0  # degrees counter-clockwise applied to decoded pixels to make them upright


# --------------------------------------------------------------------------- stream helpers
def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
        raise media_error(path, READ, f"it has no video stream (streams found: {kinds})",
                          "give a video file; for audio-only files use read_audio")
    stream = container.streams.video[0]
    # Frame threads hide HEVC's per-frame cost; "AUTO" lets FFmpeg pick slice or frame threading.
    stream.thread_type = "AUTO"
    return stream


def _stream_fps(stream, path: Path) -> Fraction:
    average = stream.average_rate
    nominal = stream.guessed_rate or stream.base_rate
    candidates = [r for r in (average, nominal) if r is not None and r > 0]
    if not candidates:
        raise media_error(path, READ, "the video stream has no frame rate", "re-encode it with a fixed rate")
    fps = Fraction(candidates[0])
    if nominal and nominal > 0 and abs(Fraction(nominal) - fps) <= _NOMINAL_RATE_TOLERANCE * fps:
        fps = Fraction(nominal)
    return fps


class _SlotClock:
    """Maps presentation timestamps to constant-rate output slots (see module docstring)."""

    def __init__(self, stream, fps: Fraction):
        self.origin = stream.start_time or 0
        self.scale = Fraction(stream.time_base) * fps
        self.last: int | None = None

    def slot(self, pts: int | None) -> int:
        if pts is None:  # rare (raw elementary streams): assume the next slot
            value = 0 if self.last is None else self.last + 1
        else:
            value = math.floor((pts - self.origin) * self.scale + Fraction(1, 2))
        self.last = value
        return value


def _upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    quarter_turns = round(rotation / 90) % 4
    # Display matrix angle is counter-clockwise, as is np.rot90 on [H, W] image arrays.
    return np.rot90(rgb, quarter_turns) if quarter_turns else rgb


def _frame_rotation(frame: av.VideoFrame) -> int:
    """Counter-clockwise degrees in (-180, 180] (PyAV reports a half turn as either sign)."""
    degrees = round(getattr(frame, "rotation", 0) or 0) % 360
    return degrees - 360 if degrees > 180 else degrees


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    # swscale's default conversion (as ComfyUI's own video loader uses), so frames read here match
    # frames ComfyUI hands over. Its 4:2:0 chroma is repeated rather than interpolated (~1.4 levels
    # of mean error on smooth colour ramps); full chroma interpolation with accurate rounding gets
    # ~0.35 but measured ~25 ms vs ~1-6 ms per 1080x1920 frame on 2 cores.
    # A view with padded rows (FFmpeg aligns line sizes), or a rotated view: callers copy it.
    return _upright(frame.to_ndarray(format="rgb24"), _frame_rotation(frame))


# --------------------------------------------------------------------------- probing
def probe_video(path: PathLike) -> VideoInfo:
    """Size, rate, frame count and audio format of a video file, without decoding it all.

    The first frame is decoded (rotation is only known from decoded frames) and the packets are
    scanned without decoding to count constant-rate slots exactly. Results are cached per
    (path, size, mtime).
    """
    resolved = Path(path)
    try:
        stat = resolved.stat()
        key = (str(resolved.resolve()), stat.st_size, stat.st_mtime_ns)
    except OSError:
        key = None
    if key is None:
        return _probe_uncached(resolved)  # raises the proper MediaError (missing file, ...)
    return _probe_cached(key, resolved)


@functools.lru_cache(maxsize=64)
def _probe_cached(key: tuple, path: Path) -> VideoInfo:
    return _probe_uncached(path)


def _probe_uncached(path: Path) -> VideoInfo:
    path, container = open_input(path, READ)
    with container:
        stream = _video_stream(container, path)
        fps = _stream_fps(stream, path)
        try:
            first = next(iter(container.decode(stream)), None)
        except av.FFmpegError as exc:
            raise media_error(path, READ, f"the first frame cannot be decoded ({exc})",
                              "the file is corrupt or uses an unsupported codec") from exc
        if first is None:
            raise media_error(path, READ, "the video stream contains no decodable frames",
                              "the file is corrupt or truncated")
        rotation = _frame_rotation(first)
        width, height = first.width, first.height
        if round(rotation / 90) % 2:
            width, height = height, width
        num_frames = _count_slots(container, stream, fps, path)

        audio = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(
            path=path, width=width, height=height, fps=fps, num_frames=num_frames,
            duration=float(num_frames / fps), has_audio=audio is not None,
            audio_sample_rate=int(audio.rate) if audio is not None else None,
            audio_channels=int(audio.channels) if audio is not None else None,
            rotation=rotation,
        )


def _count_slots(container, stream, fps: Fraction, path: Path) -> int:
    container.seek(0)  # back to the start after decoding the first frame
    clock = _SlotClock(stream, fps)
    highest = -1
    packets = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            packets += 1
            if not getattr(packet, "is_discard", False):
                highest = max(highest, clock.slot(packet.pts))
    except av.FFmpegError as exc:
        raise media_error(path, READ, f"the file is corrupt or truncated ({exc})") from exc
    _check_complete(stream, packets, path)
    return highest + 1


# --------------------------------------------------------------------------- decoding
def iter_video_frames(
    path: PathLike, *, start: int = 0, max_frames: int | None = None, chunk_size: int | None = None,
) -> Iterator[np.ndarray]:
    """Stream upright uint8 RGB frames of constant-rate slots ``start .. start + max_frames - 1``.

    Without ``chunk_size`` each item is one ``[H, W, 3]`` frame; with it, items are arrays
    ``[n, H, W, 3]`` with ``n <= chunk_size`` (only the last may be shorter). Memory stays at one
    decoded frame plus one chunk whatever the video length. ``start > 0`` seeks to the keyframe
    before it instead of decoding from the beginning.
    """
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if max_frames is not None and max_frames < 0:
        raise ValueError(f"max_frames must be >= 0 or None, got {max_frames}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")
    # Chunks copy every frame into their buffer anyway; single frames are made independent here.
    frames = _iter_slots(path, start, max_frames, independent=chunk_size is None)
    if chunk_size is None:
        return frames
    return _chunked(frames, chunk_size)


def _chunked(frames: Iterator[np.ndarray], chunk_size: int) -> Iterator[np.ndarray]:
    buffer: np.ndarray | None = None
    filled = 0
    for frame in frames:
        if buffer is None or buffer.shape[1:] != frame.shape:
            if buffer is not None and filled:
                yield buffer[:filled]
            buffer, filled = np.empty((chunk_size, *frame.shape), dtype=np.uint8), 0
        buffer[filled] = frame
        filled += 1
        if filled == chunk_size:
            yield buffer
            buffer, filled = None, 0  # a fresh buffer: the caller may keep the one just yielded
    if buffer is not None and filled:
        yield buffer[:filled]


def _iter_slots(
    path: PathLike, start: int, max_frames: int | None, *, independent: bool,
) -> Iterator[np.ndarray]:
    if max_frames == 0:
        return
    path, container = open_input(path, READ)
    with container:
        stream = _video_stream(container, path)
        fps = _stream_fps(stream, path)
        stop = None if max_frames is None else start + max_frames
        seeked = start > 0 and _seek_before(container, stream, fps, start)
        emitted = yield from _emit_slots(container, stream, fps, path, start, stop,
                                         check_first=seeked, independent=independent)
        if emitted is None:  # the seek overshot: decode from the start instead
            container.seek(0)
            emitted = yield from _emit_slots(container, stream, fps, path, start, stop,
                                             check_first=False, independent=independent)
        if emitted == 0 and start == 0:
            raise media_error(path, READ, "the video stream contains no decodable frames",
                              "the file is corrupt or truncated")


def _seek_before(container, stream, fps: Fraction, slot: int) -> bool:
    origin = stream.start_time or 0
    target = origin + int(Fraction(slot) / fps / Fraction(stream.time_base))
    try:
        container.seek(target, stream=stream, backward=True, any_frame=False)
    except av.FFmpegError:
        container.seek(0)
        return False
    return True


def _emit_slots(container, stream, fps, path, start, stop, *, check_first, independent):
    """Generator body of the slot resampler; returns the number of frames yielded (None: overshot)."""
    clock = _SlotClock(stream, fps)
    pending: av.VideoFrame | None = None  # the latest frame, not yet emitted
    pending_slot = 0
    pending_rgb: np.ndarray | None = None
    emitted = 0
    next_slot = start  # the next output slot to fill

    def hold(frame: av.VideoFrame, slot: int) -> None:
        nonlocal pending, pending_slot, pending_rgb
        pending, pending_slot = frame, slot
        # Convert now, while the decoded picture is still in cache (measurably faster than after
        # the next decode); a frame before `start` is converted only if a gap makes it needed.
        pending_rgb = _to_rgb(frame) if slot >= next_slot else None

    def fill_until(end_slot: int):
        # Emit `pending` for every slot in [next_slot, end_slot) (repeats fill VFR gaps).
        nonlocal next_slot, emitted
        if stop is not None:
            end_slot = min(end_slot, stop)
        if end_slot <= next_slot:
            return
        rgb = pending_rgb if pending_rgb is not None else _to_rgb(pending)
        for i in range(next_slot, end_slot):
            if not independent:
                yield rgb
            else:  # single frames: contiguous, and repeated slots do not share memory
                yield np.ascontiguousarray(rgb) if i == end_slot - 1 else rgb.copy()
            emitted += 1
        next_slot = end_slot

    packets = 0
    try:
        for frame in _decode_counting(container, stream):
            if isinstance(frame, int):
                packets = frame
                continue
            slot = clock.slot(frame.pts)
            if pending is None:
                if check_first and slot > start:
                    return None
                hold(frame, min(slot, start))  # the first frame also covers the slots before it
            elif slot > pending_slot:
                yield from fill_until(slot)
                if stop is not None and next_slot >= stop:
                    return emitted
                hold(frame, slot)
            else:
                hold(frame, pending_slot)  # same (or earlier, out-of-order) slot: the later frame wins
    except av.FFmpegError as exc:
        raise media_error(path, READ, f"decoding failed after {emitted + start} frames ({exc})",
                          "the file is corrupt or truncated") from exc
    if not check_first and start == 0:  # a seek skips packets, so the count is only complete here
        _check_complete(stream, packets, path)
    if pending is not None and pending_slot >= next_slot:  # else it lies before `start`
        yield from fill_until(pending_slot + 1)
    return emitted


def _decode_counting(container, stream):
    """Decoded frames, then (last) the number of non-empty packets demuxed, as an int."""
    packets = 0
    for packet in container.demux(stream):
        if packet.size:
            packets += 1
        yield from packet.decode()
    yield packets


def _check_complete(stream, packets: int, path: Path) -> None:
    # The mp4 index lists every sample; when the data ends early the demuxer just stops.
    if stream.frames and packets < stream.frames:
        raise media_error(path, READ, f"the file is truncated: its index lists {stream.frames} frames "
                          f"but only {packets} are present", "re-copy or re-export the file")


def read_video(
    path: PathLike, *, max_frames: int | None = None, dtype=np.uint8,
) -> tuple[np.ndarray, Fraction]:
    """Whole clip (or its first ``max_frames``) as ``[N, H, W, 3]`` uint8, or float32 in 0..1.

    Memory is N frames: prefer ``iter_video_frames`` for long videos.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.uint8), np.dtype(np.float32)):
        raise ValueError(f"dtype must be uint8 or float32, got {dtype}")
    info = probe_video(path)
    count = info.num_frames if max_frames is None else min(max_frames, info.num_frames)
    out = np.empty((count, info.height, info.width, 3), dtype=dtype)
    n = 0
    for chunk in iter_video_frames(path, max_frames=count, chunk_size=16):
        if n + len(chunk) > count or chunk.shape[1:] != out.shape[1:]:
            raise media_error(path, READ, "frames changed size mid-stream", "re-encode it at one size")
        out[n:n + len(chunk)] = chunk if dtype == np.uint8 else chunk.astype(np.float32) / 255.0
        n += len(chunk)
    if n < count:
        raise media_error(path, READ, f"only {n} of {count} frames could be decoded",
                          "the file is truncated or corrupt")
    return out, info.fps
