"""Batched face alignment: frames + three points -> LatentSync's R x R face crops and their affines.

Per frame, the same steps as the official ``AlignRestore.align_warp_face`` + ``cv2.resize``: bilinear
warp of the frame into the crop box (outside the frame reads 127), then a Lanczos-4 resize of the box
to R x R. Differences, all deliberate: the warp reads only the frame patch the crop covers (not the
whole frame), a batch goes through one ``grid_sample`` on the compute device, the arithmetic is
float32 instead of the official float16, and the warped box is not truncated to uint8 before the
resize (one rounding at the end instead of a truncation and a rounding). On CPU the warp and resize
run through cv2 (several times faster there); on other devices through torch.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .. import host
from ..profile import stage
from .frames import as_rgb_uint8
from .geometry import AffineTracker, crop_size, invert_affines, valid_affines
from .resample import lanczos_resize, pixel_grid, source_patches

FILL_VALUE = 127
# Frames warped per grid_sample call: bounds the float patch memory (4K close-ups make big patches).
ALIGN_CHUNK = 16


def _warp_crops_cpu(frames: np.ndarray, affines: np.ndarray, resolution: int) -> torch.Tensor:
    """CPU path: cv2's SIMD warp and Lanczos on the covered patch only, in float32.

    cv2 places bilinear samples on a 1/32-pixel grid, a difference from the exact grid_sample path of
    well under one grey level (tests compare the two).
    """
    box_w, box_h = crop_size(resolution)
    to_frame = invert_affines(affines)
    patches, origins = source_patches(frames, to_frame, (box_h, box_w), FILL_VALUE)
    out = np.empty((len(frames), resolution, resolution, 3), np.float32)
    for i, (patch, origin) in enumerate(zip(patches, origins)):
        local = np.asarray(affines[i], np.float64).copy()
        local[:, 2] += local[:, :2] @ origin  # patch pixel -> crop-box pixel
        box = cv2.warpAffine(patch.astype(np.float32), local, (box_w, box_h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=(FILL_VALUE,) * 3)
        out[i] = cv2.resize(box, (resolution, resolution), interpolation=cv2.INTER_LANCZOS4)
    return torch.from_numpy(out).permute(0, 3, 1, 2)


def _warp_crops_torch(frames: np.ndarray, affines: np.ndarray, resolution: int,
                      device: torch.device) -> torch.Tensor:
    """Any-device path: one exact bilinear grid_sample over the batch, Lanczos as two matmuls."""
    box_w, box_h = crop_size(resolution)
    to_frame = invert_affines(affines)
    patches, origins = source_patches(frames, to_frame, (box_h, box_w), FILL_VALUE)
    local = to_frame.copy()
    local[:, :, 2] -= origins
    grid = pixel_grid(local, box_h, box_w, patches.shape[1:3], device)
    source = torch.from_numpy(patches).to(device).permute(0, 3, 1, 2).float() - FILL_VALUE
    boxes = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=True) + FILL_VALUE
    return lanczos_resize(boxes, resolution, resolution)


def warp_crops(frames: np.ndarray, affines: np.ndarray, resolution: int,
               device: torch.device | str | None = None) -> torch.Tensor:
    """Float ``[n, 3, R, R]`` crops (0..255, unrounded) of uint8 RGB ``frames`` through valid ``affines``."""
    device = torch.device(device) if device is not None else host.get_device()
    if device.type == "cpu":
        return _warp_crops_cpu(frames, affines, resolution)
    return _warp_crops_torch(frames, affines, resolution, device)


class FaceAligner:
    """Aligns a video chunk by chunk, keeping the official bias smoothing across chunks."""

    def __init__(self, resolution: int, smooth: bool = True, device: torch.device | str | None = None):
        self.resolution = int(resolution)
        self.device = torch.device(device) if device is not None else host.get_device()
        self.affine_tracker = AffineTracker(self.resolution, smooth)

    def affines(self, points: np.ndarray) -> np.ndarray:
        """``[n, 2, 3]`` float32 frame -> crop-box affines; NaN where ``points`` has NaN (no face)."""
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 3 or points.shape[1:] != (3, 2):
            raise ValueError(f"points must be shaped [N, 3, 2], got {points.shape}")
        return self.affine_tracker(points)

    def align(self, frames, points: np.ndarray, as_tensor: bool = False):
        """``(crops, affines)``: crops uint8 ``[n, R, R, 3]`` (a uniform 127 placeholder where there is
        no face; ``as_tensor`` gives float ``[n, 3, R, R]`` 0..255 on the device instead), affines as
        in `affines`."""
        frames = as_rgb_uint8(frames)
        if len(points) != len(frames):
            raise ValueError(f"got {len(frames)} frames but {len(points)} point sets")
        affines = self.affines(points)
        ok = valid_affines(affines)
        r = self.resolution
        crops = torch.full((len(frames), 3, r, r), float(FILL_VALUE), device=self.device)
        index = np.flatnonzero(ok)
        for start in range(0, len(index), ALIGN_CHUNK):
            part = index[start:start + ALIGN_CHUNK]
            crops[torch.from_numpy(part).to(self.device)] = warp_crops(frames[part], affines[part], r, self.device)
        crops = crops.round_().clamp_(0, 255)
        if as_tensor:
            return crops, affines
        return crops.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy(), affines


def align_faces(frames, points: np.ndarray, resolution: int, smooth: bool = True,
                device: torch.device | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Crop LatentSync's aligned face from each frame.

    frames: uint8 ``[N, H, W, 3]`` RGB (grayscale/RGBA/float 0..1 are converted). points: float
    ``[N, 3, 2]`` (left eyebrow centre, right eyebrow centre, nose centre, frame pixels); a frame whose
    points are NaN has no face. Returns crops uint8 ``[N, R, R, 3]`` and affines float32 ``[N, 2, 3]``
    mapping frame pixels to crop-box pixels (the official matrix; NaN for frames without a face).
    ``smooth`` applies the official bias smoothing across the frames of this call.
    """
    return FaceAligner(resolution, smooth, device).align(frames, points)


