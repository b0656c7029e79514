"""Audio reading: PCM depths, float, lossy/lossless codecs, the audio track of a video, AudioClip helpers."""
from __future__ import annotations

import av
import numpy as np
import pytest

from latentsync_core.media.audio_file import AudioClip, read_audio
from latentsync_core.media.resample import to_model_audio


def tones(sample_rate, channels, seconds, amplitude=0.6):
    """Distinct tone mixtures per channel with a slow envelope (correlation-friendly, not periodic)."""
    t = np.arange(int(round(sample_rate * seconds))) / sample_rate
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t)
    rows = []
    for c in range(channels):
        f1, f2 = 220 * (c + 1), 331 * (c + 1) + 17
        rows.append(amplitude * envelope * (0.6 * np.sin(2 * np.pi * f1 * t) + 0.4 * np.sin(2 * np.pi * f2 * t)))
    return np.stack(rows).astype(np.float32)


_LAYOUTS = {1: "mono", 2: "stereo"}


def write_audio_file(path, data, sample_rate, codec, fmt):
    """Encode [C, T] `data` (already in `fmt`'s dtype/range) with PyAV, independent of our code."""
    channels = data.shape[0]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=sample_rate, layout=_LAYOUTS[channels])
        stream.format = fmt
        if codec in ("aac", "libmp3lame"):
            stream.bit_rate = 128_000 * channels  # FFmpeg's aac default (~64 kbit/s/channel) is marginal
        planar = fmt.endswith("p")
        for start in range(0, data.shape[1], 1152):
            block = data[:, start:start + 1152]
            array = np.ascontiguousarray(block if planar else block.T.reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(array, format=fmt, layout=_LAYOUTS[channels])
            frame.sample_rate = sample_rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def aligned_correlation(reference, decoded, max_lag=4096):
    """Pearson correlation after removing the best integer delay (found by FFT cross-correlation),
    since lossy codecs may shift the audio by their encoder delay."""
    reference, decoded = np.asarray(reference, np.float64), np.asarray(decoded, np.float64)
    n = min(len(reference), len(decoded))
    a, b = reference[:n], decoded[:n]
    spectrum = np.fft.rfft(a, 2 * n) * np.conj(np.fft.rfft(b, 2 * n))
    xcorr = np.fft.irfft(spectrum)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    values = np.concatenate([xcorr[:max_lag + 1], xcorr[-max_lag:]])
    lag = -int(lags[np.argmax(values)])  # decoded[i + lag] ~ reference[i]
    if lag >= 0:
        a, b = reference[:n - lag], decoded[lag:n]
    else:
        a, b = reference[-lag:n], decoded[:n + lag]
    return float(np.corrcoef(a, b)[0, 1]), lag


@pytest.mark.parametrize(
    "codec, fmt, dtype, scale, offset",
    [
        ("pcm_s16le", "s16", np.int16, 2 ** 15, 0),
        ("pcm_s32le", "s32", np.int32, 2 ** 31, 0),
        ("pcm_u8", "u8", np.uint8, 2 ** 7, 128),
        ("pcm_f32le", "flt", np.float32, 1, 0),
        ("pcm_f64le", "dbl", np.float64, 1, 0),
    ],
)
@pytest.mark.parametrize("channels", [1, 2])
def test_wav_pcm_formats_are_scaled_exactly(tmp_path, codec, fmt, dtype, scale, offset, channels):
    reference = tones(22050, channels, 0.5)
    if np.issubdtype(dtype, np.integer):
        stored = np.clip(np.round(reference * scale) + offset, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
        expected = (stored.astype(np.float64) - offset) / scale
    else:
        stored = reference.astype(dtype)
        expected = stored.astype(np.float64)
    path = write_audio_file(tmp_path / f"{codec}.wav", stored, 22050, codec, fmt)
    clip = read_audio(path)
    assert clip.sample_rate == 22050 and clip.num_channels == channels
    assert clip.samples.dtype == np.float32 and clip.samples.shape == reference.shape
    np.testing.assert_allclose(clip.samples, expected, atol=1e-7)
    # Integer sources land within one quantisation step of the signal, inside [-1, 1].
    assert np.abs(clip.samples - reference).max() <= 1.0 / scale + 1e-7
    assert np.abs(clip.samples).max() <= 1.0


def test_wav_24bit(tmp_path):
    reference = tones(48000, 2, 0.25)
    # pcm_s24le takes s32 samples and keeps their top 24 bits.
    stored = (np.round(reference * 2 ** 23).astype(np.int32) << 8)
    clip = read_audio(write_audio_file(tmp_path / "s24.wav", stored, 48000, "pcm_s24le", "s32"))
    assert clip.sample_rate == 48000 and clip.samples.shape == reference.shape
    np.testing.assert_allclose(clip.samples, stored / 2 ** 31, atol=1e-7)


def test_flac_is_lossless(tmp_path):
    reference = tones(44100, 2, 0.5)
    stored = np.round(reference * 2 ** 15).astype(np.int16)
    clip = read_audio(write_audio_file(tmp_path / "a.flac", stored, 44100, "flac", "s16"))
    assert clip.sample_rate == 44100 and clip.num_channels == 2
    np.testing.assert_allclose(clip.samples, stored / 2 ** 15, atol=1e-7)


@pytest.mark.parametrize("codec, suffix, fmt", [("libmp3lame", "mp3", "fltp"), ("aac", "m4a", "fltp")])
def test_lossy_codecs_keep_the_waveform(tmp_path, codec, suffix, fmt):
    reference = tones(44100, 2, 1.0)
    clip = read_audio(write_audio_file(tmp_path / f"a.{suffix}", reference, 44100, codec, fmt))
    assert clip.sample_rate == 44100 and clip.num_channels == 2
    assert abs(clip.num_samples - reference.shape[1]) <= 2048  # codec framing/padding only
    for channel in range(2):
        correlation, lag = aligned_correlation(reference[channel], clip.samples[channel])
        assert correlation >= 0.99, (channel, correlation, lag)


def test_audio_track_of_a_video(tmp_path):
    from latentsync_core.media.writer import write_video

    reference = tones(16000, 1, 1.0)
    frames = np.zeros((25, 16, 16, 3), np.uint8)
    path = write_video(tmp_path / "v.mp4", frames, 25, audio=AudioClip(reference, 16000))
    clip = read_audio(path)
    assert clip.sample_rate == 16000 and clip.num_channels == 1
    assert clip.num_samples == 16000  # the track's declared length: AAC frame padding removed
    correlation, _ = aligned_correlation(reference[0], clip.samples[0])
    assert correlation >= 0.99


def test_audio_clip_helpers():
    samples = tones(44100, 2, 2.0)
    clip = AudioClip(samples, 44100)
    assert clip.num_channels == 2 and clip.duration == pytest.approx(2.0)
    short = clip.trimmed(0.5)
    assert short.num_samples == 22050 and clip.num_samples == 88200  # original untouched
    np.testing.assert_array_equal(short.samples, samples[:, :22050])
    assert clip.trimmed(10).num_samples == 88200  # never padded
    model = clip.to_model_audio()
    np.testing.assert_allclose(model, to_model_audio(samples, 44100, 16000), atol=1e-6)
    assert model.shape == (32000,) and model.dtype == np.float32
    np.testing.assert_array_equal(clip.samples, samples)  # resampling worked on a copy
    assert AudioClip(np.zeros(10, np.float32), 8000).samples.shape == (1, 10)
    with pytest.raises(ValueError):
        AudioClip(np.zeros((1, 2, 3), np.float32), 8000)


@pytest.mark.media
def test_real_clip_audio(media_dir):
    clip = read_audio(media_dir / "demo1_video.mp4")
    assert clip.sample_rate == 44100 and clip.num_channels == 2
    assert clip.duration == pytest.approx(10.0, abs=0.05)
    assert 0.01 < np.abs(clip.samples).max() <= 1.0
    wav = read_audio(media_dir / "demo1_audio.wav")
    assert wav.sample_rate == 16000 and wav.num_channels == 1
