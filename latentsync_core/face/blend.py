"""``seamless`` paste-back: the generated mouth blended into the frame without the official seams.

The official paste (``crop_box``) replaces the whole crop box, and inside it the U-shaped edge of
the mouth mask, where VAE-decoded pixels meet copied ones, often shows a colour/brightness step.
Here, per face, in the R x R crop (which the alignment landmarks place, so the mask follows the face):

1. signed distances to the mouth mask's edge (``mouth_mask(R, shape)``) give a feathered blend
   weight ``M`` that ramps from 0 to 1 across the edge (``FEATHER * R`` crop pixels each side) and a
   correction weight ``w`` that is 1 just inside the edge and falls smoothly to 0 at ``RAMP * R``
   pixels inside (0 outside: there the decoder output already is the original crop);
2. the colour/luminance offset between the original crop and the generated face is measured in a
   ring just inside the edge and spread as a smooth field (normalised Gaussian convolution: a cheap
   membrane, in the spirit of Poisson blending), then added to the generated face with weight ``w``;
   deeper inside (the mouth) the generated face is untouched;
3. the corrected face goes through the official paste (`restore_faces`, crop_box) and the frame takes
   it only where ``M`` (warped into the frame) is non-zero.

So pixels outside the warped mask keep their original values exactly, and the mouth interior is the
official paste of the generated face exactly; only the band around the mask edge is new.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..errors import FaceError
from .align import warp_crops
from .frames import as_rgb_uint8
from .geometry import crop_size, valid_affines
from .mask import mouth_mask

# Fractions of R: half-width of the feathered edge, depth of the correction, and its smoothing.
FEATHER = 1 / 32
RAMP = 1 / 6
SMOOTH = 1 / 12


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def blend_weights(resolution: int, shape: str = "bowl") -> tuple[np.ndarray, np.ndarray]:
    """Float32 ``[R, R]`` (M, w): M = how much of the generated face a crop pixel takes, w = how much
    of the colour correction is added there (0 deep inside the mouth area)."""
    r = int(resolution)
    inside = (mouth_mask(r, shape).numpy() > 0.5).astype(np.uint8)
    d_in = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    d_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)
    feather = max(FEATHER * r, 1.0)
    signed = np.where(inside > 0, d_in - 0.5, 0.5 - d_out)
    m = _smoothstep((signed + feather) / (2 * feather))
    # Outside the mask the decoder already copied the original back, so nothing to correct there.
    w = np.where(signed >= 0, 1.0 - _smoothstep(signed / (RAMP * r)), 0.0)
    return m.astype(np.float32), w.astype(np.float32)


def correction_ring(resolution: int, shape: str = "bowl") -> np.ndarray:
    """Bool ``[R, R]``: the generated pixels just inside the mask edge, where the offset is measured."""
    r = int(resolution)
    inside = (mouth_mask(r, shape).numpy() > 0.5).astype(np.uint8)
    d_in = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    return (inside > 0) & (d_in <= 2 * max(FEATHER * r, 1.0))


def correction_field(original: np.ndarray, generated: np.ndarray, ring: np.ndarray, sigma: float) -> np.ndarray:
    """``original - generated`` ([R, R, 3] float) averaged over ``ring`` and spread smoothly: Gaussian
    normalised convolution, so each pixel gets the local mean offset of the nearby ring pixels."""
    ring = ring.astype(np.float32)
    diff = (original - generated) * ring[..., None]
    num = cv2.GaussianBlur(diff, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    den = cv2.GaussianBlur(ring, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    return num / np.maximum(den, 1e-3)[..., None]


def frame_weight(weight: np.ndarray, affine: np.ndarray, frame_hw: tuple[int, int],
                 region: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """A crop-space weight ``[R, R]`` warped into the frame (0 outside the crop box); with ``region``
    ``(x0, y0, x1, y1)`` only that part of the frame."""
    box_w, box_h = crop_size(weight.shape[0])
    box = cv2.resize(weight, (box_w, box_h), interpolation=cv2.INTER_LINEAR)
    x0, y0, x1, y1 = region if region is not None else (0, 0, frame_hw[1], frame_hw[0])
    local = np.asarray(affine, np.float64).copy()
    local[:, 2] += local[:, :2] @ np.array([x0, y0], np.float64)
    return cv2.warpAffine(box, local, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def box_region(affine: np.ndarray, resolution: int, frame_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the frame pixels the crop box can reach (its warped corners, a pixel of margin)."""
    box_w, box_h = crop_size(resolution)
    to_frame = cv2.invertAffineTransform(np.asarray(affine, np.float64))
    corners = np.array([[-1, -1], [box_w, -1], [-1, box_h], [box_w, box_h]], np.float64)
    pts = corners @ to_frame[:, :2].T + to_frame[:, 2]
    x0, y0 = np.maximum(np.floor(pts.min(0)).astype(int) - 1, 0)
    x1 = min(int(np.ceil(pts[:, 0].max())) + 2, frame_hw[1])
    y1 = min(int(np.ceil(pts[:, 1].max())) + 2, frame_hw[0])
    return int(x0), int(y0), max(x1, int(x0) + 1), max(y1, int(y0) + 1)


def seamless_restore(frames, faces, affines: np.ndarray, valid: np.ndarray | None = None, *,
                     shape: str = "bowl", device: torch.device | str | None = None) -> np.ndarray:
    """`restore_faces` with the seamless blend; same arguments and result format."""
    from .restore import restore_faces

    frames = as_rgb_uint8(frames)
    affines = np.asarray(affines, dtype=np.float64)
    if not isinstance(faces, torch.Tensor):
        faces = torch.from_numpy(np.asarray(faces))
    if faces.ndim != 4 or faces.shape[1] != 3 or faces.shape[2] != faces.shape[3]:
        raise FaceError(f"faces must be shaped [N, 3, R, R], got {tuple(faces.shape)}")
    if len(faces) != len(frames) or affines.shape != (len(frames), 2, 3):
        raise FaceError(f"restore_faces got {len(frames)} frames, {len(faces)} faces and affines shaped "
                        f"{affines.shape}; they must all describe the same N frames")
    r = int(faces.shape[-1])
    ok = valid_affines(affines)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    m, w = blend_weights(r, shape)
    ring = correction_ring(r, shape)
    sigma = SMOOTH * r
    generated = ((faces.detach().float().cpu().numpy().transpose(0, 2, 3, 1) + 1.0) * 127.5).astype(np.float32)
    corrected = generated.copy()
    index = np.flatnonzero(ok)
    if len(index):
        reference = warp_crops(frames[index], affines[index], r, "cpu").permute(0, 2, 3, 1).numpy()
        for k, i in enumerate(index):
            field = correction_field(reference[k], generated[i], ring, sigma)
            corrected[i] = generated[i] + w[..., None] * field
    corrected_faces = torch.from_numpy(corrected.transpose(0, 3, 1, 2) / 127.5 - 1.0).float()
    pasted = restore_faces(frames, corrected_faces, affines, ok, device=device)
    out = frames.copy()
    for i in index:
        x0, y0, x1, y1 = box_region(affines[i], r, frames.shape[1:3])
        wgt = frame_weight(m, affines[i], frames.shape[1:3], (x0, y0, x1, y1))[..., None]
        orig = frames[i, y0:y1, x0:x1].astype(np.float32)
        mixed = orig + wgt * (pasted[i, y0:y1, x0:x1].astype(np.float32) - orig)
        region = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
        out[i, y0:y1, x0:x1] = np.where(wgt > 0, region, frames[i, y0:y1, x0:x1])
    return out
