"""Residual block and the 2x down/up-sampling convolutions, on ``[B*F, C, H, W]`` activations.

Convolutions run per frame, but the official model applies its resnet GroupNorms (and the output norm)
to the whole ``[B, C, F, H, W]`` clip, so their statistics span all frames of a window; `clip_group_norm`
reproduces that without leaving the frame-folded layout.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def silu(x: torch.Tensor) -> torch.Tensor:
    # In place when no graph is recorded: saves one full-size temporary per call at inference.
    return F.silu(x, inplace=not torch.is_grad_enabled())


def add_residual(fresh: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """`fresh + other`, written into `fresh` when no graph is recorded (`fresh` must be a new tensor nobody else holds).

    Full-size activations are tens of MB; a new one per residual costs page faults, not just bandwidth.
    """
    return fresh.add_(other) if not torch.is_grad_enabled() else fresh + other


def clip_group_norm(norm: nn.GroupNorm, x: torch.Tensor, frames: int) -> torch.Tensor:
    """GroupNorm whose statistics cover every frame of each clip; `x` is [B*F, C, H, W] with a clip's frames adjacent.

    Per-frame statistics come from the native kernel; the clip's mean and variance follow exactly from
    them (equal counts per frame), and a per-(frame, channel) affine map turns the per-frame result into
    the clip-normalised one. This avoids the two transposed copies a plain group_norm on [B, C, F*H*W] needs.
    """
    if frames == 1:
        return F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)
    n, c, h, w = x.shape
    groups, eps = norm.num_groups, norm.eps
    channels_last_ok = x.device.type == "cpu" and x.is_contiguous(memory_format=torch.channels_last)
    if not (x.is_contiguous() or channels_last_ok):
        x = x.contiguous()  # the native kernel takes dense NCHW (and, on CPU, dense NHWC)
    y, mean, rstd = torch.ops.aten.native_group_norm(x, None, None, n, c, h * w, groups, eps)
    stats_dtype = torch.promote_types(x.dtype, torch.float32)
    mean = mean.to(stats_dtype).view(n // frames, frames, groups)
    rstd = rstd.to(stats_dtype).view(n // frames, frames, groups)
    clip_mean = mean.mean(1, keepdim=True)
    # Law of total variance, in the form without cancellation between E[x^2] and mean^2.
    frame_var = (rstd.pow(-2) - eps).clamp_min(0)
    clip_var = frame_var.mean(1, keepdim=True) + (mean - clip_mean).square().mean(1, keepdim=True)
    clip_rstd = (clip_var + eps).rsqrt()
    gamma = norm.weight.to(stats_dtype).view(1, 1, groups, -1)
    scale = ((clip_rstd / rstd)[..., None] * gamma).reshape(n, c, 1, 1).to(x.dtype)
    shift = (((mean - clip_mean) * clip_rstd)[..., None] * gamma
             + norm.bias.to(stats_dtype).view(1, 1, groups, -1)).reshape(n, c, 1, 1).to(x.dtype)
    if torch.is_grad_enabled():
        return torch.addcmul(shift, y, scale)
    return torch.addcmul(shift, y, scale, out=y)


class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-conv, + projected time embedding, GroupNorm-SiLU-conv, residual (1x1 conv if widths differ)."""

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, groups: int, eps: float,
                 output_scale_factor: float = 1.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        self.output_scale_factor = output_scale_factor

    def forward(self, x: torch.Tensor, temb_act: torch.Tensor) -> torch.Tensor:
        """`temb_act`: SiLU of the time embedding, [B, T]; the batch of `x` is B*F (frames of one sample adjacent)."""
        batch = temb_act.shape[0]
        frames = x.shape[0] // batch
        h = self.conv1(silu(clip_group_norm(self.norm1, x, frames)))
        t = self.time_emb_proj(temb_act)
        n, c, height, width = h.shape
        h = add_residual(h.view(batch, frames, c, height, width), t[:, None, :, None, None]).view(n, c, height, width)
        h = self.conv2(silu(clip_group_norm(self.norm2, h, frames)))
        out = add_residual(h, x if self.conv_shortcut is None else self.conv_shortcut(x))
        if self.output_scale_factor != 1.0:
            out = out / self.output_scale_factor
        return out


class Downsample(nn.Module):
    def __init__(self, channels: int, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:  # odd latent sizes: match the skip connection exactly
            x = F.interpolate(x, size=size, mode="nearest")
        return self.conv(x)