@dataclass
class FaceCropInfo:
    """Everything needed to paste generated faces back (what the Face Crop node outputs with the crops).

    affines: float32 ``[N, 2, 3]`` frame -> crop box (NaN without a face); boxes: float32 ``[N, 4]``
    detector boxes; valid: bool ``[N]``; resolution: R; crop_size: crop box ``(width, height)``;
    frame_size: ``(height, width)``.
    """

    affines: np.ndarray
    boxes: np.ndarray
    valid: np.ndarray
    resolution: int
    crop_size: tuple[int, int]
    frame_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.valid)


def crop_track(frames, track, resolution: int, smooth: bool = True,
               aligner: FaceAligner | None = None) -> tuple[np.ndarray, FaceCropInfo]:
    """Align ``frames`` along a `FaceTrack`; pass one ``aligner`` for all chunks of a streamed video."""
    aligner = aligner if aligner is not None else FaceAligner(resolution, smooth)
    if aligner.resolution != resolution:
        raise ValueError(f"aligner is for resolution {aligner.resolution}, not {resolution}")
    points = np.where(track.valid[:, None, None], track.points, np.nan)
    crops, affines = aligner.align(frames, points)
    info = FaceCropInfo(affines, track.boxes.copy(), valid_affines(affines), int(resolution),
                        crop_size(resolution), tuple(track.frame_size))
    return crops, info


class FaceCropper:
    """Track then align, chunk by chunk: the one way a video's frames become aligned face crops.

    Each chunk is converted to uint8 once, tracked (`FaceTracker`, state kept across chunks) and
    aligned along the track (`FaceAligner`, official bias smoothing across chunks). `finish()` logs the
    summary and raises FaceError when no frame had a face.
    """

    def __init__(self, detector, resolution: int, *, every_k: int = 1, smoothing: float = 0.0,
                 face_choice="largest", round_points: bool = False, smooth: bool = True,
                 device: torch.device | str | None = None):
        from .track import FaceTracker

        self.tracker = FaceTracker(detector, every_k, smoothing, face_choice, round_points)
        self.resolution = int(resolution)
        self._smooth, self._device = smooth, device
        self.restart_alignment()

    def restart_alignment(self) -> None:
        """Forget the alignment smoothing (at a scene boundary) while the tracker keeps following the face."""
        self.aligner = FaceAligner(self.resolution, self._smooth, self._device)

    def process(self, frames) -> tuple[np.ndarray, "FaceCropInfo", np.ndarray]:
        """(crops uint8 [n, R, R, 3], FaceCropInfo, the chunk as uint8 frames) for one chunk."""
        frames = as_rgb_uint8(frames)
        with stage("detect"):
            track = self.tracker.process(frames)
        with stage("align"):
            crops, info = crop_track(frames, track, self.resolution, aligner=self.aligner)
        return crops, info, frames

    def finish(self) -> str:
        return self.tracker.finish()
