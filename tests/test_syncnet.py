"""StableSyncNet: architecture facts, strict loading of the fixture, its mel front-end, and the scoring maths."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from latentsync_core.errors import CheckpointError, InputMismatchError
from latentsync_core.syncnet import (OFFICIAL_CONFIG, StableSyncNet, face_resolution, infer_config, load_syncnet,
                                     mel_filter_bank, mel_window_frames, melspectrogram)
from latentsync_core.syncnet.score import WindowEmbedder, offset_scores, stack_window, syncnet_halves
from latentsync_core.syncnet.tiny import TINY_CONFIG, tiny_syncnet


@pytest.fixture(scope="module")
def fixture_path(fixture_models):
    return fixture_models / "latentsync" / "stable_syncnet.pt"


def test_official_architecture_has_the_published_size():
    with torch.device("meta"):
        model = StableSyncNet(OFFICIAL_CONFIG)
    state = model.state_dict()
    assert len(state) == 266
    assert sum(t.numel() for t in state.values()) == 401_306_080
    assert infer_config({k: tuple(v.shape) for k, v in state.items()}) == OFFICIAL_CONFIG
    assert face_resolution(OFFICIAL_CONFIG) == 256 and face_resolution(TINY_CONFIG) == 64


def test_fixture_loads_strictly_in_the_official_format(fixture_path):
    raw = torch.load(fixture_path, weights_only=True)
    assert set(raw) == {"state_dict"}
    model = load_syncnet(fixture_path, "cpu", torch.float32)
    assert model.config == TINY_CONFIG
    assert not any(p.requires_grad for p in model.parameters())
    for key, tensor in raw["state_dict"].items():
        assert torch.equal(model.state_dict()[key], tensor), key
    frames = torch.rand(3, 48, 32, 64) * 2 - 1
    mel = torch.rand(3, 1, 80, 52) * 8 - 4
    vision, audio = model(frames, mel)
    assert vision.shape == audio.shape == (3, 256)
    assert torch.allclose(vision.norm(dim=1), torch.ones(3), atol=1e-5)
    assert (vision >= 0).all() and (audio >= 0).all()  # ReLU before normalisation: cosines lie in [0, 1]
    # Different clips give different embeddings (the random weights are not degenerate).
    assert (vision[0] - vision[1]).abs().max() > 1e-3 and (audio[0] - audio[2]).abs().max() > 1e-3


def test_loader_names_missing_and_foreign_checkpoints(tmp_path, fixture_path):
    state = dict(torch.load(fixture_path, weights_only=True)["state_dict"])
    del state["visual_encoder.norm_out.bias"]
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\): visual_encoder.norm_out.bias"):
        load_syncnet(state)
    unet_like = {"conv_in.weight": torch.zeros(1), "down_blocks.0.motion_modules.0.x": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="LatentSync U-Net"):
        load_syncnet(unet_like)
    with pytest.raises(CheckpointError, match="classic SyncNet v2"):
        load_syncnet({"netcnnaud.0.weight": torch.zeros(1)})
    odd = {k: v for k, v in tiny_syncnet(0).state_dict().items() if not k.startswith("visual_encoder.down_blocks.6.")}
    with pytest.raises(CheckpointError, match="not an official layout"):
        load_syncnet(odd)


def test_explicit_config_loads_a_non_official_layout():
    config = {"audio_encoder": dict(TINY_CONFIG["audio_encoder"]),
              "visual_encoder": {**TINY_CONFIG["visual_encoder"], "block_out_channels": [32, 32, 64, 64, 128, 256]}}
    model = StableSyncNet(config)
    loaded = load_syncnet(model.state_dict(), config=config)
    assert loaded.config["visual_encoder"]["block_out_channels"] == [32, 32, 64, 64, 128, 256]


def test_wrong_input_shapes_are_explained():
    model = tiny_syncnet(0)
    with pytest.raises(InputMismatchError, match="lower halves of 16 RGB frames"):
        model(torch.zeros(1, 3, 32, 64), torch.zeros(1, 1, 80, 52))
    with pytest.raises(InputMismatchError, match="same size"):
        model(torch.zeros(1, 48, 64, 128), torch.zeros(1, 1, 80, 52))


# --------------------------------------------------------------------------- mel front-end
def test_filter_bank_is_slaney_triangles_on_the_configured_band():
    bank = mel_filter_bank(16000, 800, 80, 55.0, 7600.0).astype(np.float64)
    freqs = np.fft.rfftfreq(800, 1 / 16000)
    assert bank.shape == (80, 401) and (bank >= 0).all()
    assert bank[:, freqs < 55].sum() == 0 and bank[:, freqs > 7600].sum() == 0
    # Slaney normalisation: each triangle has unit area in Hz, up to the FFT grid's sampling.
    areas = bank.sum(axis=1) * (freqs[1] - freqs[0])
    assert np.allclose(areas[10:], 1.0, rtol=0.05)
    # Peaks increase monotonically and above 1 kHz are log-spaced (constant ratio between neighbours).
    peaks = freqs[bank.argmax(axis=1)]
    assert (np.diff(peaks) >= 0).all()
    ratio = peaks[60:79] / peaks[59:78]
    assert np.allclose(ratio, ratio.mean(), rtol=0.03)


def test_melspectrogram_equals_an_independent_torch_stft_reference():
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 2 + 77) / 16000
    wav = (0.4 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)
    ours = melspectrogram(wav)
    # Reference: torch's centred zero-padded STFT of the pre-emphasised signal, same filters and scaling.
    x = torch.from_numpy(wav.astype(np.float64))
    emph = torch.cat([x[:1], x[1:] - 0.97 * x[:-1]])
    spec = torch.stft(emph, 800, 200, 800, window=torch.hann_window(800, periodic=True, dtype=torch.float64),
                      center=True, pad_mode="constant", return_complex=True).abs()
    mel = torch.from_numpy(mel_filter_bank(16000, 800, 80, 55.0, 7600.0).astype(np.float64)) @ spec
    db = 20 * torch.log10(torch.clamp(mel, min=1e-5)) - 20
    ref = torch.clamp(8 * (db + 100) / 100 - 4, -4, 4).numpy()
    assert ours.shape == ref.shape == (80, 1 + len(wav) // 200)
    assert np.abs(ours - ref).max() < 1e-4
    # 440 Hz lands in the band whose filter peaks nearest to it.
    bank = mel_filter_bank(16000, 800, 80, 55.0, 7600.0)
    assert abs(int(ours[:, 20:-20].mean(axis=1).argmax()) - int(bank[:, 22].argmax())) <= 1


def test_silence_maps_to_the_floor_and_window_sizes_match_the_official():
    assert np.all(melspectrogram(np.zeros(16000, np.float32)) == -4.0)
    assert mel_window_frames(16) == 52 and mel_window_frames(25) == 80  # ceil(16 / 5 * 16), ceil(25 / 5 * 16)
    with pytest.raises(Exception, match="NaN"):
        melspectrogram(np.array([0.0, math.nan] * 400, np.float32))


# --------------------------------------------------------------------------- scoring maths
def test_offset_scores_find_a_planted_shift():
    rng = np.random.default_rng(1)
    base = torch.nn.functional.normalize(torch.from_numpy(rng.random((120, 32))).float(), dim=1)
    shift = 4  # the audio runs 4 frames late: video window s matches audio window s + 4
    audio_first = -10
    audio = base[np.clip(np.arange(audio_first, 120) - shift, 0, 119)]
    starts = np.arange(10, 90, 2)
    distances, used = offset_scores(base[starts], starts, audio, np.ones(len(audio), bool), audio_first, 8)
    assert used == len(starts)
    assert int(np.argmin(distances)) - 8 == shift and distances.min() < 1e-6
    assert np.median(distances) > 0.1


def test_streamed_window_embeddings_equal_one_pass():
    model = tiny_syncnet(3)
    halves = torch.rand(40, 3, 32, 64) * 2 - 1
    whole = WindowEmbedder(model, stride=3)
    whole.feed(halves)
    streamed = WindowEmbedder(model, stride=3)
    for part in torch.split(halves, [7, 1, 13, 19]):
        streamed.feed(part)
    s1, e1 = whole.result()
    s2, e2 = streamed.result()
    assert list(s1) == list(s2) == list(range(0, 25, 3))
    assert torch.allclose(e1, e2, atol=1e-6)
    direct = model.embed_frames(torch.stack([stack_window(halves[s:s + 16]) for s in s1]))
    assert torch.allclose(e1, direct, atol=1e-5)


def test_windows_with_a_missing_face_are_skipped():
    model = tiny_syncnet(3)
    valid = np.ones(30, bool)
    valid[20] = False
    embedder = WindowEmbedder(model, stride=1)
    embedder.feed(torch.zeros(30, 3, 32, 64), valid)
    starts, _ = embedder.result()
    assert not any(s <= 20 < s + 16 for s in starts) and embedder.skipped == 10  # starts 5..14


def test_halves_are_resized_lower_halves_in_range():
    crops = np.zeros((2, 128, 128, 3), np.uint8)
    crops[:, 64:] = 255
    halves = syncnet_halves(crops, 64)
    assert halves.shape == (2, 3, 32, 64)
    assert torch.allclose(halves, torch.ones_like(halves), atol=1e-3)
