"""The stage-2 trainer: fine-tune a LatentSync U-Net on prepared clips, one GPU (or CPU with tiny models).

One step, as scripts/train_unet.py: encode the target window, its masked copy and a reference window
with the frozen VAE (posterior samples); add mixed noise at uniform timesteps; predict the noise from
[noisy, mask, masked, reference] latents and the Whisper chunks; loss = w_recon * MSE(eps) and, when
enabled, pixel terms on the one-step x0 estimate decoded by the VAE (SyncNet BCE, LPIPS, TREPA).
AdamW at a constant learning rate, gradient clipping, fp16 autocast + GradScaler on CUDA.

Checkpoints are the official `{"global_step", "state_dict"}` (LoRA merged into the weights), written
atomically into `save_dir` (default models/latentsync/), so the U-Net loader and the official code read
them. Stopping (ComfyUI's Stop / Ctrl-C) saves a checkpoint first; a non-finite loss stops without
touching the weights or the last checkpoint.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .. import host
from ..checkpoints import save_checkpoint_file
from ..errors import LatentSyncError, ProcessingInterrupted
from .data import WINDOW, ClipDataset, Sample
from .losses import (PerceptualLoss, VideoFeatures, decode_with_grad, lpips_loss, sync_loss, trepa_loss)
from .noise import ForwardProcess, mixed_noise
from .presets import PRESETS, select_trainable

log = logging.getLogger("latentsync")

PRECISIONS = ("auto", "fp16", "bf16", "no")


class TrainingError(LatentSyncError):
    """Training cannot go on (non-finite loss, nothing trainable...); the message says what to change."""


@dataclass
class TrainOptions:
    steps: int = 1000
    lr: float = 1e-5
    batch_size: int = 1
    preset: str = "stage2"
    lora_rank: int = 16
    mixed_precision: str = "auto"        # auto: fp16 autocast on CUDA (official), none on CPU
    gradient_checkpointing: bool = True
    seed: int = 1247
    save_every: int = 500                # 0: only at the end
    save_dir: Path | str | None = None   # default: the first models/latentsync folder
    run_name: str = "latentsync_stage2"
    resume: bool = False                 # continue the step count of the U-Net's checkpoint
    noise_alpha: float = 1.0
    max_grad_norm: float = 1.0
    recon_weight: float = 1.0
    sync_weight: float = 0.05
    lpips_weight: float = 0.1
    trepa_weight: float = 10.0
    mask_shape: str = "bowl"
    log_every: int = 10
    num_frames: int = WINDOW             # frames per training window (official 16; the SyncNet needs 16)

    def check(self) -> None:
        if self.preset not in PRESETS:
            raise TrainingError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.mixed_precision not in PRECISIONS:
            raise TrainingError(f"mixed_precision must be one of {', '.join(PRECISIONS)}")
        if not 2 <= self.num_frames <= 24:
            raise TrainingError(f"num_frames must be 2..24 (the motion modules' range; official 16), got {self.num_frames}")
        if self.steps < 1 or self.batch_size < 1 or not self.lr > 0:
            raise TrainingError(f"steps and batch size must be >= 1 and lr > 0 (got {self.steps}, {self.batch_size}, "
                                f"{self.lr})")


@dataclass
class TrainResult:
    unet: torch.nn.Module
    history: list[dict] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)
    global_step: int = 0
    terms: dict[str, bool] = field(default_factory=dict)

    def plot(self) -> np.ndarray:
        from .plot import plot_losses

        return plot_losses(self.history)


@dataclass
class Batch:
    """One step's tensors on the training device (latents [B, 4, 16, h, w]; pixels [B*16, 3, R, R])."""

    gt_latents: torch.Tensor
    mask: torch.Tensor
    masked_latents: torch.Tensor
    ref_latents: torch.Tensor
    gt_pixels: torch.Tensor
    audio: torch.Tensor
    mel: torch.Tensor


