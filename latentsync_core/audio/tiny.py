"""Random-weight Whisper checkpoints in the official openai-whisper file format, for tests and benches.

`write_fixture` writes the narrow model the test suite uses (64 wide, 4 blocks: features [T50, 5, 64],
matching the tiny U-Net fixture's cross_attention_dim); `random_whisper_checkpoint` also builds the
full-size `tiny` architecture (384 wide) for the bench, since the real weights cannot be fetched here.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from ..checkpoints import save_checkpoint_file

FIXTURE_DIMS = {
    "n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 64, "n_audio_head": 2, "n_audio_layer": 4,
    "n_vocab": 1024, "n_text_ctx": 448, "n_text_state": 64, "n_text_head": 2, "n_text_layer": 1,
}
TINY_DIMS = {
    "n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6, "n_audio_layer": 4,
    "n_vocab": 51865, "n_text_ctx": 448, "n_text_state": 384, "n_text_head": 6, "n_text_layer": 4,
}


def random_whisper_checkpoint(dims: dict[str, int], seed: int = 0) -> dict:
    """{"dims", "model_state_dict"} with every tensor random, scaled so activations stay O(1)."""
    from whisper.model import ModelDimensions, Whisper

    generator = torch.Generator().manual_seed(seed)
    shapes = {k: tuple(v.shape) for k, v in Whisper(ModelDimensions(**dims)).state_dict().items()}
    state = {}
    for key, shape in shapes.items():
        noise = torch.randn(shape, generator=generator)
        if key.endswith("positional_embedding") and key.startswith("encoder."):
            # Real checkpoints hold the sinusoid table; perturb it so a loader that recomputes it is caught.
            state[key] = _sinusoids(*shape) + 0.05 * noise
        elif "ln" in key.split(".")[-2] and key.endswith(".weight"):
            state[key] = 1.0 + 0.1 * noise
        elif key.endswith(".bias"):
            state[key] = 0.05 * noise
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
            state[key] = noise / math.sqrt(fan_in)
    return {"dims": dict(dims), "model_state_dict": state}


def write_fixture(models_root: Path, seed: int = 0) -> list[Path]:
    path = Path(models_root) / "whisper" / "tiny.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint_file(random_whisper_checkpoint(FIXTURE_DIMS, seed), path)
    return [path]


def _sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-increment * torch.arange(channels // 2))
    scaled_time = torch.arange(length)[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)
