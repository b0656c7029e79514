"""Conversions between ComfyUI's IMAGE / AUDIO / VIDEO values and this package's numpy media types.

Pure torch/numpy, no ComfyUI import: ComfyUI's types are used by shape and by duck typing.

* IMAGE: float tensor ``[B, H, W, C]`` in 0..1 (C is 3; 1 and 4 are tolerated).
* AUDIO: ``{"waveform": tensor [B, C, T], "sample_rate": int}``.
* VIDEO: an object whose ``get_components()`` returns something with ``.images`` (IMAGE),
  ``.audio`` (AUDIO or None) and ``.frame_rate``; or, here, simply a path to a video file.
"""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from .errors import AudioError, MediaError
from .media.audio_file import AudioClip, read_audio
from .media.video import probe_video, read_video

# Frames converted per step: bounds the float temporaries to a few frames whatever the batch size.
_CONVERT_BATCH = 8


def image_to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """IMAGE ``[B, H, W, C]`` (or one ``[H, W, C]``) float 0..1 -> uint8 RGB ``[B, H, W, 3]``.

    Values are clamped to 0..1 and rounded. Gray (C=1) is repeated to RGB; RGBA (C=4) and
    gray+alpha (C=2) drop the alpha channel (no compositing: the colour values are kept as they are).
    """
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(image)
    if not isinstance(image, torch.Tensor):
        raise MediaError(f"expected an IMAGE tensor [B, H, W, C], got {type(image).__name__}")
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[-1] not in (1, 2, 3, 4):
        raise MediaError(f"expected an IMAGE tensor [B, H, W, C] with C in 1..4, got shape {tuple(image.shape)}")
    colour = image[..., :3] if image.shape[-1] >= 3 else image[..., :1]
    batch, height, width = colour.shape[:3]
    out = np.empty((batch, height, width, 3), dtype=np.uint8)
    for start in range(0, batch, _CONVERT_BATCH):
        part = colour[start:start + _CONVERT_BATCH].detach().to("cpu", torch.float32)
        part = torch.nan_to_num(part, nan=0.0).clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
        out[start:start + len(part)] = part.expand(-1, -1, -1, 3).numpy()
    return out


def uint8_to_image(frames: np.ndarray) -> torch.Tensor:
    """uint8 RGB ``[B, H, W, 3]`` (or one ``[H, W, 3]``) -> IMAGE float32 tensor ``[B, H, W, 3]`` in 0..1."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise MediaError(f"expected uint8 frames [B, H, W, 3], got {frames.dtype} {frames.shape}")
    out = torch.empty(frames.shape, dtype=torch.float32)
    for start in range(0, len(frames), _CONVERT_BATCH):
        part = torch.from_numpy(np.ascontiguousarray(frames[start:start + _CONVERT_BATCH]))
        out[start:start + len(part)] = part.to(torch.float32).div_(255.0)
    return out


def audio_to_clip(audio: dict, batch_index: int = 0) -> AudioClip:
    """AUDIO ``{"waveform": [B, C, T], "sample_rate": int}`` -> one ``AudioClip`` (float32 [C, T])."""
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise AudioError(f"expected an AUDIO dict with 'waveform' and 'sample_rate', got {type(audio).__name__}"
                         + (f" with keys {sorted(audio)}" if isinstance(audio, dict) else ""))
    waveform = audio["waveform"]
    if isinstance(waveform, np.ndarray):
        waveform = torch.from_numpy(waveform)
    if not isinstance(waveform, torch.Tensor):
        raise AudioError(f"AUDIO waveform must be a tensor, got {type(waveform).__name__}")
    if waveform.ndim == 2:  # [C, T]: some nodes drop the batch axis
        waveform = waveform.unsqueeze(0)
    if waveform.ndim != 3:
        raise AudioError(f"AUDIO waveform must be [batch, channels, samples], got shape {tuple(waveform.shape)}")
    if not -waveform.shape[0] <= batch_index < waveform.shape[0]:
        raise AudioError(f"AUDIO batch has {waveform.shape[0]} items, index {batch_index} is out of range")
    if waveform.shape[1] == 0 or waveform.shape[2] == 0:
        raise AudioError(f"AUDIO input is empty (waveform shape {tuple(waveform.shape)})")
    sample_rate = int(audio["sample_rate"])
    if sample_rate <= 0:
        raise AudioError(f"AUDIO sample_rate must be positive, got {audio['sample_rate']!r}")
    samples = waveform[batch_index].detach().to("cpu", torch.float32).numpy()
    return AudioClip(np.array(samples, dtype=np.float32, copy=True), sample_rate)


def clip_to_audio(clip: AudioClip) -> dict:
    """``AudioClip`` -> AUDIO dict with waveform float32 ``[1, C, T]``."""
    waveform = torch.from_numpy(np.ascontiguousarray(clip.samples, dtype=np.float32).copy()).unsqueeze(0)
    return {"waveform": waveform, "sample_rate": int(clip.sample_rate)}


def video_components(video: Any) -> tuple[torch.Tensor, dict | None, Fraction]:
    """ComfyUI VIDEO (duck-typed ``get_components()``) or a video file path -> (IMAGE, AUDIO | None, fps)."""
    if isinstance(video, (str, os.PathLike)):
        info = probe_video(video)
        frames, fps = read_video(video)
        audio = clip_to_audio(read_audio(video)) if info.has_audio else None
        return uint8_to_image(frames), audio, fps
    get_components = getattr(video, "get_components", None)
    if not callable(get_components):
        raise MediaError(f"expected a VIDEO (with get_components()) or a video file path, got {type(video).__name__}")
    components = get_components()
    images = components.images
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise MediaError(f"VIDEO components have no IMAGE batch [B, H, W, C] (got {type(images).__name__})")
    if images.shape[-1] != 3 or images.dtype != torch.float32:
        images = uint8_to_image(image_to_uint8(images))
    audio = getattr(components, "audio", None)
    if audio is not None:
        audio = clip_to_audio(audio_to_clip(audio))
    rate = components.frame_rate
    try:
        fps = rate if isinstance(rate, Fraction) else Fraction(rate).limit_denominator(1_000_000)
    except (TypeError, ValueError) as exc:
        raise MediaError(f"VIDEO frame_rate is not a number: {rate!r}") from exc
    if fps <= 0:
        raise MediaError(f"VIDEO frame_rate must be positive, got {rate!r}")
    return images, audio, fps
