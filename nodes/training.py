"""Training nodes: prepare a dataset, fine-tune the U-Net (stage 2), score lip sync with StableSyncNet."""
from __future__ import annotations

import copy
import hashlib
import logging
import os
from pathlib import Path

from comfy_api.latest import io, ui

from latentsync_core import host, model_files

from .common import (CATEGORY, DetectorSettings, FaceDetectorType, UnetType, WhisperType, fps_input, output,
                     require_model)

log = logging.getLogger("latentsync")

NONE = "none"
LOSS_SWITCHES = ["auto", "on", "off"]


def _syncnet_names() -> list[str]:
    return [name for name in host.list_models("latentsync") if "syncnet" in name.lower()]


def _default_syncnet(names: list[str], absent):
    """The official file name when it is among `names`, else `absent`."""
    return model_files.SYNCNET.name if model_files.SYNCNET.name in names else absent


def _load_syncnet(name: str):
    from latentsync_core.errors import MissingModel, ModelMissingError
    from latentsync_core.syncnet import load_syncnet

    path = host.find_model("latentsync", name)
    if path is None:
        spec = model_files.SYNCNET
        raise ModelMissingError([MissingModel(spec.description, host.default_model_path("latentsync", name),
                                              spec.download_command())])
    device = host.get_device()
    return load_syncnet(path, device, host.get_dtype(device, "auto"))


def _folder(value: str, base: Path, input_name: str) -> Path:
    """A folder named relative to ComfyUI's `base` folder (input / output), confined to it."""
    return host.confined_path(base, value, input_name)


def _dataset_path(value: str) -> Path:
    """The dataset input: a manifest or folder inside the output folder (where Prepare writes) or the input folder."""
    from latentsync_core.errors import LatentSyncError

    text = value.strip()
    candidates = []
    for base in (host.output_dir(), host.input_dir()):
        try:
            candidates.append(host.confined_path(base, text, "dataset"))
        except LatentSyncError:
            continue
    if not candidates:
        raise LatentSyncError(f"the 'dataset' input {text!r} is not inside ComfyUI's output folder ({host.output_dir()}) "
                              f"or input folder ({host.input_dir()}): connect Prepare LatentSync Dataset's dataset "
                              "output, or give a path inside one of those folders")
    return next((path for path in candidates if path.exists()), candidates[0])


def _checkpoint_prefix(value: str) -> str:
    """The checkpoint file name prefix, which must name a file directly in the checkpoint folder."""
    from latentsync_core.errors import LatentSyncError
    from latentsync_core.train.trainer import default_save_dir

    folder = default_save_dir()
    path = host.confined_path(folder, value, "checkpoint_prefix")
    if path.parent != Path(os.path.abspath(folder)):
        raise LatentSyncError(f"the 'checkpoint_prefix' input {value.strip()!r} must be a file name prefix without "
                              f"folders: checkpoints are saved in {folder}")
    return path.name


def _detector(face_detector) -> object:
    from latentsync_core.errors import LatentSyncError

    if face_detector is None:
        return "auto"
    if not isinstance(face_detector, DetectorSettings):
        raise LatentSyncError("the 'face_detector' input must come from a Load Face Detector (LatentSync) node")
    return face_detector.detector


