"""The mel spectrogram StableSyncNet was trained on (LatentSync's configs/audio.yaml, Wav2Lip's front-end).

16 kHz audio -> pre-emphasis 0.97 -> |STFT| (800-sample periodic Hann window, hop 200, frames centred
with zero padding) -> 80 Slaney mel bands 55-7600 Hz -> dB (floor -100 dB) - 20 dB -> mapped linearly
to [-4, 4] and clipped. 80 mel frames per second; a 16-frame window at 25 fps is 52 frames.
Plain numpy/scipy: matches librosa's stft and filters.mel (what the official calls) to float precision.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from scipy.signal import lfilter

from ..errors import AudioError


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 16000
    n_fft: int = 800
    hop_size: int = 200
    win_size: int = 800
    num_mels: int = 80
    fmin: float = 55.0
    fmax: float = 7600.0
    preemphasis: float = 0.97
    min_level_db: float = -100.0
    ref_level_db: float = 20.0
    max_abs_value: float = 4.0

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_size


AUDIO_YAML = MelConfig()


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's scale: linear (200/3 Hz per mel) below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    mel = hz / f_sp
    above = hz >= min_log_hz
    mel[above] = min_log_mel + np.log(hz[above] / min_log_hz) / logstep
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    hz = f_sp * mel
    above = mel >= min_log_mel
    hz[above] = min_log_hz * np.exp(logstep * (mel[above] - min_log_mel))
    return hz


@lru_cache(maxsize=4)
def mel_filter_bank(sample_rate: int, n_fft: int, num_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """[num_mels, n_fft//2 + 1] float32 triangular filters, area-normalised (Slaney), as librosa builds them."""
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise AudioError(f"mel band {fmin}-{fmax} Hz does not fit a {sample_rate} Hz signal")
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array([fmin]))[0], _hz_to_mel(np.array([fmax]))[0], num_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    weights = np.zeros((num_mels, len(fft_freqs)), dtype=np.float32)
    for i in range(num_mels):
        rising = -ramps[i] / widths[i]
        falling = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:num_mels + 2] - edges[:num_mels]))[:, None]
    return weights


def _magnitude_stft(signal: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """|STFT| [n_fft//2 + 1, 1 + len // hop]: frames centred on multiples of the hop, zero padded."""
    pad = cfg.n_fft // 2
    padded = np.pad(signal, (pad, pad))
    count = 1 + len(signal) // cfg.hop_size
    frames = np.lib.stride_tricks.sliding_window_view(padded, cfg.n_fft)[::cfg.hop_size][:count]
    # Periodic Hann (scipy.signal.get_window's default), centred in n_fft when the window is shorter.
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(cfg.win_size) / cfg.win_size)
    if cfg.win_size < cfg.n_fft:
        left = (cfg.n_fft - cfg.win_size) // 2
        window = np.pad(window, (left, cfg.n_fft - cfg.win_size - left))
    spectrum = np.empty((count, cfg.n_fft // 2 + 1), dtype=np.float64)
    block = 4096  # frames per FFT call: bounded memory for long clips
    for start in range(0, count, block):
        spectrum[start:start + block] = np.abs(np.fft.rfft(frames[start:start + block] * window, axis=1))
    return spectrum.T


def melspectrogram(waveform: np.ndarray | torch.Tensor, cfg: MelConfig = AUDIO_YAML) -> np.ndarray:
    """Normalised log-mel [num_mels, 1 + T // hop] float32 of a mono waveform at `cfg.sample_rate`."""
    if isinstance(waveform, torch.Tensor):
        waveform = waveform.detach().cpu().numpy()
    signal = np.asarray(waveform, dtype=np.float64).reshape(-1)
    if signal.size == 0:
        raise AudioError("cannot compute a mel spectrogram of empty audio")
    if not np.all(np.isfinite(signal)):
        raise AudioError("the audio contains NaN or infinite samples")
    emphasised = lfilter([1.0, -cfg.preemphasis], [1.0], signal)
    mel = mel_filter_bank(cfg.sample_rate, cfg.n_fft, cfg.num_mels, cfg.fmin, cfg.fmax) @ _magnitude_stft(emphasised, cfg)
    floor = math.pow(10.0, cfg.min_level_db / 20.0)
    db = 20.0 * np.log10(np.maximum(floor, mel)) - cfg.ref_level_db
    span = 2.0 * cfg.max_abs_value
    normalised = span * ((db - cfg.min_level_db) / -cfg.min_level_db) - cfg.max_abs_value
    return np.clip(normalised, -cfg.max_abs_value, cfg.max_abs_value).astype(np.float32)


def mel_window_start(frame_index: int, fps: float, cfg: MelConfig = AUDIO_YAML) -> int:
    """First mel frame of the window for video frame `frame_index` (the official int(80 * t) rounding)."""
    return int(cfg.frames_per_second * (frame_index / float(fps)))


def mel_window(mel: np.ndarray | torch.Tensor, frame_index: int, fps: float, length: int,
               cfg: MelConfig = AUDIO_YAML) -> torch.Tensor | None:
    """[1, num_mels, length] mel window starting at video frame `frame_index`; None if it runs past the end."""
    start = mel_window_start(frame_index, fps, cfg)
    if start < 0 or start + length > mel.shape[-1]:
        return None
    window = torch.as_tensor(np.ascontiguousarray(mel[:, start:start + length]))
    return window.unsqueeze(0)
