"""Audio for a video in one call: any AUDIO-like input -> features, per-frame chunks, silent frames."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InputMismatchError
from ..media.rate import exact_fps
from ..media.resample import MODEL_SAMPLE_RATE
from .chunks import Fps, check_fps, frame_audio_chunks, frames_with_audio
from .feature_store import WhisperFeatureStore
from .features import whisper_features
from .prepare import model_waveform
from .silence import SilenceOptions, detect_silent_frames


@dataclass
class FrameAudio:
    """Whisper conditioning for `num_frames` video frames at `fps`.

    `features` [T50, L+1, C] float32 CPU (or a WhisperFeatureStore computing them on demand). `silent` is a bool tensor [num_frames] when silence
    detection was asked for, else None. Frames at or past `frames_with_audio` lie beyond the end of the
    audio: their chunks repeat the last positions (official behaviour) and they count as silent.
    """

    features: torch.Tensor
    num_frames: int
    fps: Fps
    audio_seconds: float
    frames_with_audio: int
    silent: torch.Tensor | None = None

    @property
    def chunks(self) -> torch.Tensor:
        """[num_frames, 10*(L+1), C] float32: every frame's chunk (prefer chunk_range for long videos)."""
        return self.chunk_range(0, self.num_frames)

    def chunk_range(self, start: int, stop: int) -> torch.Tensor:
        """Chunks of frames start ... stop-1 only."""
        start, stop = max(start, 0), min(stop, self.num_frames)
        return frame_audio_chunks(self.features, max(stop - start, 0), self.fps, first_frame=start)


def audio_features_for_video(model: Any, audio: Any, sample_rate: int | None, num_frames: int, fps: Fps,
                             silence: bool | SilenceOptions | None = None,
                             windows_per_batch: int | None = None, lazy: bool = False) -> FrameAudio:
    """AudioClip / ComfyUI AUDIO / array (+ `sample_rate`) -> FrameAudio for a `num_frames`-frame video.

    The input is down-mixed and band-limit resampled to a 16 kHz copy; the original is left as is (it
    is what goes into the output video). `silence`: None/False (default, official behaviour) marks
    nothing; True uses SilenceOptions(); or pass your own SilenceOptions. `lazy`: compute the features
    30 s at a time when chunks are asked for (a WhisperFeatureStore: memory flat in the audio's length;
    the model must stay loaded while the chunks are read), else all at once.
    """
    fps = exact_fps(check_fps(fps))  # a socket's float -> the video's exact rate, as the stream has it
    if int(num_frames) < 0:
        raise InputMismatchError(f"num_frames must be zero or more, got {num_frames}")
    waveform = model_waveform(audio, sample_rate)
    if lazy:
        features = WhisperFeatureStore(model, waveform, windows_per_batch=windows_per_batch)
    else:
        features = whisper_features(model, waveform, windows_per_batch=windows_per_batch)
    silent = None
    if silence:
        options = silence if isinstance(silence, SilenceOptions) else SilenceOptions()
        silent = torch.from_numpy(detect_silent_frames(waveform, MODEL_SAMPLE_RATE, num_frames, fps, options))
    return FrameAudio(
        features=features,
        num_frames=int(num_frames),
        fps=fps,
        audio_seconds=waveform.shape[0] / MODEL_SAMPLE_RATE,
        frames_with_audio=min(frames_with_audio(waveform.shape[0], MODEL_SAMPLE_RATE, fps), int(num_frames)),
        silent=silent,
    )
