"""What every node module shares: the category, the custom socket types, shared inputs and input checks.

Not a node module itself (it is absent from `_NODE_MODULES`). The checks here only verify that a
socket received the kind of value its type promises and turn ComfyUI's loose typing into a
LatentSyncError naming the input; everything else lives in latentsync_core.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from comfy_api.latest import io

from latentsync_core import host
from latentsync_core.errors import LatentSyncError

log = logging.getLogger("latentsync")

CATEGORY = "LatentSync"

UNET = "LATENTSYNC_UNET"
WHISPER = "LATENTSYNC_WHISPER"
FACE_DETECTOR = "LATENTSYNC_FACE_DETECTOR"
AUDIO_FEATURES = "LATENTSYNC_AUDIO"
FACES = "LATENTSYNC_FACES"

# The V3 socket types of the values above (the type names are what saved workflows store on their links).
UnetType = io.Custom(UNET)
WhisperType = io.Custom(WHISPER)
FaceDetectorType = io.Custom(FACE_DETECTOR)
AudioFeaturesType = io.Custom(AUDIO_FEATURES)
FacesType = io.Custom(FACES)




def fps_input() -> io.Float.Input:
    return io.Float.Input("fps", default=25.0, min=1.0, max=240.0, step=0.001,
                          tooltip="Frame rate of the video: connect GetVideoComponents' fps output.")


def output(kind, name: str, tooltip: str):
    """An output socket shown as `name`. Its id gets a suffix because V3 ids must differ from input ids
    (Length Adjust and Paste Back return `images`, Train returns `unet`); the UI and API see only the name."""
    return kind.Output(f"{name}_out", display_name=name, tooltip=tooltip)


def require_model(value: Any, kind: str, input_name: str, loader: str):
    """The manage_model handle on `input_name`, or a LatentSyncError saying which loader to connect."""
    if not host.is_managed(value, kind):
        got = "nothing" if value is None else f"a {type(value).__name__}"
        raise LatentSyncError(f"the {input_name!r} input received {got}; connect a {loader} node to it")
    return value


def require_choice(value: Any, options: list, input_name: str):
    """`value` when it is one of `options`. ComfyUI 0.3.64 does not check V3 combo values itself, so an API
    prompt could send anything; this names the input and the valid choices instead of failing deeper down."""
    if value not in options:
        raise LatentSyncError(f"the {input_name!r} input is {value!r}; choose one of: "
                              f"{', '.join(str(o) for o in options)}")
    return value


# --------------------------------------------------------------------------- values on the custom sockets
@dataclass
class DetectorSettings:
    """LATENTSYNC_FACE_DETECTOR: a detector backend plus how to track with it (a fresh tracker per video)."""

    detector: Any  # latentsync_core.face.FaceDetector
    every_k: int = 1
    smoothing: float = 0.0
    face_choice: Any = "largest"


# LATENTSYNC_FACES carries latentsync_core.pipeline.AlignedFaces (crops, affines, valid flags, exact fps).


def require_faces(value: Any, input_name: str = "face_data"):
    from latentsync_core.pipeline import AlignedFaces

    if not isinstance(value, AlignedFaces):
        got = "nothing" if value is None else f"a {type(value).__name__}"
        raise LatentSyncError(f"the {input_name!r} input received {got}; connect the face_data output of a "
                              "Face Crop & Align (LatentSync) node to it")
    return value


# --------------------------------------------------------------------------- IMAGE values, clamped
_OVERSHOOT = "latentsync_overshoot"


def clamped_image(raw: torch.Tensor) -> torch.Tensor:
    """`raw` clamped to 0..1, ComfyUI's IMAGE convention, remembering what the clamp cut off.

    The VAE's decode overshoots 0..1 a little, and the official restore (which the streaming path
    follows) resizes and warps the faces before clipping. Paste Back adds the overshoot back
    (`unclamped_frames`) so the graph still gives the stream's frames. It is kept sparse (only the
    values outside 0..1), so it costs next to nothing with real weights; a node in between that makes
    a new tensor drops it, and Paste Back then works on the clamped values it was given.
    """
    image = raw.clamp(0.0, 1.0)
    setattr(image, _OVERSHOOT, (raw - image).to_sparse())
    return image


def unclamped_frames(image: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Frames `index` of an IMAGE with the overshoot `clamped_image` cut off added back (when it has one)."""
    frames = image[index]
    overshoot = getattr(image, _OVERSHOOT, None)
    if overshoot is not None and overshoot.shape == image.shape:
        frames = frames + overshoot.index_select(0, index).to_dense()
    return frames


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


