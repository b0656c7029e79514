"""Stage functions on explicit tensors: conditioning latents, multi-window sampling over active frames,
decode + mask composite, and the official window composition they add up to."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from latentsync_core.errors import InputMismatchError
from latentsync_core.pipeline import (FaceLatents, SamplerOptions, decode_faces, encode_faces, faces_to_tensor,
                                      faces_to_uint8, keep_mask_from_mouth, latent_mask, sample_window)
from latentsync_core.sampler import NoiseSource, denoise
from latentsync_core.vae import SCALING_FACTOR
from tests.tiny_models import unet, vae  # noqa: F401  (module fixtures)

R = 64


@pytest.fixture(scope="module")
def faces():
    from skimage import data

    img = torch.from_numpy(data.astronaut()[30:230, 140:340].copy()).permute(2, 0, 1).float()[None]
    base = torch.nn.functional.interpolate(img, size=(R, R), mode="area")[0]
    frames = torch.stack([torch.roll(base, shifts=i % 3, dims=2) for i in range(6)])
    return frames.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()  # [6, R, R, 3]


@pytest.fixture(scope="module")
def keep():
    m = torch.ones(R, R)
    m[R // 2:, 8:R - 8] = 0.0  # regenerate the lower middle of the face
    return m


def test_faces_to_tensor_accepts_crops_floats_and_images(faces):
    t = faces_to_tensor(faces)
    assert t.shape == (6, 3, R, R) and t.dtype == torch.float32
    assert float(t.min()) >= -1 and float(t.max()) <= 1
    torch.testing.assert_close(t, torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 127.5 - 1)
    image = torch.from_numpy(faces).float() / 255.0  # ComfyUI IMAGE layout
    torch.testing.assert_close(faces_to_tensor(image), t)
    assert faces_to_tensor(t) is not None and torch.equal(faces_to_tensor(t), t)
    assert np.array_equal(faces_to_uint8(t), faces)  # exact round trip
    with pytest.raises(InputMismatchError):
        faces_to_tensor(np.zeros((2, R, R), np.uint8))


def test_keep_mask_is_the_complement_of_the_mouth_mask():
    from latentsync_core.face import mouth_mask

    mouth = mouth_mask(R)
    keep = keep_mask_from_mouth(mouth)
    assert torch.equal(keep + mouth, torch.ones(R, R))
    assert float(keep[R - 10, R // 2]) == 0.0 and float(keep[5, 5]) == 1.0  # chin regenerated, corner kept


def test_encode_faces_builds_the_official_conditioning(vae, faces, keep):
    cond = encode_faces(vae, faces, keep, sample=False)
    assert isinstance(cond, FaceLatents) and len(cond) == 6
    assert cond.mask.shape == (1, 1, 6, R // 8, R // 8)
    assert cond.masked_latents.shape == cond.ref_latents.shape == (1, 4, 6, R // 8, R // 8)
    # Nearest resize of the pixel mask (what the official prepare_mask_latents does).
    expected_mask = keep[::8, ::8]
    assert torch.equal(cond.mask[0, 0, 0], expected_mask)
    pixels = faces_to_tensor(faces)
    direct_masked = vae.model.encode(pixels * keep).latent_dist.mean * SCALING_FACTOR
    direct_ref = vae.model.encode(pixels).latent_dist.mean * SCALING_FACTOR
    torch.testing.assert_close(cond.masked_latents[0].permute(1, 0, 2, 3), direct_masked)
    torch.testing.assert_close(cond.ref_latents[0].permute(1, 0, 2, 3), direct_ref)
    assert torch.equal(latent_mask(cond.pixel_mask), cond.mask)


def test_posterior_sampling_is_seeded(vae, faces, keep):
    a = encode_faces(vae, faces, keep, sample=True, seed=5)
    b = encode_faces(vae, faces, keep, sample=True, seed=5)
    c = encode_faces(vae, faces, keep, sample=True, seed=6)
    mean = encode_faces(vae, faces, keep, sample=False)
    assert torch.equal(a.ref_latents, b.ref_latents) and torch.equal(a.masked_latents, b.masked_latents)
    assert not torch.equal(a.ref_latents, c.ref_latents)
    assert not torch.allclose(a.ref_latents, mean.ref_latents)


def test_decode_keeps_the_original_where_the_mask_says_keep(vae, faces, keep):
    cond = encode_faces(vae, faces, keep, sample=False)
    latents = torch.randn(1, 4, 6, R // 8, R // 8, generator=torch.Generator().manual_seed(0))
    out = decode_faces(vae, latents, cond)
    assert out.shape == (6, 3, R, R)
    kept = keep.bool()
    original = faces_to_tensor(faces)
    assert torch.equal(out[:, :, kept], original[:, :, kept])
    decoded = vae.decode(latents[0].permute(1, 0, 2, 3))
    torch.testing.assert_close(out[:, :, ~kept], decoded[:, :, ~kept])
    with pytest.raises(InputMismatchError):
        decode_faces(vae, latents[:, :, :3], cond)


def test_select_picks_frames_consistently(vae, faces, keep):
    cond = encode_faces(vae, faces, keep, sample=False)
    part = cond.select([4, 1])
    assert len(part) == 2
    assert torch.equal(part.faces[0], cond.faces[4]) and torch.equal(part.ref_latents[:, :, 1], cond.ref_latents[:, :, 1])
    assert torch.equal(part.masked_latents[:, :, 0], cond.masked_latents[:, :, 4])


def test_sampler_options_validate():
    with pytest.raises(ValueError, match="scheduler"):
        SamplerOptions(scheduler="plms")
    with pytest.raises(ValueError, match="window"):
        SamplerOptions(window=24)
    with pytest.raises(ValueError, match="noise"):
        SamplerOptions(noise_mode="fresh")
    assert SamplerOptions(scheduler="DPM++").scheduler == "dpmpp_2m"
