"""Lip-sync scoring with StableSyncNet: confidence and audio-visual offset (LSE-C / LSE-D style).

For each 16-frame window of face crops (every `stride` frames) and each audio shift k in
[-vshift, vshift] frames, the distance between the unit vision embedding and the audio embedding of
the window starting k frames later is averaged over the windows; then (as the official SyncNet
evaluation does)

* ``offset = -argmin_k mean_distance``: frames to delay the audio by to bring it in sync (0 = in sync;
  the sign convention of the official `eval/syncnet` and `preprocess/sync_av.py`),
* ``confidence = median_k - min_k`` of the mean distances (LSE-C), ``min_distance`` = min_k (LSE-D).

Distances are Euclidean between unit vectors (0..2), so StableSyncNet confidences are on a smaller
scale than the classic SyncNet v2's (whose dataset threshold is 3); compare like with like.
Memory is bounded: frames stream through in chunks and only the last window's frames are kept.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .. import host
from ..errors import FaceError, InputMismatchError
from .config import face_resolution, frames_per_window, mel_window_frames
from .mel import AUDIO_YAML, mel_window_start, melspectrogram
from .model import StableSyncNet

log = logging.getLogger("latentsync")

TRAINED_FPS = 25.0
DEFAULT_VSHIFT = 15


@dataclass
class SyncScore:
    confidence: float       # median - min of the mean distances over shifts (higher = clearer sync)
    offset: int             # frames to delay the audio by for best sync (0 = in sync)
    min_distance: float     # mean distance at the best shift (lower = better)
    distances: np.ndarray   # mean distance per shift, index i <-> audio shifted by (i - vshift) frames
    windows: int            # video windows scored
    vshift: int
    skipped_windows: int = 0  # windows dropped because a frame had no face
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"confidence": round(self.confidence, 4), "offset": self.offset,
                "min_distance": round(self.min_distance, 4), "windows": self.windows,
                "skipped_windows": self.skipped_windows}

    def summary(self) -> str:
        return (f"sync confidence {self.confidence:.3f}, AV offset {self.offset:+d} frames, "
                f"min distance {self.min_distance:.3f} ({self.windows} windows)")


# --------------------------------------------------------------------------- inputs
def syncnet_halves(faces: torch.Tensor | np.ndarray, resolution: int) -> torch.Tensor:
    """Aligned face crops -> float [n, 3, R/2, R] lower halves in [-1, 1] at the SyncNet's resolution R.

    `faces`: uint8 [n, S, S, 3] (0..255) or float [n, 3, S, S] in [-1, 1]. Other sizes are resized
    bicubically before halving, as the official trainer does for 512 px crops.
    """
    from_pixels = isinstance(faces, np.ndarray)
    if from_pixels:
        if faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[-1] != 3:
            raise InputMismatchError(f"face crops must be uint8 [n, S, S, 3]; got {faces.dtype} {faces.shape}")
        faces = torch.from_numpy(np.ascontiguousarray(faces)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if faces.dim() != 4 or faces.shape[1] != 3 or faces.shape[2] != faces.shape[3]:
        raise InputMismatchError(f"face crops must be square [n, 3, S, S]; got {list(faces.shape)}")
    if faces.shape[-1] != resolution:
        faces = F.interpolate(faces.float(), size=(resolution, resolution), mode="bicubic", align_corners=False)
        if from_pixels:  # bicubic overshoots at edges; real pixels cannot leave [-1, 1]
            faces = faces.clamp(-1.0, 1.0)
    return faces[:, :, resolution // 2:, :]


def stack_window(halves: torch.Tensor) -> torch.Tensor:
    """[F, 3, h, w] consecutive frames -> [3F, h, w], frame-major (the official "(f c) h w")."""
    return halves.reshape(-1, *halves.shape[2:])


def mel_windows(mel: np.ndarray, starts: Iterable[int], fps: float, length: int) -> tuple[torch.Tensor, np.ndarray]:
    """Stack [n, 1, 80, length] mel windows for video frames `starts`; also a mask of those that fit."""
    starts = list(starts)
    out = torch.zeros((len(starts), 1, mel.shape[0], length), dtype=torch.float32)
    fits = np.zeros(len(starts), bool)
    for i, frame in enumerate(starts):
        first = mel_window_start(frame, fps)
        if frame >= 0 and first + length <= mel.shape[1]:
            out[i, 0] = torch.from_numpy(mel[:, first:first + length])
            fits[i] = True
    return out, fits


# --------------------------------------------------------------------------- embeddings
class WindowEmbedder:
    """Vision embeddings of every `stride`-th window of a frame stream, keeping only one window of frames."""

    def __init__(self, syncnet: StableSyncNet, stride: int = 1, batch_size: int = 16):
        self.syncnet = syncnet
        self.window = frames_per_window(syncnet.config)
        self.stride = max(1, int(stride))
        self.batch_size = max(1, int(batch_size))
        self.buffer: torch.Tensor | None = None      # the last frames not yet past every window
        self.buffer_valid = np.zeros(0, bool)
        self.buffer_start = 0                        # stream index of buffer[0]
        self.next_start = 0                          # next window start to embed
        self.starts: list[int] = []
        self.embeddings: list[torch.Tensor] = []
        self.skipped = 0

    def feed(self, halves: torch.Tensor, valid: np.ndarray | None = None) -> None:
        valid = np.ones(len(halves), bool) if valid is None else np.asarray(valid, bool)
        halves = halves.to(torch.float32)
        self.buffer = halves if self.buffer is None else torch.cat([self.buffer, halves])
        self.buffer_valid = np.concatenate([self.buffer_valid, valid])
        end = self.buffer_start + len(self.buffer)
        ready = list(range(self.next_start, end - self.window + 1, self.stride))
        batch_windows, batch_starts = [], []
        for start in ready:
            local = start - self.buffer_start
            if not self.buffer_valid[local:local + self.window].all():
                self.skipped += 1
                continue
            batch_windows.append(stack_window(self.buffer[local:local + self.window]))
            batch_starts.append(start)
        for i in range(0, len(batch_windows), self.batch_size):
            frames = torch.stack(batch_windows[i:i + self.batch_size]).to(self.syncnet.device)
            with torch.no_grad():
                self.embeddings.append(self.syncnet.embed_frames(frames).float().cpu())
        self.starts.extend(batch_starts)
        if ready:
            self.next_start = ready[-1] + self.stride
        drop = max(0, min(self.next_start - self.buffer_start, len(self.buffer)))
        self.buffer, self.buffer_valid = self.buffer[drop:], self.buffer_valid[drop:]
        self.buffer_start += drop

    def result(self) -> tuple[np.ndarray, torch.Tensor]:
        if not self.embeddings:
            return np.zeros(0, int), torch.zeros(0, 0)
        return np.asarray(self.starts, int), torch.cat(self.embeddings)


def audio_embeddings(syncnet: StableSyncNet, mel: np.ndarray, starts: np.ndarray, fps: float,
                     batch_size: int = 32) -> tuple[torch.Tensor, np.ndarray]:
    """Audio embeddings for windows starting at video frames `starts` (zeros + False where the mel ends)."""
    length = mel_window_frames(frames_per_window(syncnet.config), fps, AUDIO_YAML.frames_per_second)
    windows, fits = mel_windows(mel, starts, fps, length)
    out = None
    index = np.flatnonzero(fits)
    for i in range(0, len(index), batch_size):
        part = torch.from_numpy(index[i:i + batch_size])
        with torch.no_grad():
            emb = syncnet.embed_audio(windows[part].to(syncnet.device)).float().cpu()
        if out is None:
            out = torch.zeros((len(starts), emb.shape[1]))
        out[part] = emb
    if out is None:
        out = torch.zeros((len(starts), 1))
    return out, fits


# --------------------------------------------------------------------------- scoring
def offset_scores(vision: torch.Tensor, vision_starts: np.ndarray, audio: torch.Tensor, audio_fits: np.ndarray,
                  audio_first: int, vshift: int) -> tuple[np.ndarray, int]:
    """Mean distance per shift k in [-vshift, vshift] over windows whose every shifted audio window exists.

    `audio[j]` is the window starting at video frame `audio_first + j`. Using the same windows for every
    shift keeps the means comparable. Returns (distances [2*vshift+1], windows used).
    """
    shifts = np.arange(-vshift, vshift + 1)
    index = vision_starts[:, None] + shifts[None, :] - audio_first          # [Nv, S]
    inside = (index >= 0) & (index < len(audio_fits))
    usable = inside.all(axis=1)
    usable[usable] = audio_fits[index[usable]].all(axis=1)
    if not usable.any():
        return np.full(len(shifts), np.nan), 0
    v = vision[torch.from_numpy(np.flatnonzero(usable))]                    # [n, D]
    a = audio[torch.from_numpy(index[usable])]                              # [n, S, D]
    dist = torch.linalg.vector_norm(v[:, None, :] - a, dim=-1)              # [n, S]
    return dist.mean(dim=0).numpy().astype(np.float64), int(usable.sum())


def score_from_embeddings(vision: torch.Tensor, vision_starts: np.ndarray, syncnet: StableSyncNet, mel: np.ndarray,
                          fps: float, vshift: int = DEFAULT_VSHIFT, skipped: int = 0) -> SyncScore:
    if len(vision_starts) == 0:
        raise FaceError("no 16-frame window with a face in every frame: nothing to score "
                        f"({skipped} windows skipped for missing faces)")
    notes = []
    last_start = int(vision_starts.max())
    vshift = int(vshift)
    # Shrink the search when the clip is too short to see every shift from some window.
    span = last_start - int(vision_starts.min())
    audio_first = int(vision_starts.min()) - vshift
    audio_starts = np.arange(audio_first, last_start + vshift + 1)
    audio, fits = audio_embeddings(syncnet, mel, audio_starts, fps)
    requested = vshift
    distances, used = offset_scores(vision, vision_starts, audio, fits, audio_first, vshift)
    while used == 0 and vshift > 0:
        vshift = vshift // 2
        distances, used = offset_scores(vision, vision_starts, audio, fits, audio_first, vshift)
    if used == 0:
        raise InputMismatchError("the audio is too short for any window of the video; check that audio and "
                                 "video belong together")
    if vshift != requested:
        notes.append(f"clip too short for +-{requested} frames of search; searched +-{vshift}")
    if used < len(vision_starts):
        notes.append(f"{used} of {len(vision_starts)} windows had every shifted audio window (span {span} frames)")
    for note in notes:
        log.info("sync scoring: %s", note)
    best = int(np.argmin(distances))
    confidence = float(np.median(distances) - distances[best])
    return SyncScore(confidence=confidence, offset=vshift - best, min_distance=float(distances[best]),
                     distances=distances, windows=used, vshift=vshift, skipped_windows=skipped, notes=notes)


def _check_fps(fps: float) -> float:
    fps = float(fps)
    if not math.isfinite(fps) or fps <= 0:
        raise InputMismatchError(f"fps must be positive, got {fps}")
    if abs(fps - TRAINED_FPS) > 0.01:
        log.warning("SyncNet was trained on %g fps video; scoring %g fps footage is less reliable "
                    "(resample to 25 fps, as dataset preparation does)", TRAINED_FPS, fps)
    return fps


def _face_stream(frames: Any, resolution: int, aligned: bool, detector: Any, chunk_size: int
                 ) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    """(lower halves, has-face mask) per chunk of `frames`; detects and aligns faces unless `aligned`."""
    from ..face.align import FaceCropper
    from ..face.frames import as_rgb_uint8
    from ..face.track import frame_chunks

    cropper = None if aligned else FaceCropper(detector, resolution)
    for chunk in frame_chunks(frames, chunk_size):
        host.check_interrupt()
        if aligned:
            chunk = as_rgb_uint8(chunk)
            yield syncnet_halves(chunk, resolution), np.ones(len(chunk), bool)
            continue
        crops, info, _ = cropper.process(chunk)
        yield syncnet_halves(crops, resolution), info.valid
    if cropper is not None:
        cropper.finish()


def score_sync(syncnet: StableSyncNet, frames: Any, audio: Any, fps: float = TRAINED_FPS, *,
               sample_rate: int | None = None, aligned: bool = False, detector: Any = "auto",
               vshift: int = DEFAULT_VSHIFT, stride: int = 1, chunk_size: int = 32,
               total_frames: int | None = None) -> SyncScore:
    """Sync confidence and AV offset of a talking-face clip.

    `frames`: [N, H, W, 3] uint8 (or float 0..1) array/tensor, or an iterable of frames or chunks
    (e.g. `iter_video_frames(path, chunk_size=32)`), streamed. `aligned=True` when the frames already
    are LatentSync face crops (a prepared dataset clip, the Face Crop node's output); otherwise faces
    are detected and aligned. `audio`: AudioClip / ComfyUI AUDIO / array with `sample_rate`.
    `stride`: score every stride-th window (1 = all; larger is faster).
    """
    from ..audio.prepare import model_waveform

    fps = _check_fps(fps)
    if int(vshift) < 0:
        raise InputMismatchError(f"vshift must be >= 0, got {vshift}")
    resolution = face_resolution(syncnet.config)
    if resolution is None:
        raise InputMismatchError("this SyncNet's visual encoder does not reduce any square face size to one "
                                 "embedding; it cannot score clips")
    mel = melspectrogram(model_waveform(audio, sample_rate))
    embedder = WindowEmbedder(syncnet, stride)
    with host.Progress(total_frames or 0, "scoring lip sync") as progress:
        for halves, valid in _face_stream(frames, resolution, aligned, detector, chunk_size):
            embedder.feed(halves, valid)
            progress.update(len(valid))
    starts, vision = embedder.result()
    score = score_from_embeddings(vision, starts, syncnet, mel, fps, vshift, embedder.skipped)
    log.info("lip sync: %s", score.summary())
    return score


def score_video_file(syncnet: StableSyncNet, path: Any, *, aligned: bool = False, detector: Any = "auto",
                     vshift: int = DEFAULT_VSHIFT, stride: int = 1) -> SyncScore:
    """`score_sync` on a video file's frames and its own audio track, streamed."""
    from ..media.audio_file import read_audio
    from ..media.video import iter_video_frames, probe_video

    info = probe_video(path)
    if not info.has_audio:
        raise InputMismatchError(f"{path} has no audio track to score against")
    return score_sync(syncnet, iter_video_frames(path, chunk_size=32), read_audio(path), float(info.fps),
                      aligned=aligned, detector=detector, vshift=vshift, stride=stride,
                      total_frames=info.num_frames)
