"""Stage-2 training of the LatentSync U-Net on one GPU (or CPU with tiny models).

Entry point: `train_stage2(unet, vae, whisper, data, TrainOptions(...), syncnet=..., lpips=..., trepa=...)`.
"""
from .data import ClipDataset, Sample
from .losses import decode_with_grad, load_lpips, load_trepa, lpips_loss, sync_loss, trepa_loss
from .noise import ForwardProcess, mixed_noise
from .plot import plot_losses
from .presets import PRESETS, LoRAAdapters, select_trainable, trainable_names
from .trainer import Stage2Trainer, TrainingError, TrainOptions, TrainResult, encode_batch, train_stage2

__all__ = [
    "PRESETS", "ClipDataset", "ForwardProcess", "LoRAAdapters", "Sample", "Stage2Trainer", "TrainOptions",
    "TrainResult", "TrainingError", "decode_with_grad", "encode_batch", "load_lpips", "load_trepa", "lpips_loss",
    "mixed_noise", "plot_losses", "select_trainable", "sync_loss", "train_stage2", "trainable_names", "trepa_loss",
]
