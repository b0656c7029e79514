"""ComfyUI IMAGE / AUDIO / VIDEO <-> numpy media conversions (no ComfyUI import)."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest
import torch

from latentsync_core.convert import audio_to_clip, clip_to_audio, image_to_uint8, uint8_to_image, video_components
from latentsync_core.errors import AudioError, LatentSyncError, MediaError
from latentsync_core.media.audio_file import AudioClip
from latentsync_core.media.writer import write_video
from test_media_audio import aligned_correlation, tones
from test_media_video import moving_gradient


def test_image_to_uint8_rounds_and_clamps():
    image = torch.tensor([[[[0.0, 0.5, 1.0], [-0.3, 1.7, 0.2 / 255], [0.6 / 255, 254.4 / 255, 254.6 / 255]]]])
    out = image_to_uint8(image)
    assert out.dtype == np.uint8 and out.shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(out[0, 0], [[0, 128, 255], [0, 255, 0], [1, 254, 255]])


def test_image_uint8_round_trip_is_exact():
    frames = moving_gradient(20, 9, 13)  # more frames than one conversion batch
    image = uint8_to_image(frames)
    assert image.dtype == torch.float32 and tuple(image.shape) == (20, 9, 13, 3)
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    np.testing.assert_allclose(image.numpy(), frames / 255.0, atol=1e-7)
    np.testing.assert_array_equal(image_to_uint8(image), frames)
    single = uint8_to_image(frames[0])
    assert tuple(single.shape) == (1, 9, 13, 3)


def test_gray_and_alpha_channels():
    rng = np.random.default_rng(0)
    gray = torch.from_numpy(rng.random((2, 5, 7, 1), dtype=np.float32))
    out = image_to_uint8(gray)
    assert out.shape == (2, 5, 7, 3)
    expected = np.round(gray.numpy()[..., 0] * 255).astype(np.uint8)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], expected)

    rgba = torch.from_numpy(rng.random((2, 5, 7, 4), dtype=np.float32))
    out = image_to_uint8(rgba)
    assert out.shape == (2, 5, 7, 3)
    np.testing.assert_array_equal(out, np.round(rgba.numpy()[..., :3] * 255).astype(np.uint8))

    with pytest.raises(MediaError, match="C in 1..4"):
        image_to_uint8(torch.zeros(1, 4, 4, 5))
    with pytest.raises(MediaError):
        uint8_to_image(np.zeros((1, 4, 4, 3), np.float32))


def test_image_to_uint8_accepts_other_dtypes_and_single_images():
    image = torch.full((4, 6, 3), 0.25, dtype=torch.float16)
    out = image_to_uint8(image)
    assert out.shape == (1, 4, 6, 3) and np.all(out == 64)


def test_audio_dict_round_trip():
    samples = tones(44100, 2, 0.3)
    batch = torch.from_numpy(np.stack([samples, -samples]))  # [B=2, C=2, T]
    audio = {"waveform": batch, "sample_rate": 44100}
    clip = audio_to_clip(audio)
    assert clip.sample_rate == 44100 and clip.samples.shape == samples.shape
    np.testing.assert_array_equal(clip.samples, samples)
    np.testing.assert_array_equal(audio_to_clip(audio, batch_index=1).samples, -samples)
    clip.samples[:] = 0  # the clip is a copy: the AUDIO tensor is untouched
    assert torch.equal(batch[0], torch.from_numpy(samples))

    back = clip_to_audio(AudioClip(samples, 44100))
    assert back["sample_rate"] == 44100
    assert back["waveform"].dtype == torch.float32 and tuple(back["waveform"].shape) == (1, 2, samples.shape[1])
    np.testing.assert_array_equal(back["waveform"][0].numpy(), samples)


def test_audio_dict_variants_and_errors():
    mono = {"waveform": torch.ones(1, 100, dtype=torch.float64), "sample_rate": 16000}  # [C, T], float64
    clip = audio_to_clip(mono)
    assert clip.samples.shape == (1, 100) and clip.samples.dtype == np.float32
    for bad, message in [
        ({"waveform": torch.zeros(1, 1, 0), "sample_rate": 16000}, "empty"),
        ({"sample_rate": 16000}, "'waveform' and 'sample_rate'"),
        ({"waveform": torch.zeros(1, 1, 10), "sample_rate": 0}, "sample_rate must be positive"),
        ({"waveform": torch.zeros(10), "sample_rate": 16000}, "batch, channels, samples"),
        ("not a dict", "AUDIO dict"),
    ]:
        with pytest.raises(AudioError, match=message):
            audio_to_clip(bad)
    with pytest.raises(AudioError, match="out of range"):
        audio_to_clip({"waveform": torch.zeros(1, 1, 10), "sample_rate": 16000}, batch_index=1)


@dataclass
class FakeComponents:  # the shape of comfy_api's VideoComponents
    images: torch.Tensor
    frame_rate: Fraction
    audio: dict | None = None
    metadata: dict | None = None


class FakeVideo:
    def __init__(self, components):
        self._components = components

    def get_components(self):
        return self._components


def test_video_components_duck_typed():
    frames = moving_gradient(5, 8, 10)
    audio = {"waveform": torch.from_numpy(tones(16000, 1, 0.2))[None], "sample_rate": 16000}
    images, out_audio, fps = video_components(FakeVideo(FakeComponents(uint8_to_image(frames), Fraction(24), audio)))
    np.testing.assert_array_equal(image_to_uint8(images), frames)
    assert fps == Fraction(24) and isinstance(fps, Fraction)
    assert out_audio["sample_rate"] == 16000 and tuple(out_audio["waveform"].shape) == (1, 1, 3200)

    images, out_audio, fps = video_components(FakeVideo(FakeComponents(uint8_to_image(frames), 29.97)))
    assert out_audio is None and fps == Fraction(2997, 100)

    with pytest.raises(LatentSyncError, match="frame_rate must be positive"):
        video_components(FakeVideo(FakeComponents(uint8_to_image(frames), Fraction(0))))
    with pytest.raises(MediaError, match="get_components"):
        video_components(42)


def test_video_components_from_a_file(tmp_path):
    frames = moving_gradient(10, 32, 32)
    reference = tones(22050, 2, 0.4)
    path = write_video(tmp_path / "v.mp4", frames, 25, audio=AudioClip(reference, 22050))
    for source in (path, str(path)):
        images, audio, fps = video_components(source)
        assert tuple(images.shape) == (10, 32, 32, 3) and images.dtype == torch.float32
        assert np.abs(image_to_uint8(images).astype(int) - frames).mean() < 2.0
        assert fps == 25
        assert audio["sample_rate"] == 22050 and tuple(audio["waveform"].shape) == (1, 2, 8820)
        assert aligned_correlation(reference[0], audio["waveform"][0, 0].numpy())[0] >= 0.99
    silent = write_video(tmp_path / "silent.mp4", frames, 25)
    assert video_components(silent)[1] is None
