"""`lipsync(video, audio, out_path, ...)`: the whole pipeline on files, streaming, for any length."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import host
from ..errors import AudioError, InputMismatchError
from ..profile import stage
from .source import IMAGE_SUFFIXES, FrameSource, check_modes, output_length
from .engine import LipsyncEngine
from .options import LipsyncOptions
from .prefetch import BackgroundSink
from .streaming import StreamStats

log = logging.getLogger("latentsync")


@dataclass
class LipsyncResult:
    path: Path
    frames: int
    fps: Fraction
    seconds: float  # wall time of the run
    stats: StreamStats

    @property
    def video_seconds(self) -> float:
        return float(self.frames / self.fps)


def _audio_clip(audio: Any):
    """(AudioClip for the features, what the writer muxes: the file itself when there is one)."""
    from ..media.audio_file import AudioClip, read_model_audio

    if isinstance(audio, AudioClip):
        return audio, audio
    if isinstance(audio, dict) and "waveform" in audio:
        from ..convert import audio_to_clip

        clip = audio_to_clip(audio)
        return clip, clip
    path = Path(audio)
    # Only the 16 kHz mono copy the models read is held (decoded and resampled block by block); the
    # writer muxes the file itself.
    return read_model_audio(path), path


def prepare_audio(whisper: Any, clip: Any, video_frames: int, fps: Fraction, options: LipsyncOptions):
    """(output frame count, FrameAudio for those frames)."""
    from ..audio import audio_features_for_video, frames_with_audio, official_frame_count

    audio_frames = frames_with_audio(clip.num_samples, clip.sample_rate, fps)
    if audio_frames >= 1 and options.official_length:
        # The official makes one frame per Whisper chunk: 1-2 frames past the audio's end (not regenerated here).
        audio_frames = official_frame_count(clip.num_samples, clip.sample_rate, fps)
    if audio_frames < 1:
        raise AudioError("the audio is empty: give a clip with sound to lip-sync to")
    total = output_length(video_frames, audio_frames, options.loop_mode, options.tail_mode)
    if options.max_frames is not None:
        total = max(1, min(total, int(options.max_frames)))
    # Lazy: Whisper windows are computed as the frames reach them, so memory stays flat in the audio's length.
    features = audio_features_for_video(whisper, clip, None, total, fps, silence=options.silence or None,
                                        lazy=options.lazy_whisper)
    return total, features


def lipsync(video: str | Path | np.ndarray, audio: Any, out_path: str | Path, *, unet: Any, vae: Any, whisper: Any,
            detector: Any = "auto", options: LipsyncOptions | None = None, fps: float | None = None,
            engine: Any = None) -> LipsyncResult:
    """Lip-sync `video` (file, still image, or uint8 frames [N, H, W, 3] at `fps`) to `audio` (file,
    AudioClip or ComfyUI AUDIO) and write an H.264 mp4 with the original audio to `out_path`.

    Streams: decoded frames, face crops and restored frames are held only for the current window, so
    memory does not grow with the video's length or resolution. Nothing is left at `out_path` when it
    fails or is interrupted (host.check_interrupt runs between windows and steps). `engine`: a
    LipsyncEngine to run (default: one made from `unet`, `vae` and `options`).
    """
    from ..media.writer import VideoWriter
    from ..vae import as_latent_vae

    started = time.perf_counter()
    options = options or LipsyncOptions()
    check_modes(options.loop_mode, options.tail_mode)
    if options.resolution is None:
        resolution = getattr(unet, "trained_resolution", None)
        if resolution is None:
            raise InputMismatchError("cannot tell the face resolution from this U-Net: set options.resolution "
                                     "(256 for LatentSync 1.5, 512 for 1.6)")
        options = _with(options, resolution=int(resolution))
    vae = as_latent_vae(vae)
    is_file_video = isinstance(video, (str, Path)) and Path(video).suffix.lower() not in IMAGE_SUFFIXES
    source = FrameSource.open(video, fps=fps if fps is not None or is_file_video else options.still_fps)
    with stage("audio_load"):
        clip, mux_audio = _audio_clip(audio)
    with stage("whisper"):
        total, frame_audio = prepare_audio(whisper, clip, source.num_frames, source.fps, options)
    if options.offload_whisper and not options.lazy_whisper and isinstance(whisper, torch.nn.Module):
        # All features are computed: its memory goes to the U-Net's windows. Lazy features still need it.
        host.release_module(whisper)
    host.empty_cache()
    log.info("lip-sync: %d output frames at %s fps from %d source frames (%s), audio %.2f s, %d px faces",
             total, source.fps, source.num_frames, options.loop_mode, frame_audio.audio_seconds, options.resolution)
    silent = frame_audio.silent.numpy() if frame_audio.silent is not None else None

    def regenerate(i: int) -> bool:
        return i < frame_audio.frames_with_audio and (silent is None or not silent[i])

    def audio_chunks(indices: list[int]) -> torch.Tensor:
        return torch.cat([frame_audio.chunk_range(i, i + 1) for i in indices])

    stats = StreamStats()
    engine = engine or LipsyncEngine.from_options(unet, vae, options)

    @stage("encode")
    def encode(frame: np.ndarray) -> None:
        writer.write(frame)

    with VideoWriter(out_path, source.fps, audio=mux_audio, crf=options.crf) as writer:
        # The encoder runs on its own thread (a bounded queue), overlapping the model's windows.
        sink = BackgroundSink(encode, depth=8) if options.prefetch > 0 else None
        try:
            for frame in engine.stream(source, total, audio_chunks, detector, regenerate=regenerate,
                                       loop_mode=options.loop_mode, chunk_size=options.chunk_size,
                                       tracker=options.tracker, stats=stats, prefetch=options.prefetch,
                                       blend=options.blend):
                sink.put(frame) if sink is not None else encode(frame)
        finally:
            if sink is not None:
                sink.close()
    elapsed = time.perf_counter() - started
    log.info("wrote %s: %d frames, %d windows, %d frames regenerated, %.1f s", out_path, stats.frames,
             stats.windows, stats.regenerated, elapsed)
    return LipsyncResult(Path(out_path), stats.frames, source.fps, elapsed, stats)


def _with(options: LipsyncOptions, **changes) -> LipsyncOptions:
    from dataclasses import replace

    return replace(options, **changes)
