"""Which video frames fall in silent stretches of the audio (opt-in; the official marks none).

LatentSync was trained on speech, so in pauses it still draws a half-open, moving mouth: the most
reported artefact. With silence detection on, the sampler can keep the original mouth on the frames
marked here.

A frame is silent when the RMS level of the audio under it is below both
- `floor_db` dBFS (absolute: digital silence, room tone), or
- `threshold_db` under the clip's speech level (the 95th percentile of frame levels), so a loud
  recording's breaths and a quiet recording's pauses are judged alike;
then short silent runs (< `min_silence_s`) are dropped, because the mouth keeps moving between words,
and speech is widened by `pad_s` each side, because lips open before the sound starts and close after.
Frames after the end of the audio count as silent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .chunks import Fps, check_fps

SPEECH_LEVEL_PERCENTILE = 95
SILENT_DB = -200.0  # level given to frames with no audio or all-zero audio


@dataclass(frozen=True)
class SilenceOptions:
    threshold_db: float = -35.0
    floor_db: float = -60.0
    min_silence_s: float = 0.3
    pad_s: float = 0.1


def frame_levels_db(waveform: np.ndarray, sample_rate: int, num_frames: int, fps: Fps) -> np.ndarray:
    """RMS level in dBFS of the audio under each video frame [num_frames] (SILENT_DB where there is none)."""
    fps = float(check_fps(fps))
    samples = np.asarray(waveform, dtype=np.float64).reshape(-1)
    # Prefix sums make each frame's energy O(1), whatever the clip length.
    energy = np.concatenate([[0.0], np.cumsum(samples * samples)])
    bounds = np.round(np.arange(num_frames + 1) * sample_rate / fps).astype(np.int64)
    bounds = np.clip(bounds, 0, samples.shape[0])
    counts = np.diff(bounds)
    sums = energy[bounds[1:]] - energy[bounds[:-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_square = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
        levels = 10.0 * np.log10(np.maximum(mean_square, 0.0))
    return np.where(np.isfinite(levels), np.maximum(levels, SILENT_DB), SILENT_DB)


def detect_silent_frames(waveform: np.ndarray, sample_rate: int, num_frames: int, fps: Fps,
                         options: SilenceOptions = SilenceOptions()) -> np.ndarray:
    """bool [num_frames]: True where the frame lies in a silent stretch (see the module doc)."""
    levels = frame_levels_db(waveform, sample_rate, num_frames, fps)
    if num_frames == 0:
        return np.zeros(0, dtype=bool)
    heard = levels[levels > SILENT_DB]
    speech_level = np.percentile(heard, SPEECH_LEVEL_PERCENTILE) if heard.size else SILENT_DB
    threshold = max(options.floor_db, speech_level + options.threshold_db)
    silent = levels < threshold
    fps = float(check_fps(fps))
    silent = _fill_short_runs(silent, math.ceil(options.min_silence_s * fps))
    silent = _widen_speech(silent, math.ceil(options.pad_s * fps - 1e-9))
    # Padding must not reach past the audio: there is nothing to lip-sync to there.
    starts = np.round(np.arange(num_frames) * sample_rate / fps)
    silent[starts >= np.asarray(waveform).reshape(-1).shape[0]] = True
    return silent


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _fill_short_runs(silent: np.ndarray, min_frames: int) -> np.ndarray:
    silent = silent.copy()
    for start, stop in _runs(silent):
        if stop - start < min_frames:
            silent[start:stop] = False
    return silent


def _widen_speech(silent: np.ndarray, pad_frames: int) -> np.ndarray:
    if pad_frames <= 0:
        return silent
    speech = ~silent
    widened = speech.copy()
    for shift in range(1, pad_frames + 1):
        widened[shift:] |= speech[:-shift]
        widened[:-shift] |= speech[shift:]
    return ~widened
