"""StableSyncNet: LatentSync's audio-visual sync discriminator (two convolutional encoders, unit embeddings).

Call contract (as the official model)::

    vision, audio = syncnet(frames [B, 3*F, H/2, W], mel [B, 1, 80, M])   # each [B, D], L2-normalised

`frames` are the lower halves of F consecutive RGB face crops in [-1, 1], stacked on the channel axis
frame by frame (f0.r, f0.g, f0.b, f1.r, ...); `mel` is the clip's normalised log-mel window (see mel.py).
The parameter names equal the official ones, so `stable_syncnet.pt` loads with every key matched.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import InputMismatchError

# Not recorded in the weights; every official SyncNet uses these.
NORM_GROUPS = 32
ATTENTION_HEADS = 8
FF_MULT = 4


def _factor_pair(factor: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(factor, (list, tuple)):
        return int(factor[0]), int(factor[1])
    return int(factor), int(factor)


def _downsample_padding(factor: tuple[int, int]) -> tuple[int, int, int, int]:
    """F.pad order (left, right, top, bottom): a strided axis gets one trailing zero, an unstrided one a
    zero on both sides so the 3x3 kernel keeps its size (the official layout; it decides output sizes)."""
    height, width = factor
    if height == 1:
        return (0, 1, 1, 1)
    if width == 1:
        return (1, 1, 0, 1)
    return (0, 1, 0, 1)


class ResnetDown(nn.Module):
    """Pre-activation residual block, then an optional strided 3x3 convolution."""

    def __init__(self, in_channels: int, out_channels: int, factor: int | Sequence[int], act: str = "silu",
                 dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(NORM_GROUPS, in_channels, eps=1e-6)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(NORM_GROUPS, out_channels, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.act = nn.ReLU() if act == "relu" else nn.SiLU()
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        pair = _factor_pair(factor)
        if pair == (1, 1):
            self.downsample_conv = None
            self.pad = None
        else:
            self.downsample_conv = nn.Conv2d(out_channels, out_channels, 3, stride=pair, padding=0)
            self.pad = _downsample_padding(pair)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = self.conv2(self.dropout(self.act(self.norm2(h))))
        h = h + (self.conv_shortcut(x) if self.conv_shortcut is not None else x)
        if self.downsample_conv is not None:
            h = self.downsample_conv(F.pad(h, self.pad))
        return h


class GEGLUFeedForward(nn.Module):
    """Linear to 2x the hidden width, gate one half with exact GELU of the other, project back.

    `net` keeps the official index layout (0: gated projection, 1: dropout, 2: output) for key names.
    """

    def __init__(self, dim: int, dropout: float = 0.0):
        super().__init__()
        hidden = dim * FF_MULT
        gate = nn.Module()
        gate.proj = nn.Linear(dim, hidden * 2)
        self.net = nn.ModuleList([gate, nn.Dropout(dropout), nn.Linear(hidden, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.net[0].proj(x).chunk(2, dim=-1)
        return self.net[2](self.net[1](value * F.gelu(gate)))


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int = ATTENTION_HEADS, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(dropout)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, tokens, self.heads, dim // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.to_q(x)), split(self.to_k(x)), split(self.to_v(x)))
        return self.to_out[1](self.to_out[0](out.transpose(1, 2).reshape(batch, tokens, dim)))


class AttentionBlock(nn.Module):
    """Spatial transformer layer (self-attention + GEGLU feed-forward) between two 1x1 convolutions."""

    def __init__(self, dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(NORM_GROUPS, dim, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = GEGLUFeedForward(dim, dropout)
        self.conv_in = nn.Conv2d(dim, dim, 1)
        self.conv_out = nn.Conv2d(dim, dim, 1)
        self.attn = SelfAttention(dim, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        h = self.conv_in(self.norm1(x)).flatten(2).transpose(1, 2)
        h = self.attn(self.norm2(h)) + h
        h = self.ff(self.norm3(h)) + h
        h = h.transpose(1, 2).reshape(batch, channels, height, width)
        return self.conv_out(h) + x


class Encoder(nn.Module):
    """conv_in, a stack of down blocks (each optionally followed by attention), GroupNorm + ReLU."""

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__()
        widths = list(cfg["block_out_channels"])
        factors = list(cfg["downsample_factors"])
        attn = list(cfg.get("attn_blocks") or [0] * len(widths))
        dropout = float(cfg.get("dropout", 0.0))
        self.conv_in = nn.Conv2d(int(cfg["in_channels"]), widths[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        previous = widths[0]
        for width, factor, has_attn in zip(widths, factors, attn):
            self.down_blocks.append(ResnetDown(previous, width, factor, dropout=dropout))
            if has_attn:
                self.down_blocks.append(AttentionBlock(width, dropout))
            previous = width
        self.norm_out = nn.GroupNorm(NORM_GROUPS, widths[-1], eps=1e-6)
        self.act_out = nn.ReLU()
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.finish(self.conv_in(x), 0)

    def features(self, x: torch.Tensor, num_blocks: int) -> torch.Tensor:
        """Activations after conv_in and the first `num_blocks` entries of `down_blocks`.

        With `finish`, lets a fine-tune cache the output of a frozen prefix once and train only the rest.
        """
        h = self.conv_in(x)
        for block in self.down_blocks[:num_blocks]:
            h = block(h)
        return h

    def finish(self, h: torch.Tensor, first_block: int) -> torch.Tensor:
        """Run `down_blocks[first_block:]` and the output norm on activations from `features`."""
        for block in self.down_blocks[first_block:]:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                h = checkpoint(block, h, use_reentrant=False)
            else:
                h = block(h)
        return self.act_out(self.norm_out(h))


class StableSyncNet(nn.Module):
    def __init__(self, config: Mapping[str, Any]):
        super().__init__()
        self.config = {"audio_encoder": dict(config["audio_encoder"]),
                       "visual_encoder": dict(config["visual_encoder"])}
        self.audio_encoder = Encoder(self.config["audio_encoder"])
        self.visual_encoder = Encoder(self.config["visual_encoder"])
        self.eval()

    @property
    def dtype(self) -> torch.dtype:
        return self.visual_encoder.conv_in.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.visual_encoder.conv_in.weight.device

    @property
    def frame_channels(self) -> int:
        return int(self.config["visual_encoder"]["in_channels"])

    def enable_gradient_checkpointing(self, enabled: bool = True) -> None:
        self.audio_encoder.gradient_checkpointing = bool(enabled)
        self.visual_encoder.gradient_checkpointing = bool(enabled)

    def embed_frames(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() != 4 or frames.shape[1] != self.frame_channels:
            raise InputMismatchError(
                f"SyncNet frames must be [batch, {self.frame_channels}, height/2, width] (lower halves of "
                f"{self.frame_channels // 3} RGB frames stacked on channels); got {list(frames.shape)}")
        return F.normalize(self.visual_encoder(frames.to(self.dtype)).flatten(1), p=2, dim=1)

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() != 4 or mel.shape[1] != 1:
            raise InputMismatchError(f"SyncNet mel must be [batch, 1, 80, mel frames]; got {list(mel.shape)}")
        return F.normalize(self.audio_encoder(mel.to(self.dtype)).flatten(1), p=2, dim=1)

    def forward(self, frames: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vision, audio = self.embed_frames(frames), self.embed_audio(mel)
        if vision.shape[1] != audio.shape[1]:
            raise InputMismatchError(
                f"vision embedding has {vision.shape[1]} values but audio {audio.shape[1]}: the encoders did not "
                f"reduce frames {list(frames.shape[-2:])} and mel {list(mel.shape[-2:])} to the same size; use the "
                "input sizes this SyncNet was trained on (256 px faces -> [128, 256] halves, 52 mel frames)")
        return vision, audio
