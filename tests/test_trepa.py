"""TREPA / LPIPS switches: the VideoMAE-v2 loader on a random-weight checkpoint with the official key
names, the position table against its formula, and clear errors when a term is asked for but absent."""
from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from latentsync_core.errors import LatentSyncError
from latentsync_core.train.losses import load_lpips, load_trepa, trepa_loss
from latentsync_core.train.videomae import load_videomae, sinusoid_table, write_fixture


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_fixture(tmp_path_factory.mktemp("trepa") / "vit_g_hybrid_pt_1200e_ssv2_ft.pth", dim=176, depth=2)


def test_checkpoint_has_the_official_layout(checkpoint):
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["module"]
    assert state["patch_embed.proj.weight"].shape == (176, 3, 2, 14, 14)
    assert {"blocks.1.attn.q_bias", "blocks.1.attn.v_bias", "blocks.0.attn.qkv.weight", "fc_norm.weight",
            "head.weight"} <= set(state)
    assert not any(k.endswith("k_bias") or k == "pos_embed" for k in state)  # fixed table, no k bias


def test_features_of_a_clip(checkpoint):
    model = load_videomae(checkpoint)
    assert len(model.blocks) == 2 and model.blocks[0].attn.heads == 2  # 88-wide heads, as ViT-g's 1408 / 16
    torch.manual_seed(0)
    video = torch.rand(2, 3, 16, 224, 224)
    with torch.no_grad():
        out = model(video)
        again = model(video[:1])
    assert out.shape == (2, 176) and torch.isfinite(out).all()
    torch.testing.assert_close(again, out[:1], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(out[0], out[1])


def test_position_table_formula():
    table = sinusoid_table(2048, 176)[0]
    for pos, ch in [(0, 0), (5, 3), (100, 50), (2047, 175)]:
        angle = pos / 10000 ** (2 * (ch // 2) / 176)
        expected = math.sin(angle) if ch % 2 == 0 else math.cos(angle)
        assert table[pos, ch].item() == pytest.approx(expected, abs=1e-6)


def test_trepa_loss_runs_through_the_loader(checkpoint):
    features = load_trepa(checkpoint, "cpu")
    pred = torch.rand(16, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        same = trepa_loss(features, pred, pred, 16)
        other = trepa_loss(features, pred, pred.flip(-1), 16)
    assert same.item() == pytest.approx(0.0, abs=1e-10) and other.item() > 0


def test_asked_for_but_absent_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTSYNC_MODELS_DIR", str(tmp_path))
    assert load_trepa(None, "cpu") is None  # auto: off, logged
    with pytest.raises(LatentSyncError, match="vit_g_hybrid_pt_1200e_ssv2_ft.pth was not found"):
        load_trepa(None, "cpu", required=True)
    with pytest.raises(LatentSyncError, match="not found"):
        load_trepa(tmp_path / "missing.pth", "cpu")
    bad = tmp_path / "bad.pth"
    torch.save({"model": {"something": torch.zeros(1)}}, bad)
    with pytest.raises(LatentSyncError, match="not a VideoMAE-v2"):
        load_trepa(bad, "cpu")
    if importlib.util.find_spec("lpips") is None:
        assert load_lpips("cpu") is None
        with pytest.raises(LatentSyncError, match="pip install lpips"):
            load_lpips("cpu", required=True)


def test_default_location_is_found(checkpoint, tmp_path, monkeypatch):
    folder = tmp_path / "latentsync"
    folder.mkdir()
    (folder / checkpoint.name).symlink_to(checkpoint)
    monkeypatch.setenv("LATENTSYNC_MODELS_DIR", str(tmp_path))
    assert load_trepa(None, "cpu", required=True) is not None


def test_cli_switches(tmp_path, capsys, monkeypatch):
    from latentsync_core.cli import main

    monkeypatch.setenv("LATENTSYNC_MODELS_DIR", str(tmp_path))
    assert main(["train", "--data", str(tmp_path), "--unet", "x.pt", "--trepa", "--no-trepa"]) == 1
    assert "at most one of each pair" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--unet", "x.pt", "--lpips", "--no-lpips"]) == 1
    assert "at most one of each pair" in capsys.readouterr().err
