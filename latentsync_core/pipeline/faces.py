"""The aligned faces of one video (the graph's LATENTSYNC_FACES value) and how frames become them."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from .. import host
from ..face import FaceCropInfo, mouth_mask
from ..face.align import FaceCropper
from ..face.track import frame_chunks
from ..media.rate import exact_fps

CROP_CHUNK = 32  # frames tracked and aligned at a time: bounds the copies of a long IMAGE batch


@dataclass
class AlignedFaces:
    """The aligned crops of one video and what is needed to sample and paste them.

    crops uint8 [N, R, R, 3]; info: face.FaceCropInfo (affines, boxes, valid flags, crop and frame
    sizes); mouth_mask float [R, R], 1 where the model regenerates, drawn with face.mouth_mask's
    `mask_shape`; fps: the video's exact rate (a float given here is made exact by media.rate.exact_fps).
    """

    crops: np.ndarray
    info: Any
    mouth_mask: torch.Tensor
    mask_shape: str
    fps: Fraction

    def __post_init__(self) -> None:
        self.fps = exact_fps(self.fps)

    def __len__(self) -> int:
        return len(self.crops)

    @property
    def resolution(self) -> int:
        return int(self.info.resolution)

    def regenerated_masks(self) -> torch.Tensor:
        """[N, R, R] float: the mouth mask per frame, zero on frames without a face (they are left as they are)."""
        masks = self.mouth_mask.expand(len(self), -1, -1).clone()
        masks[torch.from_numpy(~np.asarray(self.info.valid, bool))] = 0.0
        return masks


def crop_faces(frames, detector: Any, resolution: int, fps, *, mask_shape: str = "bowl", every_k: int = 1,
               smoothing: float = 0.0, face_choice: Any = "largest", chunk_size: int = CROP_CHUNK) -> AlignedFaces:
    """Track and align the face of every frame (uint8 or IMAGE float batch, or an iterable of chunks)."""
    cropper = FaceCropper(detector, resolution, every_k=every_k, smoothing=smoothing, face_choice=face_choice)
    crops, infos = [], []
    total = len(frames) if hasattr(frames, "shape") else 0
    with host.Progress(total, "aligning faces") as progress:
        for chunk in frame_chunks(frames, chunk_size):
            host.check_interrupt()
            chunk_crops, info, _ = cropper.process(chunk)
            crops.append(chunk_crops)
            infos.append(info)
            progress.update(len(chunk_crops))
    cropper.finish()
    first = infos[0]
    info = FaceCropInfo(np.concatenate([i.affines for i in infos]), np.concatenate([i.boxes for i in infos]),
                        np.concatenate([i.valid for i in infos]), first.resolution, first.crop_size, first.frame_size)
    return AlignedFaces(np.concatenate(crops), info, mouth_mask(resolution, mask_shape), mask_shape, fps)
