"""Short test clips for the node and workflow tests: a moving real face (no decoding of 1080p HEVC).

`face_frames` animates skimage's astronaut photo (a real face dlib finds) along a small circular
path; `speech_like_audio` is a voiced/pause pattern so silence detection has something to find;
`write_face_clip` writes both as an mp4 with an AAC track; `trimmed_shared_clip` crops the face
region of the first frames of a shared demo clip (for the real-ComfyUI test).
"""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np

CLIP_SIZE = 320  # the astronaut's face box is ~87 px: above dlib's 80 px HOG window at this scale
CLIP_FPS = 25
AUDIO_RATE = 44100


def face_frames(num_frames: int = 20, size: int = CLIP_SIZE, radius: float = 6.0) -> np.ndarray:
    """uint8 [N, size, size, 3]: a window over the astronaut photo circling `radius` px around the face."""
    from skimage.data import astronaut

    photo = astronaut()
    x0, y0 = 60, 10  # window origin putting the face (x 179-266, y 83-170 in the photo) near the centre
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for i in range(num_frames):
        angle = 2 * math.pi * i / max(num_frames, 1)
        dx, dy = round(radius * math.cos(angle)), round(radius * math.sin(angle))
        frames[i] = photo[y0 + dy:y0 + dy + size, x0 + dx:x0 + dx + size]
    return frames


def speech_like_audio(seconds: float, sample_rate: int = AUDIO_RATE, channels: int = 2, seed: int = 0,
                      voiced_s: float = 0.24, pause_s: float = 0.4) -> np.ndarray:
    """float32 [channels, T]: voiced bursts (harmonics + noise) of `voiced_s`, each followed by `pause_s` of
    near silence (at 25 fps the defaults make frames 0-5 speech and 6-15 a pause)."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 6)) + 0.2 * rng.standard_normal(t.shape)
    gate = (np.mod(t, voiced_s + pause_s) < voiced_s).astype(np.float64)
    mono = 0.3 * voiced * gate + 1e-4 * rng.standard_normal(t.shape)
    return np.repeat(mono[None].astype(np.float32), channels, axis=0)


def write_face_clip(path: Path, num_frames: int = 20, fps: int | Fraction = CLIP_FPS, with_audio: bool = True) -> Path:
    from latentsync_core.media.audio_file import AudioClip
    from latentsync_core.media.writer import write_video

    audio = AudioClip(speech_like_audio(num_frames / float(fps)), AUDIO_RATE) if with_audio else None
    return write_video(path, face_frames(num_frames), fps, audio=audio)


def write_audio_file(path: Path, seconds: float, sample_rate: int = AUDIO_RATE) -> Path:
    """A wav of `speech_like_audio` (stdlib wave: 16-bit PCM)."""
    import wave

    samples = speech_like_audio(seconds, sample_rate)
    pcm = (np.clip(samples.T, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(samples.shape[0])
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return path


def trimmed_shared_clip(source: Path, path: Path, num_frames: int = 20) -> Path:
    """The first frames of a 1080x1920 demo clip, cropped to 400x400 around the face and halved, with their audio."""
    from latentsync_core.media.audio_file import read_audio
    from latentsync_core.media.video import iter_video_frames, probe_video
    from latentsync_core.media.writer import write_video

    info = probe_video(source)
    left, top, side = 280, 460, 800  # the sitting speaker's head in demo1/demo2
    frames = np.stack([frame[top:top + side:2, left:left + side:2]
                       for frame in iter_video_frames(source, max_frames=num_frames)])
    audio = read_audio(source).trimmed(num_frames / float(info.fps)) if info.has_audio else None
    return write_video(path, frames, info.fps, audio=audio)
