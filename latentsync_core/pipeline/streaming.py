"""The streaming runner: frames in output order -> faces -> the engine's windows -> frames out.

Memory does not grow with the video: frames are decoded a chunk at a time, a frame is kept only from
when it is read until its window has been restored and everything before it written, and windows
never stretch over more than `max_span` frames (times the frame stride; a face gap closes the open
window early). The face track of the source video (its affines, a few floats per frame) is the only
per-frame state kept, so looped passes (pingpong/loop) reuse it instead of detecting again. Decoding
and face tracking run `prefetch` chunks ahead in a background thread, overlapping the model's work.
"""
from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch

from .. import host
from ..errors import FaceError
from ..face.align import FaceCropper, warp_crops
from ..face.geometry import valid_affines
from ..face.restore import BLENDS, restore_faces
from ..profile import stage, timed_iter
from .options import LipsyncOptions
from .prefetch import prefetch as prefetched
from .source import FrameSource, plan_runs
from .stages import faces_to_tensor

log = logging.getLogger("latentsync")

__all__ = ["LipsyncOptions", "StreamStats", "lipsync_frames", "stream_frames"]


@dataclass
class StreamStats:
    frames: int = 0  # output frames produced
    windows: int = 0  # U-Net windows run
    regenerated: int = 0  # frames given a new mouth
    face_frames: int = 0  # output frames in which a face was found


class _SourceFaces:
    """Face affines of every source frame, tracked once in source order and reused on later passes."""

    def __init__(self, num_frames: int, cropper: FaceCropper, device: torch.device):
        self.affines = np.full((num_frames, 2, 3), np.nan, np.float32)
        self.tracked = 0  # source frames 0 .. tracked-1 have their affines
        self.cropper = cropper
        self.resolution = cropper.resolution
        self.device = device

    def crops(self, src: np.ndarray, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(affines [n, 2, 3], valid [n], crops uint8 [n, R, R, 3]; 127 or zeros where there is no face)."""
        if src[0] == self.tracked:  # first visit: every run plan starts with the source in order
            if not np.array_equal(src, np.arange(self.tracked, self.tracked + len(src))):
                raise RuntimeError("source frames must first be visited in order (internal error)")
            crops, info, _ = self.cropper.process(frames)
            self.affines[src] = info.affines
            self.tracked += len(src)
            return info.affines, info.valid, crops
        if src.max() >= self.tracked:
            raise RuntimeError("source frames must first be visited in order (internal error)")
        affines = self.affines[src]
        valid = valid_affines(affines)
        crops = np.zeros((len(src), self.resolution, self.resolution, 3), np.uint8)
        if valid.any():
            with stage("align"):
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
    """Yield the `total` output frames (uint8 [H, W, 3] each, in order), with an engine made from `options`.

    `audio_chunks(indices)` -> [len, L, C] Whisper chunks of those output frames. `regenerate(i)`:
    False for output frames that must be left as they are (silent, past the audio); frames without a
    face are always left as they are, bit-identical. `options.resolution` must be set. Output frame i
    shows source frame `source_index(i, ...)` for `options.loop_mode`. Raises FaceError when no frame
    had a face.
    """
    from .engine import LipsyncEngine

    options = options or LipsyncOptions()
    if options.resolution is None:
        raise ValueError("lipsync_frames needs options.resolution (the face crop size)")
    engine = LipsyncEngine.from_options(unet, vae, options)
    return stream_frames(engine, source, total, audio_chunks, detector, regenerate=regenerate,
                         loop_mode=options.loop_mode, chunk_size=options.chunk_size, tracker=options.tracker,
                         stats=stats, on_window=on_window, prefetch=options.prefetch, blend=options.blend)


def stream_frames(engine: Any, source: FrameSource, total: int, audio_chunks: Callable[[list[int]], torch.Tensor],
                  detector: Any, *, regenerate: Callable[[int], bool] | None = None, loop_mode: str = "pingpong",
                  chunk_size: int = 16, tracker: dict | None = None, stats: StreamStats | None = None,
                  on_window: Callable[[int, list[int]], None] | None = None, prefetch: int = 2,
                  blend: str = "crop_box") -> Iterator[np.ndarray]:
    """The engine over a frame source (see `lipsync_frames`); only feeds `engine`'s window runner.
    `blend`: face.restore BLENDS, how the new faces are pasted (the mask is the engine's mask_shape)."""
    if blend not in BLENDS:
        raise ValueError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    stats = stats if stats is not None else StreamStats()
    cropper = FaceCropper(detector, engine.resolution, device=engine.device, **(tracker or {}))
    faces = _SourceFaces(source.num_frames, cropper, engine.device)
    builder = engine.window_builder(source.fps)
    pending: deque[_Pending] = deque()
    window_budget = max(1, math.ceil(total / engine.sampler.window)) * engine.sampler.steps

    def crops_of(window: list[int]) -> np.ndarray:
        base = pending[0].index
        return np.stack([pending[i - base].crop for i in window])

    def faces_ahead() -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """(first output index, frames, affines, valid, crops) per chunk, in output order."""
        for run in plan_runs(total, source.num_frames, loop_mode):
            out_index = run.out_start
            for frames in timed_iter("decode", source.read_run(run, chunk_size)):
                host.check_interrupt()
                offset = out_index - run.out_start
                src = run.first + run.step * np.arange(offset, offset + len(frames))
                affines, valid, crops = faces.crops(src, frames)
                yield out_index, frames, affines, valid, crops
                out_index += len(frames)

    @stage("restore")
    def restore(results) -> None:
        for window, image, _latents in results:
            base = pending[0].index
            entries = [pending[i - base] for i in window]
            frames = np.stack([e.frame for e in entries])
            restored = restore_faces(frames, faces_to_tensor(image), np.stack([e.affine for e in entries]),
                                     inplace=True, device=engine.device, blend=blend,
                                     mask_shape=engine.mask_shape)
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
        runner = engine.runner(crops_of, audio_chunks, progress)
        chunks = prefetched(faces_ahead(), prefetch) if prefetch > 0 else faces_ahead()
        try:
            for out_index, frames, affines, valid, crops in chunks:
                for k in range(len(frames)):
                    i = out_index + k
                    active = bool(valid[k]) and (regenerate is None or regenerate(i))
                    stats.face_frames += int(valid[k])
                    pending.append(_Pending(i, frames[k], crops[k] if active else None, affines[k]))
                    for window in builder.push(i, active):
                        restore(runner.add(window))
                    held = [f for f in (runner.queued_first, builder.pending[0] if builder.pending else None)
                            if f is not None]
                    yield from ready(min(held) if held else i + 1)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        for window in builder.flush():
            restore(runner.add(window))
        restore(runner.flush())
        yield from ready(total)
        progress.update(max(0, window_budget - progress.current))
    if stats.face_frames == 0:
        cropper.finish()  # raises the detector-specific "no face found" error
        raise FaceError(f"no face found in any frame of {source.name}")
    cropper.finish()
