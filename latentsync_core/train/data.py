"""Training samples from prepared clips: a 16-frame target window, a separate reference window, audio.

Like the official UNetDataset: the target start is uniform over the clip, the reference is another
16-frame window that does not overlap it, the mel window starts at int(80 * start / fps) and must fit.
Per clip, decoded frames, Whisper features and the mel spectrogram are cached (frames in a small
byte-bounded LRU, features and mel always: they are small).
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.manifest import ClipRecord, DatasetError, load_clips
from ..errors import LatentSyncError

log = logging.getLogger("latentsync")

WINDOW = 16
FRAME_CACHE_BYTES = 1 << 30


@dataclass
class Sample:
    clip: str
    start: int
    ref_start: int
    gt: np.ndarray          # uint8 [16, R, R, 3]
    ref: np.ndarray         # uint8 [16, R, R, 3]
    audio: torch.Tensor     # [16, L, C] Whisper chunks
    mel: torch.Tensor       # [1, 80, 52]


class ClipDataset:
    """Random training windows from a manifest (or folder of clips), with per-clip caches."""

    def __init__(self, manifest_or_folder: Path | str, whisper: Any, mel_frames: int = 52,
                 window: int = WINDOW, frame_cache_bytes: int = FRAME_CACHE_BYTES):
        self.root, records = load_clips(manifest_or_folder)
        self.window, self.mel_frames = int(window), int(mel_frames)
        usable = [r for r in records if r.frames >= 2 * self.window]
        self.skipped_short = len(records) - len(usable)
        if self.skipped_short:
            log.info("training data: %d clips shorter than %d frames skipped (a target and a separate "
                     "reference window are needed)", self.skipped_short, 2 * self.window)
        if not usable:
            raise DatasetError(f"no clip in {manifest_or_folder} has at least {2 * self.window} frames "
                               f"({len(records)} clips listed)")
        resolutions = {r.resolution for r in usable}
        if len(resolutions) > 1:
            raise DatasetError(f"the dataset mixes face resolutions {sorted(resolutions)}; prepare it at one "
                               "resolution (256 for LatentSync 1.5, 512 for 1.6)")
        self.records: list[ClipRecord] = usable
        self.resolution = resolutions.pop()
        self.whisper = whisper
        self._frames: OrderedDict[str, np.ndarray] = OrderedDict()
        self._frame_bytes = 0
        self._frame_cache_bytes = int(frame_cache_bytes)
        self._audio: dict[str, tuple[Any, np.ndarray]] = {}
        self.failures: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.records)

    # ------------------------------------------------------------------ caches
    def _clip_frames(self, record: ClipRecord) -> np.ndarray:
        from ..media.video import read_video

        key = record.clip
        if key in self._frames:
            self._frames.move_to_end(key)
            return self._frames[key]
        frames, _ = read_video(record.path(self.root))
        if frames.shape[1] != frames.shape[2]:
            raise DatasetError(f"{record.path(self.root)} is {frames.shape[2]}x{frames.shape[1]}: training clips "
                               "must be square aligned faces (use the dataset preparation)")
        self._frames[key] = frames
        self._frame_bytes += frames.nbytes
        while self._frame_bytes > self._frame_cache_bytes and len(self._frames) > 1:
            _, dropped = self._frames.popitem(last=False)
            self._frame_bytes -= dropped.nbytes
        return frames

    def _clip_audio(self, record: ClipRecord, num_frames: int) -> tuple[Any, np.ndarray]:
        from ..audio import audio_features_for_video
        from ..media.audio_file import read_audio
        from ..syncnet.mel import melspectrogram

        key = record.clip
        if key not in self._audio:
            clip = read_audio(record.path(self.root))
            waveform = clip.to_model_audio(16000)
            features = audio_features_for_video(self.whisper, waveform, 16000, num_frames, record.fps)
            self._audio[key] = (features, melspectrogram(waveform))
        return self._audio[key]

    # ------------------------------------------------------------------ sampling
    def sample(self, rng: np.random.Generator, attempts: int = 20) -> Sample:
        """One random training window; clips that fail to load are reported once and avoided."""
        for _ in range(attempts):
            record = self.records[int(rng.integers(len(self.records)))]
            if record.clip in self.failures:
                continue
            try:
                drawn = self._draw(record, rng)
            except LatentSyncError as exc:
                self.failures[record.clip] = str(exc)
                log.warning("training data: skipping %s: %s", record.clip, exc)
                continue
            if drawn is not None:
                return drawn
        if len(self.failures) == len(self.records):
            raise DatasetError("no clip of the dataset could be loaded: " + "; ".join(
                f"{k}: {v}" for k, v in list(self.failures.items())[:3]))
        raise DatasetError(f"no usable training window found in {attempts} tries (clips too short for their audio?)")

    def _draw(self, record: ClipRecord, rng: np.random.Generator) -> Sample | None:
        from ..syncnet.mel import mel_window_start

        frames = self._clip_frames(record)
        n, w = len(frames), self.window
        if n < 2 * w:
            raise DatasetError(f"{record.clip} decodes to {n} frames, fewer than {2 * w}")
        features, mel = self._clip_audio(record, n)
        # Only starts that leave room for a non-overlapping reference window (with n < 3w, not every one does).
        starts = [s for s in range(0, n - w + 1) if s >= w or s + 2 * w <= n]
        start = int(starts[int(rng.integers(len(starts)))])
        first = mel_window_start(start, record.fps)
        if first + self.mel_frames > mel.shape[1]:
            return None  # the official dataset also redraws when the mel window runs past the audio
        choices = [s for s in range(0, n - w + 1) if s <= start - w or s >= start + w]
        ref_start = int(choices[int(rng.integers(len(choices)))])
        return Sample(record.clip, start, ref_start, frames[start:start + w], frames[ref_start:ref_start + w],
                      features.chunk_range(start, start + w),
                      torch.from_numpy(np.ascontiguousarray(mel[:, first:first + self.mel_frames]))[None])
