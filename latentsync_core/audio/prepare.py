"""Any audio the pack receives -> the 16 kHz mono float32 copy Whisper reads.

Inputs: an AudioClip (`.samples` [C, T] + `.sample_rate`), a ComfyUI AUDIO dict
(`{"waveform": [B, C, T] tensor, "sample_rate": int}`), or a bare array/tensor plus its rate. The
caller's audio is never modified: every step returns a new array, and the audio muxed into the output
video stays the user's original.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from ..errors import AudioError
from ..media.resample import MODEL_SAMPLE_RATE, to_model_audio
from .mel import MIN_SAMPLES

log = logging.getLogger("latentsync")

MAX_CHANNELS = 16  # a 2-D array whose first axis is longer than this is [samples, channels]


def pcm_to_float(samples: np.ndarray) -> np.ndarray:
    """Integer PCM at its own full scale -> float32 in [-1, 1); float input -> float32 unchanged in value."""
    samples = np.asarray(samples)
    kind = samples.dtype.kind
    if kind == "f":
        return samples.astype(np.float32, copy=False)
    if kind == "u":  # 8-bit WAV is unsigned, centred on 128
        half = float(2 ** (8 * samples.dtype.itemsize - 1))
        return ((samples.astype(np.float64) - half) / half).astype(np.float32)
    if kind == "i":
        return (samples.astype(np.float64) / float(2 ** (8 * samples.dtype.itemsize - 1))).astype(np.float32)
    if kind == "b":
        raise AudioError("audio samples are booleans; expected PCM integers or floats")
    raise AudioError(f"audio samples have dtype {samples.dtype}; expected integer PCM or floats")


def to_numpy(samples: Any) -> np.ndarray:
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().cpu()
        if samples.dtype in (torch.bfloat16, torch.float16):
            samples = samples.float()
        return samples.numpy()
    return np.asarray(samples)


def channels_first(samples: np.ndarray) -> np.ndarray:
    """[T] -> [1, T]; [C, T] stays; [T, C] (as WAV readers return) -> [C, T]."""
    if samples.ndim == 1:
        return samples[None]
    if samples.ndim != 2:
        raise AudioError(f"audio must be shaped [channels, samples] or [samples]; got shape {tuple(samples.shape)}")
    if samples.shape[0] > MAX_CHANNELS and samples.shape[1] <= MAX_CHANNELS:
        return samples.T
    return samples


def check_finite(samples: np.ndarray, sample_rate: int) -> None:
    """NaN/inf would poison the clip-wide mel maximum and every feature; name where they are instead."""
    bad = ~np.isfinite(samples.reshape(-1, samples.shape[-1]))
    if bad.any():
        first_t = np.flatnonzero(bad.any(axis=0))[0] / sample_rate
        raise AudioError(
            f"audio contains {int(bad.sum())} NaN/inf samples (first at {first_t:.3f} s); "
            f"fix or re-export the audio before lip-syncing"
        )


def model_waveform(audio: Any, sample_rate: int | None = None) -> np.ndarray:
    """AudioClip / ComfyUI AUDIO / array + rate -> float32 [T] mono at 16 kHz (band-limited resampling).

    Channels are averaged (a plain mean for any channel count, 5.1 included). Raises AudioError for
    empty, non-finite, too-short, or malformed audio.
    """
    samples, rate = _unpack(audio, sample_rate)
    samples = channels_first(pcm_to_float(to_numpy(samples)))
    if samples.shape[-1] == 0 or samples.shape[0] == 0:
        raise AudioError("the audio is empty (0 samples); connect an audio input that has sound")
    check_finite(samples, rate)
    if rate < MODEL_SAMPLE_RATE:
        log.info("audio at %d Hz is upsampled to %d Hz; it holds nothing above %d Hz", rate, MODEL_SAMPLE_RATE, rate // 2)
    mono = to_model_audio(samples, rate, MODEL_SAMPLE_RATE)
    check_length(mono.shape[-1])
    return mono


def check_length(num_samples: int) -> None:
    if num_samples == 0:
        raise AudioError("the audio is empty (0 samples); connect an audio input that has sound")
    if num_samples < MIN_SAMPLES:
        raise AudioError(
            f"the audio is {num_samples / MODEL_SAMPLE_RATE * 1000:.1f} ms long; Whisper features need at least "
            f"{MIN_SAMPLES / MODEL_SAMPLE_RATE * 1000:.0f} ms (one 20 ms feature step)"
        )


def _unpack(audio: Any, sample_rate: int | None) -> tuple[Any, int]:
    if isinstance(audio, dict):  # ComfyUI AUDIO
        if "waveform" not in audio or "sample_rate" not in audio:
            raise AudioError(f"AUDIO input lacks 'waveform'/'sample_rate' (has keys {sorted(audio)})")
        waveform = audio["waveform"]
        if getattr(waveform, "ndim", 0) == 3:
            if waveform.shape[0] != 1:
                raise AudioError(f"AUDIO input holds a batch of {waveform.shape[0]} clips; lip-sync takes one clip")
            waveform = waveform[0]
        return waveform, _rate(audio["sample_rate"])
    if hasattr(audio, "samples") and hasattr(audio, "sample_rate"):  # media.audio_file.AudioClip
        return audio.samples, _rate(audio.sample_rate)
    if sample_rate is None:
        raise AudioError("a bare audio array needs its sample_rate")
    return audio, _rate(sample_rate)


def _rate(value: Any) -> int:
    try:
        rate = int(value)
    except (TypeError, ValueError):
        raise AudioError(f"audio sample rate {value!r} is not a number") from None
    if rate <= 0 or rate != value:
        raise AudioError(f"audio sample rate must be a positive whole number of Hz, got {value!r}")
    return rate
