"""Loading the three networks a lip-sync run needs, on the chosen device and dtype."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import host, model_files
from ..errors import MissingModel, ModelMissingError

log = logging.getLogger("latentsync")

DEFAULT_RESOLUTION = 512  # LatentSync 1.6, what `python -m latentsync_core download` fetches


@dataclass
class LipsyncModels:
    unet: Any
    vae: Any  # a LatentVAE
    whisper: Any
    resolution: int
    device: torch.device
    dtype: torch.dtype


def model_paths(models_root: Path | None = None) -> dict[str, Path]:
    """unet / whisper / vae paths, from a models root laid out like ComfyUI's, or the configured folders."""
    if models_root is not None:
        root = Path(models_root)
        paths = {"unet": root / "latentsync" / model_files.UNET.name, "whisper": root / "whisper" / "tiny.pt",
                 "vae": root / "vae" / model_files.VAE.name}
        missing = [MissingModel(name, path) for name, path in paths.items() if not path.exists()]
        if missing:
            raise ModelMissingError(missing)
        return paths
    found = {"unet": model_files.UNET.find(), "whisper": model_files.WHISPER_TINY.find(), "vae": model_files.VAE.find()}
    missing = [spec.missing() for spec, key in ((model_files.UNET, "unet"), (model_files.WHISPER_TINY, "whisper"),
                                                 (model_files.VAE, "vae")) if found[key] is None]
    if missing:
        raise ModelMissingError(missing)
    return found


def load_models(models_root: Path | None = None, *, device: torch.device | str | None = None,
                dtype: str | torch.dtype = "auto", resolution: int | None = None) -> LipsyncModels:
    """U-Net, VAE and Whisper encoder on `device` (default: the host's) in `dtype`.

    dtype "auto" picks fp16 on GPUs that run it fast (compute capability > 7, as the official does),
    bf16 where ComfyUI prefers it, fp32 on CPU. The VAE runs in the same dtype (sd-vae-ft-mse is
    stable in fp16). `resolution` overrides the face crop size read from the U-Net.
    """
    from ..audio import load_whisper
    from ..unet import load_unet
    from ..vae import load_vae

    device = torch.device(device) if device is not None else host.get_device()
    dtype = dtype if isinstance(dtype, torch.dtype) else host.get_dtype(device, dtype)
    if dtype == torch.float16 and device.type == "cpu":
        log.warning("fp16 on CPU is emulated and slow; use fp32 or bf16 there")
    paths = model_paths(models_root)
    unet = load_unet(paths["unet"], device=device, dtype=dtype)
    vae = load_vae(paths["vae"], device=device, dtype=dtype)
    whisper = load_whisper(paths["whisper"], device=device, dtype=dtype)
    if resolution is None:
        resolution = getattr(unet, "trained_resolution", None)
    if resolution is None:
        resolution = DEFAULT_RESOLUTION
        log.info("the U-Net file does not say which release it is; using %d px faces (LatentSync 1.6). "
                 "For LatentSync 1.5 set the resolution to 256", resolution)
    return LipsyncModels(unet, vae, whisper, int(resolution), device, dtype)
