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

    run = sub.add_parser("run", help="lip-sync a video to an audio track")
    run.add_argument("--video", help="input video (default: the sample clip)")
    run.add_argument("--audio", help="driving audio (default: the sample's audio)")
    run.add_argument("--out", help="output mp4 (default: output/latentsync_sample.mp4)")
    run.add_argument("--weights", choices=["official", "random-tiny"], default="official",
                     help="official checkpoints from the models folder, or tiny random fixtures (smoke test: NOT a lip-sync)")
    run.add_argument("--no-download", action="store_true", help="never try to download missing official weights")
    run.add_argument("--steps", type=int, default=20)
    run.add_argument("--cfg", type=float, default=1.5)
    run.add_argument("--seed", type=int, default=1247)
    run.add_argument("--deepcache", type=int, default=0, help="DeepCache interval (0 = off)")

    dl = sub.add_parser("download", help="fetch the official weights into the models folder")
    dl.add_argument("--include-syncnet", action="store_true")
    return parser


def _cmd_download(args) -> int:
    models = list(model_files.INFERENCE_MODELS)
    if args.include_syncnet:
        models.append(model_files.SYNCNET)
    for path in model_files.download_models(models):
        print(f"downloaded {path}")
    model_files.require_models(models)
    print("all official weights present")
    return EXIT_OK


def _cmd_run(args) -> int:
    if args.weights == "official":
        if model_files.missing_models() and not args.no_download:
            log.info("official weights missing; trying to download them")
            model_files.download_models()
        model_files.require_models()
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
        return handlers[args.command](args)
    except ModelMissingError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_MODELS_MISSING
    except LatentSyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
