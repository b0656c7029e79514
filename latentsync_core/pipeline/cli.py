"""`python -m latentsync_core run`: argument handling around `lipsync` (parser lives in latentsync_core/cli.py)."""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import host
from ..errors import LatentSyncError
from .run import lipsync
from .stages import SamplerOptions
from .options import LipsyncOptions

log = logging.getLogger("latentsync")

TINY_RESOLUTION = 64  # the tiny U-Net fixture's faces (8 x 8 latents)
SAMPLE_VIDEO, SAMPLE_AUDIO = "demo1_video.mp4", "demo1_audio.wav"
_TINY_BANNER = ("\n" + "!" * 78 + "\n!! --weights random-tiny: tiny RANDOM weights. The output is NOT a lip-sync;\n"
                "!! it only shows that every stage of the pipeline runs end to end.\n" + "!" * 78)


def _sample_inputs(sample_media_dir: Path, scratch: Path) -> tuple[Any, Any, str]:
    """(video, audio, name) of the sample: the shared demo clip, else a still photo and a tone."""
    video, audio = Path(sample_media_dir) / SAMPLE_VIDEO, Path(sample_media_dir) / SAMPLE_AUDIO
    if video.is_file() and audio.is_file():
        return video, audio, video.stem
    try:
        from skimage import data
    except ImportError:
        raise LatentSyncError(f"no sample clip in {sample_media_dir} (and scikit-image is not installed to make "
                              "one): pass --video and --audio") from None
    from PIL import Image

    from ..media.audio_file import AudioClip

    log.info("no sample clip in %s: animating scikit-image's astronaut photo with a synthetic tone", sample_media_dir)
    still = scratch / "astronaut.png"
    Image.fromarray(data.astronaut()).save(still)
    rate, seconds = 16000, 3.0
    t = np.arange(int(rate * seconds)) / rate
    # A syllable-like tone: 180 Hz voice with a 4 Hz amplitude envelope, so silence gating sees speech.
    tone = 0.3 * np.sin(2 * np.pi * 180 * t) * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))
    return still, AudioClip(tone.astype(np.float32)[None], rate), "astronaut"


def options_from_args(args: Any, resolution: int | None) -> LipsyncOptions:
    sampler = SamplerOptions(steps=args.steps, guidance=args.cfg, deepcache_interval=getattr(args, "deepcache", 3),
                             seed=args.seed,
                             scheduler=getattr(args, "scheduler", "ddim"), noise_mode=getattr(args, "noise", "shared"),
                             sample_latents=not getattr(args, "mean_latents", False))
    tracker = {}
    if getattr(args, "detect_every", None):
        tracker["every_k"] = args.detect_every
    return LipsyncOptions(sampler=sampler, resolution=resolution, loop_mode=getattr(args, "loop_mode", "pingpong"),
                          tail_mode=getattr(args, "tail_mode", "trim"), silence=getattr(args, "silence", False),
                          max_frames=getattr(args, "max_frames", None), tracker=tracker,
                          frame_spacing=getattr(args, "frame_spacing", "auto"),
                          blend=getattr(args, "blend", "crop_box"),
                          official_length=getattr(args, "official_length", True), batch=getattr(args, "batch", 1),
                          compile=getattr(args, "compile", False), channels_last=None)


def run_cli(args: Any, sample_media_dir: Path) -> int:
    from ..fixtures import write_fixtures
    from .models import load_models

    with tempfile.TemporaryDirectory(prefix="latentsync-") as scratch_name:
        scratch = Path(scratch_name)
        models_root, resolution = None, getattr(args, "resolution", None)
        if args.weights == "random-tiny":
            print(_TINY_BANNER, flush=True)
            models_root = scratch / "models"
            write_fixtures(models_root)
            resolution = resolution or TINY_RESOLUTION
        if args.video and args.audio:
            video, audio, name = Path(args.video), Path(args.audio), Path(args.video).stem
        elif args.video or args.audio:
            raise LatentSyncError("give both --video and --audio, or neither for the sample clip")
        else:
            video, audio, name = _sample_inputs(sample_media_dir, scratch)
        out = Path(args.out) if args.out else host.output_dir() / f"latentsync_{name}.mp4"
        models = load_models(models_root, dtype=getattr(args, "dtype", "auto"), resolution=resolution)
        options = options_from_args(args, models.resolution)
        result = lipsync(video, audio, out, unet=models.unet, vae=models.vae, whisper=models.whisper,
                         detector=getattr(args, "detector", "auto"), options=options)
    s = result.stats
    print(f"wrote {result.path}: {result.frames} frames at {result.fps} fps ({result.video_seconds:.2f} s), "
          f"{s.windows} windows, {s.regenerated} frames lip-synced, {result.seconds:.1f} s")
    if args.weights == "random-tiny":
        print("reminder: random-tiny weights -> this video is NOT a lip-sync (smoke test only)")
    return 0
