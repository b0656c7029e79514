"""Matching a video's length to its audio, for frames held in memory (the Length Adjust node).

The rules are the streaming pipeline's (pipeline.source: `output_length`, `source_index`, the loop
modes pingpong / loop / freeze / trim_audio and the tail modes trim / keep); this module only applies
them to a whole batch and fits the audio track to the resulting length.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from .audio import frames_with_audio
from .errors import AudioError
from .media.audio_file import AudioClip
from .pipeline.source import output_length, source_index


def frame_index_map(video_frames: int, audio_frames: int, loop_mode: str = "pingpong",
                    tail_mode: str = "trim") -> np.ndarray:
    """int64 [output frames]: the source frame each output frame shows."""
    total = output_length(video_frames, audio_frames, loop_mode, tail_mode)
    return np.array([source_index(i, video_frames, loop_mode) for i in range(total)], dtype=np.int64)


def audio_frame_count(clip: AudioClip, fps: float | Fraction) -> int:
    """Video frames at `fps` that start before the audio ends."""
    if clip.num_samples == 0:
        raise AudioError("the audio is empty (0 samples); connect an audio input that has sound")
    return frames_with_audio(clip.num_samples, clip.sample_rate, fps)


def fit_audio(clip: AudioClip, num_frames: int, fps: float | Fraction, pad_with_silence: bool = True) -> AudioClip:
    """The audio cut to `num_frames` frames at `fps`; shorter audio is padded with silence when asked."""
    samples = round(Fraction(int(num_frames)) / Fraction(fps).limit_denominator(1_000_000) * clip.sample_rate)
    kept = clip.samples[:, :samples]
    if pad_with_silence and kept.shape[1] < samples:
        kept = np.pad(kept, ((0, 0), (0, samples - kept.shape[1])))
    return AudioClip(np.ascontiguousarray(kept, dtype=np.float32), clip.sample_rate)
