"""`load_unet`: official LatentSync U-Net checkpoints (1.5 / 1.6 / stage-1 / efficient) into our model, unchanged.

The architecture is inferred from the tensor shapes, every key must match (the official loader's
``strict=False`` silently ignores mistakes; we list them), and the model is built on the meta device
and given the checkpoint's own (memory-mapped) tensors, so a 5 GB file is never held twice in RAM.
"""
from __future__ import annotations

import ctypes
import logging
import mmap
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from ..checkpoints import check_state_dict as check_keys, extract_state_dict, load_checkpoint_file
from ..errors import CheckpointError
from .config import infer_config, normalize_config, state_dict_shapes
from .model import LatentSyncUNet

log = logging.getLogger("latentsync")

EXPECTED = "the LatentSync U-Net (latentsync_unet.pt from ByteDance/LatentSync-1.5 or -1.6, about 5 GB)"
CONTAINER_KEYS = ("state_dict", "model_state_dict", "module")


def load_unet(path_or_state_dict: str | Path | Mapping[str, torch.Tensor], device: str | torch.device = "cpu",
              dtype: torch.dtype = torch.float32, config: Mapping[str, Any] | None = None,
              trained_resolution: int | None = None) -> LatentSyncUNet:
    """Build the U-Net described by a checkpoint and load it with every key matched.

    `path_or_state_dict`: a .pt/.pth/.ckpt (``{"state_dict": ..., "global_step": ...}`` or a bare state
    dict) or .safetensors file, or an in-memory state dict. `config`: override the inferred
    architecture (only needed for non-shape choices such as head counts). `trained_resolution`: 256
    (LatentSync 1.5) or 512 (1.6); the two releases have identical tensors, so when not given it is read
    from a sidecar ``<name>.yaml/.json`` (``resolution: 512``) or the path (``LatentSync-1.6``), else unknown.
    Returns the model in eval mode on `device` in `dtype`. Tensors already on `device` in `dtype` are used
    as they are, not copied: the memory-mapped file's pages, or the caller's own state-dict tensors.
    """
    if isinstance(path_or_state_dict, Mapping):
        source, obj = "the given state dict", path_or_state_dict
    else:
        path = Path(path_or_state_dict)
        source = str(path)
        try:
            obj = load_checkpoint_file(path, mmap=True)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}; expected {EXPECTED}") from exc
        if trained_resolution is None:
            trained_resolution = guess_trained_resolution(path)
    try:
        state_dict = extract_state_dict(obj, source, CONTAINER_KEYS)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}; expected {EXPECTED}") from exc
    state_dict = _strip_prefix(state_dict, "module.")
    _reject_other_models(state_dict, source)

    inferred = infer_config(state_dict_shapes(state_dict), source)
    cfg = normalize_config({**inferred, **dict(config)}) if config else inferred
    with torch.device("meta"):
        model = LatentSyncUNet(cfg)
    check_state_dict(model, state_dict, source)

    device = torch.device(device)
    memory_format = preferred_memory_format(device, dtype)
    file_ranges = [] if isinstance(path_or_state_dict, Mapping) else _mapped_ranges(Path(path_or_state_dict))
    tensors = {}
    for key, tensor in state_dict.items():
        if tensor.is_floating_point():
            converted = tensor.to(device=device, dtype=dtype,
                                  memory_format=memory_format if tensor.dim() == 4 else torch.preserve_format)
        else:
            converted = tensor.to(device)
        if converted.data_ptr() != tensor.data_ptr() or converted.device != tensor.device:
            _release_pages(tensor, file_ranges)
        tensors[key] = converted
    model.load_state_dict(tensors, strict=True, assign=True)
    model.memory_format = memory_format
    model.eval()
    model.trained_resolution = trained_resolution
    if isinstance(obj, Mapping) and "global_step" in obj:
        model.checkpoint_global_step = int(obj["global_step"])
    log.info("loaded LatentSync U-Net from %s: %s, in %d, audio width %s, motion modules %s, %s on %s",
             source, cfg["block_out_channels"], cfg["in_channels"],
             cfg["cross_attention_dim"] if cfg["add_audio_layer"] else "none",
             _motion_summary(cfg), str(dtype).replace("torch.", ""), device)
    return model


