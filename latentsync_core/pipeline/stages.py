"""The lip-sync stages as functions of explicit tensors: what the nodes wrap and the streaming pipeline chains.

    faces (aligned crops) + mouth mask --encode_faces--> FaceLatents
    FaceLatents + audio chunks --sample_window--> latents [1, 4, F, h, w]
    (the loop over a video's windows is pipeline.engine.LipsyncEngine's)
    latents + FaceLatents --decode_faces--> faces with a new mouth, [-1, 1]

Conventions: faces are [F, 3, R, R] floats in [-1, 1] (uint8 [F, R, R, 3] crops are accepted and
converted); the mouth mask is 1 where the face is kept and 0 where it is regenerated; latents are
scaled SD latents [1, 4, F, R/8, R/8]; audio chunks are [F, L, C] (one Whisper chunk per frame).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import host
from ..errors import InputMismatchError
from ..profile import stage
from ..sampler import denoise, derived_seed, normalize_noise_mode, resolve_scheduler_name
from ..sampler.windows import WINDOW_FRAMES
from ..vae import SPATIAL_FACTOR, as_latent_vae

log = logging.getLogger("latentsync")

_VAE_SEED_TAG = 3  # derived_seed stream of the VAE posterior samples (noise uses 1 and 2)


@dataclass
class SamplerOptions:
    """Everything that shapes the denoising, with the official inference's values as defaults."""

    steps: int = 20
    guidance: float = 1.5
    deepcache_interval: int = 3  # as the official inference.sh runs (--enable_deepcache); 0 = exact, off
    scheduler: str = "ddim"
    noise_mode: str = "shared"
    seed: int = 1247
    sample_latents: bool = True  # sample the VAE posterior (official) rather than take its mean
    window: int = WINDOW_FRAMES
    cfg_batch: bool = True  # both CFG branches in one doubled batch (official) vs two calls

    def __post_init__(self) -> None:
        if int(self.steps) < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not np.isfinite(self.guidance) or self.guidance < 0:
            raise ValueError(f"guidance must be a finite number >= 0, got {self.guidance}")
        if int(self.deepcache_interval) < 0:
            raise ValueError(f"deepcache_interval must be >= 0 (0 = off), got {self.deepcache_interval}")
        if isinstance(self.scheduler, str):
            self.scheduler = resolve_scheduler_name(self.scheduler)
        self.noise_mode = normalize_noise_mode(self.noise_mode)
        if not 1 <= int(self.window) <= WINDOW_FRAMES:
            raise ValueError(f"window must be 1..{WINDOW_FRAMES} frames (the motion modules' length), got {self.window}")


@dataclass
class FaceLatents:
    """What the U-Net is conditioned on for a run of F aligned faces (besides the audio).

    faces [F, 3, R, R] in [-1, 1]: the original crops (reference frames, and what the mask keeps);
    pixel_mask [F, 1, R, R] in [0, 1]; mask [1, 1, F, h, w] (nearest-resized pixel mask);
    masked_latents / ref_latents [1, 4, F, h, w]: scaled VAE latents of faces * mask and of the
    reference faces.
    """

    faces: torch.Tensor
    pixel_mask: torch.Tensor
    mask: torch.Tensor
    masked_latents: torch.Tensor
    ref_latents: torch.Tensor

    def __len__(self) -> int:
        return int(self.faces.shape[0])

    @property
    def resolution(self) -> int:
        return int(self.faces.shape[-1])

    @property
    def latent_size(self) -> tuple[int, int]:
        return int(self.mask.shape[-2]), int(self.mask.shape[-1])

    def select(self, indices: Sequence[int] | slice) -> "FaceLatents":
        """The same conditioning for a subset of frames (a window)."""
        index = indices if isinstance(indices, slice) else torch.as_tensor(list(indices), dtype=torch.long)
        pick = (lambda t: t[index]) if isinstance(index, slice) else (lambda t: t.index_select(0, index.to(t.device)))
        pick_f = (lambda t: t[:, :, index]) if isinstance(index, slice) else (
            lambda t: t.index_select(2, index.to(t.device)))
        return replace(self, faces=pick(self.faces), pixel_mask=pick(self.pixel_mask), mask=pick_f(self.mask),
                       masked_latents=pick_f(self.masked_latents), ref_latents=pick_f(self.ref_latents))

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "FaceLatents":
        move = lambda t: t.to(device=device, dtype=dtype)  # noqa: E731
        return replace(self, faces=move(self.faces), pixel_mask=move(self.pixel_mask), mask=move(self.mask),
                       masked_latents=move(self.masked_latents), ref_latents=move(self.ref_latents))