def encode_batch(samples: list[Sample], vae: Any, keep_mask: torch.Tensor, generator: torch.Generator,
                 device: torch.device) -> Batch:
    """VAE-encode the windows (posterior samples, as the official) into a U-Net batch."""
    from ..pipeline.stages import encode_faces, faces_to_tensor
    from ..vae import as_latent_vae

    wrapped = as_latent_vae(vae)
    gts, masks, masked, refs, pixels = [], [], [], [], []
    for sample in samples:
        conditioning = encode_faces(wrapped, sample.gt, keep_mask, ref_faces=sample.ref, sample=True,
                                    generator=generator, device=device, dtype=torch.float32)
        gt = faces_to_tensor(sample.gt)
        gt_latents = wrapped.encode(gt.to(wrapped.device, wrapped.dtype), sample=True, generator=generator)
        gts.append(gt_latents.to(device, torch.float32).permute(1, 0, 2, 3).unsqueeze(0))
        masks.append(conditioning.mask)
        masked.append(conditioning.masked_latents)
        refs.append(conditioning.ref_latents)
        pixels.append(gt.to(device))
    return Batch(torch.cat(gts), torch.cat(masks), torch.cat(masked), torch.cat(refs), torch.cat(pixels),
                 torch.stack([s.audio for s in samples]).to(device), torch.stack([s.mel for s in samples]).to(device))


