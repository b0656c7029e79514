"""What every node module shares: the category, the custom type names, and input checks.

Not a node module itself (it is absent from `_NODE_MODULES`). The checks here only verify that a
socket received the kind of value its type promises and turn ComfyUI's loose typing into a
LatentSyncError naming the input; everything else lives in latentsync_core.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from latentsync_core import host
from latentsync_core.errors import InputMismatchError, LatentSyncError

log = logging.getLogger("latentsync")

CATEGORY = "LatentSync"

UNET = "LATENTSYNC_UNET"
WHISPER = "LATENTSYNC_WHISPER"
FACE_DETECTOR = "LATENTSYNC_FACE_DETECTOR"
AUDIO_FEATURES = "LATENTSYNC_AUDIO"
FACES = "LATENTSYNC_FACES"

# 30000/1001 reaches us as the float 29.97002997...; within this relative distance two rates are one.
FPS_TOLERANCE = 1e-5

FPS_INPUT = ("FLOAT", {"default": 25.0, "min": 1.0, "max": 240.0, "step": 0.001,
                       "tooltip": "Frame rate of the video: connect GetVideoComponents' fps output."})


def require_model(value: Any, kind: str, input_name: str, loader: str):
    """The manage_model handle on `input_name`, or a LatentSyncError saying which loader to connect."""
    if not host.is_managed(value, kind):
        got = "nothing" if value is None else f"a {type(value).__name__}"
        raise LatentSyncError(f"the {input_name!r} input received {got}; connect a {loader} node to it")
    return value


def same_fps(a: Any, b: Any) -> bool:
    a, b = float(a), float(b)
    return abs(a - b) <= FPS_TOLERANCE * max(abs(a), abs(b))


# --------------------------------------------------------------------------- values on the custom sockets
@dataclass
class DetectorSettings:
    """LATENTSYNC_FACE_DETECTOR: a detector backend plus how to track with it (a fresh tracker per video)."""

    detector: Any  # latentsync_core.face.FaceDetector
    every_k: int = 1
    smoothing: float = 0.0
    face_choice: Any = "largest"


@dataclass
class AlignedFaces:
    """LATENTSYNC_FACES: the aligned crops of one video and what is needed to sample and paste them.

    crops uint8 [N, R, R, 3]; info: latentsync_core.face.FaceCropInfo (affines, boxes, valid flags, crop
    and frame sizes); mouth_mask float [R, R], 1 where the model regenerates, drawn with face.mouth_mask's
    `mask_shape`; fps of the video.
    """

    crops: np.ndarray
    info: Any
    mouth_mask: torch.Tensor
    mask_shape: str
    fps: float

    def __len__(self) -> int:
        return len(self.crops)

    @property
    def resolution(self) -> int:
        return int(self.info.resolution)


def require_faces(value: Any, input_name: str = "face_data") -> AlignedFaces:
    if not isinstance(value, AlignedFaces):
        got = "nothing" if value is None else f"a {type(value).__name__}"
        raise LatentSyncError(f"the {input_name!r} input received {got}; connect the face_data output of a "
                              "Face Crop & Align (LatentSync) node to it")
    return value


# --------------------------------------------------------------------------- U-Net resolution
def unet_resolution(unet_module: Any) -> int | None:
    """The face size the U-Net was trained at, when its checkpoint says so (official 1.5: 256, 1.6: 512)."""
    value = getattr(unet_module, "trained_resolution", None)
    return int(value) if value else None


OFFICIAL_WIDTHS = [320, 640, 1280, 1280]


def auto_resolution(unet_module: Any) -> int:
    """The face resolution to align at for this U-Net.

    The trained resolution when the checkpoint says (a sidecar .yaml or a version in its path); for
    the official shape otherwise, LatentSync 1.6's 512 px, as the CLI assumes (the two releases have
    identical tensors, so this is logged with the way to choose 256); for a U-Net of another shape
    (test fixtures, experiments), the smallest size that still leaves 2 x 2 latents at its deepest level.
    """
    from latentsync_core.pipeline.models import DEFAULT_RESOLUTION

    known = unet_resolution(unet_module)
    if known:
        return known
    widths = list(unet_module.config["block_out_channels"])
    if widths == OFFICIAL_WIDTHS:
        log.warning("resolution auto: the U-Net file does not say whether it is LatentSync 1.5 (256 px) or 1.6 "
                    "(512 px); using %d. Choose resolution 256 for 1.5, or put '<checkpoint>.yaml' with "
                    "'resolution: 256' beside the file", DEFAULT_RESOLUTION)
        return DEFAULT_RESOLUTION
    return 8 * 2 ** len(widths)


def check_fps_match(faces_fps: float, audio_fps: float) -> None:
    if not same_fps(faces_fps, audio_fps):
        raise InputMismatchError(
            f"the audio features were cut for {float(audio_fps):g} fps but the faces come from a "
            f"{float(faces_fps):g} fps video: connect GetVideoComponents' fps output to the fps inputs of both "
            "Audio Features and Face Crop & Align")


def sampler_inputs() -> dict[str, tuple]:
    """The denoising settings, shared by the Sampler and the all-in-one node (defaults: the official run)."""
    from latentsync_core.pipeline import SamplerOptions
    from latentsync_core.sampler import NOISE_MODES, scheduler_names

    defaults = SamplerOptions()
    return {
        "seed": ("INT", {"default": defaults.seed, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                         "tooltip": "Seed of the initial noise and the VAE samples; the same seed gives the same video."}),
        "steps": ("INT", {"default": defaults.steps, "min": 1, "max": 200, "tooltip":
                          "Denoising steps per 16-frame window (official: 20)."}),
        "cfg": ("FLOAT", {"default": defaults.guidance, "min": 0.0, "max": 10.0, "step": 0.05, "tooltip":
                          "Audio guidance scale (official: 1.5). Higher follows the audio more strongly; 1.0 "
                          "halves the work by skipping the unconditioned pass."}),
        "scheduler": (scheduler_names(), {"default": defaults.scheduler, "tooltip":
                                          "ddim is the official sampler; dpmpp_2m and euler reach similar quality "
                                          "in fewer steps."}),
        "deepcache_interval": ("INT", {"default": defaults.deepcache_interval, "min": 0, "max": 10, "tooltip":
                                       "DeepCache: run the full U-Net only every N steps and reuse its deep "
                                       "features in between (about 2x faster at 3; 0 = off, exact)."}),
        "noise_mode": (list(NOISE_MODES), {"default": defaults.noise_mode, "tooltip":
                                           "shared: one noise for the whole video (official, steadiest texture); "
                                           "per-window / per-frame: fresh noise per window or per frame."}),
        "silence_gating": ("BOOLEAN", {"default": False, "tooltip":
                                       "Keep the original mouth on frames marked silent (turn on silence "
                                       "detection in Audio Features): no mumbling during pauses."}),
    }


def sampler_options(seed: int, steps: int, cfg: float, scheduler: str, deepcache_interval: int, noise_mode: str):
    from latentsync_core.pipeline import SamplerOptions

    try:
        return SamplerOptions(steps=int(steps), guidance=float(cfg), deepcache_interval=int(deepcache_interval),
                              scheduler=scheduler, noise_mode=noise_mode, seed=int(seed))
    except ValueError as exc:
        raise LatentSyncError(f"invalid sampler setting: {exc}") from exc
