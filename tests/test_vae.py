"""The VAE interface: both file layouts of sd-vae-ft-mse load to the same model, offline; scaling,
posterior sampling and decoding match diffusers' own AutoencoderKL; the ComfyUI backend (duck-typed)
agrees with the diffusers one; non-SD VAEs are refused with a message naming the input."""
from __future__ import annotations

import socket

import pytest
import torch

from latentsync_core.errors import CheckpointError
from latentsync_core.vae import SCALING_FACTOR, ComfyVAE, DiffusersVAE, as_latent_vae, load_vae
from latentsync_core.vae.fixture import write_vae_fixture
from latentsync_core.vae.ldm_keys import diffusers_to_ldm, ldm_to_diffusers


@pytest.fixture(scope="module")
def vae_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae_models")
    write_vae_fixture(root, seed=5)
    return root


@pytest.fixture(scope="module")
def vae(vae_root) -> DiffusersVAE:
    return load_vae(vae_root / "vae" / "sd-vae-ft-mse")


def _images(n=3, size=64, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_fixture_writes_both_official_layouts(vae_root):
    folder = vae_root / "vae" / "sd-vae-ft-mse"
    assert (folder / "config.json").is_file() and (folder / "diffusion_pytorch_model.safetensors").is_file()
    from safetensors.torch import load_file

    ldm = load_file(str(vae_root / "vae" / "sd-vae-ft-mse.safetensors"))
    # Original LDM names, decoder levels numbered from the bottom, attention as 1x1 convolutions.
    assert "encoder.down.0.block.0.norm1.weight" in ldm
    assert "decoder.up.3.block.0.conv1.weight" in ldm and "encoder.mid.attn_1.q.weight" in ldm
    assert ldm["encoder.mid.attn_1.q.weight"].ndim == 4
    assert not any(".down_blocks." in k or "to_q" in k for k in ldm)
    assert all(v.std() > 0 for v in ldm.values() if v.numel() > 1), "every tensor must be random"


def test_ldm_key_conversion_round_trips(vae_root):
    from safetensors.torch import load_file

    diffusers_sd = load_file(str(vae_root / "vae" / "sd-vae-ft-mse" / "diffusion_pytorch_model.safetensors"))
    back = ldm_to_diffusers(diffusers_to_ldm(diffusers_sd))
    assert back.keys() == diffusers_sd.keys()
    assert all(torch.equal(back[k], diffusers_sd[k]) for k in back)


def test_folder_and_single_file_load_the_same_model_without_network(vae_root, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("load_vae tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    a = load_vae(vae_root / "vae" / "sd-vae-ft-mse")
    b = load_vae(vae_root / "vae" / "sd-vae-ft-mse.safetensors")
    x = _images()
    assert torch.equal(a.encode(x, sample=False), b.encode(x, sample=False))
    z = a.encode(x, sample=False)
    assert torch.equal(a.decode(z), b.decode(z))


def test_encode_and_decode_follow_diffusers_with_sd_scaling(vae):
    x = _images()
    dist = vae.model.encode(x).latent_dist
    mean = vae.encode(x, sample=False)
    assert mean.shape == (3, 4, 8, 8)
    torch.testing.assert_close(mean, dist.mean * SCALING_FACTOR)
    sampled = vae.encode(x, sample=True, generator=torch.Generator().manual_seed(11))
    eps = torch.randn(dist.mean.shape, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(sampled, (dist.mean + dist.std * eps) * SCALING_FACTOR)
    assert not torch.allclose(sampled, mean)
    torch.testing.assert_close(vae.decode(mean), vae.model.decode(mean / SCALING_FACTOR).sample)


def test_sampling_is_reproducible_and_batch_split_does_not_change_the_mean(vae):
    x = _images(n=5)
    a = vae.encode(x, generator=torch.Generator().manual_seed(3))
    b = vae.encode(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    whole = vae.encode(x, sample=False)
    vae.batch_size, saved = 2, vae.batch_size
    try:
        torch.testing.assert_close(vae.encode(x, sample=False), whole)
    finally:
        vae.batch_size = saved


def test_non_sd_vae_is_refused_naming_the_input():
    from diffusers import AutoencoderKL

    flux_like = AutoencoderKL(block_out_channels=(32, 32, 32, 32), down_block_types=["DownEncoderBlock2D"] * 4,
                              up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=16)
    with pytest.raises(CheckpointError, match=r"'vae'.*16-channel.*sd-vae-ft-mse"):
        as_latent_vae(flux_like)
    with pytest.raises(CheckpointError, match="not a VAE"):
        as_latent_vae(torch.nn.Linear(2, 2), input_name="vae")


def test_bad_paths_raise_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_vae(tmp_path / "missing.safetensors")
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(CheckpointError, match="config.json"):
        load_vae(tmp_path / "empty_folder")
    from safetensors.torch import save_file

    save_file({"unet.conv_in.weight": torch.zeros(2, 2)}, str(tmp_path / "unet.safetensors"))
    with pytest.raises(CheckpointError, match="no VAE tensors"):
        load_vae(tmp_path / "unet.safetensors")


# ---------------------------------------------------------------- ComfyUI backend (duck-typed)
class _ModeRegularizer(torch.nn.Module):
    """ComfyUI's DiagonalGaussianRegularizer(sample=False): returns the posterior mode."""

    def forward(self, z):
        mean, _ = torch.chunk(z, 2, dim=1)
        return mean, None


class _FirstStage(torch.nn.Module):
    """The shape of comfy.ldm.models.autoencoder.AutoencoderKL: encoder, quant_conv, regularization."""

    def __init__(self, model):
        super().__init__()
        self.encoder, self.quant_conv = model.encoder, model.quant_conv
        self.decoder, self.post_quant_conv = model.decoder, model.post_quant_conv
        self.regularization = _ModeRegularizer()

    def encode(self, x):
        z, _ = self.regularization(self.quant_conv(self.encoder(x)))
        return z

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


class FakeComfyVAE:
    """What comfy.sd.VAE exposes and does: [B, H, W, C] pixels in 0..1, unscaled mode latents, clamped decode."""

    def __init__(self, model, latent_channels=4):
        self.first_stage_model = _FirstStage(model)
        self.patcher = object()
        self.latent_channels = latent_channels
        self.latent_dim = 2
        self.device = torch.device("cpu")
        self.vae_dtype = torch.float32

    def spacial_compression_encode(self):
        return 8

    def encode(self, pixels):
        x = pixels.movedim(-1, 1) * 2.0 - 1.0
        # ComfyUI splits the batch by free memory; batches of 2 exercise that.
        return torch.cat([self.first_stage_model.encode(x[i:i + 2]) for i in range(0, len(x), 2)])

    def decode(self, latents):
        out = self.first_stage_model.decode(latents)
        return torch.clamp((out + 1.0) / 2.0, 0.0, 1.0).movedim(1, -1)


def test_comfy_vae_backend_matches_diffusers_backend(vae):
    comfy = as_latent_vae(FakeComfyVAE(vae.model))
    assert isinstance(comfy, ComfyVAE)
    x = _images(n=5)
    torch.testing.assert_close(comfy.encode(x, sample=False), vae.encode(x, sample=False), atol=1e-5, rtol=1e-5)
    a = comfy.encode(x, generator=torch.Generator().manual_seed(9))
    b = vae.encode(x, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    z = vae.encode(x, sample=False)
    torch.testing.assert_close(comfy.decode(z), vae.decode(z).clamp(-1, 1), atol=1e-5, rtol=1e-5)
    # The regulariser swapped in for sampling is put back afterwards.
    assert isinstance(comfy.vae.first_stage_model.regularization, _ModeRegularizer)


def test_comfy_vae_with_other_latent_channels_is_refused(vae):
    with pytest.raises(CheckpointError, match="16-channel"):
        as_latent_vae(FakeComfyVAE(vae.model, latent_channels=16), input_name="vae")
