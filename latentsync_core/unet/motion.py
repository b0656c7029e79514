"""Motion modules: temporal self-attention across the frames of each pixel (AnimateDiff "Vanilla" module).

The whole temporal transformer runs in a ``[B*H*W, F, C]`` token layout: its norms and feed-forward
act per token, so the layout is changed once on entry and once on exit instead of around every
attention block. Attribute names reproduce the official keys
(``temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe`` ...).
"""
from __future__ import annotations

import math

import torch
from diffusers.models.attention import FeedForward
from torch import nn

from ..errors import InputMismatchError
from .attention import Attention, feed_forward
from .config import MOTION_NORM_GROUPS
from .resnet import add_residual


class PositionalEncoding(nn.Module):
    """Sinusoidal frame-position table: the persistent buffer ``pe`` [1, max_len, C], loaded from the checkpoint."""

    def __init__(self, dim: int, max_len: int):
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_len, dim)
        pe[0, :, 0::2] = torch.sin(position * freq)
        pe[0, :, 1::2] = torch.cos(position * freq)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[1]
        if frames > self.pe.shape[1]:
            raise InputMismatchError(
                f"{frames} frames per window exceed the motion modules' {self.pe.shape[1]}-frame position table; "
                f"use windows of at most {self.pe.shape[1]} frames"
            )
        return x + self.pe[:, :frames]


class TemporalAttention(Attention):
    """Self-attention over frames, with the frame positions added to its input."""

    def __init__(self, dim: int, heads: int, head_dim: int, max_len: int | None):
        super().__init__(dim, heads, head_dim)
        self.pos_encoder = PositionalEncoding(dim, max_len) if max_len else None

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if self.pos_encoder is not None:
            x = self.pos_encoder(x)
        return super().forward(x)


class TemporalBlock(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int, n_attention: int, max_len: int | None):
        super().__init__()
        self.attention_blocks = nn.ModuleList([TemporalAttention(dim, heads, head_dim, max_len)
                                               for _ in range(n_attention)])
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(n_attention)])
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms):
            x = add_residual(attention(norm(x)), x)
        return add_residual(feed_forward(self.ff, self.ff_norm(x)), x)


class TemporalTransformer(nn.Module):
    def __init__(self, channels: int, heads: int, head_dim: int, n_blocks: int, n_attention: int,
                 max_len: int | None):
        super().__init__()
        inner = heads * head_dim
        self.norm = nn.GroupNorm(MOTION_NORM_GROUPS, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList([TemporalBlock(inner, heads, head_dim, n_attention, max_len)
                                                 for _ in range(n_blocks)])
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        n, c, h, w = x.shape
        batch = n // frames
        # [B*F, C, H, W] -> [B*H*W, F, C]: one sequence of frames per pixel.
        tokens = self.norm(x).view(batch, frames, c, h * w).permute(0, 3, 1, 2).reshape(batch * h * w, frames, c)
        tokens = self.proj_in(tokens)
        for block in self.transformer_blocks:
            tokens = block(tokens)
        tokens = self.proj_out(tokens).view(batch, h * w, frames, c)
        # Back to x's layout as a fresh dense tensor (with batch 1 the reshape alone can be an odd-strided view).
        if x.is_contiguous(memory_format=torch.channels_last):
            out = tokens.transpose(1, 2).reshape(n, h, w, c).permute(0, 3, 1, 2)
            out = out.contiguous(memory_format=torch.channels_last)
        else:
            out = tokens.permute(0, 2, 3, 1).reshape(n, c, h, w).contiguous()
        return add_residual(out, x)


class MotionModule(nn.Module):
    """The official VanillaTemporalModule: a residual temporal transformer (its only child gives the key prefix)."""

    def __init__(self, channels: int, kwargs: dict):
        super().__init__()
        heads = kwargs["num_attention_heads"]
        head_dim = channels // heads // kwargs["temporal_attention_dim_div"]
        max_len = kwargs["temporal_position_encoding_max_len"] if kwargs["temporal_position_encoding"] else None
        self.temporal_transformer = TemporalTransformer(
            channels, heads, head_dim, kwargs["num_transformer_block"], len(kwargs["attention_block_types"]), max_len
        )

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        return self.temporal_transformer(x, frames)
