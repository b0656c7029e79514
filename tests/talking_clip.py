"""Synthetic talking clips whose mouth opening follows the audio loudness, for the SyncNet, data-prep and
trainer tests: a real sync signal a tiny model can learn in seconds, and a known offset when shifted.

`talking_faces`: aligned 64 px face crops (the astronaut photo) with a dark mouth whose height follows a
per-frame envelope; `envelope_audio`: 16 kHz voiced sound gated by the same envelope;
`write_talking_video`: a full frame (a face dlib finds) with that mouth, muxed with the audio.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

FPS = 25
RATE = 16000


def mouth_envelope(num_frames: int, seed: int = 0) -> np.ndarray:
    """[N] in 0..1: syllable-like bursts (a random on/off pattern, lightly smoothed)."""
    rng = np.random.default_rng(seed)
    return np.clip(np.convolve(rng.random(num_frames) > 0.6, np.ones(3) / 3, "same"), 0.0, 1.0)


def envelope_audio(envelope: np.ndarray, fps: float = FPS, rate: int = RATE, seed: int = 0,
                   shift_frames: int = 0) -> np.ndarray:
    """float32 [T] mono: a voiced tone + noise gated by `envelope`, delayed by `shift_frames` video frames."""
    rng = np.random.default_rng(seed + 1)
    t = np.arange(int(round(len(envelope) / fps * rate))) / rate
    frame = np.clip((t * fps).astype(int) - shift_frames, 0, len(envelope) - 1)
    gate = envelope[frame] * ((t * fps) >= shift_frames)
    voiced = 0.5 * np.sin(2 * np.pi * 220 * t) + 0.3 * rng.standard_normal(t.shape)
    return (voiced * gate + 1e-3 * rng.standard_normal(t.shape)).astype(np.float32)


def _paint_mouth(image: np.ndarray, openness: float, centre_y: int, half_width: int, max_height: int) -> None:
    height = int(2 + max_height * openness)
    cx = image.shape[1] // 2
    image[centre_y - height // 2: centre_y + height // 2 + 1, cx - half_width: cx + half_width] = 10


def talking_faces(envelope: np.ndarray, size: int = 64) -> np.ndarray:
    """uint8 [N, size, size, 3] aligned-face-like crops; the lower half carries the mouth."""
    from PIL import Image
    from skimage.data import astronaut

    face = np.asarray(Image.fromarray(astronaut()[0:300, 100:400]).resize((size, size)), dtype=np.uint8)
    frames = np.repeat(face[None], len(envelope), 0).copy()
    for i, openness in enumerate(envelope):
        _paint_mouth(frames[i], openness, centre_y=int(size * 0.72), half_width=int(size * 0.41),
                     max_height=int(size * 0.4))
    return frames


def write_talking_video(path: Path, num_frames: int, seed: int = 0, fps: int | Fraction = FPS,
                        shift_frames: int = 0, cut_at: int | None = None) -> Path:
    """An mp4 of the animated astronaut (320 px, a face dlib finds) whose mouth follows the audio.

    `cut_at`: from that frame on, the picture is mirrored and colour-inverted (a hard scene cut).
    """
    from latentsync_core.media.audio_file import AudioClip
    from latentsync_core.media.writer import write_video
    from tests.node_media import face_frames

    envelope = mouth_envelope(num_frames, seed)
    frames = face_frames(num_frames)
    for i, openness in enumerate(envelope):
        # The astronaut's mouth sits near (x 222, y 158) of the photo, (162, 148) in this window.
        _paint_mouth(frames[i], openness, centre_y=152, half_width=14, max_height=10)
    if cut_at is not None:
        frames[cut_at:] = 255 - frames[cut_at:, :, ::-1]
    audio = envelope_audio(envelope, float(fps), RATE, seed, shift_frames)
    return write_video(path, frames, fps, audio=AudioClip(audio[None], RATE))


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Run a module's tests on one intra-op thread (autouse where imported).

    On the shared 2-core CI machine, 2 threads made a tiny training step 10-40x slower than 1 (threads
    waiting on each other while the other core is busy); measured: 0.11 s vs 1.7-4.9 s per U-Net step.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
