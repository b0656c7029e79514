"""Everything a lip-sync run can be told, official behaviour by default."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .stages import SamplerOptions


@dataclass
class LipsyncOptions:
    """Options of `LipsyncEngine` and of the streaming runner (`pipeline.lipsync`).

    resolution: face crop size R (None: the U-Net's trained resolution). loop_mode / tail_mode: see
    pipeline.source. silence: mark silent frames (True or an audio.SilenceOptions) and keep their
    original mouth. max_frames: stop after this many output frames (previews, tests). chunk_size:
    frames decoded and face-tracked at a time; max_span: the most output frames one window may
    stretch over (a face gap closes it early), together they bound the frames held in memory.
    frame_spacing: "auto" (training-rate spacing above 37.5 fps: windows of frames ~1/25 s apart,
    see sampler.windows), "off", or a stride. official_length: the output as long as the official
    pipeline makes it for the same audio (its Whisper chunk count; else: frames that start before the
    audio ends). batch: windows per U-Net call, or "auto" (from free GPU memory; halved on OOM).
    compile: torch.compile the U-Net. channels_last: NHWC convolutions (None: on for CUDA; the CLI's
    choice). prefetch: chunks decoded and face-tracked ahead in a background thread (0: none, all on
    the calling thread). lazy_whisper: compute the Whisper features window by window as the stream
    reaches them (the encoder stays available, on the offload device after the first window) instead
    of for the whole clip first. blend: how regenerated faces are pasted into their frames, "crop_box"
    (the official paste) or "seamless" (face.blend: feathered mask edge, colour matched to the frame).
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
    frame_spacing: Any = "auto"
    official_length: bool = True
    batch: Any = 1
    compile: bool = False
    channels_last: bool | None = False
    prefetch: int = 2
    blend: str = "crop_box"  # face.restore BLENDS: crop_box (official) or seamless (face.blend)
    lazy_whisper: bool = True  # Whisper features 30 s at a time as the frames need them (not the whole clip's)