class LatentSyncPrepareDataset(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        syncnets = _syncnet_names()
        return io.Schema(
            node_id="LatentSyncPrepareDataset", display_name="Prepare LatentSync Dataset", category=CATEGORY,
            description="Turns a folder of talking-head videos into LatentSync training clips: 25 fps, 16 kHz audio, "
                        "split at scene cuts into short segments, faces aligned like at inference, optionally "
                        "filtered and offset-corrected by StableSyncNet. Writes clips/ and manifest.jsonl; re-running "
                        "resumes.",
            inputs=[
                io.String.Input("input_folder", default="latentsync_dataset",
                                tooltip="Folder of source videos (searched recursively), inside ComfyUI's input "
                                        "folder: put your clips in input/latentsync_dataset."),
                io.String.Input("output_folder", default="latentsync_dataset",
                                tooltip="Where clips/ and manifest.jsonl go, inside ComfyUI's output folder."),
                io.Int.Input("resolution", default=256, min=64, max=1024, step=64,
                             tooltip="Aligned face size: 256 for LatentSync 1.5, 512 for 1.6."),
                io.Float.Input("segment_seconds", default=5.0, min=1.0, max=60.0, step=0.5,
                               tooltip="Scenes are cut into clips of this length (official: 5 s)."),
                io.Int.Input("min_frames", default=32, min=16, max=10000,
                             tooltip="Shorter clips are dropped (training needs two separate 16-frame windows)."),
                io.Boolean.Input("detect_scenes", default=True, tooltip="Split the videos at scene cuts."),
                io.Combo.Input("syncnet_name", options=[NONE] + syncnets, default=_default_syncnet(syncnets, NONE),
                               tooltip="StableSyncNet for the sync filter and audio offset fix (models/latentsync/"
                                       "stable_syncnet.pt; chosen by default when present, as the official recipe "
                                       "filters every clip); none skips both, so min_sync_confidence, max_offset "
                                       "and min_sync_ratio do nothing. With a SyncNet a clip is kept only when it "
                                       "passes each of those three that is on."),
                io.Float.Input("min_sync_confidence", default=0.0, min=0.0, max=2.0, step=0.01,
                               tooltip="Absolute sync floor: drop clips whose StableSyncNet confidence is lower. "
                                       "0 turns this check off (min_sync_ratio and max_offset still apply)."),
                io.Int.Input("max_offset", default=6, min=0, max=15,
                             tooltip="Drop clips whose audio is off by more frames than this (official: 6); kept "
                                     "clips get their audio shifted into sync. 15 (the largest offset searched) "
                                     "turns this check off."),
                FaceDetectorType.Input("face_detector", optional=True,
                                       tooltip="From Load Face Detector (default: auto, the official insightface "
                                               "detector when installed, else bundled)."),
                io.Float.Input("min_sync_ratio", default=round(3 / 14, 4), min=0.0, max=1.0, step=0.01,
                               optional=True,
                               tooltip="Drop clips whose sync confidence is under this fraction of their median "
                                       "SyncNet distance: the official threshold (3 of SyncNet v2, median ~14) on "
                                       "StableSyncNet's scale (default 0.2143). 0 turns this check off "
                                       "(min_sync_confidence and max_offset still apply). Random or test weights "
                                       "judge sync arbitrarily: set it to 0 with them."),
            ],
            outputs=[
                output(io.String, "dataset", "Path of the dataset's manifest.jsonl, for Train LatentSync (stage 2)."),
                output(io.String, "summary", "What was kept and dropped."),
            ],
            is_output_node=True,
        )

    @classmethod
    def fingerprint_inputs(cls, input_folder, **_):
        return source_fingerprint(input_folder)

    @classmethod
    def execute(cls, input_folder: str, output_folder: str, resolution: int, segment_seconds: float,
                min_frames: int, detect_scenes: bool, syncnet_name: str, min_sync_confidence: float,
                max_offset: int, face_detector=None, min_sync_ratio: float = 3 / 14) -> io.NodeOutput:
        manifest, summary = prepare(input_folder, output_folder, resolution, segment_seconds, min_frames,
                                    detect_scenes, syncnet_name, min_sync_confidence, max_offset, face_detector,
                                    min_sync_ratio)
        return io.NodeOutput(manifest, summary, ui=ui.PreviewText(summary))


def source_fingerprint(input_folder: str) -> str:
    """Changes when the source folder's videos change, so a cached result never hides new footage."""
    try:
        from latentsync_core.data import find_videos

        folder = _folder(input_folder, host.input_dir(), "input_folder")
        listing = "|".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in find_videos(folder))
    except Exception:  # noqa: BLE001  (the run itself reports a bad folder)
        listing = input_folder
    return hashlib.sha1(listing.encode()).hexdigest()


