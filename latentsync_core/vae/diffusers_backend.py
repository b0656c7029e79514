"""diffusers AutoencoderKL backend: load from the official diffusers folder or an LDM single file, offline."""
from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path
from typing import Any

import torch

from ..checkpoints import load_checkpoint_file
from ..errors import CheckpointError
from .base import LATENT_CHANNELS, SCALING_FACTOR, SPATIAL_FACTOR, LatentVAE, wrong_vae_error
from .ldm_keys import is_ldm_layout, ldm_to_diffusers, modernize_diffusers_keys, strip_container_prefix

log = logging.getLogger("latentsync")

DIFFUSERS_WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
# GroupNorm's group count is not recorded in the weights; every SD-family VAE uses 32.
DEFAULT_NORM_GROUPS = 32


class DiffusersVAE(LatentVAE):
    def __init__(self, model: Any, input_name: str = "vae"):
        config = model.config
        if config.latent_channels != LATENT_CHANNELS:
            raise wrong_vae_error(input_name, f"has {config.latent_channels}-channel latents")
        downscale = 2 ** (len(config.block_out_channels) - 1)
        if downscale != SPATIAL_FACTOR:
            raise wrong_vae_error(input_name, f"downscales {downscale}x")
        self.model = model.eval().requires_grad_(False)
        self.input_name = input_name

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "DiffusersVAE":
        # nn.Module.to, not diffusers' override: the latter warns on every cast of a model that has
        # no fp32-pinned modules (AutoencoderKL has none).
        torch.nn.Module.to(self.model, device=device, dtype=dtype)
        return self

    def _posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dist = self.model.encode(images.to(self.device, self.dtype)).latent_dist
        return dist.mean, dist.std

    def _decode_unscaled(self, latents: torch.Tensor) -> torch.Tensor:
        return self.model.decode(latents.to(self.device, self.dtype)).sample


def infer_diffusers_config(state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """AutoencoderKL constructor arguments from diffusers-named weights (widths, depth, channels)."""
    try:
        levels = sorted({int(k.split(".")[2]) for k in state_dict if k.startswith("encoder.down_blocks.")})
        widths = [state_dict[f"encoder.down_blocks.{i}.resnets.0.conv1.weight"].shape[0] for i in levels]
        layers = len({k.split(".")[4] for k in state_dict if k.startswith("encoder.down_blocks.0.resnets.")})
        config = {
            "in_channels": state_dict["encoder.conv_in.weight"].shape[1],
            "out_channels": state_dict["decoder.conv_out.weight"].shape[0],
            "down_block_types": ["DownEncoderBlock2D"] * len(levels),
            "up_block_types": ["UpDecoderBlock2D"] * len(levels),
            "block_out_channels": widths,
            "layers_per_block": layers,
            "latent_channels": state_dict["decoder.conv_in.weight"].shape[1],
            "norm_num_groups": DEFAULT_NORM_GROUPS,
            "scaling_factor": SCALING_FACTOR,
            "use_quant_conv": "quant_conv.weight" in state_dict,
            "use_post_quant_conv": "post_quant_conv.weight" in state_dict,
            "mid_block_add_attention": any(k.startswith("encoder.mid_block.attentions.") for k in state_dict),
        }
    except (KeyError, ValueError, IndexError) as exc:
        raise CheckpointError(f"the weights are not an AutoencoderKL (missing {exc})") from exc
    if not levels:
        raise CheckpointError("the weights are not an AutoencoderKL (no encoder down blocks)")
    return config


def _find_diffusers_weights(folder: Path) -> Path:
    for name in DIFFUSERS_WEIGHT_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(f"{folder} has no {' or '.join(DIFFUSERS_WEIGHT_NAMES)}; re-download sd-vae-ft-mse")


def _build(config: dict[str, Any], state_dict: dict[str, torch.Tensor], source: Path):
    from diffusers import AutoencoderKL

    accepted = set(inspect.signature(AutoencoderKL.__init__).parameters) - {"self"}
    model = AutoencoderKL(**{k: v for k, v in config.items() if k in accepted})
    try:
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as exc:  # shape mismatches: config and weights disagree
        raise CheckpointError(f"{source} does not match its VAE config: {str(exc).splitlines()[1:3]}") from exc
    if missing:
        raise CheckpointError(
            f"{source} is not a complete SD VAE: {len(missing)} tensors missing (first: {missing[:3]})")
    if unexpected:
        log.debug("ignoring %d extra tensors in %s: %s", len(unexpected), source, unexpected[:5])
    return model


def load_vae(path: Path | str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
             input_name: str = "vae") -> DiffusersVAE:
    """Load sd-vae-ft-mse from a diffusers folder (config.json + weights) or one LDM/diffusers file.

    Never touches the network: the folder's own config is used, and a single file's architecture is
    read from its tensor shapes.
    """
    path = Path(path)
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            raise CheckpointError(f"{path} has no config.json; it is not a diffusers VAE folder")
        try:
            config = json.loads(config_path.read_text())
        except ValueError as exc:
            raise CheckpointError(f"{config_path} is not valid JSON ({exc})") from exc
        weights = _find_diffusers_weights(path)
        state_dict = modernize_diffusers_keys(dict(load_checkpoint_file(weights)))
        model = _build(config, state_dict, weights)
    elif path.is_file():
        raw = load_checkpoint_file(path)
        if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
            raw = raw["state_dict"]
        state_dict = strip_container_prefix(dict(raw))
        if not state_dict:
            raise CheckpointError(f"{path} holds no VAE tensors (expected encoder.*/decoder.* keys)")
        state_dict = ldm_to_diffusers(state_dict) if is_ldm_layout(state_dict) else modernize_diffusers_keys(state_dict)
        model = _build(infer_diffusers_config(state_dict), state_dict, path)
    else:
        raise CheckpointError(f"VAE not found: {path}")
    vae = DiffusersVAE(model, input_name)
    return vae.to(device=device, dtype=dtype)
