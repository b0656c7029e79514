"""Image resampling shared by align and restore: frame patches, affine sampling grids, Lanczos resize."""
from __future__ import annotations

import functools
import math

import numpy as np
import torch



@functools.lru_cache(maxsize=32)
def lanczos_matrix(size_in: int, size_out: int) -> np.ndarray:
    """``[size_out, size_in]`` weights of OpenCV's INTER_LANCZOS4 resize along one axis.

    Same sampling as ``cv2.resize``: output pixel ``i`` reads source position ``(i + 0.5) * in / out - 0.5``
    with an 8-tap Lanczos (a = 4) kernel, normalised to sum 1, taps past the edges clamped to the edge
    pixel, no widening when shrinking. Written as a matrix so a batch resizes with two matmuls.
    """
    scale = size_in / size_out
    weights = np.zeros((size_out, size_in), dtype=np.float64)
    for i in range(size_out):
        position = (i + 0.5) * scale - 0.5
        start = math.floor(position)
        frac = position - start
        taps = np.arange(-3, 5)
        t = frac - taps  # distance from each tap to the sample position
        with np.errstate(divide="ignore", invalid="ignore"):
            kernel = np.where(np.abs(t) < 1e-6, 1.0,
                              4 * np.sin(np.pi * t) * np.sin(np.pi * t / 4) / (np.pi * np.pi * t * t))
        kernel /= kernel.sum()
        for tap, weight in zip(np.clip(start + taps, 0, size_in - 1), kernel):
            weights[i, tap] += weight
    return weights.astype(np.float32)


def lanczos_resize(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize float ``[..., h, w]`` images to ``[..., height, width]`` like cv2 INTER_LANCZOS4 (unclipped)."""
    rows = torch.from_numpy(lanczos_matrix(images.shape[-2], height)).to(images.device, images.dtype)
    cols = torch.from_numpy(lanczos_matrix(images.shape[-1], width)).to(images.device, images.dtype)
    return rows @ images @ cols.T


def pixel_grid(matrices: np.ndarray, height: int, width: int, source_hw: tuple[int, int],
               device: torch.device) -> torch.Tensor:
    """``grid_sample`` grid (align_corners=True) for outputs ``[height, width]`` whose pixel ``(x, y)``
    reads source pixel ``matrices[i] @ (x, y, 1)``; ``source_hw`` is the sampled image's size."""
    src_h, src_w = source_hw
    # Fold the pixel -> [-1, 1] normalisation into the matrix in float64, so float32 only ever holds
    # small normalised numbers (precise even for 4K frames).
    to_unit = np.array([[2.0 / max(src_w - 1, 1), 0.0, -1.0], [0.0, 2.0 / max(src_h - 1, 1), -1.0]])
    full = np.concatenate([matrices, np.broadcast_to([0.0, 0.0, 1.0], (len(matrices), 1, 3))], axis=1)
    unit = np.einsum("ij,njk->nik", to_unit, full)
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float64),
                            torch.arange(width, device=device, dtype=torch.float64), indexing="ij")
    base = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1)  # [h, w, 3]
    theta = torch.from_numpy(unit).to(device)  # [n, 2, 3]
    return torch.einsum("hwk,nik->nhwi", base, theta).to(torch.float32)


def source_patches(frames: np.ndarray, matrices: np.ndarray, out_hw: tuple[int, int], fill: int,
                   margin: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Cut from each frame the region that an output of size ``out_hw`` sampling it through ``matrices``
    (output pixel -> frame pixel) reads, plus ``margin`` pixels; all patches share one size.

    Returns ``(patches uint8 [n, ph, pw, 3], origins [n, 2] (x0, y0) in frame pixels)``. Patch pixels
    outside the frame hold ``fill``, which is what a bilinear warp that fills the outside with ``fill``
    reads there, so sampling the patch equals sampling the frame.
    """
    out_h, out_w = out_hw
    corners = np.array([[0, 0, 1], [out_w - 1, 0, 1], [0, out_h - 1, 1], [out_w - 1, out_h - 1, 1]], float)
    mapped = np.einsum("nij,kj->nki", matrices, corners)  # [n, 4, 2]
    low = np.floor(mapped.min(axis=1)).astype(np.int64) - margin
    high = np.ceil(mapped.max(axis=1)).astype(np.int64) + margin + 1
    frame_h, frame_w = frames.shape[1:3]
    # A crop that maps far outside the frame (a detection glitch) reads only fill; cap its patch.
    low = np.clip(low, [-out_w * 8 - 8, -out_h * 8 - 8], [frame_w + 8, frame_h + 8])
    high = np.clip(high, low + 2, low + max(frame_w, frame_h) * 4 + 16)
    size = (high - low).max(axis=0)
    patches = np.full((len(frames), int(size[1]), int(size[0]), 3), fill, dtype=np.uint8)
    for i, frame in enumerate(frames):
        x0, y0 = low[i]
        fx0, fy0 = max(x0, 0), max(y0, 0)
        fx1, fy1 = min(x0 + size[0], frame_w), min(y0 + size[1], frame_h)
        if fx1 > fx0 and fy1 > fy0:
            patches[i, fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0] = frame[fy0:fy1, fx0:fx1]
    return patches, low