def prepare(input_folder: str, output_folder: str, resolution: int, segment_seconds: float, min_frames: int,
            detect_scenes: bool, syncnet_name: str, min_sync_confidence: float, max_offset: int,
            face_detector=None, min_sync_ratio: float = 3 / 14) -> tuple[str, str]:
    from latentsync_core.data import PrepareOptions, prepare_dataset

    source = _folder(input_folder, host.input_dir(), "input_folder")
    target = _folder(output_folder, host.output_dir(), "output_folder")
    options = PrepareOptions(resolution=int(resolution), segment_seconds=float(segment_seconds),
                             min_frames=int(min_frames), detect_scenes=bool(detect_scenes),
                             detector=_detector(face_detector),
                             min_sync_confidence=float(min_sync_confidence) or None, max_offset=int(max_offset),
                             min_sync_ratio=float(min_sync_ratio) or None)
    syncnet = None if syncnet_name == NONE else _load_syncnet(syncnet_name)
    report = prepare_dataset(source, target, options, syncnet=syncnet)
    summary = report.summary() + ("\n" + "\n".join(report.notes) if report.notes else "")
    return str(report.manifest), summary


class LatentSyncTrainStage2(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        from latentsync_core.train import PRESETS, TrainOptions
        from latentsync_core.train.trainer import PRECISIONS

        d = TrainOptions()
        return io.Schema(
            node_id="LatentSyncTrainStage2", display_name="Train LatentSync (stage 2)", category=CATEGORY,
            description="Fine-tunes a LatentSync U-Net on a prepared dataset (stage 2 of the official training): "
                        "noise loss plus the SyncNet loss when a StableSyncNet is chosen. LPIPS and TREPA need models "
                        "this pack does not ship; they are switched off and logged. Saves official-format checkpoints "
                        "into models/latentsync every N steps and when stopped. Trains a copy: the loaded U-Net is "
                        "left as it was.",
            inputs=[
                UnetType.Input("unet", tooltip="From Load LatentSync U-Net: the starting weights."),
                io.Vae.Input("vae", tooltip="sd-vae-ft-mse, from a VAELoader."),
                WhisperType.Input("whisper", tooltip="From Load Whisper (LatentSync)."),
                io.String.Input("dataset", force_input=True,
                                tooltip="manifest.jsonl from Prepare LatentSync Dataset (or a folder of face clips)."),
                io.Int.Input("steps", default=d.steps, min=1, max=10_000_000,
                             tooltip="Optimisation steps to run (each: one batch of 16-frame windows)."),
                io.Float.Input("learning_rate", default=d.lr, min=1e-8, max=1e-2, step=1e-6, round=False,
                               tooltip="AdamW, constant (official: 1e-5)."),
                io.Int.Input("batch_size", default=d.batch_size, min=1, max=64,
                             tooltip="Windows per step (official: 1 per GPU at 512 px)."),
                io.Combo.Input("preset", options=list(PRESETS), default=d.preset,
                               tooltip="stage2: motion modules + attention (official, ~675 M parameters); "
                                       "stage2_efficient: audio attention + decoder motion modules; lora: low-rank "
                                       "adapters (lightest)."),
                io.Int.Input("lora_rank", default=d.lora_rank, min=1, max=256,
                             tooltip="Rank of the adapters (lora preset only)."),
                io.Combo.Input("mixed_precision", options=list(PRECISIONS), default=d.mixed_precision,
                               tooltip="auto: fp16 autocast with loss scaling on CUDA (official), fp32 on CPU."),
                io.Boolean.Input("gradient_checkpointing", default=d.gradient_checkpointing,
                                 tooltip="Recompute activations in the backward pass: less memory, more compute "
                                         "(official: on)."),
                io.Int.Input("seed", default=d.seed, min=0, max=0xFFFFFFFF,
                             tooltip="Seed of the window sampling, noise, timesteps and LoRA initialisation."),
                io.Int.Input("save_every", default=d.save_every, min=0, max=1_000_000,
                             tooltip="Checkpoint interval in steps (0: only at the end)."),
                io.String.Input("checkpoint_prefix", default=d.run_name,
                                tooltip="File name prefix of the checkpoints in models/latentsync."),
                io.Combo.Input("syncnet_name", options=[NONE] + _syncnet_names(), default=NONE,
                               tooltip="StableSyncNet for the sync loss (weight 0.05); none trains without it."),
                io.Boolean.Input("resume", default=False,
                                 tooltip="Continue the step count stored in the loaded checkpoint."),
                io.Combo.Input("trepa", options=LOSS_SWITCHES, default="auto", optional=True,
                               tooltip="TREPA loss (weight 10, official): auto = on when models/latentsync holds "
                                       "vit_g_hybrid_pt_1200e_ssv2_ft.pth; on = required (error when missing); off."),
                io.Combo.Input("lpips", options=LOSS_SWITCHES, default="auto", optional=True,
                               tooltip="LPIPS loss (weight 0.1, official): auto = on when the lpips package works; "
                                       "on = required (error when missing); off."),
            ],
            outputs=[
                output(UnetType, "unet", "The trained U-Net, for the Sampler."),
                output(io.Image, "loss_plot", "Loss curves."),
                output(io.String, "checkpoint", "Path of the last checkpoint."),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, unet, vae, whisper, dataset: str, steps: int, learning_rate: float, batch_size: int,
                preset: str, lora_rank: int, mixed_precision: str, gradient_checkpointing: bool, seed: int,
                save_every: int, checkpoint_prefix: str, syncnet_name: str, resume: bool, trepa: str = "auto",
                lpips: str = "auto") -> io.NodeOutput:
        import torch

        # ComfyUI runs nodes under torch.inference_mode(); training needs autograd.
        with torch.inference_mode(False), torch.enable_grad():
            trained, plot, last, step = train(unet, vae, whisper, dataset, steps, learning_rate, batch_size, preset,
                                              lora_rank, mixed_precision, gradient_checkpointing, seed, save_every,
                                              checkpoint_prefix, syncnet_name, resume, trepa, lpips)
        preview = ui.PreviewImage(plot, cls=cls).as_dict() | {"text": (f"trained to step {step}; saved {last}",)}
        return io.NodeOutput(trained, plot, last, ui=preview)


def train(unet, vae, whisper, dataset: str, steps: int, learning_rate: float, batch_size: int, preset: str,
          lora_rank: int, mixed_precision: str, gradient_checkpointing: bool, seed: int, save_every: int,
          checkpoint_prefix: str, syncnet_name: str, resume: bool, trepa: str = "auto", lpips: str = "auto"):
    """(managed trained U-Net, loss plot IMAGE [1, H, W, 3], last checkpoint path or "", global step)."""
    import torch

    from latentsync_core.convert import uint8_to_image
    from latentsync_core.train import TrainOptions, load_lpips, load_trepa, train_stage2

    unet_handle = require_model(unet, "unet", "unet", "Load LatentSync U-Net")
    whisper_handle = require_model(whisper, "whisper", "whisper", "Load Whisper (LatentSync)")
    data = _dataset_path(dataset)
    run_name = _checkpoint_prefix(checkpoint_prefix) if checkpoint_prefix.strip() else "latentsync_stage2"
    device = host.get_device()
    _make_autograd_ready(vae)
    # Train a float32 copy: ComfyUI caches the loader's output, which must stay the original weights.
    source = host.managed_module(unet_handle)
    trainee = copy.deepcopy(source).to(device=device, dtype=torch.float32)
    trainee.trained_resolution = getattr(source, "trained_resolution", None)
    trainee.checkpoint_global_step = getattr(source, "checkpoint_global_step", 0)
    encoder = host.load_to_device(whisper_handle)
    syncnet = None if syncnet_name == NONE else _load_syncnet(syncnet_name)
    options = TrainOptions(steps=int(steps), lr=float(learning_rate), batch_size=int(batch_size), preset=preset,
                           lora_rank=int(lora_rank), mixed_precision=mixed_precision,
                           gradient_checkpointing=bool(gradient_checkpointing), seed=int(seed),
                           save_every=int(save_every), run_name=run_name, resume=bool(resume))
    half = torch.float16 if device.type == "cuda" else torch.float32  # frozen helpers, as the official
    perceptual = None if lpips == "off" else load_lpips(device, required=lpips == "on")
    temporal = None if trepa == "off" else load_trepa(None, device, half, required=trepa == "on")
    result = train_stage2(trainee, vae, encoder, data, options, syncnet=syncnet,
                          lpips=perceptual, trepa=temporal, device=device)
    last = str(result.checkpoints[-1]) if result.checkpoints else ""
    plot = uint8_to_image(result.plot()[None])
    return host.manage_model(result.unet, "unet"), plot, last, result.global_step


def _make_autograd_ready(vae) -> None:
    """ComfyUI's loaders run under torch.inference_mode(), and autograd cannot save inference tensors for the
    backward pass through the (frozen) VAE decoder of the pixel losses: swap them for normal copies, in place."""
    import torch

    from latentsync_core.vae import ComfyVAE, DiffusersVAE, as_latent_vae

    wrapped = as_latent_vae(vae)
    model = wrapped.vae.first_stage_model if isinstance(wrapped, ComfyVAE) else (
        wrapped.model if isinstance(wrapped, DiffusersVAE) else None)
    for module in (model.modules() if model is not None else ()):
        for name, param in list(module.named_parameters(recurse=False)):
            if param.is_inference():
                setattr(module, name, torch.nn.Parameter(param.clone(), requires_grad=param.requires_grad))
        for name, buffer in list(module.named_buffers(recurse=False)):
            if buffer is not None and buffer.is_inference():
                module._buffers[name] = buffer.clone()


class LatentSyncScoreLipSync(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        names = _syncnet_names()
        default = _default_syncnet(names, None)
        return io.Schema(
            node_id="LatentSyncScoreLipSync", display_name="Score Lip Sync", category=CATEGORY,
            description="SyncNet confidence and audio-visual offset of a talking-face video (LSE-C / LSE-D style) "
                        "with StableSyncNet. Higher confidence = clearer sync; offset = frames to delay the audio by "
                        "(0 = in sync). Confidences are on StableSyncNet's scale, not the classic SyncNet's.",
            inputs=[
                io.Image.Input("images", tooltip="The video frames (GetVideoComponents)."),
                io.Audio.Input("audio", tooltip="The audio to check them against."),
                fps_input(),
                io.Combo.Input("syncnet_name", options=names, default=default,
                               tooltip="StableSyncNet in models/latentsync (official: stable_syncnet.pt)."),
                io.Boolean.Input("aligned_faces", default=False,
                                 tooltip="The images already are aligned face crops (Face Crop output): skip face "
                                         "detection."),
                io.Int.Input("vshift", default=15, min=0, max=50, tooltip="Search offsets of +-N frames."),
                io.Int.Input("stride", default=1, min=1, max=16, tooltip="Score every N-th window (faster)."),
                FaceDetectorType.Input("face_detector", optional=True,
                                       tooltip="From Load Face Detector (default: auto, insightface when installed, else bundled)."),
            ],
            outputs=[
                output(io.Float, "confidence", "median - min of the mean embedding distance over audio shifts "
                                               "(LSE-C style)."),
                output(io.Int, "offset", "Frames to delay the audio by for best sync (0 = in sync)."),
                output(io.Float, "min_distance", "Mean distance at the best shift (LSE-D style, lower is better)."),
                output(io.String, "summary", "One line for display."),
            ],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, syncnet_name):
        if host.find_model("latentsync", syncnet_name) is None:
            spec = model_files.SYNCNET
            return f"{syncnet_name!r} is not in models/latentsync. Get the official file with: {spec.download_command()}"
        return True

    @classmethod
    def execute(cls, images, audio, fps: float, syncnet_name: str, aligned_faces: bool, vshift: int, stride: int,
                face_detector=None) -> io.NodeOutput:
        result = score(images, audio, fps, syncnet_name, aligned_faces, vshift, stride, face_detector)
        summary = result.summary()
        return io.NodeOutput(float(result.confidence), int(result.offset), float(result.min_distance), summary,
                             ui=ui.PreviewText(summary))


def score(images, audio, fps: float, syncnet_name: str, aligned_faces: bool, vshift: int, stride: int,
          face_detector=None):
    from latentsync_core.convert import image_to_uint8
    from latentsync_core.syncnet.score import score_sync

    syncnet = _load_syncnet(syncnet_name)
    frames = image_to_uint8(images)
    return score_sync(syncnet, frames, audio, float(fps), aligned=bool(aligned_faces),
                      detector=_detector(face_detector), vshift=int(vshift), stride=int(stride),
                      total_frames=len(frames))


NODES = [LatentSyncPrepareDataset, LatentSyncTrainStage2, LatentSyncScoreLipSync]
