"""Training nodes: prepare a dataset, fine-tune the U-Net (stage 2), score lip sync with StableSyncNet."""
from __future__ import annotations

import copy
import hashlib
import logging
from pathlib import Path

from latentsync_core import host, model_files

from .common import CATEGORY, FACE_DETECTOR, FPS_INPUT, UNET, WHISPER, DetectorSettings, require_model

log = logging.getLogger("latentsync")

NONE = "none"


def _syncnet_names() -> list[str]:
    return [name for name in host.list_models("latentsync") if "syncnet" in name.lower()]


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


def _folder(value: str, base: Path | None, what: str) -> Path:
    """An absolute folder, or one relative to ComfyUI's `base` folder (input / output)."""
    from latentsync_core.errors import LatentSyncError

    text = value.strip()
    if not text:
        raise LatentSyncError(f"the {what} is empty: type a folder path (absolute, or relative to ComfyUI's "
                              f"{'input' if base == host.input_dir() else 'output'} folder)")
    path = Path(text).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


def _detector(face_detector) -> object:
    from latentsync_core.errors import LatentSyncError

    if face_detector is None:
        return "bundled"
    if not isinstance(face_detector, DetectorSettings):
        raise LatentSyncError("the 'face_detector' input must come from a Load Face Detector (LatentSync) node")
    return face_detector.detector


def _temp_preview(image, prefix: str) -> dict:
    """Save `image` (uint8 [H, W, 3]) in ComfyUI's temp folder and describe it for the node's own preview."""
    import uuid

    from PIL import Image

    name = f"{prefix}-losses-{uuid.uuid4().hex[:8]}.png"
    Image.fromarray(image).save(host.temp_dir() / name)
    return {"filename": name, "subfolder": "", "type": "temp"}


class LatentSyncPrepareDataset:
    DESCRIPTION = ("Turns a folder of talking-head videos into LatentSync training clips: 25 fps, 16 kHz audio, "
                   "split at scene cuts into short segments, faces aligned like at inference, optionally filtered "
                   "and offset-corrected by StableSyncNet. Writes clips/ and manifest.jsonl; re-running resumes.")
    CATEGORY = CATEGORY
    FUNCTION = "prepare"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING", "STRING")
    RETURN_NAMES = ("dataset", "summary")
    OUTPUT_TOOLTIPS = ("Path of the dataset's manifest.jsonl, for Train LatentSync (stage 2).",
                       "What was kept and dropped.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "input_folder": ("STRING", {"default": "latentsync_dataset", "tooltip":
                                            "Folder of source videos (searched recursively): absolute, or relative "
                                            "to ComfyUI's input folder."}),
                "output_folder": ("STRING", {"default": "latentsync_dataset", "tooltip":
                                             "Where clips/ and manifest.jsonl go: absolute, or relative to the "
                                             "output folder."}),
                "resolution": ("INT", {"default": 256, "min": 64, "max": 1024, "step": 64, "tooltip":
                                       "Aligned face size: 256 for LatentSync 1.5, 512 for 1.6."}),
                "segment_seconds": ("FLOAT", {"default": 5.0, "min": 1.0, "max": 60.0, "step": 0.5, "tooltip":
                                              "Scenes are cut into clips of this length (official: 5 s)."}),
                "min_frames": ("INT", {"default": 32, "min": 16, "max": 10000, "tooltip":
                                       "Shorter clips are dropped (training needs two separate 16-frame windows)."}),
                "detect_scenes": ("BOOLEAN", {"default": True, "tooltip": "Split the videos at scene cuts."}),
                "syncnet_name": ([NONE] + _syncnet_names(), {"default": NONE, "tooltip":
                                 "StableSyncNet for the sync filter and audio offset fix (models/latentsync/"
                                 "stable_syncnet.pt); none skips that step."}),
                "min_sync_confidence": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 2.0, "step": 0.01, "tooltip":
                                                  "Drop clips whose StableSyncNet confidence is lower (0 keeps all)."}),
                "max_offset": ("INT", {"default": 6, "min": 0, "max": 15, "tooltip":
                                       "Drop clips whose audio is off by more frames than this (official: 6)."}),
            },
            "optional": {
                "face_detector": (FACE_DETECTOR, {"tooltip": "From Load Face Detector (default: bundled)."}),
            },
        }

    @classmethod
    def IS_CHANGED(cls, input_folder, **_):
        # Re-run when the source folder's videos change (a cached result would hide new footage).
        try:
            from latentsync_core.data import find_videos

            folder = _folder(input_folder, host.input_dir(), "input folder")
            listing = "|".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in find_videos(folder))
        except Exception:  # noqa: BLE001  (the run itself reports a bad folder)
            listing = input_folder
        return hashlib.sha1(listing.encode()).hexdigest()

    def prepare(self, input_folder: str, output_folder: str, resolution: int, segment_seconds: float,
                min_frames: int, detect_scenes: bool, syncnet_name: str, min_sync_confidence: float,
                max_offset: int, face_detector=None):
        from latentsync_core.data import PrepareOptions, prepare_dataset

        source = _folder(input_folder, host.input_dir(), "input folder")
        target = _folder(output_folder, host.output_dir(), "output folder")
        options = PrepareOptions(resolution=int(resolution), segment_seconds=float(segment_seconds),
                                 min_frames=int(min_frames), detect_scenes=bool(detect_scenes),
                                 detector=_detector(face_detector),
                                 min_sync_confidence=float(min_sync_confidence) or None, max_offset=int(max_offset))
        syncnet = None if syncnet_name == NONE else _load_syncnet(syncnet_name)
        report = prepare_dataset(source, target, options, syncnet=syncnet)
        summary = report.summary() + ("\n" + "\n".join(report.notes) if report.notes else "")
        return {"ui": {"text": [summary]}, "result": (str(report.manifest), summary)}


