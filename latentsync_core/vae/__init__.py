"""The Stable Diffusion VAE behind one small interface, for the face latents LatentSync denoises.

Two backends share `LatentVAE`:
- `DiffusersVAE`: a diffusers `AutoencoderKL` (CLI, tests, anything outside ComfyUI), loaded by `load_vae`
  from the official diffusers folder or from a single-file LDM checkpoint, never from the hub;
- `ComfyVAE`: the `VAE` object ComfyUI's core VAELoader returns, recognised by duck typing so this
  package never imports comfy.
`as_latent_vae(obj)` picks the right one. `TinyVAE` (vae/taesd.py) is the approximate TAESD from
`models/vae_approx`, for draft runs. Latents are always *scaled* (x 0.18215, shift 0), the
convention of the LatentSync U-Net; images are [B, 3, H, W] in [-1, 1].
"""
from __future__ import annotations

from .base import LATENT_CHANNELS, SCALING_FACTOR, SHIFT_FACTOR, SPATIAL_FACTOR, LatentVAE, as_latent_vae
from .comfy_backend import ComfyVAE
from .diffusers_backend import DiffusersVAE, infer_diffusers_config, load_vae
from .taesd import TinyVAE, find_taesd, load_taesd

__all__ = [
    "LATENT_CHANNELS", "SCALING_FACTOR", "SHIFT_FACTOR", "SPATIAL_FACTOR", "LatentVAE", "as_latent_vae",
    "ComfyVAE", "DiffusersVAE", "infer_diffusers_config", "load_vae", "TinyVAE", "find_taesd", "load_taesd",
]
