"""`python -m latentsync_core score|prepare|train ...`: the same functions the training nodes call.

`add_subcommands(subparsers)` is called by latentsync_core.cli; each subparser carries its handler
in ``args.handler`` and returns an exit code.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from .. import host, model_files
from ..errors import LatentSyncError, ModelMissingError

log = logging.getLogger("latentsync")


def resolve_model(arg: str | None, spec: model_files.ModelFile) -> Path:
    """An explicit path (absolute, relative to the cwd, or a name in the model folder) or the default file."""
    if arg:
        path = Path(arg)
        if path.exists():
            return path
        found = host.find_model(spec.kind, arg)
        if found is None:
            raise LatentSyncError(f"{spec.description}: {arg} not found (neither a path nor a file in "
                                  f"models/{spec.kind})")
        return found
    found = spec.find()
    if found is None:
        raise ModelMissingError([spec.missing()])
    return found


# --------------------------------------------------------------------------- score
def _add_score(sub) -> None:
    p = sub.add_parser("score", help="SyncNet confidence and audio-visual offset of videos (LSE-C / LSE-D style)")
    p.add_argument("videos", nargs="+", help="video files with their audio track")
    p.add_argument("--syncnet", help="StableSyncNet checkpoint (default: models/latentsync/stable_syncnet.pt)")
    p.add_argument("--aligned", action="store_true",
                   help="the videos already are aligned face crops (prepared dataset clips): skip face detection")
    p.add_argument("--detector", default="auto", choices=["auto", "bundled", "insightface"])
    p.add_argument("--vshift", type=int, default=15, help="search audio offsets of +-N frames")
    p.add_argument("--stride", type=int, default=1, help="score every N-th 16-frame window (faster)")
    p.add_argument("--json", action="store_true", help="print one JSON object per video")
    p.set_defaults(handler=cmd_score)


def cmd_score(args) -> int:
    from ..syncnet import load_syncnet
    from ..syncnet.score import score_video_file

    device = host.get_device()
    syncnet = load_syncnet(resolve_model(args.syncnet, model_files.SYNCNET), device,
                           host.get_dtype(device, "auto"))
    failures = 0
    for video in args.videos:
        try:
            score = score_video_file(syncnet, video, aligned=args.aligned, detector=args.detector,
                                     vshift=args.vshift, stride=args.stride)
        except LatentSyncError as exc:
            failures += 1
            print(json.dumps({"video": video, "error": str(exc)}) if args.json else f"{video}: error: {exc}")
            continue
        if args.json:
            print(json.dumps({"video": video, **score.as_dict()}))
        else:
            print(f"{video}: {score.summary()}")
    return 0 if failures == 0 else 1


# --------------------------------------------------------------------------- prepare
def _add_prepare(sub) -> None:
    p = sub.add_parser("prepare", help="turn a folder of talking-head videos into aligned training clips + manifest")
    p.add_argument("--input", required=True, help="folder of videos (searched recursively)")
    p.add_argument("--output", required=True, help="dataset folder (clips/, manifest.jsonl); re-run to resume")
    p.add_argument("--resolution", type=int, default=256, help="face size: 256 (LatentSync 1.5) or 512 (1.6)")
    p.add_argument("--segment-seconds", type=float, default=5.0)
    p.add_argument("--min-frames", type=int, default=32, help="shorter clips are dropped (two 16-frame windows)")
    p.add_argument("--no-scenes", action="store_true", help="do not split at scene cuts")
    p.add_argument("--detector", default="auto", choices=["auto", "bundled", "insightface"])
    p.add_argument("--syncnet", help="StableSyncNet for the sync filter (default: models/latentsync/stable_syncnet.pt "
                                     "when present)")
    p.add_argument("--no-sync", action="store_true", help="skip the sync filter and offset correction")
    p.add_argument("--min-sync-confidence", type=float, default=None,
                   help="also drop clips under this absolute StableSyncNet confidence (default and 0: off)")
    p.add_argument("--min-sync-ratio", type=float, default=3 / 14,
                   help="drop clips whose sync confidence is under this fraction of their median distance: the "
                        "official SyncNet-v2 threshold (3 at a median of ~14) on StableSyncNet's scale; 0 turns "
                        "this check off (the other sync checks still apply; --no-sync skips them all)")
    p.add_argument("--max-offset", type=int, default=6, help="drop clips whose AV offset exceeds N frames")
    p.add_argument("--max-videos", type=int, default=None)
    p.set_defaults(handler=cmd_prepare)


def prepare_syncnet(explicit: str | None, disabled: bool):
    """The SyncNet for the sync step: an explicit one, else the default file when present, else None (logged)."""
    if disabled:
        return None
    from ..syncnet import load_syncnet

    if explicit is None and model_files.SYNCNET.find() is None:
        log.info("dataset: no %s found; the sync filter is skipped", model_files.SYNCNET.expected_path())
        return None
    device = host.get_device()
    return load_syncnet(resolve_model(explicit, model_files.SYNCNET), device, host.get_dtype(device, "auto"))


def cmd_prepare(args) -> int:
    from ..data import PrepareOptions, prepare_dataset

    options = PrepareOptions(resolution=args.resolution, segment_seconds=args.segment_seconds,
                             min_frames=args.min_frames, detect_scenes=not args.no_scenes, detector=args.detector,
                             min_sync_confidence=args.min_sync_confidence, max_offset=args.max_offset,
                             min_sync_ratio=args.min_sync_ratio,
                             max_videos=args.max_videos)
    report = prepare_dataset(args.input, args.output, options, syncnet=prepare_syncnet(args.syncnet, args.no_sync))
    print(report.summary())
    return 0


# --------------------------------------------------------------------------- train
def _add_train(sub) -> None:
    from .presets import PRESETS
    from .trainer import PRECISIONS, TrainOptions

    d = TrainOptions()
    p = sub.add_parser("train", help="stage-2 fine-tuning of a LatentSync U-Net on prepared clips")
    p.add_argument("--data", required=True, help="manifest.jsonl, a prepared dataset folder, or a folder of face clips")
    p.add_argument("--unet", required=True, help="U-Net checkpoint to start from (official or one of ours)")
    p.add_argument("--out", default=None, help="checkpoint folder (default: models/latentsync)")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--preset", choices=PRESETS, default=d.preset)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lora-rank", type=int, default=d.lora_rank)
    p.add_argument("--save-every", type=int, default=d.save_every)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--num-frames", type=int, default=d.num_frames, help="frames per window (official 16)")
    p.add_argument("--mixed-precision", choices=PRECISIONS, default=d.mixed_precision)
    p.add_argument("--no-gradient-checkpointing", action="store_true")
    p.add_argument("--resume", action="store_true", help="continue the step count stored in --unet")
    p.add_argument("--name", default=d.run_name, help="checkpoint file prefix")
    p.add_argument("--vae", help="VAE (default: models/vae/sd-vae-ft-mse)")
    p.add_argument("--whisper", help="Whisper encoder (default: models/whisper/tiny.pt)")
    p.add_argument("--syncnet", help="StableSyncNet for the sync loss (default: models/latentsync/stable_syncnet.pt "
                                     "when present)")
    p.add_argument("--no-sync", action="store_true", help="train without the SyncNet loss")
    p.add_argument("--trepa", nargs="?", const="auto", default=None, metavar="PATH",
                   help="require the TREPA loss: the official VideoMAE-v2 checkpoint (vit_g_hybrid_pt_1200e_ssv2_ft.pth; "
                        "without PATH: looked up in models/latentsync). Default: on when that file is present")
    p.add_argument("--no-trepa", action="store_true", help="train without the TREPA loss")
    p.add_argument("--lpips", action="store_true",
                   help="require the LPIPS loss (an error when the lpips package is missing). Default: on when usable")
    p.add_argument("--no-lpips", action="store_true", help="train without the LPIPS loss")
    p.set_defaults(handler=cmd_train)


def cmd_train(args) -> int:
    import torch
    from PIL import Image

    from ..audio import load_whisper
    from ..unet import load_unet
    from ..vae import load_vae
    from .losses import load_lpips, load_trepa
    from .trainer import TrainOptions, default_save_dir, train_stage2

    if (args.trepa and args.no_trepa) or (args.lpips and args.no_lpips):
        raise LatentSyncError("--trepa/--no-trepa and --lpips/--no-lpips: give at most one of each pair")
    device = host.get_device()
    half = torch.float16 if device.type == "cuda" else torch.float32  # frozen helpers: fp16 on GPU, as the official
    unet = load_unet(resolve_model(args.unet, model_files.UNET), device, torch.float32)
    vae = load_vae(resolve_model(args.vae, model_files.VAE), device, half)
    whisper = load_whisper(resolve_model(args.whisper, model_files.WHISPER_TINY), device, half)
    syncnet = prepare_syncnet(args.syncnet, args.no_sync)
    options = TrainOptions(steps=args.steps, lr=args.lr, batch_size=args.batch_size, preset=args.preset,
                           lora_rank=args.lora_rank, mixed_precision=args.mixed_precision,
                           gradient_checkpointing=not args.no_gradient_checkpointing, seed=args.seed,
                           save_every=args.save_every, save_dir=args.out, run_name=args.name, resume=args.resume,
                           num_frames=args.num_frames)
    lpips = None if args.no_lpips else load_lpips(device, required=args.lpips)
    trepa = None if args.no_trepa else load_trepa(None if args.trepa in (None, "auto") else args.trepa, device,
                                                  half, required=args.trepa is not None)
    result = train_stage2(unet, vae, whisper, args.data, options, syncnet=syncnet, lpips=lpips,
                          trepa=trepa, device=device)
    save_dir = Path(args.out) if args.out else default_save_dir()
    plot = save_dir / f"{args.name}-losses.png"
    Image.fromarray(result.plot()).save(plot)
    last = result.history[-1]
    print(f"trained to step {result.global_step}: " + ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k != "step"))
    print(f"checkpoints: {', '.join(str(p) for p in result.checkpoints)}; loss plot: {plot}")
    return 0


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    _add_score(subparsers)
    _add_prepare(subparsers)
    _add_train(subparsers)