class LatentSyncTrainStage2:
    DESCRIPTION = ("Fine-tunes a LatentSync U-Net on a prepared dataset (stage 2 of the official training): "
                   "noise loss plus the SyncNet loss when a StableSyncNet is chosen. LPIPS and TREPA need models "
                   "this pack does not ship; they are switched off and logged. Saves official-format checkpoints "
                   "into models/latentsync every N steps and when stopped. Trains a copy: the loaded U-Net is "
                   "left as it was.")
    CATEGORY = CATEGORY
    FUNCTION = "train"
    OUTPUT_NODE = True
    RETURN_TYPES = (UNET, "IMAGE", "STRING")
    RETURN_NAMES = ("unet", "loss_plot", "checkpoint")
    OUTPUT_TOOLTIPS = ("The trained U-Net, for the Sampler.", "Loss curves.", "Path of the last checkpoint.")

    @classmethod
    def INPUT_TYPES(cls):
        from latentsync_core.train import PRESETS, TrainOptions
        from latentsync_core.train.trainer import PRECISIONS

        d = TrainOptions()
        return {
            "required": {
                "unet": (UNET, {"tooltip": "From Load LatentSync U-Net: the starting weights."}),
                "vae": ("VAE", {"tooltip": "sd-vae-ft-mse, from a VAELoader."}),
                "whisper": (WHISPER, {"tooltip": "From Load Whisper (LatentSync)."}),
                "dataset": ("STRING", {"forceInput": True, "tooltip":
                                       "manifest.jsonl from Prepare LatentSync Dataset (or a folder of face clips)."}),
                "steps": ("INT", {"default": d.steps, "min": 1, "max": 10_000_000, "tooltip":
                                  "Optimisation steps to run (each: one batch of 16-frame windows)."}),
                "learning_rate": ("FLOAT", {"default": d.lr, "min": 1e-8, "max": 1e-2, "step": 1e-6, "round": False,
                                            "tooltip": "AdamW, constant (official: 1e-5)."}),
                "batch_size": ("INT", {"default": d.batch_size, "min": 1, "max": 64, "tooltip":
                                       "Windows per step (official: 1 per GPU at 512 px)."}),
                "preset": (list(PRESETS), {"default": d.preset, "tooltip":
                           "stage2: motion modules + attention (official, ~675 M parameters); stage2_efficient: "
                           "audio attention + decoder motion modules; lora: low-rank adapters (lightest)."}),
                "lora_rank": ("INT", {"default": d.lora_rank, "min": 1, "max": 256, "tooltip":
                                      "Rank of the adapters (lora preset only)."}),
                "mixed_precision": (list(PRECISIONS), {"default": d.mixed_precision, "tooltip":
                                    "auto: fp16 autocast with loss scaling on CUDA (official), fp32 on CPU."}),
                "gradient_checkpointing": ("BOOLEAN", {"default": d.gradient_checkpointing, "tooltip":
                                           "Recompute activations in the backward pass: less memory, more compute "
                                           "(official: on)."}),
                "seed": ("INT", {"default": d.seed, "min": 0, "max": 0xFFFFFFFF, "tooltip":
                                 "Seed of the window sampling, noise, timesteps and LoRA initialisation."}),
                "save_every": ("INT", {"default": d.save_every, "min": 0, "max": 1_000_000, "tooltip":
                                       "Checkpoint interval in steps (0: only at the end)."}),
                "checkpoint_prefix": ("STRING", {"default": d.run_name, "tooltip":
                                                 "File name prefix of the checkpoints in models/latentsync."}),
                "syncnet_name": ([NONE] + _syncnet_names(), {"default": NONE, "tooltip":
                                 "StableSyncNet for the sync loss (weight 0.05); none trains without it."}),
                "resume": ("BOOLEAN", {"default": False, "tooltip":
                                       "Continue the step count stored in the loaded checkpoint."}),
            },
        }

    def train(self, unet, vae, whisper, dataset: str, steps: int, learning_rate: float, batch_size: int,
              preset: str, lora_rank: int, mixed_precision: str, gradient_checkpointing: bool, seed: int,
              save_every: int, checkpoint_prefix: str, syncnet_name: str, resume: bool):
        import torch

        from latentsync_core.convert import uint8_to_image
        from latentsync_core.train import TrainOptions, load_lpips, load_trepa, train_stage2

        unet_handle = require_model(unet, "unet", "unet", "Load LatentSync U-Net")
        whisper_handle = require_model(whisper, "whisper", "whisper", "Load Whisper (LatentSync)")
        device = host.get_device()
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
                               save_every=int(save_every), run_name=checkpoint_prefix.strip() or "latentsync_stage2",
                               resume=bool(resume))
        result = train_stage2(trainee, vae, encoder, Path(dataset.strip()), options, syncnet=syncnet,
                              lpips=load_lpips(device), trepa=load_trepa(None, device), device=device)
        curves = result.plot()
        last = str(result.checkpoints[-1]) if result.checkpoints else ""
        return {"ui": {"images": [_temp_preview(curves, options.run_name)],
                       "text": [f"trained to step {result.global_step}; saved {last}"]},
                "result": (host.manage_model(result.unet, "unet"), uint8_to_image(curves[None]), last)}


