"""Whisper's log-mel spectrogram of a whole clip, computed in blocks so hours of audio stay cheap.

The result equals `whisper.audio.log_mel_spectrogram(waveform)` (same filter bank file, same STFT,
same drop of the last STFT frame, same clamp to 8 decades under the *whole clip's* maximum), but the
STFT never exists for the whole clip at once: its complex output is ~5x the waveform's size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

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
    from whisper.audio import mel_filters

    waveform = waveform.detach().to("cpu", torch.float32).reshape(-1)
    num_frames = mel_frame_count(waveform.numel())
    # center=True STFT == reflect-pad by n_fft/2, then frame k covers padded[k*hop : k*hop + n_fft].
    padded = F.pad(waveform[None, None], (N_FFT // 2, N_FFT // 2), mode="reflect")[0, 0]
    window = torch.hann_window(N_FFT)
    filters = mel_filters(torch.device("cpu"), n_mels)
    log_mel = torch.empty((n_mels, num_frames), dtype=torch.float32)
    for first in range(0, num_frames, block_frames):
        last = min(first + block_frames, num_frames)
        segment = padded[first * HOP_LENGTH: (last - 1) * HOP_LENGTH + N_FFT]
        spectrum = torch.stft(segment, N_FFT, HOP_LENGTH, window=window, center=False, return_complex=True)
        power = spectrum.abs() ** 2
        log_mel[:, first:last] = torch.clamp(filters @ power, min=1e-10).log10()
    log_mel = torch.maximum(log_mel, log_mel.max() - 8.0)
    return (log_mel + 4.0) / 4.0
