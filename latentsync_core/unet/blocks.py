"""Encoder, middle and decoder stages. A "layer" is resnet -> spatial transformer (if any) -> motion module (if any)."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import SpatialTransformer
from .motion import MotionModule
from .resnet import Downsample, ResnetBlock, Upsample


class _Stage(nn.Module):
    """Shared by all stages: `resnets`, optional `attentions`, optional `motion_modules`, checkpointing switch."""

    resnets: nn.ModuleList

    def _init_layers(self, resnets: list[nn.Module], channels: int, cross: bool, motion: bool,
                     cfg: Mapping[str, Any], heads: int, n_layers: int) -> None:
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList([
            SpatialTransformer(channels, heads, cfg["norm_num_groups"], cfg["cross_attention_dim"],
                               cfg["add_audio_layer"], cfg["use_linear_projection"])
            for _ in range(n_layers)
        ]) if cross else None
        self.motion_modules = nn.ModuleList([
            MotionModule(channels, cfg["motion_module_kwargs"]) for _ in range(n_layers)
        ]) if motion else None
        self.gradient_checkpointing = False

    def _layer(self, i: int, h: torch.Tensor, temb: torch.Tensor, audio: torch.Tensor | None,
               frames: int) -> torch.Tensor:
        h = self.resnets[i](h, temb)
        if self.attentions is not None:
            h = self.attentions[i](h, audio)
        if self.motion_modules is not None:
            h = self.motion_modules[i](h, frames)
        return h

    def _run_layer(self, i: int, h: torch.Tensor, temb: torch.Tensor, audio: torch.Tensor | None,
                   frames: int) -> torch.Tensor:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(self._layer, i, h, temb, audio, frames, use_reentrant=False)
        return self._layer(i, h, temb, audio, frames)


def _resnet(cfg: Mapping[str, Any], in_ch: int, out_ch: int, temb_ch: int, scale: float = 1.0) -> ResnetBlock:
    return ResnetBlock(in_ch, out_ch, temb_ch, cfg["norm_num_groups"], cfg["norm_eps"], scale)


class DownBlock(_Stage):
    def __init__(self, cfg: Mapping[str, Any], in_ch: int, out_ch: int, temb_ch: int, heads: int, cross: bool,
                 motion: bool, add_downsample: bool):
        super().__init__()
        n = cfg["layers_per_block"]
        resnets = [_resnet(cfg, in_ch if i == 0 else out_ch, out_ch, temb_ch) for i in range(n)]
        self._init_layers(resnets, out_ch, cross, motion, cfg, heads, n)
        self.downsamplers = (nn.ModuleList([Downsample(out_ch, cfg["downsample_padding"])])
                             if add_downsample else None)

    def forward(self, h: torch.Tensor, temb: torch.Tensor, audio: torch.Tensor | None,
                frames: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for i in range(len(self.resnets)):
            h = self._run_layer(i, h, temb, audio, frames)
            skips.append(h)
        if self.downsamplers is not None:
            h = self.downsamplers[0](h)
            skips.append(h)
        return h, skips


class MidBlock(_Stage):
    """resnet, then (spatial transformer, motion module if any, resnet)."""

    def __init__(self, cfg: Mapping[str, Any], channels: int, temb_ch: int, heads: int, motion: bool):
        super().__init__()
        scale = cfg["mid_block_scale_factor"]
        resnets = [_resnet(cfg, channels, channels, temb_ch, scale) for _ in range(2)]
        self._init_layers(resnets, channels, True, motion, cfg, heads, 1)

    def _layer(self, i: int, h: torch.Tensor, temb: torch.Tensor, audio: torch.Tensor | None,
               frames: int) -> torch.Tensor:
        h = self.attentions[i](h, audio)
        if self.motion_modules is not None:
            h = self.motion_modules[i](h, frames)
        return self.resnets[i + 1](h, temb)

    def forward(self, h: torch.Tensor, temb: torch.Tensor, audio: torch.Tensor | None, frames: int) -> torch.Tensor:
        h = self.resnets[0](h, temb)
        for i in range(len(self.attentions)):
            h = self._run_layer(i, h, temb, audio, frames)
        return h


class UpBlock(_Stage):
    def __init__(self, cfg: Mapping[str, Any], in_ch: int, prev_ch: int, out_ch: int, temb_ch: int, heads: int,
                 cross: bool, motion: bool, add_upsample: bool):
        super().__init__()
        n = cfg["layers_per_block"] + 1
        resnets = []
        for i in range(n):
            skip_ch = in_ch if i == n - 1 else out_ch
            resnets.append(_resnet(cfg, (prev_ch if i == 0 else out_ch) + skip_ch, out_ch, temb_ch))
        self._init_layers(resnets, out_ch, cross, motion, cfg, heads, n)
        self.upsamplers = nn.ModuleList([Upsample(out_ch)]) if add_upsample else None

    def forward(self, h: torch.Tensor, skips: list[torch.Tensor], temb: torch.Tensor, audio: torch.Tensor | None,
                frames: int, upsample_size: tuple[int, int] | None = None,
                capture: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Consume this block's skips from the end of `skips`.

        With `capture`, also return the input of the last layer (what DeepCache reuses).
        """
        captured = None
        last = len(self.resnets) - 1
        for i in range(last + 1):
            if capture and i == last:
                captured = h
            h = self._run_layer(i, torch.cat([h, skips.pop()], dim=1), temb, audio, frames)
        return self._upsample(h, upsample_size), captured

    def forward_last_layer(self, deep: torch.Tensor, skip: torch.Tensor, temb: torch.Tensor,
                           audio: torch.Tensor | None, frames: int,
                           upsample_size: tuple[int, int] | None = None) -> torch.Tensor:
        """Only the last layer, fed with cached deep features: the shallow path of DeepCache."""
        h = self._run_layer(len(self.resnets) - 1, torch.cat([deep, skip], dim=1), temb, audio, frames)
        return self._upsample(h, upsample_size)

    def _upsample(self, h: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
        return h if self.upsamplers is None else self.upsamplers[0](h, size)
