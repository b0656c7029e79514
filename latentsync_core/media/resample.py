"""Band-limited resampling and down-mixing for model inputs.

Only ever applied to a copy that feeds a model; the audio muxed into output videos is the user's
original, untouched.
"""
from __future__ import annotations

from math import gcd

import numpy as np
from scipy.signal import resample_poly

MODEL_SAMPLE_RATE = 16000


def to_mono(waveform: np.ndarray) -> np.ndarray:
    """[C, T] or [T] float -> [T] float32, averaging channels (as ffmpeg's `-ac 1` does)."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim == 1:
        return waveform
    if waveform.ndim != 2:
        raise ValueError(f"expected audio shaped [channels, samples] or [samples], got {waveform.shape}")
    return waveform.mean(axis=0, dtype=np.float32)


def resample(waveform: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Polyphase FIR resampling along the last axis (Kaiser window, anti-aliased), float32 out."""
    waveform = np.asarray(waveform, dtype=np.float32)
    orig_rate, new_rate = int(orig_rate), int(new_rate)
    if orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} -> {new_rate}")
    if orig_rate == new_rate or waveform.shape[-1] == 0:
        return waveform.copy()
    g = gcd(orig_rate, new_rate)
    up, down = new_rate // g, orig_rate // g
    # A 5 * max(up, down) half-length Kaiser(beta=8.6) filter keeps the stop band below -80 dB.
    out = resample_poly(waveform, up, down, axis=-1, window=("kaiser", 8.6))
    return out.astype(np.float32, copy=False)


def to_model_audio(waveform: np.ndarray, sample_rate: int, target_rate: int = MODEL_SAMPLE_RATE) -> np.ndarray:
    """Any-rate mono/multichannel float audio -> mono float32 at `target_rate` (16 kHz for Whisper)."""
    return resample(to_mono(waveform), sample_rate, target_rate)
