"""Streaming mp4 writer: H.264 video plus the original audio re-encoded as AAC, written atomically.

* Frames are encoded as they arrive (nothing accumulates), audio is interleaved as the video
  advances, so any length runs in bounded memory. Audio from a file is decoded packet by packet.
* The output goes to a hidden temp file next to the target and is renamed only by ``close()``;
  an exception (or Ctrl-C) inside ``with VideoWriter(...)`` deletes it and leaves the target alone.
* **Odd sizes**: yuv420p needs even width and height, so an odd dimension is padded by one pixel
  that repeats the last column/row. All content is kept; the output is at most 1 px wider/taller.
* **Colour**: RGB is converted with the BT.709 matrix to limited-range YUV and the stream is tagged
  BT.709, which is what players assume for HD and what the readers here apply on the way back.
* **Audio**: the source's own sample rate and channel count, encoded as AAC and cut at the video's
  duration (never padded: shorter audio simply ends early). Rates AAC cannot store (anything not
  in 7.35-96 kHz's standard list) are resampled by FFmpeg to the nearest higher standard rate.
"""
from __future__ import annotations

import contextlib
import weakref
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from ..atomic import atomic_path
from ..errors import MediaError
from .audio_file import AudioClip, audio_stream, iter_audio_blocks
from .container import PathLike, open_input

WRITE = "write video"
_CONTAINER_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv"}
_AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
_AAC_BITRATE_PER_CHANNEL = 128_000  # transparent for speech and music at 44.1/48 kHz
# FFmpeg's default layout per channel count (what an untagged AudioClip of that width means).
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
_BT709 = 1  # AVCOL_PRI_BT709 == AVCOL_TRC_BT709 == AVCOL_SPC_BT709
_MPEG_RANGE = 1


def _as_fps(fps: Fraction | float | int) -> Fraction:
    try:
        value = Fraction(fps).limit_denominator(1_000_000) if not isinstance(fps, Fraction) else fps
    except (TypeError, ValueError) as exc:
        raise MediaError(f"cannot write video: fps must be a positive number, got {fps!r}") from exc
    if value <= 0:
        raise MediaError(f"cannot write video: fps must be positive, got {fps!r}")
    return value