class LatentSyncScoreLipSync:
    DESCRIPTION = ("SyncNet confidence and audio-visual offset of a talking-face video (LSE-C / LSE-D style) with "
                   "StableSyncNet. Higher confidence = clearer sync; offset = frames to delay the audio by (0 = in "
                   "sync). Confidences are on StableSyncNet's scale, not the classic SyncNet's.")
    CATEGORY = CATEGORY
    FUNCTION = "score"
    OUTPUT_NODE = True
    RETURN_TYPES = ("FLOAT", "INT", "FLOAT", "STRING")
    RETURN_NAMES = ("confidence", "offset", "min_distance", "summary")
    OUTPUT_TOOLTIPS = ("median - min of the mean embedding distance over audio shifts (LSE-C style).",
                       "Frames to delay the audio by for best sync (0 = in sync).",
                       "Mean distance at the best shift (LSE-D style, lower is better).", "One line for display.")

    @classmethod
    def INPUT_TYPES(cls):
        names = _syncnet_names()
        syncnet_options = {"tooltip": "StableSyncNet in models/latentsync (official: stable_syncnet.pt)."}
        if model_files.SYNCNET.name in names:
            syncnet_options["default"] = model_files.SYNCNET.name
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The video frames (GetVideoComponents)."}),
                "audio": ("AUDIO", {"tooltip": "The audio to check them against."}),
                "fps": FPS_INPUT,
                "syncnet_name": (names, syncnet_options),
                "aligned_faces": ("BOOLEAN", {"default": False, "tooltip":
                                              "The images already are aligned face crops (Face Crop output): skip "
                                              "face detection."}),
                "vshift": ("INT", {"default": 15, "min": 0, "max": 50, "tooltip": "Search offsets of +-N frames."}),
                "stride": ("INT", {"default": 1, "min": 1, "max": 16, "tooltip": "Score every N-th window (faster)."}),
            },
            "optional": {
                "face_detector": (FACE_DETECTOR, {"tooltip": "From Load Face Detector (default: bundled)."}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, syncnet_name):
        if host.find_model("latentsync", syncnet_name) is None:
            spec = model_files.SYNCNET
            return f"{syncnet_name!r} is not in models/latentsync. Get the official file with: {spec.download_command()}"
        return True

    def score(self, images, audio, fps: float, syncnet_name: str, aligned_faces: bool, vshift: int, stride: int,
              face_detector=None):
        from latentsync_core.convert import image_to_uint8
        from latentsync_core.syncnet.score import score_sync

        syncnet = _load_syncnet(syncnet_name)
        frames = image_to_uint8(images)
        result = score_sync(syncnet, frames, audio, float(fps), aligned=bool(aligned_faces),
                            detector=_detector(face_detector), vshift=int(vshift), stride=int(stride),
                            total_frames=len(frames))
        summary = result.summary()
        return {"ui": {"text": [summary]},
                "result": (float(result.confidence), int(result.offset), float(result.min_distance), summary)}


NODE_CLASS_MAPPINGS = {
    "LatentSyncPrepareDataset": LatentSyncPrepareDataset,
    "LatentSyncTrainStage2": LatentSyncTrainStage2,
    "LatentSyncScoreLipSync": LatentSyncScoreLipSync,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LatentSyncPrepareDataset": "Prepare LatentSync Dataset",
    "LatentSyncTrainStage2": "Train LatentSync (stage 2)",
    "LatentSyncScoreLipSync": "Score Lip Sync",
}
