"""Batched paste-back of generated faces into their frames, computed on the face's region only.

Per frame this is the official ``AlignRestore.restore_img`` (after the pipeline's bicubic resize of
the R x R face to the crop box):

1. the face (``[-1, 1]``) is warped into the frame with the inverse affine, bilinear, outside = 127,
   then mapped to 0..255 (clamped);
2. the blend mask is the all-ones crop box warped the same way (bilinear, outside = 0), eroded by a
   2x2 window (rows/cols ``y-1..y``, ``x-1..x``);
3. ``w_edge = floor(sqrt(mask area)) // 20``; the mask is eroded again by a ``2*w_edge`` square
   (offsets ``-w_edge .. w_edge-1``; an empty kernel means 3x3, as cv2.erode has it) and blurred by a
   Gaussian of size ``k = 2*w_edge + 1``, ``sigma = 0.3 * ((k - 1) / 2 - 1) + 0.8`` (reflect border);
4. ``out = soft * (mask * face) + (1 - soft) * frame``.

Erosion ignores pixels outside the frame (they never erode), as both cv2.erode and kornia's geodesic
border do. Everything outside the support of the soft mask is the original frame, so only a region
around the warped crop box is computed, with a margin that covers the blur; frames of one batch share
the region size so they go through the same kernels together. ``region="full"`` runs the same code on
whole frames (the reference the region path is tested against). The result is rounded to uint8 (the
official truncates), so pixels the face does not touch come back bit-identical.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .. import host
from ..errors import FaceError
from .frames import as_rgb_uint8
from .geometry import crop_size, invert_affines, valid_affines
from .resample import pixel_grid

FILL_VALUE = 127.0  # the official fill, in the face's [-1, 1] units
FILL_255 = (FILL_VALUE / 2 + 0.5) * 255
RESTORE_CHUNK = 8


def _box_coverage(unit: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear weight of the in-range pixels at a sample position given in grid units ([-1, 1] spans
    pixels 0 .. size-1): the all-ones crop box warped with zeros outside, one axis at a time."""
    half = (size - 1) / 2
    coord = unit * half + half
    return torch.minimum(coord + 1.0, size - coord).clamp_(0.0, 1.0)