# --------------------------------------------------------------------------- conversions
def faces_to_tensor(faces: Any) -> torch.Tensor:
    """Aligned crops -> float32 [F, 3, R, R] in [-1, 1].

    Accepts uint8 [F, R, R, 3] (numpy or torch; what align_faces returns), float [F, 3, R, R] already in
    [-1, 1], or a ComfyUI IMAGE batch float [F, R, R, 3] in [0, 1].
    """
    if isinstance(faces, np.ndarray):
        faces = torch.from_numpy(np.ascontiguousarray(faces))
    if not isinstance(faces, torch.Tensor) or faces.ndim != 4:
        raise InputMismatchError(f"faces must be [F, R, R, 3] uint8 crops or [F, 3, R, R] floats, got "
                                 f"{getattr(faces, 'shape', type(faces).__name__)}")
    if faces.dtype == torch.uint8:
        if faces.shape[-1] != 3:
            raise InputMismatchError(f"uint8 faces must be [F, R, R, 3], got {list(faces.shape)}")
        # (x / 255 - 0.5) / 0.5 in this order, as the official normalisation rounds.
        return faces.permute(0, 3, 1, 2).float().div_(255.0).sub_(0.5).div_(0.5)
    if faces.shape[1] == 3:
        return faces.float()
    if faces.shape[-1] == 3:  # IMAGE: channels last, 0..1
        return faces.permute(0, 3, 1, 2).float().mul(2.0).sub_(1.0)
    raise InputMismatchError(f"faces must have 3 colour channels, got {list(faces.shape)}")


def keep_mask_from_mouth(mouth_mask: torch.Tensor) -> torch.Tensor:
    """face.mouth_mask marks what is regenerated (1 = mouth); the stages take the official convention, 1 = keep."""
    return 1.0 - mouth_mask


