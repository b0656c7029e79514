"""The LatentSync 3-D U-Net: an SD-1.5-shaped U-Net run per frame, audio cross-attention, temporal motion modules.

Call contract (used by the sampler, the trainer and outside checks)::

    unet(sample [B, in_channels, F, H, W], timestep (int | 0-dim | [B] tensor),
         audio_embeds ([B*F, L, C] | [B, F, L, C] | None)) -> noise prediction [B, out_channels, F, H, W]

Internally frames are folded into the batch ([B*F, C, H, W]) once at the input and unfolded once at
the output, so the 2-D convolutions never see a permuted tensor. Note the official model's quirk kept
here: resnet and output GroupNorms take statistics over the whole clip (all frames of the window),
the transformer and motion-module norms over each frame.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from ..errors import InputMismatchError
from .blocks import DownBlock, MidBlock, UpBlock
from .config import CROSS_DOWN, CROSS_UP, motion_flags, normalize_config
from .deepcache import DeepCacheState
from .resnet import clip_group_norm, silu

log = logging.getLogger("latentsync")


class LatentSyncUNet(nn.Module):
    def __init__(self, config: Mapping[str, Any] | None = None):
        super().__init__()
        cfg = normalize_config(config)
        self.config = cfg
        channels = cfg["block_out_channels"]
        heads = cfg["attention_head_dim"]
        n = len(channels)
        temb_ch = channels[0] * 4
        down_mm, mid_mm, up_mm = motion_flags(cfg)

        self.conv_in = nn.Conv2d(cfg["in_channels"], channels[0], 3, padding=1)
        self.time_proj = Timesteps(channels[0], cfg["flip_sin_to_cos"], cfg["freq_shift"])
        self.time_embedding = TimestepEmbedding(channels[0], temb_ch)

        self.down_blocks = nn.ModuleList()
        out_ch = channels[0]
        for i in range(n):
            in_ch, out_ch = out_ch, channels[i]
            self.down_blocks.append(DownBlock(cfg, in_ch, out_ch, temb_ch, heads[i],
                                              cfg["down_block_types"][i] == CROSS_DOWN, down_mm[i],
                                              add_downsample=i < n - 1))
        self.mid_block = MidBlock(cfg, channels[-1], temb_ch, heads[-1], mid_mm)

        self.up_blocks = nn.ModuleList()
        rev_channels, rev_heads = channels[::-1], heads[::-1]
        out_ch = rev_channels[0]
        for i in range(n):
            prev_ch, out_ch = out_ch, rev_channels[i]
            in_ch = rev_channels[min(i + 1, n - 1)]
            self.up_blocks.append(UpBlock(cfg, in_ch, prev_ch, out_ch, temb_ch, rev_heads[i],
                                          cfg["up_block_types"][i] == CROSS_UP, up_mm[i],
                                          add_upsample=i < n - 1))

        self.conv_norm_out = nn.GroupNorm(cfg["norm_num_groups"], channels[0], eps=cfg["norm_eps"])
        self.conv_out = nn.Conv2d(channels[0], cfg["out_channels"], 3, padding=1)
        self.max_frames = (cfg["motion_module_kwargs"]["temporal_position_encoding_max_len"]
                           if cfg["use_motion_module"] and cfg["motion_module_kwargs"]["temporal_position_encoding"]
                           else None)
        self.trained_resolution: int | None = None  # set by the loader when it can tell (see loader.py)
        self.checkpoint_global_step: int | None = None  # the training step stored in the loaded file, if any
        self.memory_format = torch.contiguous_format

    # ------------------------------------------------------------------ properties and switches
    @property
    def dtype(self) -> torch.dtype:
        return self.conv_in.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.conv_in.weight.device

    @property
    def add_audio_layer(self) -> bool:
        return bool(self.config["add_audio_layer"])

    def enable_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each layer's activations in the backward pass (trainer memory saver); no effect without grad."""
        for block in [*self.down_blocks, self.mid_block, *self.up_blocks]:
            block.gradient_checkpointing = bool(enabled)

    set_gradient_checkpointing = enable_gradient_checkpointing

    def disable_gradient_checkpointing(self) -> None:
        self.enable_gradient_checkpointing(False)

    @property
    def gradient_checkpointing(self) -> bool:
        return bool(self.mid_block.gradient_checkpointing)

    def set_memory_format(self, memory_format: torch.memory_format) -> "LatentSyncUNet":
        """Run activations (and keep conv weights) NCHW (`torch.contiguous_format`) or NHWC (`torch.channels_last`)."""
        self.to(memory_format=memory_format)
        self.memory_format = memory_format
        return self

    def check_resolution(self, pixels: int) -> bool:
        """Log (and return False) when running at a resolution other than the one the weights were trained at.

        LatentSync 1.5 was trained at 256 px and 1.6 at 512 px; either runs at the other size, usually worse.
        """
        trained = self.trained_resolution
        if trained is None or trained == pixels:
            return True
        version = {256: "LatentSync 1.5", 512: "LatentSync 1.6"}.get(trained, "this U-Net")
        log.warning("%s was trained at %d px; running it at %d px is allowed but lip-sync quality may drop "
                    "(use the %d px checkpoint for this size)", version, trained, pixels, pixels)
        return False

    # ------------------------------------------------------------------ forward
    def forward(self, sample: torch.Tensor, timestep: int | float | torch.Tensor,
                audio_embeds: torch.Tensor | None = None, deep_cache: DeepCacheState | None = None,
                deep_cache_refresh: bool = True) -> torch.Tensor:
        """Noise prediction [B, out_channels, F, H, W].

        `deep_cache`: None runs the full network. With a DeepCacheState, `deep_cache_refresh=True` runs the
        full network and stores the deep features the shallow path needs; `False` runs only the shallow
        path (conv_in, time embedding, the last decoder layer fed with the cached features, conv_out).
        """
        batch, frames, height, width = self._check_sample(sample)
        x = sample.to(self.dtype).transpose(1, 2).reshape(batch * frames, sample.shape[1], height, width)
        x = x.contiguous(memory_format=self.memory_format)
        temb_act = silu(self._time_embedding(timestep, batch, sample.device))
        audio = self._audio(audio_embeds, batch, frames)

        h = self.conv_in(x)
        if deep_cache is not None and not deep_cache_refresh:
            deep = deep_cache.take(batch, frames, h)
            h = self.up_blocks[-1].forward_last_layer(deep, h, temb_act, audio, frames)
        else:
            h = self._full(h, temb_act, audio, frames, deep_cache)
        h = self.conv_out(silu(clip_group_norm(self.conv_norm_out, h, frames)))
        return h.view(batch, frames, *h.shape[1:]).transpose(1, 2).contiguous()

    def _full(self, h: torch.Tensor, temb_act: torch.Tensor, audio: torch.Tensor | None, frames: int,
              deep_cache: DeepCacheState | None) -> torch.Tensor:
        skips = [h]
        for block in self.down_blocks:
            h, block_skips = block(h, temb_act, audio, frames)
            skips.extend(block_skips)
        h = self.mid_block(h, temb_act, audio, frames)
        last = len(self.up_blocks) - 1
        for i, block in enumerate(self.up_blocks):
            # Upsample to the next skip's size so latents whose side is not a multiple of 2**depth still work.
            size = None
            if i < last:
                next_skip = skips[-len(block.resnets) - 1]
                if next_skip.shape[-2:] != (h.shape[-2] * 2, h.shape[-1] * 2):
                    size = tuple(next_skip.shape[-2:])
            h, captured = block(h, skips, temb_act, audio, frames, size, capture=(i == last and deep_cache is not None))
        if deep_cache is not None:
            deep_cache.store(captured, frames)
        return h

    # ------------------------------------------------------------------ input handling
    def _check_sample(self, sample: torch.Tensor) -> tuple[int, int, int, int]:
        expected = self.config["in_channels"]
        if sample.dim() != 5 or sample.shape[1] != expected:
            raise InputMismatchError(
                f"U-Net input must be [batch, {expected}, frames, height, width] (noisy latents, mask, masked "
                f"and reference latents); got {list(sample.shape)}"
            )
        batch, _, frames, height, width = sample.shape
        if self.max_frames is not None and frames > self.max_frames:
            raise InputMismatchError(f"{frames} frames exceed this U-Net's {self.max_frames}-frame motion window")
        return batch, frames, height, width

    def _time_embedding(self, timestep: int | float | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
        t = torch.as_tensor(timestep, device=device)
        if t.dim() == 0 or t.numel() == 1:
            t = t.reshape(1).expand(batch)
        elif t.shape != (batch,):
            raise InputMismatchError(f"timestep must be a scalar or have shape [{batch}]; got {list(t.shape)}")
        # The sinusoidal features are computed in float32 and only then cast, as the official model does.
        return self.time_embedding(self.time_proj(t).to(self.dtype))

    def _audio(self, audio_embeds: torch.Tensor | None, batch: int, frames: int) -> torch.Tensor | None:
        if audio_embeds is None:
            return None
        if audio_embeds.dim() == 4:
            if tuple(audio_embeds.shape[:2]) != (batch, frames):
                raise InputMismatchError(f"audio_embeds [B, F, L, C] must start with [{batch}, {frames}]; "
                                         f"got {list(audio_embeds.shape)}")
            audio_embeds = audio_embeds.flatten(0, 1)
        if audio_embeds.dim() != 3 or audio_embeds.shape[0] != batch * frames:
            raise InputMismatchError(f"audio_embeds must be [{batch * frames}, L, C] or [{batch}, {frames}, L, C] "
                                     f"(one embedding sequence per frame); got {list(audio_embeds.shape)}")
        width = self.config["cross_attention_dim"]
        if self.add_audio_layer and audio_embeds.shape[-1] != width:
            raise InputMismatchError(
                f"audio_embeds have width {audio_embeds.shape[-1]} but this U-Net expects {width} "
                f"({'Whisper tiny' if width == 384 else 'Whisper small' if width == 768 else 'its audio encoder'})"
            )
        return audio_embeds.to(self.dtype)