def _erode(mask: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """Minimum over offsets ``-before .. after`` along both axes; outside the image never erodes."""
    if before == 0 and after == 0:
        return mask
    size = before + after + 1
    if mask.device.type == "cpu":
        # cv2's separable SIMD min filter is ~50x faster than torch's max_pool2d on CPU; same result.
        kernel = np.ones((size, size), np.uint8)
        return torch.from_numpy(np.stack([
            cv2.erode(m[0].numpy(), kernel, anchor=(before, before), borderType=cv2.BORDER_CONSTANT,
                      borderValue=float("inf"))[None] for m in mask]))
    # max_pool2d pads with -inf: a symmetric pad of `before` then dropping the surplus tail gives the
    # asymmetric window.
    rows, cols = mask.shape[-2:]
    out = -F.max_pool2d(-mask, (size, size), stride=1, padding=before)
    return out[..., :rows, :cols]


def _gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - size // 2
    kernel = np.exp(-(x * x) / (2 * sigma * sigma))
    return (kernel / kernel.sum()).astype(np.float32)


def _blur(mask: torch.Tensor, size: int) -> torch.Tensor:
    """Gaussian blur with kornia's kernel and reflect (mirror without repeating the edge) border."""
    if size <= 1:
        return mask
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    kernel = _gaussian_kernel(size, sigma)
    if mask.device.type == "cpu":
        return torch.from_numpy(np.stack([
            cv2.sepFilter2D(m[0].numpy(), -1, kernel, kernel, borderType=cv2.BORDER_REFLECT_101)[None]
            for m in mask]))
    weights = torch.from_numpy(kernel).to(mask.device)
    half = size // 2
    mask = F.conv2d(F.pad(mask, (half, half, 0, 0), mode="reflect"), weights.view(1, 1, 1, size))
    return F.conv2d(F.pad(mask, (0, 0, half, half), mode="reflect"), weights.view(1, 1, size, 1))


def edge_width(mask_area: float) -> int:
    return int(math.sqrt(max(mask_area, 0.0))) // 20


def _regions(to_frame: np.ndarray, box_wh: tuple[int, int], frame_hw: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """Per frame, the origin (x0, y0) of a region that holds the whole soft mask; one shared size."""
    box_w, box_h = box_wh
    frame_h, frame_w = frame_hw
    # Outside (-1, box) in crop coordinates the warped mask is exactly 0.
    corners = np.array([[-1, -1, 1], [box_w, -1, 1], [-1, box_h, 1], [box_w, box_h, 1]], dtype=np.float64)
    mapped = np.einsum("nij,kj->nki", to_frame, corners)
    area = np.abs(np.linalg.det(to_frame[:, :, :2])) * (box_w + 2) * (box_h + 2)
    margin = np.array([edge_width(a) for a in area]) + 4  # blur half-width bound, plus rounding slack
    low = np.floor(mapped.min(axis=1)).astype(np.int64) - margin[:, None]
    high = np.ceil(mapped.max(axis=1)).astype(np.int64) + margin[:, None] + 1
    low = np.clip(low, 0, [frame_w, frame_h])
    high = np.clip(high, 0, [frame_w, frame_h])
    size = np.maximum((high - low).max(axis=0), 1)
    origins = np.minimum(low, np.array([frame_w, frame_h]) - size)
    return origins, (int(size[1]), int(size[0]))


def _paste_chunk(out: np.ndarray, frames: np.ndarray, index: np.ndarray, faces: torch.Tensor,
                 affines: np.ndarray, full: bool, device: torch.device) -> None:
    """Blend ``faces`` into ``frames[index]``, writing the changed regions of ``out[index]``."""
    n = len(index)
    frame_h, frame_w = frames.shape[1:3]
    box_h, box_w = faces.shape[-2:]
    to_frame = invert_affines(affines)
    if full:
        origins, (reg_h, reg_w) = np.zeros((n, 2), dtype=np.int64), (frame_h, frame_w)
    else:
        origins, (reg_h, reg_w) = _regions(to_frame, (box_w, box_h), (frame_h, frame_w))

    # Region pixel (x, y) -> crop-box pixel: the affine with the region origin folded in.
    local = np.asarray(affines, dtype=np.float64).copy()
    local[:, :, 2] += np.einsum("nij,nj->ni", local[:, :, :2], origins.astype(np.float64))
    grid = pixel_grid(local, reg_h, reg_w, (box_h, box_w), device)
    mask = (_box_coverage(grid[..., 0], box_w) * _box_coverage(grid[..., 1], box_h)).unsqueeze(1)

    # The face arrives already in 0..255 (see restore_faces), so the official fill of 127 in [-1, 1]
    # units becomes FILL_255; the clamp then reproduces the official clamp to [0, 1].
    warped = F.grid_sample(faces, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    warped = warped.add_(FILL_255).clamp_(0, 255)

    mask = _erode(mask, 1, 0)
    pasted = warped.mul_(mask)
    areas = mask.double().sum(dim=(1, 2, 3)).cpu().numpy()
    soft = torch.empty_like(mask)
    edges = np.array([edge_width(a) for a in areas])
    for w_edge in np.unique(edges):
        members = torch.from_numpy(np.flatnonzero(edges == w_edge)).to(device)
        radius = int(w_edge) * 2
        before, after = (radius // 2, radius - 1 - radius // 2) if radius > 0 else (1, 1)
        soft[members] = _blur(_erode(mask[members], before, after), 2 * int(w_edge) + 1)

    regions = np.stack([frames[i, y0:y0 + reg_h, x0:x0 + reg_w] for i, (x0, y0) in zip(index, origins)])
    original = torch.from_numpy(regions).to(device).permute(0, 3, 1, 2).float()
    blended = torch.lerp(original, pasted, soft)
    blended = blended.round_().clamp_(0, 255).permute(0, 2, 3, 1).to(torch.uint8).cpu().numpy()
    for k, (i, (x0, y0)) in enumerate(zip(index, origins)):
        out[i, y0:y0 + reg_h, x0:x0 + reg_w] = blended[k]


BLENDS = ("crop_box", "seamless")


def restore_faces(frames, faces, affines: np.ndarray, valid: np.ndarray | None = None, *,
                  device: torch.device | str | None = None, region: str = "face",
                  inplace: bool = False, blend: str = "crop_box", mask_shape: str = "bowl") -> np.ndarray:
    """Paste generated faces back into their frames.

    frames: uint8 ``[N, H, W, 3]`` RGB (converted like `align_faces` does). faces: float
    ``[N, 3, R, R]`` in ``[-1, 1]`` (torch or numpy). affines: ``[N, 2, 3]`` frame -> crop-box, as
    `align_faces` returns them. Frames whose affine is NaN (no face) or whose ``valid`` entry is False
    come back bit-identical. Returns uint8 ``[N, H, W, 3]``; ``inplace`` writes into ``frames`` when it
    already is a uint8 RGB numpy array. ``region="full"`` computes on whole frames (slow reference).
    ``blend``: ``crop_box`` (official, the default) or ``seamless`` (`face.blend`: feathered mouth-mask
    edge with colour matching; ``mask_shape`` names the mouth mask; ``inplace`` and ``region`` unused).
    """
    if blend not in BLENDS:
        raise FaceError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    if blend == "seamless":
        from .blend import seamless_restore

        return seamless_restore(frames, faces, affines, valid, shape=mask_shape, device=device)
    if region not in ("face", "full"):
        raise ValueError(f"region must be 'face' or 'full', not {region!r}")
    device = torch.device(device) if device is not None else host.get_device()
    frames = as_rgb_uint8(frames)
    affines = np.asarray(affines, dtype=np.float64)
    n = len(frames)
    if not isinstance(faces, torch.Tensor):
        faces = torch.from_numpy(np.asarray(faces))
    if faces.ndim != 4 or faces.shape[1] != 3 or faces.shape[2] != faces.shape[3]:
        raise FaceError(f"faces must be shaped [N, 3, R, R], got {tuple(faces.shape)}")
    if len(faces) != n or affines.shape != (n, 2, 3):
        raise FaceError(f"restore_faces got {n} frames, {len(faces)} faces and affines shaped "
                        f"{affines.shape}; they must all describe the same N frames")
    ok = valid_affines(affines)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    out = frames if inplace else frames.copy()
    box_w, box_h = crop_size(faces.shape[-1])
    index = np.flatnonzero(ok)
    chunk = RESTORE_CHUNK if region == "face" else 1
    for start in range(0, len(index), chunk):
        part = index[start:start + chunk]
        face = faces[torch.from_numpy(part)].to(device=device, dtype=torch.float32)
        face = F.interpolate(face, size=(box_h, box_w), mode="bicubic", align_corners=False, antialias=True)
        # To 0..255 relative to the fill, so grid_sample's zero padding means "fill" (see _paste_chunk).
        face = face.mul_(127.5).add_(127.5 - FILL_255)
        _paste_chunk(out, frames, part, face, affines[part], region == "full", device)
    return out