def preferred_memory_format(device: torch.device, dtype: torch.dtype) -> torch.memory_format:
    """NHWC for bf16/fp16 on CPU, where the whole bf16 forward measured 7-10% faster (oneDNN convolutions, no
    token permutes); NCHW elsewhere (no gain measured for fp32 on CPU; other devices not measured)."""
    if device.type == "cpu" and dtype in (torch.bfloat16, torch.float16):
        return torch.channels_last
    return torch.contiguous_format


def check_state_dict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Strict check against the U-Net built from the inferred config (see checkpoints.check_state_dict)."""
    check_keys(model, state_dict, source, "LatentSync U-Net", EXPECTED)


def guess_trained_resolution(path: Path) -> int | None:
    """256 or 512 from a sidecar config (``resolution: N``) or a version in the path; None when unknown."""
    for sidecar in (path.with_suffix(".yaml"), path.with_suffix(".yml"), path.with_suffix(".json")):
        if sidecar.is_file():
            match = re.search(r"resolution[\"']?\s*:\s*(\d+)", sidecar.read_text(errors="replace"))
            if match:
                return int(match.group(1))
    text = str(path).lower()
    match = re.search(r"(?:latentsync|v)[ _-]?1[._]([56])(?![0-9])", text)
    if match:
        return 256 if match.group(1) == "5" else 512
    return None


def _strip_prefix(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    # Checkpoints saved from a DistributedDataParallel wrapper carry "module." on every key.
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return state_dict


def _reject_other_models(state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    keys = list(state_dict)
    hints = (
        (("encoder.blocks.", "decoder.blocks."), "a Whisper audio-encoder checkpoint (it belongs in models/whisper)"),
        (("audio_encoder.", "visual_encoder."), "a SyncNet checkpoint"),
        (("encoder.down_blocks.", "decoder.up_blocks.", "quant_conv."), "a VAE checkpoint"),
        (("model.diffusion_model.",), "a Stable Diffusion checkpoint, not LatentSync's U-Net"),
    )
    for prefixes, what in hints:
        if any(k.startswith(prefixes) for k in keys) and "conv_in.weight" not in state_dict:
            raise CheckpointError(f"{source} looks like {what}; expected {EXPECTED}")


def _motion_summary(cfg: Mapping[str, Any]) -> str:
    if not cfg["use_motion_module"]:
        return "none (stage 1)"
    where = "decoder only" if cfg["motion_module_decoder_only"] else "encoder+decoder"
    return f"{where}, {cfg['motion_module_kwargs']['temporal_position_encoding_max_len']} frames max"


def _mapped_ranges(path: Path) -> list[tuple[int, int]]:
    """Address ranges where this process maps `path` (from /proc/self/maps); empty where unknown."""
    try:
        target = str(path.resolve())
        ranges = []
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].strip() == target:
                    start, end = (int(x, 16) for x in fields[0].split("-"))
                    ranges.append((start, end))
        return ranges
    except OSError:
        return []


_LIBC = None


def _release_pages(tensor: torch.Tensor, file_ranges: list[tuple[int, int]]) -> None:
    """Drop the resident pages of a converted source tensor that is memory-mapped from the checkpoint file.

    Only file-backed pages are dropped (the kernel re-reads the file if they are touched again); anonymous
    memory is never touched, since dropping it would zero it. Without this, converting a 5 GB fp32 file to
    bf16 or moving it to a GPU would keep the whole file resident in RAM until the load returns.
    """
    global _LIBC
    size = tensor.numel() * tensor.element_size()
    start = tensor.data_ptr()
    if not file_ranges or size < (1 << 20) or not any(lo <= start and start + size <= hi for lo, hi in file_ranges):
        return
    try:
        if _LIBC is None:
            _LIBC = ctypes.CDLL(None, use_errno=True)
        page = mmap.PAGESIZE
        first = (start + page - 1) // page * page  # whole pages inside this tensor only
        last = (start + size) // page * page
        if last > first:
            _LIBC.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), 4)  # MADV_DONTNEED
    except (OSError, AttributeError):
        pass
