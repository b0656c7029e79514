"""Tiny random sd-vae-ft-mse look-alike in both layouts ComfyUI users and the official code have.

Same architecture family as sd-vae-ft-mse (4 latent channels, four levels -> 8x downscale, mid
attention), widths cut to 32/64 so it runs in milliseconds. Written as
  vae/sd-vae-ft-mse/{config.json, diffusion_pytorch_model.safetensors}  (official diffusers folder)
  vae/sd-vae-ft-mse.safetensors                                           (single-file LDM keys)
holding the same tensors, every one random (norm scales around 1, biases small but non-zero).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..checkpoints import save_checkpoint_file
from .base import SCALING_FACTOR
from .ldm_keys import diffusers_to_ldm

TINY_CONFIG = {
    "_class_name": "AutoencoderKL",
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [32, 32, 64, 64],
    "layers_per_block": 1,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 64,
    "scaling_factor": SCALING_FACTOR,
}


def tiny_vae_state_dict(seed: int) -> dict[str, torch.Tensor]:
    from diffusers import AutoencoderKL

    gen = torch.Generator().manual_seed(seed)
    model = AutoencoderKL(**{k: v for k, v in TINY_CONFIG.items() if not k.startswith("_")})
    state = {}
    for name, tensor in model.state_dict().items():
        if tensor.ndim == 1 and ("norm" in name and name.endswith(".weight")):
            value = 1.0 + 0.1 * torch.randn(tensor.shape, generator=gen)
        elif tensor.ndim == 1:
            value = 0.02 * torch.randn(tensor.shape, generator=gen)
        else:
            fan_in = tensor[0].numel()
            value = torch.randn(tensor.shape, generator=gen) / fan_in ** 0.5
        state[name] = value.contiguous()
    return state


def write_vae_fixture(models_root: Path, seed: int) -> list[Path]:
    state = tiny_vae_state_dict(seed)
    folder = Path(models_root) / "vae" / "sd-vae-ft-mse"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(TINY_CONFIG, indent=2))
    diffusers_file = save_checkpoint_file(state, folder / "diffusion_pytorch_model.safetensors")
    ldm_file = save_checkpoint_file(diffusers_to_ldm(state), Path(models_root) / "vae" / "sd-vae-ft-mse.safetensors")
    return [folder / "config.json", diffusers_file, ldm_file]
