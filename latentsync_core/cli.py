"""Headless entry point: `python -m latentsync_core run|download ...`, the same stage code the nodes run."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from . import model_files
from .errors import LatentSyncError, ModelMissingError

log = logging.getLogger("latentsync")

EXIT_OK, EXIT_ERROR, EXIT_MODELS_MISSING = 0, 1, 2
REPO_ROOT = Path(__file__).resolve().parent.parent


def sample_media_dir() -> Path:
    """Where the sample clips live: LATENTSYNC_MEDIA_DIR, else ../shared/media beside the checkout."""
    return Path(os.environ.get("LATENTSYNC_MEDIA_DIR", REPO_ROOT.parent / "shared" / "media"))


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m latentsync_core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    add_run_arguments(sub.add_parser("run", help="lip-sync a video to an audio track"))
    _add_other_commands(sub)
    return parser


def add_run_arguments(run: argparse.ArgumentParser, inputs: bool = True) -> argparse.ArgumentParser:
    """The `run` options; `batch` reuses them (without the input/output files) as its per-job options."""
    if inputs:
        run.add_argument("--video", help="input video (default: the sample clip)")
        run.add_argument("--audio", help="driving audio (default: the sample's audio)")
        run.add_argument("--out", help="output mp4 (default: <output dir>/latentsync_<video name>.mp4)")
    run.add_argument("--weights", choices=["official", "random-tiny"], default="official",
                     help="official checkpoints from the models folder, or tiny random fixtures (smoke test: NOT a lip-sync)")
    run.add_argument("--no-download", action="store_true", help="never try to download missing official weights")
    run.add_argument("--steps", type=int, default=20)
    run.add_argument("--cfg", type=float, default=1.5)
    run.add_argument("--seed", type=int, default=1247)
    run.add_argument("--deepcache", type=int, default=3,
                     help="DeepCache interval (default 3, as the official inference.sh; 0 = off, exact)")
    run.add_argument("--scheduler", default="ddim", choices=["ddim", "dpmpp_2m", "euler"],
                     help="noise scheduler (ddim = official)")
    run.add_argument("--noise", default="shared", choices=["shared", "per-window", "per-frame", "official"],
                     help="initial noise: one draw for the whole video, per window, or per frame; official: that one "
                          "draw made as the official makes it (on the compute device, in the model dtype)")
    run.add_argument("--mean-latents", action="store_true",
                     help="encode faces with the VAE posterior mean instead of a sample (official: sample)")
    run.add_argument("--loop-mode", default="pingpong", choices=["pingpong", "loop", "freeze", "trim_audio"],
                     help="when the audio is longer than the video (official: pingpong)")
    run.add_argument("--tail-mode", default="trim", choices=["trim", "keep"],
                     help="when the video is longer than the audio: cut it (official) or keep the rest unchanged")
    run.add_argument("--silence", action="store_true", help="keep the original mouth on silent frames")
    run.add_argument("--max-frames", type=int, default=None, help="stop after this many output frames (preview)")
    run.add_argument("--frame-spacing", default="auto", type=_spacing,
                     help="training-rate spacing of each 16-frame window: auto (above 37.5 fps, windows of frames "
                          "round(fps/25) apart, interleaved so every frame is still generated), off, or a stride N")
    run.add_argument("--blend", default="crop_box", choices=["crop_box", "seamless"],
                     help="paste-back: crop_box (official) or seamless (feathered mouth mask with colour matching, "
                          "no visible seam)")
    run.add_argument("--no-official-length", dest="official_length", action="store_false",
                     help="end the output with the audio instead of the official length (1-2 frames longer)")
    run.add_argument("--batch", default="1", type=_batch,
                     help="16-frame windows per U-Net call: N, or auto (from free GPU memory; halved on out-of-memory)")
    run.add_argument("--compile", action="store_true", help="torch.compile the U-Net (slow first window, faster after)")
    run.add_argument("--resolution", type=int, default=None,
                     help="face crop size (default: the U-Net's; 256 for LatentSync 1.5, 512 for 1.6)")
    run.add_argument("--dtype", default="auto", choices=["auto", "fp16", "bf16", "fp32"])
    run.add_argument("--detector", default="auto", choices=["auto", "bundled", "insightface"],
                     help="auto: insightface buffalo_l (official) when installed, else the bundled dlib detector")
    run.add_argument("--detect-every", type=int, default=None,
                     help="run the face detector every N frames, tracking landmarks in between (default 1)")
    return run


def _spacing(value: str):
    if value in ("auto", "off"):
        return value
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise argparse.ArgumentTypeError(f"--frame-spacing takes auto, off or a stride >= 1, not {value!r}")


def _batch(value: str):
    if value == "auto":
        return value
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise argparse.ArgumentTypeError(f"--batch takes auto or a number of windows >= 1, not {value!r}")


def _add_other_commands(sub) -> None:
    dl = sub.add_parser("download", help="fetch the official weights into the models folder")
    dl.add_argument("--include-syncnet", action="store_true")
    from .train.cli import add_subcommands  # score / prepare / train (the training issue)

    add_subcommands(sub)
    from .batch.cli import add_subcommand as add_batch  # Ray itself is imported only when a batch runs

    add_batch(sub)


def _cmd_download(args) -> int:
    models = list(model_files.INFERENCE_MODELS)
    if args.include_syncnet:
        models.append(model_files.SYNCNET)
    for path in model_files.download_models(models):
        print(f"downloaded {path}")
    model_files.require_models(models)
    print("all official weights present")
    return EXIT_OK


def ensure_weights(args) -> None:
    """Official weights present (fetched unless --no-download); random-tiny needs nothing."""
    if args.weights == "official":
        if model_files.missing_models() and not args.no_download:
            log.info("official weights missing; trying to download them")
            model_files.download_models()
        model_files.require_models()


def _cmd_run(args) -> int:
    ensure_weights(args)
    try:
        from .pipeline import run_cli  # lands with the sampler/pipeline issue
    except ImportError as exc:
        raise LatentSyncError(f"the lip-sync pipeline is not available in this build ({exc})") from exc
    return run_cli(args, sample_media_dir())


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = _build_parser().parse_args(argv)
    handlers = {"run": _cmd_run, "download": _cmd_download}
    try:
        return handlers[args.command](args) if args.command in handlers else args.handler(args)
    except ModelMissingError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_MODELS_MISSING
    except LatentSyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
