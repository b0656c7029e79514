import numpy as np
import pytest

from latentsync_core.media.resample import resample, to_model_audio, to_mono


def _tone(freq, rate, seconds=1.0, amplitude=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _spectrum_db(x, rate):
    x = x[len(x) // 10: -len(x) // 10]  # ignore filter edge transients
    window = np.hanning(len(x))
    mag = np.abs(np.fft.rfft(x * window)) / (window.sum() / 2)
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return freqs, 20 * np.log10(mag + 1e-12)


@pytest.mark.parametrize("rate", [44100, 48000, 22050, 8000])
def test_1khz_tone_stays_1khz(rate):
    out = resample(_tone(1000, rate), rate, 16000)
    assert abs(len(out) - 16000) <= 1
    freqs, db = _spectrum_db(out, 16000)
    assert abs(freqs[np.argmax(db)] - 1000) < 2
    assert np.max(db) > -7  # 0.5 amplitude ~ -6 dB: energy preserved


@pytest.mark.parametrize("rate", [44100, 48000])
def test_10khz_tone_does_not_alias(rate):
    # 10 kHz is above the 8 kHz Nyquist of 16 kHz audio; a naive decimator folds it to 6 kHz.
    out = resample(_tone(10000, rate, amplitude=0.9), rate, 16000)
    _, db = _spectrum_db(out, 16000)
    assert np.max(db) < -40


def test_stereo_downmix_is_channel_mean_and_input_untouched():
    left, right = _tone(440, 48000), _tone(880, 48000)
    stereo = np.stack([left, right])
    original = stereo.copy()
    out = to_model_audio(stereo, 48000)
    np.testing.assert_array_equal(stereo, original)
    expected = resample((left + right) / 2, 48000, 16000)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert to_mono(stereo).shape == (48000,)


def test_same_rate_is_copy_and_bad_rates_rejected():
    x = _tone(100, 16000)
    y = resample(x, 16000, 16000)
    np.testing.assert_array_equal(x, y)
    assert y is not x
    with pytest.raises(ValueError, match="positive"):
        resample(x, 0, 16000)
