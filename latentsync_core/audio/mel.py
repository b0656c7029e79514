"""Whisper's log-mel spectrogram of a whole clip, computed in blocks so hours of audio stay cheap.

The result equals `whisper.audio.log_mel_spectrogram(waveform)` (same filter bank file, same STFT,
same drop of the last STFT frame, same clamp to 8 decades under the *whole clip's* maximum), but the
STFT never exists for the whole clip at once: its complex output is ~5x the waveform's size.
"""
from __future__ import annotations

import torch

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
MIN_SAMPLES = 2 * HOP_LENGTH  # two mel frames make one encoder position (conv2 has stride 2)
BLOCK_FRAMES = 30000  # 5 minutes per STFT block: ~50 MB of complex spectrum


def mel_frame_count(num_samples: int) -> int:
    # torch.stft(center=True) yields n // hop + 1 frames; Whisper drops the last one.
    return num_samples // HOP_LENGTH


def whisper_log_mel(waveform: torch.Tensor, n_mels: int = 80, block_frames: int = BLOCK_FRAMES) -> torch.Tensor:
    """[T] float32 16 kHz samples (T > 200) -> [n_mels, T // 160] float32 normalised log-mel, on CPU."""
    waveform = waveform.detach().to("cpu", torch.float32).reshape(-1)
    num_frames = mel_frame_count(waveform.numel())
    log_mel = torch.empty((n_mels, num_frames), dtype=torch.float32)
    for first in range(0, num_frames, block_frames):
        last = min(first + block_frames, num_frames)
        log_mel[:, first:last] = raw_log_mel(waveform, first, last, n_mels)
    return normalise_log_mel(log_mel, log_mel.max())


def raw_log_mel(waveform: torch.Tensor, first: int, last: int, n_mels: int = 80) -> torch.Tensor:
    """Un-normalised log10 mel frames first .. last-1 of a whole clip, from its samples around them only.

    center=True STFT == reflect-pad the clip by n_fft/2, then frame k covers padded[k*hop : k*hop + n_fft];
    the padding is built here only where the frames reach past the clip's ends.
    """
    from whisper.audio import mel_filters

    total = waveform.numel()
    lo, hi = first * HOP_LENGTH - N_FFT // 2, (last - 1) * HOP_LENGTH + N_FFT // 2
    index = torch.arange(lo, hi)
    index = torch.where(index < 0, -index, index)  # reflect without repeating the edge sample
    index = torch.where(index >= total, 2 * (total - 1) - index, index)
    segment = waveform[index]
    spectrum = torch.stft(segment, N_FFT, HOP_LENGTH, window=torch.hann_window(N_FFT), center=False,
                          return_complex=True)
    power = spectrum.abs() ** 2
    return torch.clamp(mel_filters(torch.device("cpu"), n_mels) @ power, min=1e-10).log10()


def normalise_log_mel(log_mel: torch.Tensor, clip_max: torch.Tensor | float) -> torch.Tensor:
    """Whisper's clamp to 8 decades under the *whole clip's* maximum, then scaling."""
    log_mel = torch.maximum(log_mel, torch.as_tensor(clip_max, dtype=log_mel.dtype) - 8.0)
    return (log_mel + 4.0) / 4.0


def log_mel_max(waveform: torch.Tensor, n_mels: int = 80, block_frames: int = BLOCK_FRAMES) -> torch.Tensor:
    """The whole clip's log-mel maximum, block by block (what `normalise_log_mel` needs, without the mel)."""
    waveform = waveform.detach().to("cpu", torch.float32).reshape(-1)
    num_frames = mel_frame_count(waveform.numel())
    best = torch.tensor(float("-inf"))
    for first in range(0, num_frames, block_frames):
        best = torch.maximum(best, raw_log_mel(waveform, first, min(first + block_frames, num_frames), n_mels).max())
    return best
