"""Silent-frame detection and the one-call audio path for a video."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from latentsync_core.audio import (
    FrameAudio, SilenceOptions, audio_features_for_video, detect_silent_frames, frame_audio_chunks,
    frame_levels_db, load_whisper, model_waveform, whisper_features,
)

SR = 16000


def voiced(seconds, amplitude=0.3, seed=0, rate=SR):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * rng.random(t.shape))).astype(np.float32)


def noise(seconds, db, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * SR)) * 10 ** (db / 20)).astype(np.float32)


def test_frame_levels():
    wave = np.concatenate([np.full(SR // 25, 0.5, np.float32), np.zeros(SR // 25, np.float32)])
    levels = frame_levels_db(wave, SR, 3, 25)
    assert levels[0] == pytest.approx(20 * np.log10(0.5), abs=1e-6)
    assert levels[1] == levels[2] == -200.0  # digital silence, then no audio at all


def test_pause_between_speech_is_silent_with_padding():
    wave = np.concatenate([voiced(1.0), np.zeros(SR, np.float32), voiced(1.0)])
    silent = detect_silent_frames(wave, SR, 75, 25)
    # Frames 25..49 are the gap; 0.1 s (3 frames at 25 fps) of each edge stays speech.
    assert not silent[:28].any()
    assert silent[28:47].all()
    assert not silent[47:].any()


def test_short_pauses_are_kept_as_speech():
    wave = np.concatenate([voiced(1.0), np.zeros(int(0.2 * SR), np.float32), voiced(1.0)])
    assert not detect_silent_frames(wave, SR, 55, 25).any()
    options = SilenceOptions(min_silence_s=0.1, pad_s=0.0)
    assert detect_silent_frames(wave, SR, 55, 25, options)[26:29].all()


def test_threshold_is_relative_to_the_speech_level():
    # A quiet recording (speech near -45 dBFS, room noise at -85) is judged like a loud one.
    quiet = np.concatenate([voiced(1.0, amplitude=0.01), noise(1.0, -85), voiced(1.0, amplitude=0.01)])
    silent = detect_silent_frames(quiet, SR, 75, 25)
    assert silent[30:45].all() and not silent[:25].any()
    # Room noise at -55 dBFS under speech near -15 dBFS: silent too (more than 35 dB below speech).
    loud = np.concatenate([voiced(1.0), noise(1.0, -55), voiced(1.0)])
    assert detect_silent_frames(loud, SR, 75, 25)[30:45].all()
    # Breathing-level noise only 10 dB under speech is not called silence.
    near = np.concatenate([voiced(1.0), noise(1.0, -22), voiced(1.0)])
    assert not detect_silent_frames(near, SR, 75, 25).any()


def test_all_zero_and_frames_past_the_audio_are_silent():
    assert detect_silent_frames(np.zeros(SR, np.float32), SR, 30, 25).all()
    silent = detect_silent_frames(voiced(1.0), SR, 60, 25)
    assert not silent[:25].any() and silent[25:].all()  # speech padding stops where the audio does


def test_any_fps_gives_one_flag_per_frame():
    wave = voiced(2.0)
    for fps in (23.976, 29.97, 60, Fraction(30000, 1001)):
        assert detect_silent_frames(wave, SR, 17, fps).shape == (17,)


@pytest.fixture(scope="module")
def encoder(fixture_models):
    return load_whisper(fixture_models / "whisper" / "tiny.pt", "cpu", torch.float32)


def test_audio_features_for_video(encoder):
    stereo_44k = np.stack([voiced(2.0, seed=3, rate=44100), voiced(2.0, seed=4, rate=44100)])
    stereo_44k[:, 44100:] = 0  # the second second is silent
    audio = {"waveform": torch.from_numpy(stereo_44k)[None], "sample_rate": 44100}
    before = audio["waveform"].clone()

    result = audio_features_for_video(encoder, audio, None, num_frames=70, fps=30)
    assert isinstance(result, FrameAudio) and result.silent is None
    assert result.audio_seconds == pytest.approx(2.0) and result.frames_with_audio == 60
    expected = whisper_features(encoder, model_waveform(audio))
    assert torch.equal(result.features, expected)
    assert torch.equal(result.chunks, frame_audio_chunks(expected, 70, 30))
    assert torch.equal(result.chunk_range(10, 25), result.chunks[10:25])
    assert torch.equal(audio["waveform"], before)

    marked = audio_features_for_video(encoder, audio, None, num_frames=70, fps=30, silence=True)
    assert marked.silent.dtype == torch.bool and marked.silent.shape == (70,)
    assert not marked.silent[:28].any() and marked.silent[36:].all()
    strict = audio_features_for_video(encoder, audio, None, 70, 30, silence=SilenceOptions(min_silence_s=5.0))
    assert not strict.silent[:60].any()
