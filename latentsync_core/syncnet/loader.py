"""`load_syncnet`: a StableSyncNet checkpoint (`stable_syncnet.pt`, ``{"state_dict": ...}``) into our model, strictly."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import torch

from ..checkpoints import check_state_dict as check_keys, extract_state_dict, load_checkpoint_file
from ..errors import CheckpointError
from .config import infer_config
from .model import StableSyncNet

log = logging.getLogger("latentsync")

EXPECTED = "StableSyncNet (stable_syncnet.pt from ByteDance/LatentSync-1.6, about 1.6 GB)"


def load_syncnet(path_or_state_dict: str | Path | Mapping[str, torch.Tensor], device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, config: Mapping[str, Any] | None = None) -> StableSyncNet:
    """Build the StableSyncNet a checkpoint describes and load it with every key matched.

    `config`: the architecture, when the checkpoint's layout is not an official one (strides are not
    stored in the weights). Returns the model in eval mode with gradients off, on `device` in `dtype`.
    """
    if isinstance(path_or_state_dict, Mapping):
        source, obj = "the given state dict", path_or_state_dict
    else:
        source = str(path_or_state_dict)
        try:
            obj = load_checkpoint_file(Path(path_or_state_dict), mmap=True)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}; expected {EXPECTED}") from exc
    state_dict = extract_state_dict(obj, source, ("state_dict",))
    if state_dict and all(k.startswith("module.") for k in state_dict):
        state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
    _reject_other_models(state_dict, source)
    cfg = dict(config) if config is not None else infer_config({k: tuple(v.shape) for k, v in state_dict.items()},
                                                               source)
    with torch.device("meta"):
        model = StableSyncNet(cfg)
    check_keys(model, state_dict, source, "StableSyncNet", EXPECTED)
    tensors = {k: v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device)
               for k, v in state_dict.items()}
    model.load_state_dict(tensors, strict=True, assign=True)
    model.eval().requires_grad_(False)
    log.info("loaded StableSyncNet from %s: visual %s, audio %s, %.1f M parameters, %s on %s", source,
             cfg["visual_encoder"]["block_out_channels"], cfg["audio_encoder"]["block_out_channels"],
             sum(p.numel() for p in model.parameters()) / 1e6, str(dtype).replace("torch.", ""), device)
    return model


def _reject_other_models(state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    keys = list(state_dict)
    if any(k.startswith(("audio_encoder.", "visual_encoder.")) for k in keys):
        return
    if "conv_in.weight" in state_dict and any(".motion_modules." in k for k in keys):
        what = "a LatentSync U-Net checkpoint"
    elif any(k.startswith(("encoder.blocks.", "decoder.blocks.")) for k in keys):
        what = "a Whisper checkpoint"
    elif any(k.startswith(("netcnnaud.", "netcnnlip.")) for k in keys):
        what = "the classic SyncNet v2 (syncnet_v2.model), not StableSyncNet"
    elif any(k.startswith(("encoder.down_blocks.", "first_stage_model.")) for k in keys):
        what = "a VAE checkpoint"
    else:
        what = "not a SyncNet"
    raise CheckpointError(f"{source} is {what}; expected {EXPECTED}")


