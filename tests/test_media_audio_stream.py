"""Audio read and resampled block by block equals the whole-track path bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

from latentsync_core.media.audio_file import AudioClip, read_audio, read_model_audio
from latentsync_core.media.resample import StreamingResampler, to_model_audio


@pytest.mark.parametrize("rate", [44100, 48000, 22050, 8000, 16000])
def test_streaming_resampler_equals_resampling_the_whole_signal(rate):
    rng = np.random.default_rng(rate)
    signal = rng.standard_normal((2, rate * 2 + 77)).astype(np.float32)
    resampler = StreamingResampler(rate)
    parts, position = [], 0
    while position < signal.shape[1]:
        size = int(rng.integers(1, 6000))
        parts.append(resampler.feed(signal[:, position:position + size]))
        position += size
    parts.append(resampler.finish())
    assert np.array_equal(np.concatenate(parts), to_model_audio(signal, rate))
    assert max(len(p) for p in parts) < 16000  # output arrives as the input does, not all at the end


def test_resampler_keeps_only_the_filters_reach():
    resampler = StreamingResampler(44100)
    for _ in range(50):
        resampler.feed(np.zeros(4410, np.float32))
    assert len(resampler._buffer) < 4410 + 2 * resampler.reach + resampler.down


def test_read_model_audio_equals_reading_whole_then_resampling(tmp_path):
    from scipy.io import wavfile

    rng = np.random.default_rng(1)
    stereo = (0.2 * rng.standard_normal((2, 44100 * 3 + 5))).astype(np.float32)
    path = tmp_path / "speech.wav"
    wavfile.write(path, 44100, (stereo.T * 32767).astype(np.int16))
    clip = read_model_audio(path)
    assert isinstance(clip, AudioClip) and clip.sample_rate == 16000 and clip.num_channels == 1
    assert np.array_equal(clip.samples[0], read_audio(path).to_model_audio())


def test_read_model_audio_names_a_file_without_sound(tmp_path):
    from latentsync_core.errors import MediaError
    from tests.node_media import write_face_clip

    silent_video = write_face_clip(tmp_path / "mute.mp4", num_frames=3, with_audio=False)
    with pytest.raises(MediaError, match="mute.mp4.*no audio stream"):
        read_model_audio(silent_video)