def sampler_inputs() -> list:
    """The denoising settings, shared by the Sampler and the all-in-one node (defaults: the official run)."""
    from latentsync_core.pipeline import SamplerOptions
    from latentsync_core.sampler import NOISE_MODES, scheduler_names

    defaults = SamplerOptions()
    return [
        io.Int.Input("seed", default=defaults.seed, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip="Seed of the initial noise and the VAE samples; the same seed gives the same video."),
        io.Int.Input("steps", default=defaults.steps, min=1, max=200,
                     tooltip="Denoising steps per 16-frame window (official: 20)."),
        io.Float.Input("cfg", default=defaults.guidance, min=0.0, max=10.0, step=0.05,
                       tooltip="Audio guidance scale (official: 1.5). Higher follows the audio more strongly; 1.0 "
                               "halves the work by skipping the unconditioned pass."),
        io.Combo.Input("scheduler", options=scheduler_names(), default=defaults.scheduler,
                       tooltip="ddim is the official sampler; dpmpp_2m and euler reach similar quality in fewer steps."),
        io.Int.Input("deepcache_interval", default=defaults.deepcache_interval, min=0, max=10,
                     tooltip="DeepCache: run the full U-Net only every N steps and reuse its deep features in "
                             "between (about 2x faster at 3; 0 = off, exact)."),
        io.Combo.Input("noise_mode", options=list(NOISE_MODES), default=defaults.noise_mode,
                       tooltip="shared: one noise for the whole video (official, steadiest texture); per-window / "
                               "per-frame: fresh noise per window or per frame."),
        io.Boolean.Input("silence_gating", default=False,
                         tooltip="Keep the original mouth on frames marked silent (turn on silence detection in "
                                 "Audio Features): no mumbling during pauses."),
    ]


FRAME_SPACINGS = ["auto", "off", "2", "3", "4"]


def frame_spacing_input() -> io.Combo.Input:
    """Training-rate frame spacing (pipeline.LipsyncOptions.frame_spacing). Optional and last on its nodes, so
    workflows and API prompts saved before it existed still load (they get auto)."""
    return io.Combo.Input("frame_spacing", options=FRAME_SPACINGS, default="auto", optional=True,
                          tooltip="Which frames each 16-frame window sees together. auto: at high frame rates "
                                  "(above 37.5 fps) windows take every 2nd/3rd... frame, as close to the 25 fps the "
                                  "model was trained on as possible; below that, consecutive frames. off: always "
                                  "consecutive frames. 2/3/4: that stride. Every frame is still generated, each "
                                  "with its own audio, and the output keeps the video's fps and frame count.")


def frame_spacing_value(value: Any) -> str | int:
    """The combo's choice as the engine takes it: "auto", "off" or an int stride (an API prompt may send 2)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    require_choice(value, FRAME_SPACINGS, "frame_spacing")
    return value if value in ("auto", "off") else int(value)


def sampler_options(seed: int, steps: int, cfg: float, scheduler: str, deepcache_interval: int, noise_mode: str):
    from latentsync_core.pipeline import SamplerOptions

    try:
        return SamplerOptions(steps=int(steps), guidance=float(cfg), deepcache_interval=int(deepcache_interval),
                              scheduler=scheduler, noise_mode=noise_mode, seed=int(seed))
    except ValueError as exc:
        raise LatentSyncError(f"invalid sampler setting: {exc}") from exc
