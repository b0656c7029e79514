"""Per-frame spatial transformer: self-attention over each frame's pixels, cross-attention to that frame's audio.

Activations travel through the U-Net as ``[B*F, C, H, W]`` (frames folded into the batch), so every
2-D op runs on a plain 4-D tensor and only the token layout changes here. Attribute names reproduce
the official state-dict keys (``norm``, ``proj_in``, ``transformer_blocks.0.attn1.to_q`` ...).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from torch import nn

from .resnet import add_residual

# The feed-forward runs on token chunks whose widest temporary (the GEGLU projection, 8x the width) stays
# near this size: full-size activations would otherwise need multi-GB temporaries at 512 px, and on CPU
# cache-sized, reused buffers are also faster than fresh ones. Results are identical (rows are independent).
FF_CHUNK_BYTES = 8 << 20


class Attention(nn.Module):
    """Multi-head attention (q/k/v without bias, output projection with bias) via SDPA."""

    def __init__(self, query_dim: int, heads: int, head_dim: int, context_dim: int | None = None):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=False)
        # A list so the projection's key is `to_out.0.*` as in the official model (index 1 was a no-op dropout).
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim)])

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        n, s, _ = x.shape
        q = self.to_q(x).view(n, s, self.heads, -1).transpose(1, 2)
        k = self.to_k(context).view(n, context.shape[1], self.heads, -1).transpose(1, 2)
        v = self.to_v(context).view(n, context.shape[1], self.heads, -1).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out[0](out.transpose(1, 2).reshape(n, s, -1))


def feed_forward(ff: FeedForward, x: torch.Tensor) -> torch.Tensor:
    """diffusers' GEGLU FeedForward (net.0.proj, GELU gate, net.2), in token chunks, one fewer temporary per chunk."""
    proj, out_proj = ff.net[0].proj, ff.net[2]
    flat = x.reshape(-1, x.shape[-1])
    # Training keeps one piece: autograd would hold every chunk's temporaries anyway.
    step = max(256, FF_CHUNK_BYTES // (proj.out_features * x.element_size()))
    if torch.is_grad_enabled():
        step = flat.shape[0]
    outputs = []
    for start in range(0, flat.shape[0], step):
        value, gate = proj(flat[start:start + step]).chunk(2, dim=-1)
        hidden = value * F.gelu(gate) if torch.is_grad_enabled() else F.gelu(gate).mul_(value)
        outputs.append(out_proj(hidden))
    out = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
    return out.view(*x.shape[:-1], -1)


class TransformerBlock(nn.Module):
    """Pre-norm self-attention, audio cross-attention (when the model has it), GEGLU feed-forward."""

    def __init__(self, dim: int, heads: int, context_dim: int | None, audio: bool):
        super().__init__()
        head_dim = dim // heads
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, head_dim)
        if audio:
            self.norm2 = nn.LayerNorm(dim)
            self.attn2 = Attention(dim, heads, head_dim, context_dim)
        else:
            self.attn2 = None
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, audio: torch.Tensor | None) -> torch.Tensor:
        x = add_residual(self.attn1(self.norm1(x)), x)
        if self.attn2 is not None and audio is not None:
            x = add_residual(self.attn2(self.norm2(x), audio), x)
        return add_residual(feed_forward(self.ff, self.norm3(x)), x)


class SpatialTransformer(nn.Module):
    """GroupNorm, 1x1 projection in, transformer block(s) over H*W tokens of each frame, projection out, residual."""

    def __init__(self, channels: int, heads: int, groups: int, context_dim: int | None, audio: bool,
                 linear_projection: bool = False):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.linear_projection = linear_projection
        if linear_projection:
            self.proj_in = nn.Linear(channels, channels)
            self.proj_out = nn.Linear(channels, channels)
        else:
            self.proj_in = nn.Conv2d(channels, channels, 1)
            self.proj_out = nn.Conv2d(channels, channels, 1)
        self.transformer_blocks = nn.ModuleList([TransformerBlock(channels, heads, context_dim, audio)])

    def forward(self, x: torch.Tensor, audio: torch.Tensor | None) -> torch.Tensor:
        # Modules are always called (never their weights directly) so forward hooks, e.g. LoRA adapters, apply.
        n, c, h, w = x.shape
        hidden = self.norm(x)
        if self.linear_projection:
            tokens = self.proj_in(hidden.permute(0, 2, 3, 1).reshape(n, h * w, c))
        else:  # free in channels-last mode; one copy (as in the official model) in NCHW mode
            tokens = self.proj_in(hidden).permute(0, 2, 3, 1).reshape(n, h * w, c)
        for block in self.transformer_blocks:
            tokens = block(tokens, audio)
        if self.linear_projection:
            out = self.proj_out(tokens).view(n, h, w, c).permute(0, 3, 1, 2)
        else:
            out = self.proj_out(tokens.view(n, h, w, c).permute(0, 3, 1, 2))
        if x.is_contiguous(memory_format=torch.channels_last):
            return add_residual(out, x)
        return x + out  # takes x's (NCHW) layout
