"""Whisper encoder features exactly as LatentSync's official extraction computes them.

The official recipe (audio2feature.py + its vendored transcribe.py), which the U-Net was trained on:
1. log-mel of the whole clip (so its clamp uses the whole clip's maximum);
2. cut into consecutive 3000-frame (30 s) windows, the last one zero-padded to 3000;
3. per window, keep the encoder's input to the first block and the output of every block, *before*
   the final layer norm -> [1500, L+1, C];
4. from each window keep the first floor(window mel frames / 2) positions and concatenate.

Here the windows go through the encoder in batches (a few forwards for a long file, not one per window),
and the output is filled in place, so memory is the features themselves plus one batch of windows.
The blocks are walked here rather than through the package's forward, to collect the states, fuse the
q/k/v projections into one matmul, and compute the last block only at the positions that are kept
(a short clip's window is mostly padding that nothing reads after the last block).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import host
from ..errors import AudioError
from .mel import whisper_log_mel
from .prepare import check_finite, check_length, pcm_to_float, to_numpy
from .whisper_model import WINDOW_MEL_FRAMES, as_encoder, encoder_dims

GPU_WINDOWS_PER_BATCH = 16  # 16 x 30 s of tiny/small activations in fp16 fit easily on any CUDA card
CPU_WINDOWS_PER_BATCH = 2  # on CPU a bigger batch buys nothing and only raises peak memory


def whisper_features(model: Any, waveform_16k: np.ndarray | torch.Tensor, *,
                     windows_per_batch: int | None = None) -> torch.Tensor:
    """16 kHz mono float32 samples [T] -> float32 CPU tensor [T50, L+1, C] (50 positions per second).

    `model` is what load_whisper returns (a whole openai-whisper model also works). Other rates or
    channel counts must go through `model_waveform` first.
    """
    encoder = as_encoder(model)
    samples = _validated_samples(waveform_16k)
    mel = whisper_log_mel(samples, encoder_dims(encoder).n_mels)
    return encode_mel(encoder, mel, windows_per_batch)


def window_spans(num_mel_frames: int) -> list[tuple[int, int]]:
    """(first mel frame, encoder positions kept) of each 30 s window, as the official stitches them."""
    return [(start, (min(start + WINDOW_MEL_FRAMES, num_mel_frames) - start) // 2)
            for start in range(0, num_mel_frames, WINDOW_MEL_FRAMES)]


def encode_mel(encoder: nn.Module, mel: torch.Tensor, windows_per_batch: int | None = None) -> torch.Tensor:
    """[n_mels, N] normalised log-mel of a whole clip -> [N // 2 (per window), L+1, C] float32 CPU features."""
    dims = encoder_dims(encoder)
    device = encoder.conv1.weight.device
    dtype = encoder.conv1.weight.dtype
    if windows_per_batch is None:
        windows_per_batch = GPU_WINDOWS_PER_BATCH if device.type != "cpu" else CPU_WINDOWS_PER_BATCH
    if windows_per_batch < 1:
        raise ValueError(f"windows_per_batch must be at least 1, got {windows_per_batch}")
    spans = window_spans(mel.shape[-1])
    out = torch.empty((sum(keep for _, keep in spans), dims.n_audio_layer + 1, dims.n_audio_state), dtype=torch.float32)
    position = 0
    with host.Progress(len(spans), desc="Whisper features") as progress, torch.inference_mode():
        fused = _fused_qkv(encoder)
        for group_start in range(0, len(spans), windows_per_batch):
            host.check_interrupt()
            group = spans[group_start: group_start + windows_per_batch]
            batch = torch.stack([_window(mel, start) for start, _ in group]).to(device=device, dtype=dtype)
            states = _encoder_states(encoder, batch, max(keep for _, keep in group), fused)
            for index, (_, keep) in enumerate(group):
                out[position: position + keep] = states[index, :keep].to("cpu", torch.float32)
                position += keep
            progress.update(len(group))
    return out


def encoder_states(encoder: nn.Module, mel_windows: torch.Tensor, keep: int | None = None) -> torch.Tensor:
    """[B, n_mels, 3000] -> [B, keep, L+1, C]: block-0 input, then each block's output (no ln_post).

    Only the first `keep` positions (default all 1500) are returned; every block still attends over the
    whole window, as the official does.
    """
    weight = encoder.conv1.weight
    with torch.inference_mode():
        mel_windows = mel_windows.to(device=weight.device, dtype=weight.dtype)
        return _encoder_states(encoder, mel_windows, keep or mel_windows.shape[-1] // 2, _fused_qkv(encoder))


def _encoder_states(encoder: nn.Module, mel_windows: torch.Tensor, keep: int,
                    fused: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    x = F.gelu(encoder.conv1(mel_windows))
    x = F.gelu(encoder.conv2(x))
    x = x.permute(0, 2, 1)
    # The positional table stays fp32 and the sum is rounded back, as in the official fp16 run.
    x = (x + encoder.positional_embedding).to(x.dtype)
    layers = len(encoder.blocks)
    states = x.new_empty((x.shape[0], keep, layers + 1, x.shape[-1]))
    states[:, :, 0] = x[:, :keep]
    for index, (block, (qkv_weight, qkv_bias)) in enumerate(zip(encoder.blocks, fused)):
        # Past the last block nothing attends to the dropped positions, so only the kept ones are computed.
        rows = keep if index == layers - 1 else None
        x = _block_forward(block, x, qkv_weight, qkv_bias, rows)
        states[:, :, index + 1] = x[:, :keep]
    return states


def _block_forward(block: nn.Module, x: torch.Tensor, qkv_weight: torch.Tensor, qkv_bias: torch.Tensor,
                   rows: int | None) -> torch.Tensor:
    """whisper's ResidualAttentionBlock (self-attention only) with one fused q/k/v projection."""
    batch, length, width = x.shape
    heads = block.attn.n_head
    qkv = F.linear(block.attn_ln(x), qkv_weight, qkv_bias)
    q, k, v = qkv.view(batch, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
    if rows is not None and rows < length:
        q, x = q[:, :, :rows], x[:, :rows]
    attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, -1, width)
    x = x + F.linear(attended, block.attn.out.weight, block.attn.out.bias)
    return x + block.mlp(block.mlp_ln(x))


def _fused_qkv(encoder: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    fused = []
    for block in encoder.blocks:
        attn = block.attn
        key_bias = torch.zeros_like(attn.query.bias)  # whisper's key projection has no bias
        fused.append((torch.cat([attn.query.weight, attn.key.weight, attn.value.weight]),
                      torch.cat([attn.query.bias, key_bias, attn.value.bias])))
    return fused


def _window(mel: torch.Tensor, start: int) -> torch.Tensor:
    # Zero padding in normalised log-mel space, as whisper's pad_or_trim does (not the mel of silence).
    window = mel[:, start: start + WINDOW_MEL_FRAMES]
    return F.pad(window, (0, WINDOW_MEL_FRAMES - window.shape[-1]))


def _validated_samples(waveform: np.ndarray | torch.Tensor) -> torch.Tensor:
    samples = pcm_to_float(to_numpy(waveform))
    if samples.ndim == 2 and 1 in samples.shape:
        samples = samples.reshape(-1)
    if samples.ndim != 1:
        raise AudioError(
            f"whisper_features takes mono 16 kHz samples [T], got shape {tuple(samples.shape)}; "
            f"down-mix and resample with latentsync_core.audio.model_waveform(audio, sample_rate) first"
        )
    check_length(samples.shape[0])
    check_finite(samples, 16000)
    return torch.from_numpy(np.ascontiguousarray(samples))
