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


class StreamingResampler:
    """`to_model_audio` of a long track fed block by block, equal to resampling it whole, in bounded memory.

    Every output sample of the polyphase filter is a dot product over the input samples within the
    filter's reach, so it can be computed from any stretch of input that covers that reach and starts
    on a multiple of `down` (which keeps the filter phases where the whole-signal run has them). Only
    that stretch (a few hundred samples) is kept between blocks.
    """

    def __init__(self, orig_rate: int, new_rate: int = MODEL_SAMPLE_RATE):
        self.orig_rate, self.new_rate = int(orig_rate), int(new_rate)
        if self.orig_rate <= 0 or self.new_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {orig_rate} -> {new_rate}")
        g = gcd(self.orig_rate, self.new_rate)
        self.up, self.down = self.new_rate // g, self.orig_rate // g
        # resample_poly's filter reaches 10 * max(up, down) upsampled taps either side of a sample.
        self.reach = (10 * max(self.up, self.down)) // self.up + self.down + 4
        self._buffer = np.zeros(0, np.float32)
        self._start = 0  # input index of _buffer[0], a multiple of `down`
        self._fed = 0  # input samples fed so far
        self._emitted = 0  # output samples returned so far

    def _resampled(self) -> np.ndarray:
        if self.up == self.down:
            return self._buffer.copy()
        return resample(self._buffer, self.down, self.up)

    def feed(self, block: np.ndarray) -> np.ndarray:
        """Mono (or [C, n], down-mixed here) float samples in; the output samples now final out."""
        mono = to_mono(block)
        self._buffer = np.concatenate([self._buffer, mono])
        self._fed += len(mono)
        if self.up == self.down:
            out, self._buffer, self._start = self._buffer, np.zeros(0, np.float32), self._fed
            self._emitted += len(out)
            return out
        ready = max(0, (self._fed - self.reach) * self.up // self.down)  # outputs whose reach is all here
        if ready - self._emitted < 4 * self.up:
            return np.zeros(0, np.float32)  # wait for more input: too few outputs to be worth a filter run
        offset = self._start * self.up // self.down
        out = self._resampled()[self._emitted - offset:ready - offset]
        self._emitted = ready
        keep_from = max(self._start, (ready * self.down // self.up - self.reach) // self.down * self.down)
        self._buffer = self._buffer[keep_from - self._start:]
        self._start = keep_from
        return out

    @property
    def samples_fed(self) -> int:
        return self._fed

    def finish(self) -> np.ndarray:
        """The remaining output samples (the whole-signal length is ceil(n * up / down))."""
        total = -(-self._fed * self.up // self.down)
        if self._emitted >= total:
            return np.zeros(0, np.float32)
        offset = self._start * self.up // self.down
        out = self._resampled()[self._emitted - offset:total - offset]
        self._emitted = total
        self._buffer = np.zeros(0, np.float32)
        return out
