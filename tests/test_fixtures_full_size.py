"""`python -m latentsync_core.fixtures DIR --full-size`: official architectures and file formats, random weights.

The 5 GB U-Net itself is too big for CI; its writer is checked on the tiny config (same code path:
meta device -> to_empty in the file's dtype -> seeded fill) against the plain fp32 construction, and
the official key/shape manifest is checked on the meta device."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from latentsync_core.fixtures import __main__ as fixtures_cli
from latentsync_core.fixtures import full_size

MANIFESTS = Path(__file__).parent / "data" / "unet_manifests"


def test_meta_built_unet_equals_the_plain_random_unet_in_the_files_dtype():
    from latentsync_core.unet.tiny import TINY_CONFIG, tiny_unet

    reference = tiny_unet(seed=5).state_dict()
    for dtype in (torch.float32, torch.float16):
        state = full_size.unet_state_dict(dtype, seed=5, config=TINY_CONFIG)
        assert list(state) == list(reference)
        for key, tensor in state.items():
            assert tensor.dtype == dtype, key
            torch.testing.assert_close(tensor, reference[key].to(dtype), rtol=0, atol=0, msg=key)


def test_default_unet_config_has_the_official_stage2_512_keys_and_shapes():
    from latentsync_core.unet import DEFAULT_CONFIG, LatentSyncUNet

    with torch.device("meta"):
        model = LatentSyncUNet(DEFAULT_CONFIG)
    manifest = json.loads((MANIFESTS / "official_stage2_512.json").read_text())
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == manifest["shapes"]


def test_full_size_whisper_is_openai_tiny_in_fp16(tmp_path):
    from latentsync_core.audio import load_whisper
    from latentsync_core.audio.tiny import TINY_DIMS

    written = full_size.write_full_size(tmp_path, only=["whisper"])
    assert written == {"whisper": [tmp_path / "whisper" / "tiny.pt"]}
    checkpoint = torch.load(written["whisper"][0], weights_only=True)
    assert checkpoint["dims"] == TINY_DIMS
    assert {t.dtype for t in checkpoint["model_state_dict"].values()} == {torch.float16}  # as openai ships it
    encoder = load_whisper(written["whisper"][0], device="cpu", dtype=torch.float32)
    mel = torch.randn(1, 80, 3000)
    with torch.no_grad():
        assert encoder(mel).shape == (1, 1500, 384)


def test_full_size_vae_folder_and_single_file_hold_the_same_sd_vae(tmp_path):
    from safetensors.torch import load_file

    from latentsync_core.model_files import VAE
    from latentsync_core.vae import load_vae
    from latentsync_core.vae.ldm_keys import diffusers_to_ldm

    paths = full_size.write_full_size(tmp_path, only=["vae"], dtype="fp16")["vae"]
    folder = tmp_path / "vae" / "sd-vae-ft-mse"
    assert {p.name for p in paths} == {"config.json", "diffusion_pytorch_model.safetensors",
                                       "sd-vae-ft-mse.safetensors"}
    assert all((folder / name).is_file() for name in VAE.repo_files)
    config = json.loads((folder / "config.json").read_text())
    assert config["block_out_channels"] == [128, 256, 512, 512] and config["layers_per_block"] == 2
    diffusers_state = load_file(str(folder / "diffusion_pytorch_model.safetensors"))
    assert sum(t.numel() for t in diffusers_state.values()) == 83_653_863  # sd-vae-ft-mse's parameter count
    single = load_file(str(tmp_path / "vae" / "sd-vae-ft-mse.safetensors"))
    expected = diffusers_to_ldm(diffusers_state)
    assert single.keys() == expected.keys()
    assert all(torch.equal(single[k], expected[k]) for k in single)
    vae = load_vae(folder, device="cpu", dtype=torch.float32)
    with torch.no_grad():
        assert vae.encode(torch.zeros(1, 3, 64, 64), sample=False).shape == (1, 4, 8, 8)


def test_write_full_size_rejects_unknown_names_and_dtypes(tmp_path):
    with pytest.raises(ValueError, match="unknown fixture"):
        full_size.write_full_size(tmp_path, only=["unet2"])
    with pytest.raises(ValueError, match="dtype must be"):
        full_size.write_full_size(tmp_path, dtype="bf16")


def test_cli_dtype_needs_full_size(tmp_path, capsys):
    with pytest.raises(SystemExit):
        fixtures_cli.main([str(tmp_path), "--dtype", "fp16"])
    assert "--dtype applies only to --full-size" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_cli_full_size_only_writes_the_named_model(tmp_path, capsys):
    assert fixtures_cli.main([str(tmp_path), "--full-size", "--only", "whisper", "--dtype", "fp16"]) == 0
    assert capsys.readouterr().out.strip() == f"whisper: {tmp_path / 'whisper' / 'tiny.pt'}"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == ["whisper/tiny.pt"]
