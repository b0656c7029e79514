"""Per-frame chunk indices and layout, against the official formula written out per frame."""
from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from latentsync_core.audio import chunk_positions, frame_audio_chunks, frames_with_audio, official_chunk_count
from latentsync_core.errors import AudioError, InputMismatchError

FPS_VALUES = [23.976, 24, 25, 29.97, 30, 50, 60]


def official_positions(i: int, fps, length: int) -> list[int]:
    centre = int(i * 50 / fps)
    return [min(max(idx, 0), length - 1) for idx in range(centre - 4, centre + 6)]


@pytest.mark.parametrize("fps", FPS_VALUES)
def test_positions_follow_formula_and_clamp_at_both_ends(fps):
    length = 480  # 9.6 s of audio
    num_frames = math.ceil(9.6 * fps) + 5  # run past the end of the audio
    got = chunk_positions(num_frames, fps, length)
    assert got.shape == (num_frames, 10)
    assert got.tolist() == [official_positions(i, fps, length) for i in range(num_frames)]
    assert got[0].tolist() == [0, 0, 0, 0, 0, 1, 2, 3, 4, 5]  # left clamp
    assert got[-1].tolist() == [length - 1] * 10  # right clamp


def test_centres_deep_into_long_videos():
    # An hour in: float fps follows the official float expression, a Fraction is exact.
    frames = range(107_000, 107_900)
    got = chunk_positions(len(frames), 29.97, 10**6, first_frame=frames[0])
    assert [row[4] for row in got] == [int(i * 50 / 29.97) for i in frames]
    ntsc = chunk_positions(len(frames), Fraction(30000, 1001), 10**6, first_frame=frames[0])
    assert [row[4] for row in ntsc] == [i * 50 * 1001 // 30000 for i in frames]


def test_chunk_layout_is_time_major():
    features = torch.arange(20 * 5 * 3, dtype=torch.float32).reshape(20, 5, 3)
    chunks = frame_audio_chunks(features, num_frames=8, fps=25)
    assert chunks.shape == (8, 50, 3) and chunks.dtype == torch.float32
    positions = chunk_positions(8, 25, 20)
    for frame in range(8):
        for t in range(10):
            for layer in range(5):
                assert torch.equal(chunks[frame, 5 * t + layer], features[positions[frame, t], layer])


@pytest.mark.parametrize("fps", [25, 29.97, 60])
def test_frame_ranges_equal_slices_of_the_whole(fps):
    features = torch.randn(300, 5, 4)
    whole = frame_audio_chunks(features, 200, fps)
    assert torch.equal(frame_audio_chunks(features, 37, fps, first_frame=90), whole[90:127])
    assert frame_audio_chunks(features, 0, fps).shape == (0, 50, 4)


def test_exactly_one_chunk_per_frame_even_past_the_audio():
    features = torch.randn(3, 5, 4)  # 60 ms of audio
    chunks = frame_audio_chunks(features, 100, 30)
    assert chunks.shape == (100, 50, 4)
    assert torch.equal(chunks[-1], features[-1].repeat(10, 1))


def official_loop_count(length: int, fps) -> int:
    count, i = 0, 0
    while True:
        start = int(i * 50.0 / fps)
        count += 1
        i += 1
        if start > length:
            return count


@pytest.mark.parametrize("fps", FPS_VALUES)
@pytest.mark.parametrize("length", [1, 2, 480, 992, 1501, 3934])
def test_official_chunk_count(length, fps):
    assert official_chunk_count(length, fps) == official_loop_count(length, fps)


def test_frames_with_audio():
    assert frames_with_audio(153600, 16000, 25) == 240
    assert frames_with_audio(153601, 16000, 25) == 241
    assert frames_with_audio(16000, 16000, Fraction(30000, 1001)) == 30


@pytest.mark.parametrize("fps", [0, -25, float("nan"), float("inf")])
def test_bad_fps(fps):
    with pytest.raises(InputMismatchError, match="fps"):
        frame_audio_chunks(torch.zeros(10, 5, 4), 3, fps)


def test_bad_features():
    with pytest.raises(AudioError, match="no audio features"):
        frame_audio_chunks(torch.zeros(0, 5, 4), 3, 25)
    with pytest.raises(AudioError, match="positions, layers, channels"):
        frame_audio_chunks(torch.zeros(10, 4), 3, 25)


@pytest.mark.parametrize("seconds,rate", [(1.0, 16000), (2.37, 44100), (31.3, 48000), (0.5, 8000)])
def test_official_frame_count_is_the_officials_chunk_count_of_the_real_features(tmp_path_factory, seconds, rate):
    """Independently: resample the audio as the pipeline does, run the (fixture) Whisper encoder, count the
    feature positions it really produces, and loop the official feature2chunks at 25 fps over them."""
    import numpy as np

    from latentsync_core.audio import load_whisper, model_waveform, official_frame_count, whisper_features
    from latentsync_core.audio.tiny import write_fixture

    (path,) = write_fixture(tmp_path_factory.mktemp("whisper_len"), seed=0)
    whisper = load_whisper(path, "cpu", torch.float32)
    samples = (0.1 * np.sin(np.arange(int(seconds * rate)) * 0.05)).astype(np.float32)
    positions = whisper_features(whisper, model_waveform(samples, rate)).shape[0]
    assert official_frame_count(len(samples), rate, 25) == official_loop_count(positions, 25)
    assert official_frame_count(len(samples), rate, 25) - frames_with_audio(len(samples), rate, 25) in (1, 2)
