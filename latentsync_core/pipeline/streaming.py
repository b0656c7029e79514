"""The streaming lip-sync engine: frames in output order -> faces -> 16-frame windows -> frames out.

Memory does not grow with the video: frames are decoded a chunk at a time, a frame is kept only from
when it is read until its window has been restored and everything before it written, and windows
never stretch over more than `max_span` frames (a face gap closes the open window early). The face
track of the source video (its affines, a few floats per frame) is the only per-frame state kept,
so looped passes (pingpong/loop) reuse it instead of detecting again.
"""
from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch

from .. import host
from ..errors import FaceError
from ..face import FaceAligner, FaceTracker, mouth_mask, restore_faces
from ..face.align import warp_crops
from ..face.geometry import valid_affines
from ..sampler import NoiseSource, WindowBuilder
from .source import FrameSource, plan_runs
from .stages import SamplerOptions, decode_faces, encode_faces, sample_window, vae_generator

log = logging.getLogger("latentsync")


@dataclass
class LipsyncOptions:
    """Everything `lipsync` can be told, official behaviour by default.

    resolution: face crop size R (None: the U-Net's trained resolution). loop_mode / tail_mode: see
    pipeline.source. silence: mark silent frames (True or an audio.SilenceOptions) and keep their
    original mouth. max_frames: stop after this many output frames (previews, tests). chunk_size:
    frames decoded and face-tracked at a time; max_span: the most output frames one window may
    stretch over (a face gap closes it early), together they bound the frames held in memory.
    """

    sampler: SamplerOptions = field(default_factory=SamplerOptions)
    resolution: int | None = None
    loop_mode: str = "pingpong"
    tail_mode: str = "trim"
    silence: Any = False
    max_frames: int | None = None
    chunk_size: int = 16
    max_span: int = 32
    mask_shape: str = "bowl"  # face.mouth_mask shape
    tracker: dict = field(default_factory=dict)  # FaceTracker options (every_k, smoothing, face_choice...)
    crf: int = 18
    still_fps: float = 25.0  # frame rate given to a still image input
    offload_whisper: bool = True  # move the audio encoder off the GPU once the features are computed


@dataclass
class StreamStats:
    frames: int = 0  # output frames produced
    windows: int = 0  # U-Net windows run
    regenerated: int = 0  # frames given a new mouth
    face_frames: int = 0  # output frames in which a face was found


