"""Per-video-frame windows of Whisper features, for any frame rate.

Frame i at `fps` is centred on encoder position c = floor(i * 50 / fps) and sees positions c-4 ... c+5
(the official `audio_feat_length = [2, 2]`: two video frames of 2 positions each side plus the frame's
own two), clamped to the clip, flattened time-major into 10*(L+1) rows (row = (L+1)*t + layer).
The official pipeline resamples video to 25 fps first; here the true fps is used.

Frames past the end of the audio get the last positions repeated (the official clamping); callers
that want those frames untouched can use `frames_with_audio`.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch

from ..errors import AudioError, InputMismatchError

POSITIONS_PER_SECOND = 50
MODEL_RATE = 16000  # Whisper's sample rate
CONTEXT_BEFORE = 4
CONTEXT_AFTER = 5
CHUNK_POSITIONS = CONTEXT_BEFORE + 1 + CONTEXT_AFTER

Fps = float | int | Fraction


def chunk_centres(num_frames: int, fps: Fps, first_frame: int = 0) -> np.ndarray:
    """Encoder position at the centre of frames first_frame ... first_frame+num_frames-1 (int64)."""
    fps = check_fps(fps)
    frames = np.arange(first_frame, first_frame + num_frames, dtype=np.int64)
    if isinstance(fps, Fraction):  # exact: 30000/1001 must not drift over an hour of video
        return (frames * POSITIONS_PER_SECOND * fps.denominator) // fps.numerator
    # The official's int(i * 50 / fps), evaluated in the same float64 order so the results agree exactly.
    return np.floor(frames.astype(np.float64) * POSITIONS_PER_SECOND / fps).astype(np.int64)


def chunk_positions(num_frames: int, fps: Fps, num_positions: int, first_frame: int = 0) -> np.ndarray:
    """[num_frames, 10] feature positions each frame reads, clamped to [0, num_positions - 1]."""
    if num_positions <= 0:
        raise AudioError("there are no audio features (the audio is shorter than 20 ms)")
    centres = chunk_centres(num_frames, fps, first_frame)
    offsets = np.arange(-CONTEXT_BEFORE, CONTEXT_AFTER + 1, dtype=np.int64)
    return np.clip(centres[:, None] + offsets[None, :], 0, num_positions - 1)


def frame_audio_chunks(features: torch.Tensor, num_frames: int, fps: Fps, *, first_frame: int = 0) -> torch.Tensor:
    """[T50, L+1, C] features -> [num_frames, 10*(L+1), C], one chunk per video frame.

    `first_frame` selects a run of frames from a longer video, so a sampler can build chunks batch
    by batch instead of holding the whole video's chunks (~2 MB per second of 25 fps video for tiny).
    """
    if features.ndim != 3:
        raise AudioError(f"features must be [positions, layers, channels], got shape {tuple(features.shape)}")
    if num_frames < 0 or first_frame < 0:
        raise InputMismatchError(f"frame range must be non-negative, got first_frame={first_frame}, num_frames={num_frames}")
    positions = chunk_positions(num_frames, fps, features.shape[0], first_frame)
    index = torch.from_numpy(positions.reshape(-1)).to(features.device)
    picked = features.index_select(0, index)
    return picked.reshape(num_frames, CHUNK_POSITIONS * features.shape[1], features.shape[2])


def frames_with_audio(num_samples: int, sample_rate: int, fps: Fps) -> int:
    """How many frames start before the audio ends (later frames get clamped features)."""
    fps = check_fps(fps)
    return math.ceil(Fraction(num_samples, sample_rate) * Fraction(fps))


def official_frame_count(num_samples: int, sample_rate: int, fps: Fps) -> int:
    """Frames the official pipeline outputs for `num_samples` of audio at `sample_rate`, for a video at `fps`.

    Official: its output has one frame per Whisper chunk (the video is looped or cut to that), so the
    length is `official_chunk_count` of the feature positions of the 16 kHz copy: per 30 s window,
    half its mel frames (160 samples each); resampling to 16 kHz gives ceil(n * 16000 / rate) samples.
    """
    from .features import window_spans
    from .mel import mel_frame_count

    samples_16k = -(-int(num_samples) * MODEL_RATE // int(sample_rate))
    positions = sum(keep for _, keep in window_spans(mel_frame_count(samples_16k)))
    return official_chunk_count(positions, fps)


def official_chunk_count(num_positions: int, fps: Fps) -> int:
    """How many chunks the official `feature2chunks` makes (it loops/cuts the video to this length).

    Its loop appends frame i's chunk, then stops once floor(i * 50 / fps) > num_positions: one more
    chunk than the first frame whose centre lies past the end.
    """
    fps = check_fps(fps)
    estimate = max(int((num_positions + 1) * float(fps) / POSITIONS_PER_SECOND) - 2, 0)
    centres = chunk_centres(8, fps, estimate)
    while centres[0] > num_positions:  # never for a correct estimate; guards float rounding
        estimate = max(estimate - 8, 0)
        centres = chunk_centres(8, fps, estimate)
    while not (centres > num_positions).any():
        estimate += 8
        centres = chunk_centres(8, fps, estimate)
    return estimate + int(np.argmax(centres > num_positions)) + 1


def check_fps(fps: Fps) -> Fps:
    if isinstance(fps, Fraction):
        if fps <= 0:
            raise InputMismatchError(f"video fps must be positive, got {fps}")
        return fps
    value = float(fps)
    if not math.isfinite(value) or value <= 0:
        raise InputMismatchError(f"video fps must be a positive number, got {fps!r}")
    return value