def mask_to_tensor(mask: Any, frames: int, resolution: int) -> torch.Tensor:
    """A keep mask (1 = keep, 0 = regenerate) of shape [R, R], [1|F, R, R] or [1|F, 1, R, R], any size
    -> [F, 1, R, R] (at least float32)."""
    m = torch.from_numpy(np.asarray(mask)) if not isinstance(mask, torch.Tensor) else mask
    if m.dtype == torch.uint8 or m.dtype == torch.bool:
        m = m.float() / (255.0 if m.dtype == torch.uint8 else 1.0)
    m = m.to(torch.promote_types(m.dtype, torch.float32))
    while m.ndim < 4:
        m = m.unsqueeze(0)
    if m.ndim != 4 or m.shape[1] != 1 or m.shape[0] not in (1, frames):
        raise InputMismatchError(f"the mouth mask must be [R, R] or [F, 1, R, R] with F in (1, {frames}), "
                                 f"got {list(mask.shape) if hasattr(mask, 'shape') else mask}")
    if tuple(m.shape[-2:]) != (resolution, resolution):
        # The official resizes its mask image to the resolution with Lanczos; bilinear is close enough
        # for a mask and never rings outside [0, 1].
        m = F.interpolate(m, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return m.clamp(0.0, 1.0).expand(frames, -1, -1, -1)


def latent_mask(pixel_mask: torch.Tensor) -> torch.Tensor:
    """[F, 1, R, R] -> [1, 1, F, R/8, R/8], nearest, as the official prepare_mask_latents resizes it."""
    r = pixel_mask.shape[-1]
    small = F.interpolate(pixel_mask, size=(r // SPATIAL_FACTOR, r // SPATIAL_FACTOR))
    return small.permute(1, 0, 2, 3).unsqueeze(0)


def _to_video_latents(latents: torch.Tensor) -> torch.Tensor:
    """[F, 4, h, w] -> [1, 4, F, h, w]."""
    return latents.permute(1, 0, 2, 3).unsqueeze(0)


def vae_generator(seed: int | None) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(0 if seed is None else seed, _VAE_SEED_TAG, 0))


# --------------------------------------------------------------------------- stage 1: conditioning
@stage("vae_encode")
@torch.no_grad()
def encode_faces(vae: Any, faces: Any, mask: Any, *, ref_faces: Any = None, sample: bool = True,
                 generator: torch.Generator | None = None, seed: int | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> FaceLatents:
    """Encode aligned faces and their masked copies into the U-Net's conditioning latents.

    `vae`: a ComfyUI VAE, a diffusers AutoencoderKL or a LatentVAE. `mask`: KEEP mask, 1 = keep the
    crop, 0 = regenerate (the official mask image's convention; from face.mouth_mask use
    `keep_mask_from_mouth`).
    `ref_faces`: reference faces (default: the faces themselves, as at official inference).
    `sample`: draw from the VAE posterior (official) with `generator` (or one derived from `seed`),
    else use its mean. Results land on `device`/`dtype` (default: the VAE's).
    """
    vae = as_latent_vae(vae)
    pixels = faces_to_tensor(faces)
    frames, resolution = pixels.shape[0], pixels.shape[-1]
    if pixels.shape[-2] != resolution or resolution % SPATIAL_FACTOR:
        raise InputMismatchError(f"faces must be square with a side divisible by {SPATIAL_FACTOR}, got "
                                 f"{list(pixels.shape[-2:])}")
    pixel_mask = mask_to_tensor(mask, frames, resolution)
    refs = pixels if ref_faces is None else faces_to_tensor(ref_faces)
    if refs.shape != pixels.shape:
        raise InputMismatchError(f"ref_faces {list(refs.shape)} must match faces {list(pixels.shape)}")
    if sample and generator is None:
        generator = vae_generator(seed)
    device = torch.device(device) if device is not None else vae.device
    dtype = dtype or vae.dtype
    vae_in = lambda t: t.to(vae.device, vae.dtype)  # noqa: E731
    # Mask in at least float32, then cast, as the official does (its mask image is float64).
    work = torch.promote_types(torch.promote_types(vae.dtype, pixel_mask.dtype), torch.float32)
    masked_pixels = pixels.to(vae.device, work) * pixel_mask.to(vae.device, work)
    # Masked then reference, the order the official draws its posterior samples in.
    masked = vae.encode(vae_in(masked_pixels), sample=sample, generator=generator)
    ref = vae.encode(vae_in(refs), sample=sample, generator=generator)
    out = lambda t: t.to(device=device, dtype=dtype)  # noqa: E731
    return FaceLatents(faces=out(pixels), pixel_mask=out(pixel_mask), mask=out(latent_mask(pixel_mask)),
                       masked_latents=out(_to_video_latents(masked)), ref_latents=out(_to_video_latents(ref)))


# --------------------------------------------------------------------------- stage 2: sampling
def _model_place(unet: Any) -> tuple[torch.device, torch.dtype]:
    params = next(unet.parameters())
    return params.device, params.dtype


@stage("unet")
def sample_window(unet: Any, conditioning: FaceLatents, audio: torch.Tensor | None, noise: torch.Tensor,
                  options: SamplerOptions = SamplerOptions(), on_step: Callable[[int, int], None] | None = None
                  ) -> torch.Tensor:
    """Denoise one window (<= 16 frames): latents [1, 4, F, h, w] on the U-Net's device and dtype."""
    device, dtype = _model_place(unet)
    cond = conditioning.to(device, dtype)
    if audio is not None:
        if audio.shape[0] != len(cond):
            raise InputMismatchError(f"{audio.shape[0]} audio chunks for a window of {len(cond)} frames")
        audio = audio.to(device, dtype)
    return denoise(unet, noise.to(device, dtype), cond.mask, cond.masked_latents, cond.ref_latents, audio,
                   steps=options.steps, guidance=options.guidance, deepcache_interval=options.deepcache_interval,
                   scheduler=options.scheduler, cfg_batch=options.cfg_batch, on_step=on_step)


# --------------------------------------------------------------------------- stage 3: decode
@stage("vae_decode")
@torch.no_grad()
def decode_faces(vae: Any, latents: torch.Tensor, conditioning: FaceLatents) -> torch.Tensor:
    """Decode [1, 4, F, h, w] latents and keep the original face where the mask says so.

    Returns float (at least float32) [F, 3, R, R] in [-1, 1] (decoded * (1 - mask) + original * mask, as the official
    paste_surrounding_pixels_back), on the VAE's device.
    """
    vae = as_latent_vae(vae)
    if latents.ndim != 5 or latents.shape[0] != 1 or latents.shape[2] != len(conditioning):
        raise InputMismatchError(f"latents must be [1, 4, {len(conditioning)}, h, w], got {list(latents.shape)}")
    decoded = vae.decode(latents[0].permute(1, 0, 2, 3).to(vae.device, vae.dtype))
    decoded = decoded.to(torch.promote_types(decoded.dtype, torch.float32))
    mask = conditioning.pixel_mask.to(decoded.device, decoded.dtype)
    faces = conditioning.faces.to(decoded.device, decoded.dtype)
    return decoded * (1.0 - mask) + faces * mask


def faces_to_uint8(faces: torch.Tensor) -> np.ndarray:
    """[F, 3, R, R] in [-1, 1] -> uint8 [F, R, R, 3] (rounded)."""
    x = ((faces.detach().float().clamp(-1, 1) + 1.0) * 127.5).round_().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()