class _SourceFaces:
    """Face affines of every source frame, tracked once in source order and reused on later passes."""

    def __init__(self, num_frames: int, resolution: int, tracker: FaceTracker, device: torch.device):
        self.affines = np.full((num_frames, 2, 3), np.nan, np.float32)
        self.tracked = 0  # source frames 0 .. tracked-1 have their affines
        self.tracker = tracker
        self.aligner = FaceAligner(resolution, smooth=True, device=device)
        self.resolution = resolution
        self.device = device

    def crops(self, src: np.ndarray, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(affines [n, 2, 3], valid [n], crops uint8 [n, R, R, 3]; zeros where there is no face)."""
        if src[0] == self.tracked:  # first visit: every run plan starts with the source in order
            if not np.array_equal(src, np.arange(self.tracked, self.tracked + len(src))):
                raise RuntimeError("source frames must first be visited in order (internal error)")
            track = self.tracker.process(frames)
            points = np.where(track.valid[:, None, None], track.points, np.nan)
            crops, affines = self.aligner.align(frames, points)
            self.affines[src] = affines
            self.tracked += len(src)
            return affines, valid_affines(affines), crops
        if src.max() >= self.tracked:
            raise RuntimeError("source frames must first be visited in order (internal error)")
        affines = self.affines[src]
        valid = valid_affines(affines)
        crops = np.zeros((len(src), self.resolution, self.resolution, 3), np.uint8)
        if valid.any():
            warped = warp_crops(frames[valid], affines[valid], self.resolution, self.device)
            crops[valid] = warped.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return affines, valid, crops


class _Pending:
    """An output frame waiting for its window (crop is None when it is passed through unchanged)."""

    __slots__ = ("index", "frame", "crop", "affine")

    def __init__(self, index, frame, crop, affine):
        self.index, self.frame, self.crop, self.affine = index, frame, crop, affine


def lipsync_frames(source: FrameSource, total: int, audio_chunks: Callable[[list[int]], torch.Tensor],
                   unet: Any, vae: Any, detector: Any, *, regenerate: Callable[[int], bool] | None = None,
                   options: LipsyncOptions | None = None,
                   stats: StreamStats | None = None,
                   on_window: Callable[[int, list[int]], None] | None = None) -> Iterator[np.ndarray]:
    """Yield the `total` output frames (uint8 [H, W, 3] each, in order).

    `audio_chunks(indices)` -> [len, L, C] Whisper chunks of those output frames. `regenerate(i)`:
    False for output frames that must be left as they are (silent, past the audio); frames without a
    face are always left as they are, bit-identical. `options.resolution` must be set. Output frame i
    shows source frame `source_index(i, ...)` for `options.loop_mode`. Raises FaceError when no frame
    had a face.
    """
    options = options or LipsyncOptions()
    if options.resolution is None:
        raise ValueError("lipsync_frames needs options.resolution (the face crop size)")
    sopt = options.sampler
    stats = stats if stats is not None else StreamStats()
    device = next(unet.parameters()).device
    tracker = FaceTracker(detector, **options.tracker)
    faces = _SourceFaces(source.num_frames, options.resolution, tracker, device)
    keep_mask = 1.0 - mouth_mask(options.resolution, options.mask_shape)
    noise = NoiseSource(sopt.noise_mode, sopt.seed, (options.resolution // 8,) * 2)
    vae_gen = vae_generator(sopt.seed)
    builder = WindowBuilder(sopt.window, options.max_span)
    pending: deque[_Pending] = deque()
    window_budget = max(1, math.ceil(total / sopt.window)) * sopt.steps

    def run_window(window: list[int], progress: host.Progress) -> None:
        host.check_interrupt()
        base = pending[0].index
        entries = [pending[i - base] for i in window]
        cond = encode_faces(vae, np.stack([e.crop for e in entries]), keep_mask, sample=sopt.sample_latents,
                            generator=vae_gen, device=device, dtype=next(unet.parameters()).dtype)
        latents = sample_window(unet, cond, audio_chunks(window), noise.for_window(stats.windows, window), sopt,
                                on_step=lambda done, total_steps: progress.update(1))
        new_faces = decode_faces(vae, latents, cond)
        frames = np.stack([e.frame for e in entries])
        restored = restore_faces(frames, new_faces, np.stack([e.affine for e in entries]), inplace=True,
                                 device=device)
        for entry, frame in zip(entries, restored):
            entry.frame = frame
        stats.windows += 1
        stats.regenerated += len(window)
        if on_window is not None:
            on_window(stats.windows, window)
        log.debug("window %d: frames %d..%d", stats.windows, window[0], window[-1])

    def ready(limit: int) -> Iterator[np.ndarray]:
        while pending and pending[0].index < limit:
            stats.frames += 1
            yield pending.popleft().frame  # a view: no copy of the frame on its way to the encoder

    with host.Progress(window_budget, desc="LatentSync") as progress:
        for run in plan_runs(total, source.num_frames, options.loop_mode):
            out_index = run.out_start
            for frames in source.read_run(run, options.chunk_size):
                host.check_interrupt()
                offset = out_index - run.out_start
                src = run.first + run.step * np.arange(offset, offset + len(frames))
                affines, valid, crops = faces.crops(src, frames)
                for k in range(len(frames)):
                    i = out_index + k
                    active = bool(valid[k]) and (regenerate is None or regenerate(i))
                    stats.face_frames += int(valid[k])
                    pending.append(_Pending(i, frames[k], crops[k] if active else None, affines[k]))
                    for window in builder.push(i, active):
                        run_window(window, progress)
                    yield from ready(builder.pending[0] if builder.pending else i + 1)
                out_index += len(frames)
        for window in builder.flush():
            run_window(window, progress)
        yield from ready(total)
        progress.update(max(0, window_budget - progress.current))
    if stats.face_frames == 0:
        tracker.finish()  # raises the detector-specific "no face found" error
        raise FaceError(f"no face found in any frame of {source.name}")
    tracker.finish()
