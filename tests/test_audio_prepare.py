"""Any audio input -> the 16 kHz mono float32 copy Whisper reads; the caller's audio is never touched."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from latentsync_core.audio import model_waveform
from latentsync_core.audio.prepare import pcm_to_float
from latentsync_core.errors import AudioError


def tone(freq, rate, seconds=1.0, amplitude=0.5, channels=None):
    t = np.arange(int(rate * seconds)) / rate
    wave = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return wave if channels is None else np.stack([wave] * channels)


def peak_hz(wave, rate=16000):
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return np.fft.rfftfreq(len(wave), 1 / rate)[np.argmax(spectrum)]


def test_pcm_scales():
    assert pcm_to_float(np.array([0, 128, 255], dtype=np.uint8)).tolist() == [-1.0, 0.0, 127 / 128]
    assert pcm_to_float(np.array([-128, 64], dtype=np.int8)).tolist() == [-1.0, 0.5]
    assert pcm_to_float(np.array([-32768, 16384], dtype=np.int16)).tolist() == [-1.0, 0.5]
    assert pcm_to_float(np.array([-2**31, 2**30], dtype=np.int32)).tolist() == [-1.0, 0.5]
    assert pcm_to_float(np.array([0.25], dtype=np.float64)).dtype == np.float32


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 96000])
def test_any_rate_becomes_16k(rate):
    out = model_waveform(tone(1000, rate), rate)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - 16000) <= 1
    assert abs(peak_hz(out) - 1000) < 2


@pytest.mark.parametrize("dtype, scale", [(np.int16, 32767), (np.int32, 2**31 - 1)])
def test_integer_pcm_matches_float(dtype, scale):
    wave = tone(440, 16000)
    pcm = np.round(wave * scale).astype(dtype)
    assert np.abs(model_waveform(pcm, 16000) - wave).max() < 1e-4


def test_eight_bit_unsigned_pcm():
    wave = tone(440, 16000, amplitude=0.9)
    pcm = np.round(wave * 127 + 128).astype(np.uint8)
    assert np.abs(model_waveform(pcm, 16000) - wave).max() < 1 / 64


def test_six_channels_are_averaged_and_layouts_are_recognised():
    rng = np.random.default_rng(0)
    six = rng.standard_normal((6, 16000)).astype(np.float32) * 0.1
    expected = six.mean(axis=0)
    assert np.allclose(model_waveform(six, 16000), expected, atol=1e-7)
    assert np.allclose(model_waveform(six.T.copy(), 16000), expected, atol=1e-7)  # [T, C] as WAV readers give


def test_input_is_not_modified():
    stereo = tone(300, 48000, channels=2)
    stereo[1] *= 0.5
    before = stereo.copy()
    model_waveform(stereo, 48000)
    mono16 = tone(300, 16000)
    out = model_waveform(mono16, 16000)
    out[:] = 0
    assert np.array_equal(stereo, before) and mono16.any()


def test_comfy_audio_dict_and_clip_objects():
    wave = tone(500, 44100, channels=2)
    expected = model_waveform(wave, 44100)
    comfy = {"waveform": torch.from_numpy(wave)[None], "sample_rate": 44100}
    assert np.array_equal(model_waveform(comfy), expected)
    clip = SimpleNamespace(samples=wave, sample_rate=44100)
    assert np.array_equal(model_waveform(clip), expected)


@pytest.mark.parametrize("audio, rate, message", [
    (np.zeros(0, dtype=np.float32), 16000, "empty"),
    (np.zeros((2, 0), dtype=np.float32), 16000, "empty"),
    (np.zeros(100, dtype=np.float32), 16000, "at least 20 ms"),
    (np.zeros(100, dtype=np.float32), 8000, "at least 20 ms"),
    (np.array([0.0] * 4800 + [np.nan] * 3 + [0.0] * 100, dtype=np.float32), 48000, r"3 NaN/inf samples \(first at 0.100 s\)"),
    (np.zeros((1, 2, 3, 4), dtype=np.float32), 16000, "shaped"),
    (np.zeros(1000, dtype=bool), 16000, "booleans"),
    (np.zeros(1000, dtype=np.float32), 0, "positive"),
    (np.zeros(1000, dtype=np.float32), 44100.5, "whole number"),
    (np.zeros(1000, dtype=np.float32), None, "needs its sample_rate"),
    ({"waveform": torch.zeros(2, 1, 1000), "sample_rate": 16000}, None, "batch of 2"),
    ({"samples": torch.zeros(1, 1000)}, None, "lacks"),
])
def test_bad_audio_raises_clear_errors(audio, rate, message):
    with pytest.raises(AudioError, match=message):
        model_waveform(audio, rate)
