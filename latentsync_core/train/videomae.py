"""VideoMAE-v2 ViT feature extractor for the TREPA loss, loading the official checkpoint
(``vit_g_hybrid_pt_1200e_ssv2_ft.pth``: ViT-g/14, 40 blocks, width 1408, 16 heads, tubelets of 2 frames).

Our own module with the checkpoint's parameter names, so the file loads with ``weights_only=True``
and no third-party code. What TREPA uses is ``forward_features``: tubelet embedding (Conv3d 2x14x14),
plus fixed sine-cosine position codes, pre-norm blocks (LayerNorm eps 1e-6, attention whose qkv
projection has q and v biases but no k bias, GELU MLP), then the mean over tokens and ``fc_norm``.
Width and depth are read from the file; heads are 88 channels wide (the ViT-g layout).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HEAD_DIM = 88
TUBELET, PATCH, IMAGE, FRAMES = 2, 14, 224, 16
EPS = 1e-6


def sinusoid_table(positions: int, dim: int) -> torch.Tensor:
    """``[1, positions, dim]``: sin on even channels, cos on odd, wavelengths 10000^(2i/dim)."""
    pos = np.arange(positions, dtype=np.float64)[:, None]
    rates = np.power(10000.0, 2 * (np.arange(dim) // 2) / dim)[None, :]
    table = pos / rates
    table[:, 0::2], table[:, 1::2] = np.sin(table[:, 0::2]), np.cos(table[:, 1::2])
    return torch.tensor(table, dtype=torch.float32)[None]


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        q, k, v = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=EPS), nn.LayerNorm(dim, eps=EPS)
        self.attn, self.mlp = _Attention(dim, heads), _Mlp(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Conv3d(3, dim, (TUBELET, PATCH, PATCH), stride=(TUBELET, PATCH, PATCH))


class VideoMAEFeatures(nn.Module):
    """``forward(video [B, 3, F, 224, 224] in [0, 1]) -> [B, width]`` (VideoMAE-v2 ``forward_features``)."""

    def __init__(self, dim: int = 1408, depth: int = 40, hidden: int = 6144, classes: int = 174):
        super().__init__()
        self.patch_embed = _PatchEmbed(dim)
        self.blocks = nn.ModuleList(_Block(dim, max(dim // HEAD_DIM, 1), hidden) for _ in range(depth))
        self.fc_norm = nn.LayerNorm(dim, eps=EPS)
        self.head = nn.Linear(dim, classes)  # the checkpoint's classifier, unused by TREPA
        grid = IMAGE // PATCH
        self.register_buffer("pos_embed", sinusoid_table(FRAMES // TUBELET * grid * grid, dim), persistent=False)

    def _positions(self, frames: int) -> torch.Tensor:
        steps = frames // TUBELET
        if steps == FRAMES // TUBELET:
            return self.pos_embed
        grid = IMAGE // PATCH
        dim = self.pos_embed.shape[-1]
        table = self.pos_embed.transpose(1, 2).reshape(1, dim, FRAMES // TUBELET, grid, grid)
        # as the official: a 0.1 nudge against float error in the scale factor
        table = F.interpolate(table, scale_factor=((steps + 0.1) / (FRAMES // TUBELET), 1, 1), mode="trilinear")
        return table.reshape(1, dim, -1).transpose(1, 2)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.shape[-2:] != (IMAGE, IMAGE):
            raise ValueError(f"VideoMAE takes 224 x 224 frames, got {tuple(video.shape[-2:])}")
        x = self.patch_embed.proj(video).flatten(2).transpose(1, 2)
        x = x + self._positions(video.shape[2]).to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.fc_norm(x.mean(1))


def load_videomae(path: Path | str, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> VideoMAEFeatures:
    """The official VideoMAE-v2 checkpoint (a state dict, possibly under ``model``/``module``), frozen."""
    from ..errors import LatentSyncError

    path = Path(path)
    if not path.is_file():
        raise LatentSyncError(f"TREPA: VideoMAE-v2 checkpoint {path} not found; download "
                              "vit_g_hybrid_pt_1200e_ssv2_ft.pth (the official TREPA model) and pass its path")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "module"):
        if isinstance(state, dict) and key in state:
            state = state[key]
            break
    try:
        dim = state["patch_embed.proj.weight"].shape[0]
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        hidden = state["blocks.0.mlp.fc1.weight"].shape[0]
        classes = state["head.weight"].shape[0]
    except (KeyError, ValueError, AttributeError) as exc:
        raise LatentSyncError(f"TREPA: {path} is not a VideoMAE-v2 ViT checkpoint (missing {exc}); expected "
                              "vit_g_hybrid_pt_1200e_ssv2_ft.pth") from exc
    model = VideoMAEFeatures(dim, depth, hidden, classes)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise LatentSyncError(f"TREPA: {path} does not match the VideoMAE-v2 layout (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def write_fixture(path: Path | str, dim: int = 176, depth: int = 2, seed: int = 0) -> Path:
    """A random-weight checkpoint with the official key names and layout (small width/depth) for tests."""
    from ..atomic import atomic_path

    torch.manual_seed(seed)
    model = VideoMAEFeatures(dim, depth, int(dim * 48 / 11), 174)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 1 / math.sqrt(p.shape[-1]) if p.ndim > 1 else 0.02)
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"module": model.state_dict()}, tmp)
    return path
