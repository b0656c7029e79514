"""Reading audio (from audio files or the audio track of a video) as float32 ``[channels, samples]``.

Audio keeps the file's own sample rate and channel count: it is what gets muxed back into output
videos. Models get a separate mono 16 kHz copy through ``AudioClip.to_model_audio()``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from .container import PathLike, media_error, open_input
from .resample import MODEL_SAMPLE_RATE, to_model_audio

READ = "read audio"

# Integer PCM -> float scale, matching FFmpeg's own s16/s32 -> flt conversion (x / 2^(bits-1)).
_INT_SCALE = {np.dtype(np.int16): 2.0 ** 15, np.dtype(np.int32): 2.0 ** 31, np.dtype(np.int64): 2.0 ** 63}


@dataclass(eq=False)  # element-wise array equality has no single truth value
class AudioClip:
    samples: np.ndarray  # float32 [C, T]; integer sources land in [-1, 1], float sources are kept as stored
    sample_rate: int

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples, dtype=np.float32)
        if samples.ndim == 1:
            samples = samples[None]
        if samples.ndim != 2:
            raise ValueError(f"AudioClip samples must be [channels, samples], got shape {samples.shape}")
        if int(self.sample_rate) <= 0:
            raise ValueError(f"AudioClip sample_rate must be positive, got {self.sample_rate}")
        self.samples = samples
        self.sample_rate = int(self.sample_rate)

    @property
    def num_channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate

    def trimmed(self, seconds: float) -> "AudioClip":
        """The first ``seconds`` (a copy; shorter clips are returned whole, never padded)."""
        keep = max(0, round(float(seconds) * self.sample_rate))
        return AudioClip(self.samples[:, :keep].copy(), self.sample_rate)

    def to_model_audio(self, sample_rate: int = MODEL_SAMPLE_RATE) -> np.ndarray:
        """Mono float32 ``[T']`` at 16 kHz for Whisper/SyncNet; this clip is left untouched."""
        return to_model_audio(self.samples, self.sample_rate, sample_rate)


def frame_to_float(frame: av.AudioFrame) -> np.ndarray:
    """Any PyAV audio frame (planar or packed, u8/s16/s32/s64/flt/dbl) -> float32 [C, n]."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:  # packed: one row of interleaved samples
        data = data.reshape(-1, channels).T
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    scale = _INT_SCALE.get(data.dtype)
    if scale is not None:
        return (data / scale).astype(np.float32)
    return data.astype(np.float32, copy=False)


def audio_stream(container: av.container.InputContainer, path: Path, action: str = READ):
    if not container.streams.audio:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
        raise media_error(path, action, f"it has no audio stream (streams found: {kinds})",
                          "give a file with sound, or a separate audio file")
    return container.streams.audio[0]


def iter_audio_blocks(container, stream, path: Path, action: str = READ) -> Iterator[np.ndarray]:
    """Decode ``stream`` packet by packet into float32 ``[C, n]`` blocks (bounded memory)."""
    remaining = _exact_sample_count(container, stream)
    try:
        for frame in container.decode(stream):
            if not frame.samples:
                continue
            block = frame_to_float(frame)
            if remaining is not None:
                block = block[:, :remaining]
                remaining -= block.shape[1]
            if block.shape[1]:
                yield block
            if remaining == 0:
                return
    except av.FFmpegError as exc:
        raise media_error(path, action, f"the audio cannot be decoded ({exc})",
                          "the file is corrupt or truncated") from exc


def _exact_sample_count(container, stream) -> int | None:
    """Sample count an mp4/mov track declares, when exact.

    AAC decoders return whole 1024-sample frames, so the last one carries up to 1023 samples of
    encoder padding that the track's duration (from its sample table) excludes. Other containers
    may only estimate durations from the bitrate, so they are never trimmed.
    """
    if "mp4" not in container.format.name or stream.duration is None or not stream.rate:
        return None
    return round(stream.duration * stream.time_base * stream.rate)


def read_audio(path: PathLike) -> AudioClip:
    """Whole audio track of any file FFmpeg decodes (wav of any PCM depth, mp3, flac, aac, m4a,
    ogg, or a video's first audio track) at its own rate and channel count."""
    path, container = open_input(path, READ)
    with container:
        stream = audio_stream(container, path)
        sample_rate = stream.rate or stream.codec_context.sample_rate
        blocks = list(iter_audio_blocks(container, stream, path))
    if not blocks or sum(b.shape[1] for b in blocks) == 0:
        raise media_error(path, READ, "the audio stream contains no samples (zero-length audio)",
                          "give audio at least as long as the video")
    channels = {b.shape[0] for b in blocks}
    if len(channels) > 1:
        raise media_error(path, READ, f"the channel count changes mid-stream ({sorted(channels)})",
                          "convert it to a fixed channel layout first")
    return AudioClip(np.concatenate(blocks, axis=1), int(sample_rate))


def read_model_audio(path: PathLike) -> AudioClip:
    """The audio track as the models read it, mono at 16 kHz, equal to ``read_audio(path).to_model_audio()``
    but decoded and resampled block by block: the file's own samples (6x larger for 48 kHz stereo) are
    never all in memory."""
    from .resample import StreamingResampler

    path, container = open_input(path, READ)
    with container:
        stream = audio_stream(container, path)
        resampler = StreamingResampler(int(stream.rate or stream.codec_context.sample_rate), MODEL_SAMPLE_RATE)
        parts, channels = [], set()
        for block in iter_audio_blocks(container, stream, path):
            channels.add(block.shape[0])
            parts.append(resampler.feed(block))
        parts.append(resampler.finish())
    if resampler.samples_fed == 0:
        raise media_error(path, READ, "the audio stream contains no samples (zero-length audio)",
                          "give audio at least as long as the video")
    if len(channels) > 1:
        raise media_error(path, READ, f"the channel count changes mid-stream ({sorted(channels)})",
                          "convert it to a fixed channel layout first")
    return AudioClip(np.concatenate(parts)[None], MODEL_SAMPLE_RATE)
