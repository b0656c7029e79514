"""TAESD (latentsync_core.vae.taesd) against diffusers' AutoencoderTiny, an independent implementation of the
same published network, on the same random weights; and its files as ComfyUI's models/vae_approx has them."""
from __future__ import annotations

import pytest
import torch

from latentsync_core.checkpoints import save_checkpoint_file
from latentsync_core.errors import CheckpointError
from latentsync_core.fixtures.random_init import randomize_
from latentsync_core.vae import as_latent_vae
from latentsync_core.vae.taesd import TinyVAE, decoder, encoder, find_taesd, load_taesd


def _reference_with(enc_state, dec_state):
    """diffusers AutoencoderTiny holding our tensors, matched in module order (its decoder has no clamp layer)."""
    from diffusers import AutoencoderTiny

    ref = AutoencoderTiny().eval()
    mapped = {}
    for prefix, ours in (("encoder.layers.", enc_state), ("decoder.layers.", dec_state)):
        theirs = [k for k in ref.state_dict() if k.startswith(prefix)]
        assert [tuple(ref.state_dict()[k].shape) for k in theirs] == [tuple(v.shape) for v in ours.values()]
        mapped.update(zip(theirs, ours.values()))
    ref.load_state_dict(mapped, strict=True)
    return ref


@pytest.fixture(scope="module")
def halves():
    return randomize_(encoder(), seed=1).eval(), randomize_(decoder(), seed=2).eval()


def test_published_key_names():
    enc, dec = encoder().state_dict(), decoder().state_dict()
    assert list(enc)[:4] == ["0.weight", "0.bias", "1.conv.0.weight", "1.conv.0.bias"]
    assert "2.weight" in enc and "2.bias" not in enc  # the stride-2 convolutions have no bias
    assert list(enc)[-2:] == ["14.weight", "14.bias"] and enc["14.weight"].shape == (4, 64, 3, 3)
    assert list(dec)[:2] == ["1.weight", "1.bias"]  # index 0 is the parameter-free clamp
    assert "7.weight" in dec and "7.bias" not in dec
    assert list(dec)[-2:] == ["19.weight", "19.bias"] and dec["19.weight"].shape == (3, 64, 3, 3)


def test_encode_and_decode_equal_diffusers_autoencoder_tiny(halves):
    enc, dec = halves
    ref = _reference_with(enc.state_dict(), dec.state_dict())
    vae = TinyVAE(enc, dec)
    images = torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        expected_latents = ref.encode(images).latents  # TAESD latents are SD's scaled latents
        expected_images = ref.decode(expected_latents).sample
    latents = vae.encode(images, sample=True, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(latents, expected_latents, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(vae.decode(latents), expected_images, rtol=1e-5, atol=1e-5)
    assert latents.shape == (2, 4, 8, 6)


def test_files_in_vae_approx_load_and_pass_through_as_latent_vae(tmp_path, halves):
    enc, dec = halves
    assert find_taesd(tmp_path) is None
    folder = tmp_path / "vae_approx"
    save_checkpoint_file(enc.state_dict(), folder / "taesd_encoder.safetensors")
    assert find_taesd(tmp_path) is None  # one half is not enough
    torch.save(dec.state_dict(), folder / "taesd_decoder.pth")  # the .pth form the upstream repo ships
    found = find_taesd(tmp_path)
    assert found == (folder / "taesd_encoder.safetensors", folder / "taesd_decoder.pth")
    vae = load_taesd(*found, dtype=torch.float64)
    assert as_latent_vae(vae) is vae and vae.dtype == torch.float64
    latents = torch.randn(1, 4, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        expected = dec.double()(latents) * 2 - 1
    torch.testing.assert_close(vae.decode(latents), expected)


def test_wrong_file_names_the_file_and_the_expected_one(tmp_path, halves):
    enc, _ = halves
    path = save_checkpoint_file(enc.state_dict(), tmp_path / "taesd_encoder.safetensors")
    with pytest.raises(CheckpointError, match=r"taesd_encoder\.safetensors does not match the TAESD decoder"):
        load_taesd(path, path)
