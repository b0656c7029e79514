"""Whisper features on demand equal the whole-clip features bit for bit, with a bounded cache."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from latentsync_core.audio import audio_features_for_video, frame_audio_chunks, whisper_features, whisper_log_mel
from latentsync_core.audio.feature_store import WhisperFeatureStore
from latentsync_core.audio.mel import log_mel_max, normalise_log_mel, raw_log_mel


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    from latentsync_core.audio import load_whisper
    from latentsync_core.audio.tiny import write_fixture

    (path,) = write_fixture(tmp_path_factory.mktemp("whisper_store"), seed=1)
    return load_whisper(path, "cpu", torch.float32)


def _speech(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (0.3 * envelope * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


def test_mel_pieces_equal_the_whole_clip_mel():
    samples = torch.from_numpy(_speech(7.3))
    whole = whisper_log_mel(samples)
    clip_max = log_mel_max(samples, block_frames=97)
    for first, last in [(0, 50), (37, 400), (600, whole.shape[1])]:
        piece = normalise_log_mel(raw_log_mel(samples, first, last), clip_max)
        assert torch.equal(piece, whole[:, first:last])


def test_store_gives_the_whole_clip_features_bit_for_bit_with_a_bounded_cache(whisper):
    samples = _speech(95.0)  # four 30 s windows: two encoder groups on CPU
    whole = whisper_features(whisper, samples)
    store = WhisperFeatureStore(whisper, samples, cache_groups=1)
    assert store.shape == whole.shape and len(store) == whole.shape[0] > 4500
    # Chunks of a video at 23.976 fps, read front to back as the stream does.
    fps = Fraction(24000, 1001)
    frames = 2270
    for first in range(0, frames, 300):
        count = min(300, frames - first)
        expected = frame_audio_chunks(whole, count, fps, first_frame=first)
        assert torch.equal(frame_audio_chunks(store, count, fps, first_frame=first), expected)
    assert store.groups_computed == 2 and len(store._cache) == 1  # each group once, one kept
    assert torch.equal(store.materialize(), whole)


def test_lazy_frame_audio_matches_the_eager_one(whisper):
    samples = _speech(3.0, seed=3)
    eager = audio_features_for_video(whisper, samples, 16000, 75, 25, silence=True)
    lazy = audio_features_for_video(whisper, samples, 16000, 75, 25, silence=True, lazy=True)
    assert isinstance(lazy.features, WhisperFeatureStore)
    assert torch.equal(lazy.chunk_range(10, 40), eager.chunk_range(10, 40))
    assert torch.equal(lazy.silent, eager.silent) and lazy.frames_with_audio == eager.frames_with_audio
