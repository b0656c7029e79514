"""StableSyncNet (LatentSync's sync discriminator): model, strict loader, its mel front-end, sync scoring.

Stable entry point: `load_syncnet(path, device, dtype)`; `model(frames, mel) -> (vision_embeds, audio_embeds)`
with frames [B, 48, H/2, W] (lower halves of 16 RGB frames in [-1, 1]) and mel [B, 1, 80, 52].
"""
from .config import OFFICIAL_CONFIG, face_resolution, frames_per_window, infer_config, mel_window_frames
from .loader import load_syncnet
from .mel import AUDIO_YAML, MelConfig, mel_filter_bank, mel_window, mel_window_start, melspectrogram
from .model import StableSyncNet

__all__ = [
    "AUDIO_YAML", "MelConfig", "OFFICIAL_CONFIG", "StableSyncNet", "face_resolution", "frames_per_window", "infer_config",
    "load_syncnet", "mel_filter_bank", "mel_window", "mel_window_frames", "mel_window_start", "melspectrogram",
]
