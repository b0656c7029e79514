"""load_unet on the tiny fixture checkpoint (official file format): formats, dtypes, strictness, bad files."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from latentsync_core.checkpoints import save_checkpoint_file
from latentsync_core.errors import CheckpointError
from latentsync_core.unet import LatentSyncUNet, infer_config, load_unet, normalize_config
from latentsync_core.unet.config import state_dict_shapes
from latentsync_core.unet.loader import _mapped_ranges, guess_trained_resolution
from latentsync_core.unet.tiny import TINY_CONFIG


@pytest.fixture(scope="module")
def unet_file(fixture_models) -> Path:
    return fixture_models / "latentsync" / "latentsync_unet.pt"


@pytest.fixture(scope="module")
def state_dict(unet_file) -> dict[str, torch.Tensor]:
    return torch.load(unet_file, weights_only=True)["state_dict"]


def run(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    sample = torch.randn(1, 13, 3, 8, 8, generator=gen)
    audio = torch.randn(3, 50, 64, generator=gen)
    with torch.no_grad():
        return model(sample, 600, audio).float()


@pytest.fixture(scope="module")
def reference_output(state_dict):
    model = LatentSyncUNet(TINY_CONFIG).eval()
    model.load_state_dict(state_dict)  # plain strict torch load, independent of load_unet
    return run(model)


def test_fixture_file_is_official_format_and_fully_random(unet_file):
    obj = torch.load(unet_file, weights_only=True)
    assert set(obj) == {"state_dict", "global_step"} and obj["global_step"] == 0
    tensors = obj["state_dict"]
    assert unet_file.stat().st_size < 16e6
    flat = [k for k, v in tensors.items() if v.numel() > 1 and float(v.float().std()) == 0.0]
    assert flat == []  # nothing zero-initialised (the official zeroes conv_in, conv_out, motion proj_out)
    assert infer_config(state_dict_shapes(tensors)) == normalize_config(TINY_CONFIG)


def test_load_from_path_state_dict_and_safetensors_agree(unet_file, state_dict, reference_output, tmp_path):
    from_path = load_unet(unet_file)
    assert not from_path.training and from_path.config == normalize_config(TINY_CONFIG)
    assert from_path.checkpoint_global_step == 0
    assert torch.equal(run(from_path), reference_output)
    assert torch.equal(run(load_unet(dict(state_dict))), reference_output)
    st_path = save_checkpoint_file(state_dict, tmp_path / "unet.safetensors")
    assert torch.equal(run(load_unet(st_path)), reference_output)
    prefixed = {f"module.{k}": v for k, v in state_dict.items()}  # saved from a DDP wrapper
    assert torch.equal(run(load_unet(prefixed)), reference_output)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_fp32_load_uses_the_mapped_file_without_a_copy(unet_file):
    model = load_unet(unet_file)
    ranges = _mapped_ranges(unet_file)
    assert ranges, "the checkpoint should be memory-mapped"
    assert all(any(lo <= p.data_ptr() < hi for lo, hi in ranges) for p in model.parameters())


@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 0.08), (torch.float16, 0.02)])
def test_low_precision_load(unet_file, reference_output, dtype, tol):
    model = load_unet(unet_file, dtype=dtype)
    assert model.dtype == dtype and all(t.dtype == dtype for t in model.state_dict().values())
    assert model.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    out = run(model)
    assert float((out - reference_output).norm() / reference_output.norm()) < tol


def test_config_override_for_non_shape_choices(unet_file, reference_output):
    model = load_unet(unet_file, config={"attention_head_dim": 4})
    assert model.down_blocks[0].attentions[0].transformer_blocks[0].attn1.heads == 4
    assert not torch.allclose(run(model), reference_output, atol=1e-4)


def test_strict_key_errors_list_every_problem(state_dict):
    broken = dict(state_dict)
    del broken["conv_in.bias"]
    broken["time_embedding.extra.weight"] = torch.zeros(3)
    broken["conv_out.weight"] = torch.zeros(4, 64, 3, 1)
    with pytest.raises(CheckpointError) as info:
        load_unet(broken)
    text = str(info.value)
    assert "1 missing key(s): conv_in.bias" in text
    assert "1 unexpected key(s): time_embedding.extra.weight" in text
    assert "conv_out.weight [4, 64, 3, 1] (model [4, 64, 3, 3])" in text


def test_many_missing_keys_are_counted(state_dict):
    dropped = "up_blocks.2.motion_modules.0.temporal_transformer.transformer_blocks"
    partial = {k: v for k, v in state_dict.items() if not k.startswith(dropped)}
    with pytest.raises(CheckpointError, match=r"\d+ missing key\(s\): .*\.\.\."):
        load_unet(partial)


def test_other_model_files_are_rejected_by_name(tmp_path):
    whisper = tmp_path / "tiny.pt"
    torch.save({"dims": {"n_mels": 80}, "model_state_dict": {"encoder.blocks.0.attn.query.weight": torch.zeros(2, 2)}},
               whisper)
    with pytest.raises(CheckpointError, match=r"tiny\.pt looks like a Whisper"):
        load_unet(whisper)
    junk = tmp_path / "junk.pt"
    torch.save({"weights": {"layer.weight": torch.zeros(2)}}, junk)
    with pytest.raises(CheckpointError, match=r"junk\.pt holds no state dict.*expected the LatentSync U-Net"):
        load_unet(junk)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"layer.weight": torch.zeros(2)}}, other)
    with pytest.raises(CheckpointError, match=r"other\.pt is not a LatentSync U-Net.*conv_in\.weight"):
        load_unet(other)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_unet(tmp_path / "absent.pt")


def test_truncated_file_names_file_and_expectation(unet_file, tmp_path):
    cut = tmp_path / "latentsync_unet.pt"
    cut.write_bytes(unet_file.read_bytes()[: 200_000])
    expected = r"latentsync_unet\.pt is not a readable torch checkpoint.*expected the LatentSync U-Net"
    with pytest.raises(CheckpointError, match=expected):
        load_unet(cut)


def test_trained_resolution_hints(unet_file, tmp_path, caplog):
    assert guess_trained_resolution(Path("/models/LatentSync-1.5/latentsync_unet.pt")) == 256
    assert guess_trained_resolution(Path("/models/latentsync_1.6_unet.pt")) == 512
    assert guess_trained_resolution(Path("/models/latentsync/latentsync_unet.pt")) is None
    copy = tmp_path / "mine.pt"
    copy.write_bytes(unet_file.read_bytes())
    (tmp_path / "mine.yaml").write_text("data:\n  resolution: 256\n")
    model = load_unet(copy)
    assert model.trained_resolution == 256
    assert load_unet(copy, trained_resolution=512).trained_resolution == 512
    with caplog.at_level(logging.WARNING, logger="latentsync"):
        assert model.check_resolution(256)
        assert not caplog.records
        assert not model.check_resolution(512)
    assert "trained at 256 px" in caplog.text and "512 px" in caplog.text
