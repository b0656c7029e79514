"""U-Net key sets and config inference against manifests generated from the official model classes.

tests/data/unet_manifests/*.json were produced by building the official UNet3DConditionModel (bytedance/
LatentSync) on the meta device for each published config (and a few reduced variants) and recording
its state-dict names and shapes; see each file's "generated_by".
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from latentsync_core.errors import CheckpointError
from latentsync_core.unet import LatentSyncUNet, infer_config, normalize_config
from latentsync_core.unet.config import state_dict_shapes

MANIFEST_DIR = Path(__file__).parent / "data" / "unet_manifests"
MANIFESTS = sorted(p.stem for p in MANIFEST_DIR.glob("*.json"))


def load_manifest(name: str) -> dict:
    return json.loads((MANIFEST_DIR / f"{name}.json").read_text())


def manifest_shapes(name: str) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v) for k, v in load_manifest(name)["shapes"].items()}


def meta_model(config) -> LatentSyncUNet:
    with torch.device("meta"):
        return LatentSyncUNet(config)


def test_manifests_cover_every_published_config():
    published = ("stage1", "stage1_512", "stage2", "stage2_512", "stage2_efficient")
    assert {f"official_{n}" for n in published} <= set(MANIFESTS)


@pytest.mark.parametrize("name", MANIFESTS)
def test_model_reproduces_official_keys_and_shapes(name):
    manifest = load_manifest(name)
    model = meta_model(manifest["config"])
    ours = state_dict_shapes(model.state_dict())
    theirs = manifest_shapes(name)
    assert sorted(set(theirs) - set(ours)) == []
    assert sorted(set(ours) - set(theirs)) == []
    assert {k: v for k, v in ours.items() if theirs[k] != v} == {}
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]
    assert sum(1 for _ in model.buffers()) == manifest["num_buffers"]


@pytest.mark.parametrize("name", MANIFESTS)
def test_config_inference_round_trips(name):
    manifest = load_manifest(name)
    inferred = infer_config(manifest_shapes(name), name)
    assert inferred == normalize_config(manifest["config"])
    # ...and the inferred config rebuilds exactly the same tensors.
    assert state_dict_shapes(meta_model(inferred).state_dict()) == manifest_shapes(name)


def test_released_checkpoint_facts():
    stage2 = load_manifest("official_stage2")
    assert stage2["num_keys"] == 1246 and stage2["num_parameters"] == 1_267_099_844
    assert sum(k.endswith(".pe") for k in stage2["shapes"]) == 40
    assert stage2["shapes"] == load_manifest("official_stage2_512")["shapes"]  # 1.5 and 1.6 are indistinguishable
    assert load_manifest("official_stage1")["num_keys"] == 686
    assert load_manifest("official_stage2_efficient")["num_keys"] == 1022


def test_inference_reads_each_shape_bearing_choice():
    shapes = manifest_shapes("official_stage2")
    cfg = infer_config(shapes)
    assert cfg["block_out_channels"] == [320, 640, 1280, 1280] and cfg["in_channels"] == 13
    assert cfg["cross_attention_dim"] == 384 and cfg["layers_per_block"] == 2
    assert cfg["motion_module_kwargs"]["temporal_position_encoding_max_len"] == 24
    small = infer_config(manifest_shapes("variant_reduced_whisper_small_max_len_16"))
    assert small["cross_attention_dim"] == 768
    assert small["motion_module_kwargs"]["temporal_position_encoding_max_len"] == 16
    eff = infer_config(manifest_shapes("official_stage2_efficient"))
    assert eff["motion_module_decoder_only"] and eff["use_motion_module"]
    assert not infer_config(manifest_shapes("official_stage1"))["use_motion_module"]
    mid = infer_config(manifest_shapes("variant_reduced_mid_motion_decoder_only"))
    assert mid["motion_module_mid_block"] and mid["motion_module_decoder_only"]
    flat = infer_config(manifest_shapes("variant_reduced_linear_projection_no_audio"))
    assert flat["use_linear_projection"] and not flat["add_audio_layer"]


def test_inference_rejects_non_unet_keys():
    with pytest.raises(CheckpointError, match=r"my\.pt is not a LatentSync U-Net.*conv_in\.weight"):
        infer_config({"encoder.conv1.weight": (384, 80, 3)}, "my.pt")


def test_inference_rejects_unofficial_motion_placement():
    shapes = manifest_shapes("official_stage2")
    # Motion modules in the encoder's first block only: no official config produces that.
    shapes = {k: v for k, v in shapes.items() if ".motion_modules." not in k or k.startswith("down_blocks.0.")}
    with pytest.raises(CheckpointError, match="placement"):
        infer_config(shapes, "odd.pt")


def test_inference_rejects_mixed_audio_widths():
    shapes = manifest_shapes("official_stage2")
    shapes["up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_k.weight"] = (320, 768)
    with pytest.raises(CheckpointError, match="widths differ"):
        infer_config(shapes, "mixed.pt")


def test_normalize_rejects_bad_widths():
    with pytest.raises(ValueError, match="divisible"):
        normalize_config({"block_out_channels": [48, 64, 64, 64]})