class Stage2Trainer:
    """Holds the models and optimiser; `step()` runs one optimisation step and returns its loss terms."""

    def __init__(self, unet: torch.nn.Module, vae: Any, dataset: ClipDataset, options: TrainOptions, *,
                 syncnet: Any = None, lpips: PerceptualLoss | None = None, trepa: VideoFeatures | None = None,
                 device: torch.device | str | None = None):
        from ..face import mouth_mask
        from ..pipeline.stages import keep_mask_from_mouth
        from ..vae import as_latent_vae

        options.check()
        self.options = options
        self.device = torch.device(device) if device is not None else unet.device
        self.unet = unet
        if unet.dtype != torch.float32:
            log.info("training: the U-Net is %s; training keeps fp32 master weights (autocast does the rest)",
                     str(unet.dtype).replace("torch.", ""))
            unet.to(torch.float32)
        unet.to(self.device)
        self.vae = as_latent_vae(vae)
        if dataset.window != options.num_frames:
            raise TrainingError(f"the dataset draws {dataset.window}-frame windows but num_frames is {options.num_frames}")
        self.dataset = dataset
        self.process = ForwardProcess()
        self.generator = torch.Generator().manual_seed(int(options.seed))
        self.rng = np.random.default_rng(int(options.seed))
        resolution = dataset.resolution
        if getattr(unet, "trained_resolution", None) not in (None, resolution):
            log.warning("training: the U-Net was trained at %s px, the dataset is %d px", unet.trained_resolution,
                        resolution)
        self.keep_mask = keep_mask_from_mouth(mouth_mask(resolution, options.mask_shape))
        self.terms = self._choose_terms(syncnet, lpips, trepa)
        self.syncnet, self.lpips, self.trepa = syncnet, lpips, trepa
        self.params, self.adapters = select_trainable(unet, options.preset, options.lora_rank, options.seed)
        count = sum(p.numel() for p in self.params)
        total = sum(p.numel() for p in unet.parameters())
        log.info("training: preset %s, %s trainable parameters (U-Net %s)", options.preset, f"{count:,}", f"{total:,}")
        self.optimizer = torch.optim.AdamW(self.params, lr=options.lr, foreach=True)  # one kernel per op, not per tensor
        self.autocast_dtype = self._autocast_dtype()
        self.scaler = torch.amp.GradScaler("cuda") if self.autocast_dtype == torch.float16 else None
        unet.enable_gradient_checkpointing(options.gradient_checkpointing)
        if self.needs_pixels and options.gradient_checkpointing and hasattr(self.vae, "model"):
            self.vae.model.enable_gradient_checkpointing()
        self.global_step = int(getattr(unet, "checkpoint_global_step", 0) or 0) if options.resume else 0

    # ------------------------------------------------------------------ setup helpers
    def _choose_terms(self, syncnet, lpips, trepa) -> dict[str, bool]:
        o = self.options
        terms = {"recon": o.recon_weight != 0, "sync": False, "lpips": False, "trepa": False}
        wanted = {"sync": (o.sync_weight, syncnet, "no SyncNet (stable_syncnet.pt) given"),
                  "lpips": (o.lpips_weight, lpips, "no LPIPS model (needs the lpips package + VGG weights)"),
                  "trepa": (o.trepa_weight, trepa, "no VideoMAE-v2 feature extractor given")}
        if syncnet is not None and o.sync_weight != 0:
            from ..syncnet.config import frames_per_window

            if frames_per_window(syncnet.config) != o.num_frames:
                log.info("training: sync term off: the SyncNet scores %d-frame windows, training uses %d",
                         frames_per_window(syncnet.config), o.num_frames)
                syncnet = None
        for name, (weight, model, missing) in wanted.items():
            if weight == 0:
                log.info("training: %s term off (weight 0)", name)
            elif model is None:
                log.info("training: %s term off: %s", name, missing)
            else:
                terms[name] = True
        if terms["sync"]:
            syncnet.requires_grad_(False).eval()
        if not any(terms.values()):
            raise TrainingError("every loss term is off: set a non-zero recon weight or provide a loss model")
        log.info("training: loss terms %s", ", ".join(f"{k} x {getattr(o, k + '_weight')}"
                                                    for k, on in terms.items() if on))
        return terms

    @property
    def needs_pixels(self) -> bool:
        return self.terms["sync"] or self.terms["lpips"] or self.terms["trepa"]

    def _autocast_dtype(self) -> torch.dtype | None:
        choice = self.options.mixed_precision
        if choice == "no" or (choice == "auto" and self.device.type != "cuda"):
            return None
        if choice == "auto":
            return torch.float16
        return torch.float16 if choice == "fp16" else torch.bfloat16

    # ------------------------------------------------------------------ one step
    def next_batch(self) -> Batch:
        samples = [self.dataset.sample(self.rng) for _ in range(self.options.batch_size)]
        return encode_batch(samples, self.vae, self.keep_mask, self.generator, self.device)

    def losses(self, batch: Batch, noise: torch.Tensor, timesteps: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every enabled loss term and the weighted total ("loss") for given noise and timesteps."""
        o = self.options
        noisy = self.process.add_noise(batch.gt_latents, noise, timesteps)
        model_input = torch.cat([noisy, batch.mask, batch.masked_latents, batch.ref_latents], dim=1)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            eps = self.unet(model_input, timesteps.to(self.device), batch.audio)
        terms: dict[str, torch.Tensor] = {}
        if self.terms["recon"]:
            terms["recon"] = F.mse_loss(eps.float(), noise.float())
        if self.needs_pixels:
            x0 = self.process.predicted_x0(noisy, eps, timesteps)
            latents = x0.transpose(1, 2).reshape(-1, x0.shape[1], *x0.shape[-2:])  # [B*F, 4, h, w], frame-major
            with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                enabled=self.autocast_dtype is not None):
                pixels = decode_with_grad(self.vae, latents)
            if self.terms["lpips"]:
                terms["lpips"] = lpips_loss(self.lpips, pixels, batch.gt_pixels)
            if self.terms["trepa"]:
                terms["trepa"] = trepa_loss(self.trepa, pixels, batch.gt_pixels, o.num_frames)
            if self.terms["sync"]:
                terms["sync"] = sync_loss(self.syncnet, pixels.float(), batch.mel, o.num_frames)
        terms["loss"] = sum(getattr(o, f"{k}_weight") * v for k, v in terms.items())
        return terms

    def step(self, batch: Batch | None = None) -> dict[str, float]:
        """One optimisation step on `batch` (default: a fresh random batch from the dataset)."""
        self.unet.train()
        batch = batch if batch is not None else self.next_batch()
        noise = mixed_noise(tuple(batch.gt_latents.shape), self.options.noise_alpha, self.generator, self.device)
        timesteps = self.process.sample_timesteps(noise.shape[0], self.generator)
        terms = self.losses(batch, noise, timesteps)
        loss = terms["loss"]
        values = {k: float(v.detach()) for k, v in terms.items()}
        if not all(math.isfinite(v) for v in values.values()):
            raise TrainingError(
                f"the loss became non-finite at step {self.global_step + 1} ("
                + ", ".join(f"{k} {v:.4g}" for k, v in values.items())
                + "); training stopped before updating the weights. Lower the learning rate, or train in bf16/fp32 "
                  "instead of fp16")
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.options.max_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, self.options.max_grad_norm)
            self.optimizer.step()
        self.global_step += 1
        return {"step": self.global_step, **values}

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, torch.Tensor]:
        if self.adapters is not None:
            return self.adapters.merged_state_dict(self.unet)
        return {k: v.detach() for k, v in self.unet.state_dict().items()}

    def save(self, save_dir: Path, suffix: str = "") -> Path:
        path = Path(save_dir) / f"{self.options.run_name}-step{self.global_step:07d}{suffix}.pt"
        state = {k: v.to("cpu").contiguous() for k, v in self.state_dict().items()}
        try:
            save_checkpoint_file({"global_step": self.global_step, "state_dict": state}, path)
        except OSError as exc:
            raise TrainingError(f"could not save the checkpoint {path} ({exc}); nothing was written there "
                                "(free disk space or choose another save folder)") from exc
        log.info("training: saved %s", path)
        return path

    def finish_unet(self) -> torch.nn.Module:
        """The trained U-Net for inference: adapters merged into its weights, eval mode, no gradients."""
        if self.adapters is not None:
            merged = self.adapters.merged_state_dict(self.unet)
            self.adapters.detach()
            self.unet.load_state_dict(merged)
        self.unet.disable_gradient_checkpointing()
        self.unet.requires_grad_(False).eval()
        self.unet.checkpoint_global_step = self.global_step
        return self.unet


def _is_interrupt(exc: BaseException) -> bool:
    # ComfyUI's Stop raises comfy.model_management.InterruptProcessingException (not importable here).
    return isinstance(exc, ProcessingInterrupted) or type(exc).__name__ == "InterruptProcessingException"


def default_save_dir() -> Path:
    return host.model_dirs("latentsync")[0]


def train_stage2(unet: torch.nn.Module, vae: Any, whisper: Any, data: Path | str | ClipDataset,
                 options: TrainOptions | None = None, *, syncnet: Any = None, lpips: PerceptualLoss | None = None,
                 trepa: VideoFeatures | None = None, device: torch.device | str | None = None,
                 on_step: Callable[[dict], None] | None = None) -> TrainResult:
    """Fine-tune `unet` in place on a dataset (manifest, dataset folder or ClipDataset); returns a TrainResult.

    `syncnet` / `lpips` / `trepa` enable their loss terms (None: term off, logged). `on_step` gets each
    step's loss dict. Raises TrainingError on a non-finite loss and re-raises ProcessingInterrupted
    after saving a checkpoint when stopped.
    """
    options = options or TrainOptions()
    options.check()
    dataset = data if isinstance(data, ClipDataset) else ClipDataset(data, whisper, window=options.num_frames)
    trainer = Stage2Trainer(unet, vae, dataset, options, syncnet=syncnet, lpips=lpips, trepa=trepa, device=device)
    save_dir = Path(options.save_dir) if options.save_dir else default_save_dir()
    result = TrainResult(unet, terms=dict(trainer.terms), global_step=trainer.global_step)
    first, last = trainer.global_step, trainer.global_step + options.steps
    log.info("training: steps %d -> %d on %d clips at %d px, checkpoints every %s steps into %s", first, last,
             len(dataset), dataset.resolution, options.save_every or "-", save_dir)
    started = time.monotonic()
    with host.Progress(options.steps, "training") as progress:
        while trainer.global_step < last:
            try:
                host.check_interrupt()  # ProcessingInterrupted here, ComfyUI's own exception inside ComfyUI
                record = trainer.step()
            except TrainingError:
                raise
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt) or _is_interrupt(exc):
                    if trainer.global_step > first:
                        result.checkpoints.append(trainer.save(save_dir, "-stopped"))
                raise
            result.history.append(record)
            result.global_step = trainer.global_step
            progress.update(1)
            if on_step is not None:
                on_step(record)
            if options.log_every and trainer.global_step % options.log_every == 0:
                log.info("training: step %d  %s  (%.2f s/step)", trainer.global_step,
                         "  ".join(f"{k} {v:.4f}" for k, v in record.items() if k != "step"),
                         (time.monotonic() - started) / (trainer.global_step - first))
            if options.save_every and trainer.global_step % options.save_every == 0 and trainer.global_step < last:
                result.checkpoints.append(trainer.save(save_dir))
    result.checkpoints.append(trainer.save(save_dir))
    result.unet = trainer.finish_unet()
    return result
