"""Loading Whisper checkpoints: the official file format (fixture), transformers folders, and bad files."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from latentsync_core.audio import encoder_dims, load_whisper, whisper_features
from latentsync_core.errors import CheckpointError
from latentsync_core.fixtures import write_fixtures


@pytest.fixture(scope="module")
def tiny_path(fixture_models):
    return fixture_models / "whisper" / "tiny.pt"


@pytest.fixture(scope="module")
def checkpoint(tiny_path):
    return torch.load(tiny_path, weights_only=True)


def test_fixture_is_an_official_format_file(tiny_path, checkpoint):
    import whisper.model

    assert set(checkpoint) == {"dims", "model_state_dict"}
    dims = checkpoint["dims"]
    assert (dims["n_mels"], dims["n_audio_ctx"], dims["n_audio_state"], dims["n_audio_layer"]) == (80, 1500, 64, 4)
    assert tiny_path.stat().st_size < 20 * 2**20
    model = whisper.model.Whisper(whisper.model.ModelDimensions(**dims))
    model.load_state_dict(checkpoint["model_state_dict"], strict=True)  # exactly the official key set
    for name, tensor in checkpoint["model_state_dict"].items():
        assert tensor.float().std() > 0, f"{name} is constant"


def test_fixture_writer_is_registered(tmp_path):
    written = write_fixtures(tmp_path, only=["whisper"], seed=5)
    assert written == {"whisper": [tmp_path / "whisper" / "tiny.pt"]}
    other = torch.load(written["whisper"][0], weights_only=True)["model_state_dict"]
    assert other["encoder.conv1.weight"].shape == (64, 80, 3)


def test_load_whisper_builds_the_encoder_from_the_file(tiny_path, checkpoint):
    encoder = load_whisper(tiny_path, "cpu", torch.float32)
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    dims = encoder_dims(encoder)
    assert (dims.n_audio_state, dims.n_audio_head, dims.n_audio_layer) == (64, 2, 4)
    stored = checkpoint["model_state_dict"]
    # The positional table comes from the file (the fixture's is perturbed), not recomputed.
    assert torch.equal(encoder.positional_embedding, stored["encoder.positional_embedding"])
    assert torch.equal(encoder.blocks[3].mlp[2].weight, stored["encoder.blocks.3.mlp.2.weight"])


def test_a_whole_whisper_model_is_accepted(tiny_path, checkpoint):
    import whisper.model

    whole = whisper.model.Whisper(whisper.model.ModelDimensions(**checkpoint["dims"]))
    whole.load_state_dict(checkpoint["model_state_dict"])
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    ours = whisper_features(load_whisper(tiny_path, "cpu", torch.float32), wave)
    assert torch.equal(whisper_features(whole, wave), ours)


HF_LAYER = {"attn.query": "self_attn.q_proj", "attn.key": "self_attn.k_proj", "attn.value": "self_attn.v_proj",
            "attn.out": "self_attn.out_proj", "attn_ln": "self_attn_layer_norm", "mlp.0": "fc1", "mlp.2": "fc2",
            "mlp_ln": "final_layer_norm"}


def write_transformers_folder(checkpoint, folder, prefix="model.encoder."):
    """The transformers WhisperForConditionalGeneration naming of the same encoder weights."""
    from safetensors.torch import save_file

    dims = checkpoint["dims"]
    tensors = {}
    for key, value in checkpoint["model_state_dict"].items():
        if not key.startswith("encoder."):
            continue
        parts = key[len("encoder."):].split(".")
        if parts[0] == "positional_embedding":
            name = "embed_positions.weight"
        elif parts[0] == "blocks":
            name = f"layers.{parts[1]}.{HF_LAYER['.'.join(parts[2:-1])]}.{parts[-1]}"
        elif parts[0] == "ln_post":
            name = f"layer_norm.{parts[1]}"
        else:
            name = ".".join(parts)
        tensors[prefix + name] = value.contiguous()
    tensors["model.decoder.embed_tokens.weight"] = torch.randn(8, 4)  # decoder tensors are ignored
    folder.mkdir()
    save_file(tensors, str(folder / "model.safetensors"))
    config = {"model_type": "whisper", "num_mel_bins": dims["n_mels"], "max_source_positions": dims["n_audio_ctx"],
              "d_model": dims["n_audio_state"], "encoder_attention_heads": dims["n_audio_head"],
              "encoder_layers": dims["n_audio_layer"], "activation_function": "gelu"}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_transformers_folder_gives_the_same_features(tmp_path, tiny_path, checkpoint):
    folder = write_transformers_folder(checkpoint, tmp_path / "whisper-hf")
    wave = np.random.default_rng(1).standard_normal(24000).astype(np.float32) * 0.1
    from_pt = whisper_features(load_whisper(tiny_path, "cpu", torch.float32), wave)
    from_hf = whisper_features(load_whisper(folder, "cpu", torch.float32), wave)
    assert torch.equal(from_pt, from_hf)


def test_bad_transformers_folders(tmp_path, checkpoint):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_whisper(empty, "cpu")
    folder = write_transformers_folder(checkpoint, tmp_path / "bert")
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="not whisper"):
        load_whisper(folder, "cpu")


def _save(tmp_path, obj, name="bad.pt"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_bad_checkpoint_files(tmp_path, checkpoint):
    with pytest.raises(CheckpointError, match="not found"):
        load_whisper(tmp_path / "nope.pt", "cpu")
    with pytest.raises(CheckpointError, match="not a Whisper checkpoint"):
        load_whisper(_save(tmp_path, torch.zeros(3)), "cpu")
    with pytest.raises(CheckpointError, match="no Whisper encoder weights"):
        load_whisper(_save(tmp_path, {"dims": checkpoint["dims"], "model_state_dict": {"x": torch.zeros(1)}}), "cpu")
    with pytest.raises(CheckpointError, match="no 'dims'"):
        load_whisper(_save(tmp_path, dict(checkpoint["model_state_dict"])), "cpu")
    dims = {k: v for k, v in checkpoint["dims"].items() if k != "n_audio_head"}
    with pytest.raises(CheckpointError, match="lacks 'n_audio_head'"):
        load_whisper(_save(tmp_path, {"dims": dims, "model_state_dict": checkpoint["model_state_dict"]}), "cpu")
    dims = dict(checkpoint["dims"], n_audio_ctx=750)
    with pytest.raises(CheckpointError, match="n_audio_ctx=750"):
        load_whisper(_save(tmp_path, {"dims": dims, "model_state_dict": checkpoint["model_state_dict"]}), "cpu")
    state = dict(checkpoint["model_state_dict"])
    del state["encoder.blocks.2.attn.key.weight"]
    with pytest.raises(CheckpointError, match=r"missing \['blocks.2.attn.key.weight'\]"):
        load_whisper(_save(tmp_path, {"dims": checkpoint["dims"], "model_state_dict": state}), "cpu")
    state = dict(checkpoint["model_state_dict"], **{"encoder.conv1.weight": torch.zeros(64, 80, 5)})
    with pytest.raises(CheckpointError, match="conv1.weight has shape"):
        load_whisper(_save(tmp_path, {"dims": checkpoint["dims"], "model_state_dict": state}), "cpu")
    (tmp_path / "truncated.pt").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(CheckpointError, match="truncated"):
        load_whisper(tmp_path / "truncated.pt", "cpu")
