"""TAESD, the tiny distilled SD VAE, behind the `LatentVAE` interface: a fast approximate VAE for draft runs.

The files are the ones ComfyUI keeps in `models/vae_approx` (`taesd_encoder.safetensors` / `.pth` and
`taesd_decoder...`), plain state dicts of two `nn.Sequential` stacks of 64-channel 3x3 convolutions and
residual blocks (three stride-2 convolutions down, three 2x nearest upsamplings up). TAESD is trained
to reproduce sd-vae-ft-mse's *scaled* latents directly and works on images in [0, 1]; the wrapper
converts to this package's conventions (images in [-1, 1], `_posterior` / `_decode_unscaled` in
unscaled latents). Its encoder is deterministic: the posterior std is 0, so `sample=True` gives the mean.
It is an approximation: faces come back softer, which is why only the draft mode uses it.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..checkpoints import check_state_dict, load_checkpoint_file
from ..errors import CheckpointError
from .base import LATENT_CHANNELS, SCALING_FACTOR, LatentVAE

WIDTH = 64
FOLDER = "vae_approx"  # ComfyUI's folder for approximate VAEs
SUFFIXES = (".safetensors", ".pth", ".pt")


def _conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class _Block(nn.Module):
    """relu(conv-relu-conv-relu-conv(x) + x): the residual unit of both halves (keys conv.0/2/4)."""

    def __init__(self, channels: int = WIDTH):
        super().__init__()
        self.conv = nn.Sequential(_conv(channels, channels), nn.ReLU(), _conv(channels, channels), nn.ReLU(),
                                  _conv(channels, channels))
        self.skip = nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(self.conv(x) + self.skip(x))


class _SoftClamp(nn.Module):
    """3 tanh(x / 3): keeps latents in (-3, 3) before decoding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


def encoder(latent_channels: int = LATENT_CHANNELS) -> nn.Sequential:
    """[0, 1] images -> scaled latents at 1/8 size (state-dict indices as in the published files)."""
    layers: list[nn.Module] = [_conv(3, WIDTH), _Block()]
    for _ in range(3):
        layers += [_conv(WIDTH, WIDTH, stride=2, bias=False), _Block(), _Block(), _Block()]
    layers.append(_conv(WIDTH, latent_channels))
    return nn.Sequential(*layers)


def decoder(latent_channels: int = LATENT_CHANNELS) -> nn.Sequential:
    """Scaled latents -> [0, 1] images at 8x size (state-dict indices as in the published files)."""
    layers: list[nn.Module] = [_SoftClamp(), _conv(latent_channels, WIDTH), nn.ReLU()]
    for _ in range(3):
        layers += [_Block(), _Block(), _Block(), nn.Upsample(scale_factor=2), _conv(WIDTH, WIDTH, bias=False)]
    layers += [_Block(), _conv(WIDTH, 3)]
    return nn.Sequential(*layers)


class TinyVAE(LatentVAE):
    """TAESD encoder + decoder as a LatentVAE (what the pipeline stages take)."""

    batch_size = 16

    def __init__(self, enc: nn.Module, dec: nn.Module):
        self.encoder = enc.eval()
        self.decoder = dec.eval()

    @property
    def device(self) -> torch.device:
        return next(self.decoder.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.decoder.parameters()).dtype

    def to(self, device=None, dtype=None) -> "TinyVAE":
        self.encoder.to(device=device, dtype=dtype)
        self.decoder.to(device=device, dtype=dtype)
        return self

    def _posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scaled = self.encoder(images.to(self.device, self.dtype).add(1).div(2))
        mean = scaled / SCALING_FACTOR
        return mean, torch.zeros_like(mean)

    def _decode_unscaled(self, latents: torch.Tensor) -> torch.Tensor:
        images = self.decoder(latents.to(self.device, self.dtype) * SCALING_FACTOR)
        return images.mul(2).sub(1)


def find_taesd(models_root: Path | str) -> tuple[Path, Path] | None:
    """(encoder, decoder) files in `models_root/vae_approx`, or None when either is missing."""
    folder = Path(models_root) / FOLDER
    found = []
    for part in ("encoder", "decoder"):
        path = next((folder / f"taesd_{part}{s}" for s in SUFFIXES if (folder / f"taesd_{part}{s}").is_file()), None)
        if path is None:
            return None
        found.append(path)
    return found[0], found[1]


def load_taesd(encoder_path: Path | str, decoder_path: Path | str, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> TinyVAE:
    """Both halves from their files (every key checked), on `device` in `dtype`."""
    halves = []
    for path, build, what in ((encoder_path, encoder, "encoder"), (decoder_path, decoder, "decoder")):
        state = load_checkpoint_file(Path(path))
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointError(f"{path} is not a TAESD {what} state dict (expected a flat mapping of tensors)")
        model = build()
        check_state_dict(model, state, str(path), f"TAESD {what}",
                         f"taesd_{what}.safetensors (or .pth) from madebyollin/taesd, as ComfyUI keeps it in "
                         f"models/{FOLDER}")
        model.load_state_dict(state)
        halves.append(model.to(device=device, dtype=dtype))
    return TinyVAE(*halves)