def pad_to_even(frames: np.ndarray) -> np.ndarray:
    """[N, H, W, 3] -> same with H and W rounded up to even by repeating the last row/column."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if not (pad_h or pad_w):
        return frames
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


class _AudioFeed:
    """Yields float32 [C, n] blocks of the source audio, in order, with bounded memory."""

    def __init__(self, source: AudioClip | PathLike):
        self._container = None
        self._leftover: np.ndarray | None = None
        if isinstance(source, AudioClip):
            if source.num_samples == 0:
                raise MediaError("cannot write video: the audio clip has no samples (zero-length audio)")
            self.sample_rate, self.channels = source.sample_rate, source.num_channels
            self._blocks = self._clip_blocks(source)
            self.layout_name = None
        else:
            path, self._container = open_input(source, "use as audio for the video")
            try:
                stream = audio_stream(self._container, path, "use as audio for the video")
                self.sample_rate = int(stream.rate or stream.codec_context.sample_rate)
                self.channels = int(stream.channels)
                name = stream.layout.name if stream.layout is not None else ""
                # "2 channels" = unspecified order (plain wav): AAC needs a named layout.
                self.layout_name = None if not name or name.endswith("channels") else name
                self._blocks = iter_audio_blocks(self._container, stream, path, "use as audio for the video")
            except BaseException:
                self.close()
                raise

    @staticmethod
    def _clip_blocks(clip: AudioClip, block: int = 65536) -> Iterator[np.ndarray]:
        for start in range(0, clip.num_samples, block):
            yield clip.samples[:, start:start + block]

    def take(self, count: int) -> Iterator[np.ndarray]:
        """Up to `count` further samples, as blocks; fewer when the source runs out."""
        while count > 0:
            if self._leftover is not None:
                block, self._leftover = self._leftover, None
            else:
                block = next(self._blocks, None)
                if block is None:
                    return
            if block.shape[1] > count:
                block, self._leftover = block[:, :count], block[:, count:]
            count -= block.shape[1]
            yield block

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


class VideoWriter:
    """``with VideoWriter(path, fps, audio=...) as w: w.write(frames)`` -> finished mp4 at `path`.

    ``write`` takes uint8 RGB ``[H, W, 3]`` or ``[N, H, W, 3]``; the first frame fixes the size.
    ``audio`` is an ``AudioClip`` or a path to any file with an audio track (its first one is used).
    """

    def __init__(
        self,
        path: PathLike,
        fps: Fraction | float,
        *,
        audio: AudioClip | str | Path | None = None,
        crf: int = 18,
        codec: str = "libx264",
        pix_fmt: str = "yuv420p",
        preset: str = "medium",
    ):
        self.path = Path(path)
        if self.path.suffix.lower() not in _CONTAINER_SUFFIXES:
            raise MediaError(f"cannot write video '{self.path}': unsupported extension "
                             f"'{self.path.suffix}' (use one of {sorted(_CONTAINER_SUFFIXES)})")
        if self.path.is_dir():
            raise MediaError(f"cannot write video '{self.path}': it is an existing directory")
        self.fps = _as_fps(fps)
        self.crf, self.codec, self.pix_fmt, self.preset = int(crf), codec, pix_fmt, preset
        self.frames_written = 0
        self.size: tuple[int, int] | None = None  # (width, height) of the input frames
        self._video = None
        self._audio = None
        self._audio_samples_sent = 0
        self._closed = False
        self._aborted = False
        self._cleanup = contextlib.ExitStack()
        self._feed = _AudioFeed(audio) if audio is not None else None
        try:
            self._tmp = self._cleanup.enter_context(atomic_path(self.path))
            options = {"movflags": "+faststart"} if self.path.suffix.lower() != ".mkv" else {}
            self._container = av.open(str(self._tmp), mode="w", container_options=options)
            # A writer dropped without close() (no `with`) must not leave its temp file behind.
            self._finalizer = weakref.finalize(self, _discard, self._container, self._tmp)
        except BaseException as exc:
            self._abort(exc)
            if isinstance(exc, OSError):
                raise MediaError(f"cannot write video '{self.path}': {exc}") from exc
            raise

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort(exc)

    # ------------------------------------------------------------------ writing
    def write(self, frames: np.ndarray) -> None:
        if self._closed:
            raise MediaError(f"cannot write video '{self.path}': the writer is already closed")
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise MediaError(f"cannot write video '{self.path}': frames must be RGB [H, W, 3] or "
                             f"[N, H, W, 3], got shape {frames.shape}")
        if frames.dtype != np.uint8:
            raise MediaError(f"cannot write video '{self.path}': frames must be uint8, got {frames.dtype} "
                             "(convert 0..1 floats with latentsync_core.convert.image_to_uint8)")
        if len(frames) == 0:
            return
        size = (frames.shape[2], frames.shape[1])
        if self.size is not None and size != self.size:
            raise MediaError(f"cannot write video '{self.path}': frame size {size[0]}x{size[1]} differs "
                             f"from the first frame's {self.size[0]}x{self.size[1]}")
        try:
            if self.size is None:
                self._open_streams(*size)
            for frame in pad_to_even(frames):
                self._encode_video(frame)
            self._feed_audio(self.frames_written / self.fps)
        except (av.FFmpegError, ValueError) as exc:  # ValueError: unknown codec or pixel format
            raise MediaError(f"cannot write video '{self.path}': the encoder failed "
                             f"({type(exc).__name__}: {exc}; codec={self.codec!r}, pix_fmt={self.pix_fmt!r})") from exc

    def close(self) -> Path:
        """Flush encoders, finish the audio, and move the file to its final path (returned)."""
        if self._aborted:
            raise MediaError(f"cannot write video '{self.path}': the writer was aborted by an earlier "
                             "error, so nothing was written")
        if self._closed:
            return self.path
        try:
            if self.frames_written == 0:
                raise MediaError(f"cannot write video '{self.path}': no frames were written")
            self._mux(self._video.encode(None))
            if self._audio is not None:
                self._feed_audio(self.frames_written / self.fps)
                self._mux(self._audio.encode(None))
            self._container.close()
            self._closed = True
            if self._feed is not None:
                self._feed.close()
            self._finalizer.detach()
            self._cleanup.close()  # renames the temp file onto self.path
        except av.FFmpegError as exc:
            self._abort(exc)
            raise MediaError(f"cannot write video '{self.path}': finishing the file failed ({exc})") from exc
        except BaseException as exc:
            self._abort(exc)
            raise
        return self.path

    # ------------------------------------------------------------------ internals
    def _open_streams(self, width: int, height: int) -> None:
        self.size = (width, height)
        stream = self._container.add_stream(self.codec, rate=self.fps)
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = self.pix_fmt
        context = stream.codec_context
        context.color_primaries = context.color_trc = context.colorspace = _BT709
        context.color_range = _MPEG_RANGE
        if self.codec in ("libx264", "libx265"):
            stream.options = {"crf": str(self.crf), "preset": self.preset}
        stream.thread_type = "AUTO"
        self._video = stream
        if self._feed is not None:
            self._open_audio_stream()

    def _open_audio_stream(self) -> None:
        feed = self._feed
        rate = next((r for r in _AAC_RATES if r >= feed.sample_rate), _AAC_RATES[-1])
        layout = feed.layout_name or _DEFAULT_LAYOUTS.get(feed.channels)
        if layout is None:
            raise MediaError(f"cannot write video '{self.path}': {feed.channels}-channel audio is not "
                             "supported (AAC here takes 1 to 8 channels); down-mix it first")
        try:
            stream = self._container.add_stream("aac", rate=rate, layout=layout)
            stream.bit_rate = _AAC_BITRATE_PER_CHANNEL * feed.channels
            stream.codec_context.open()  # now, so a refusal is reported here rather than at first mux
        except (av.FFmpegError, ValueError) as exc:
            raise MediaError(f"cannot write video '{self.path}': AAC cannot store this audio "
                             f"({feed.channels} channels at {feed.sample_rate} Hz): {exc}") from exc
        self._audio_layout = layout
        self._audio = stream

    def _encode_video(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        # Explicit matrix so the pixels match the BT.709 tags instead of swscale's BT.601 default.
        frame = frame.reformat(format=self.pix_fmt, dst_colorspace="itu709", dst_color_range="MPEG")
        frame.pts = self.frames_written
        self._mux(self._video.encode(frame))
        self.frames_written += 1

    def _feed_audio(self, until_seconds: Fraction) -> None:
        if self._audio is None:
            return
        feed = self._feed
        target = int(until_seconds * feed.sample_rate)  # floor: never past the video's end
        for block in feed.take(target - self._audio_samples_sent):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block, dtype=np.float32),
                                               format="fltp", layout=self._audio_layout)
            frame.sample_rate = feed.sample_rate
            frame.pts = self._audio_samples_sent
            frame.time_base = Fraction(1, feed.sample_rate)
            self._audio_samples_sent += block.shape[1]
            self._mux(self._audio.encode(frame))

    def _mux(self, packets) -> None:
        self._container.mux(packets)

    def _abort(self, exc: BaseException | None) -> None:
        """Drop everything: close handles, delete the temp file, leave the target untouched."""
        self._closed = self._aborted = True
        if getattr(self, "_finalizer", None) is not None:
            self._finalizer.detach()
        for close in (getattr(self, "_container", None), self._feed):
            if close is not None:
                with contextlib.suppress(Exception):
                    close.close()
        error = exc if exc is not None else RuntimeError("aborted")
        with contextlib.suppress(BaseException):
            self._cleanup.__exit__(type(error), error, error.__traceback__)


def _discard(container, tmp: Path) -> None:
    with contextlib.suppress(Exception):
        container.close()
    with contextlib.suppress(OSError):
        tmp.unlink()


def write_video(
    path: PathLike,
    frames: np.ndarray | Iterator[np.ndarray],
    fps: Fraction | float,
    *,
    audio: AudioClip | str | Path | None = None,
    crf: int = 18,
) -> Path:
    """Write an array ``[N, H, W, 3]`` (or an iterable of frames/chunks) in one call."""
    chunks = [frames] if isinstance(frames, np.ndarray) else frames
    with VideoWriter(path, fps, audio=audio, crf=crf) as writer:
        for chunk in chunks:
            writer.write(chunk)
    return writer.path
