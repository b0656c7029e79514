"""Whisper features vs an independent, unbatched reference computed straight from the checkpoint tensors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from latentsync_core.audio import load_whisper, whisper_features, whisper_log_mel, window_spans
from latentsync_core.errors import AudioError

SR = 16000


@pytest.fixture(scope="module")
def checkpoint(fixture_models):
    return torch.load(fixture_models / "whisper" / "tiny.pt", weights_only=True)


@pytest.fixture(scope="module")
def encoder(fixture_models):
    return load_whisper(fixture_models / "whisper" / "tiny.pt", "cpu", torch.float32)


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Harmonics with a syllable-rate envelope plus noise: a non-trivial, reproducible mel."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / SR
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.2 * voice * envelope + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


def reference_features(checkpoint, waveform: np.ndarray) -> torch.Tensor:
    """The official recipe, one window at a time, with the encoder written out by hand."""
    import whisper.audio

    dims, sd = checkpoint["dims"], {k[8:]: v.float() for k, v in checkpoint["model_state_dict"].items()
                                    if k.startswith("encoder.")}
    heads = dims["n_audio_head"]
    mel = whisper.audio.log_mel_spectrogram(torch.from_numpy(waveform))
    total = mel.shape[-1]
    pieces = []
    for seek in range(0, total, 3000):
        window = whisper.audio.pad_or_trim(mel[:, seek: seek + 3000], 3000)[None]
        x = F.gelu(F.conv1d(window, sd["conv1.weight"], sd["conv1.bias"], padding=1))
        x = F.gelu(F.conv1d(x, sd["conv2.weight"], sd["conv2.bias"], stride=2, padding=1))
        x = x.permute(0, 2, 1) + sd["positional_embedding"]
        states = [x]
        for i in range(dims["n_audio_layer"]):
            p = lambda name: sd[f"blocks.{i}.{name}"]  # noqa: E731
            h = F.layer_norm(x, (x.shape[-1],), p("attn_ln.weight"), p("attn_ln.bias"))
            q = h @ p("attn.query.weight").T + p("attn.query.bias")
            k = h @ p("attn.key.weight").T
            v = h @ p("attn.value.weight").T + p("attn.value.bias")
            split = lambda z: z.view(1, z.shape[1], heads, -1).transpose(1, 2)  # noqa: E731
            q, k, v = split(q), split(k), split(v)
            w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
            a = (w @ v).transpose(1, 2).reshape(x.shape)
            x = x + a @ p("attn.out.weight").T + p("attn.out.bias")
            h = F.layer_norm(x, (x.shape[-1],), p("mlp_ln.weight"), p("mlp_ln.bias"))
            h = F.gelu(h @ p("mlp.0.weight").T + p("mlp.0.bias"))
            x = x + h @ p("mlp.2.weight").T + p("mlp.2.bias")
            states.append(x)
        stacked = torch.stack(states, dim=2)[0]  # [1500, L+1, C]
        end = min(seek + 3000, total)
        pieces.append(stacked[: int((end - seek) / 2)])
    return torch.cat(pieces)


@pytest.mark.parametrize("seconds", [9.6, 31.05, 61.23])
def test_matches_unbatched_reference(encoder, checkpoint, seconds):
    wave = speechlike(seconds, seed=int(seconds))
    ours = whisper_features(encoder, wave, windows_per_batch=2)
    ref = reference_features(checkpoint, wave)
    mel_frames = len(wave) // 160
    expected_positions = sum((min(s + 3000, mel_frames) - s) // 2 for s in range(0, mel_frames, 3000))
    assert ours.shape == ref.shape == (expected_positions, 5, 64)
    assert ours.dtype == torch.float32 and ours.device.type == "cpu"
    assert ref.abs().max() > 1.0  # the comparison is not between near-zero tensors
    assert (ours - ref).abs().max().item() <= 1e-5


def test_stitching_layout_of_long_audio():
    # 61.23 s -> 6123 mel frames: two full windows, then 123 frames of which 61 positions are kept.
    assert window_spans(6123) == [(0, 1500), (3000, 1500), (6000, 61)]
    assert window_spans(960) == [(0, 480)]
    assert window_spans(3000) == [(0, 1500)]
    assert window_spans(3001) == [(0, 1500), (3000, 0)]


def test_windows_are_independent_of_batching(encoder):
    # Alone, the 5 s tail window computes its last block at 250 positions; batched with a full
    # window, at all 1500. Both must give the same kept states.
    wave = speechlike(35.0, seed=3)
    one = whisper_features(encoder, wave, windows_per_batch=1)
    two = whisper_features(encoder, wave, windows_per_batch=2)
    assert one.shape[0] == 1500 + 250
    assert (one - two).abs().max().item() <= 1e-5


def test_log_mel_equals_whisper_in_blocks():
    import whisper.audio

    for seconds, blocks in ((1.013, (7, 50)), (31.0, (1000, 100000))):
        wave = torch.from_numpy(speechlike(seconds, seed=5))
        ref = whisper.audio.log_mel_spectrogram(wave)
        assert ref.shape == (80, len(wave) // 160)
        for block in blocks:
            ours = whisper_log_mel(wave, block_frames=block)
            assert ours.shape == ref.shape
            assert (ours - ref).abs().max().item() <= 1e-6


def test_clip_wide_mel_clamp(encoder):
    # A loud burst late in the clip lowers the floor of the whole clip: features of the quiet start change.
    quiet = speechlike(10.0, seed=1) * 1e-4
    with_burst = quiet.copy()
    with_burst[-SR:] += speechlike(1.0, seed=2) * 50
    a = whisper_features(encoder, quiet)[:100]
    b = whisper_features(encoder, with_burst)[:100]
    assert (a - b).abs().max() > 1e-3


def test_input_forms_agree(encoder):
    wave = speechlike(3.0, seed=7)
    pcm16 = np.round(wave * 32767).astype(np.int16)
    base = whisper_features(encoder, pcm16.astype(np.float32) / 32768)
    assert torch.equal(whisper_features(encoder, torch.from_numpy(pcm16.astype(np.float32) / 32768)), base)
    assert torch.equal(whisper_features(encoder, pcm16), base)
    assert torch.equal(whisper_features(encoder, pcm16[None]), base)


def test_silence_gives_finite_constant_features(encoder):
    feats = whisper_features(encoder, np.zeros(SR, dtype=np.float32))
    assert feats.shape == (50, 5, 64) and torch.isfinite(feats).all()
    # Every mel frame of digital silence is identical; positions still differ through the position table.
    assert not torch.equal(feats[0], feats[10])


@pytest.mark.parametrize("bad, message", [
    (np.zeros(0, dtype=np.float32), "empty"),
    (np.zeros(100, dtype=np.float32), "at least 20 ms"),
    (np.array([0.1] * 1000 + [np.nan] + [0.0] * 1000, dtype=np.float32), "NaN/inf"),
    (np.full(2000, np.inf, dtype=np.float32), "NaN/inf"),
    (np.zeros((2, 4000), dtype=np.float32), "model_waveform"),
])
def test_bad_waveforms_raise_clear_errors(encoder, bad, message):
    with pytest.raises(AudioError, match=message):
        whisper_features(encoder, bad)


def test_shortest_audio_gives_one_position(encoder):
    feats = whisper_features(encoder, speechlike(0.02))  # 320 samples
    assert feats.shape == (1, 5, 64)


def test_reduced_precision_keeps_norms_fp32(fixture_models, encoder):
    low = load_whisper(fixture_models / "whisper" / "tiny.pt", "cpu", torch.bfloat16)
    assert low.conv1.weight.dtype == torch.bfloat16
    assert low.blocks[0].mlp[0].weight.dtype == torch.bfloat16
    assert low.blocks[0].attn_ln.weight.dtype == torch.float32
    assert low.positional_embedding.dtype == torch.float32
    wave = speechlike(4.0, seed=9)
    full = whisper_features(encoder, wave)
    approx = whisper_features(low, wave)
    assert approx.dtype == torch.float32
    relative = (approx - full).norm() / full.norm()
    assert relative < 0.05


def test_real_speech_file_end_to_end(encoder, media_dir):
    from scipy.io import wavfile

    from latentsync_core.audio import audio_features_for_video
    from latentsync_core.media.audio_file import read_audio

    clip = read_audio(media_dir / "demo1_audio.wav")  # 9.6 s, 16 kHz mono
    result = audio_features_for_video(encoder, clip, None, num_frames=250, fps=25, silence=True)
    rate, pcm = wavfile.read(media_dir / "demo1_audio.wav")
    assert torch.equal(result.features, whisper_features(encoder, pcm))
    assert result.features.shape == (480, 5, 64) and result.frames_with_audio == 240
    assert result.chunks.shape == (250, 50, 64)
    assert result.silent[240:].all()  # past the end of the audio
    assert not result.silent[:240].all()  # there is speech in it
