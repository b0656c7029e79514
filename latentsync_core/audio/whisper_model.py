"""Loading the Whisper audio encoder that LatentSync conditions on.

Two file layouts are accepted:
- the openai-whisper checkpoint LatentSync ships (`whisper/tiny.pt`: `{"dims": ..., "model_state_dict": ...}`);
- a Hugging Face transformers Whisper folder (`config.json` + `model.safetensors` / `pytorch_model.bin`).

Only the encoder is built: LatentSync never decodes text, and skipping the decoder saves most of the
load time and memory of the bigger checkpoints. The module is `whisper.model.AudioEncoder` from the
openai-whisper package, so the arithmetic is the one the official extraction runs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..checkpoints import load_checkpoint_file
from ..errors import CheckpointError

WINDOW_MEL_FRAMES = 3000  # one 30 s Whisper window at 100 mel frames per second
WINDOW_POSITIONS = WINDOW_MEL_FRAMES // 2  # conv2 has stride 2: 50 encoder positions per second
SUPPORTED_MELS = (80, 128)  # the filter banks shipped inside the openai-whisper package


@dataclass(frozen=True)
class EncoderDims:
    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int


def load_whisper(path: Path | str, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> nn.Module:
    """Build the Whisper audio encoder from `path`, on `device`, computing in `dtype`.

    `device` defaults to the host's device and `dtype` to the host's choice for it (fp16 on CUDA, as
    the official extraction runs; fp32 on CPU). In reduced precision the layer norms and the
    positional table stay fp32, mirroring the official model (fp32 weights fed fp16 input: its
    Linear/Conv layers cast weights per call, its LayerNorm computes in fp32), so results agree with it.
    """
    from .. import host

    path = Path(path)
    if path.is_dir():
        dims, state = _read_transformers_folder(path)
    elif path.is_file():
        dims, state = _read_openai_checkpoint(path)
    else:
        raise CheckpointError(f"Whisper checkpoint not found: {path} (expected whisper/tiny.pt from the LatentSync release)")
    device = torch.device(device) if device is not None else host.get_device()
    dtype = dtype if dtype is not None else host.get_dtype(device)
    return build_encoder(dims, state, device, dtype, source=str(path))


def build_encoder(dims: EncoderDims, state: Mapping[str, torch.Tensor], device: torch.device | str,
                  dtype: torch.dtype, source: str = "state dict") -> nn.Module:
    """An eval-mode `whisper.model.AudioEncoder` holding `state` (keys without the `encoder.` prefix)."""
    from whisper.model import AudioEncoder

    _check_dims(dims, source)
    # Built on CPU (meta tensors would pull in a 2 s import); the random init is replaced below.
    encoder = AudioEncoder(dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head, dims.n_audio_layer)
    shapes = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    missing = sorted(set(shapes) - set(state))
    unexpected = sorted(set(state) - set(shapes))
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not match a Whisper encoder with {dims}: "
            f"missing {missing[:8]}{'...' if len(missing) > 8 else ''}, "
            f"unexpected {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}"
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != shapes[key]:
            raise CheckpointError(f"{source}: tensor {key} has shape {tuple(tensor.shape)}, expected {shapes[key]} for {dims}")
    encoder.load_state_dict({k: v.float() for k, v in state.items()}, assign=True)
    encoder = encoder.to(device=device, dtype=torch.float32)
    if dtype != torch.float32:
        for module in encoder.modules():
            if isinstance(module, (nn.Conv1d, nn.Linear)):
                module.to(dtype)
    encoder.requires_grad_(False)
    return encoder.eval()


def encoder_dims(encoder: nn.Module) -> EncoderDims:
    conv1 = encoder.conv1
    return EncoderDims(
        n_mels=conv1.in_channels,
        n_audio_ctx=encoder.positional_embedding.shape[0],
        n_audio_state=conv1.out_channels,
        n_audio_head=encoder.blocks[0].attn.n_head,
        n_audio_layer=len(encoder.blocks),
    )


def as_encoder(model: Any) -> nn.Module:
    """Accept what load_whisper returns, a whole `whisper.model.Whisper`, or anything with `.encoder`."""
    if hasattr(model, "conv1") and hasattr(model, "blocks") and hasattr(model, "positional_embedding"):
        return model
    inner = getattr(model, "encoder", None)
    if inner is not None and hasattr(inner, "conv1"):
        return inner
    raise TypeError(f"expected a Whisper audio encoder (from load_whisper), got {type(model).__name__}")


# --------------------------------------------------------------------------- openai-whisper files
def _read_openai_checkpoint(path: Path) -> tuple[EncoderDims, dict[str, torch.Tensor]]:
    obj = load_checkpoint_file(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} is not a Whisper checkpoint (holds a {type(obj).__name__}, expected a dict)")
    if "model_state_dict" in obj:
        full_state = obj["model_state_dict"]
        if not isinstance(full_state, Mapping):
            raise CheckpointError(f"{path}: 'model_state_dict' is not a mapping of tensors")
    else:
        full_state = obj
    state = {k[len("encoder."):]: v for k, v in full_state.items()
             if k.startswith("encoder.") and isinstance(v, torch.Tensor)}
    if not state:
        raise CheckpointError(
            f"{path} has no Whisper encoder weights (no 'encoder.*' tensors); expected the openai-whisper "
            f"format {{'dims': ..., 'model_state_dict': ...}} such as LatentSync's whisper/tiny.pt"
        )
    raw_dims = obj.get("dims")
    if not isinstance(raw_dims, Mapping):
        # The head count cannot be read off tensor shapes, so a bare state dict is ambiguous.
        raise CheckpointError(f"{path} has no 'dims' entry; expected the openai-whisper format {{'dims': ..., 'model_state_dict': ...}}")
    try:
        dims = EncoderDims(**{f: int(raw_dims[f]) for f in EncoderDims.__dataclass_fields__})
    except KeyError as exc:
        raise CheckpointError(f"{path}: 'dims' lacks {exc.args[0]!r}") from exc
    return dims, state


def _check_dims(dims: EncoderDims, source: str) -> None:
    if dims.n_mels not in SUPPORTED_MELS:
        raise CheckpointError(f"{source}: n_mels={dims.n_mels} is not supported (Whisper uses {SUPPORTED_MELS})")
    if dims.n_audio_ctx != WINDOW_POSITIONS:
        raise CheckpointError(
            f"{source}: n_audio_ctx={dims.n_audio_ctx}, but a 30 s window gives {WINDOW_POSITIONS} encoder positions; "
            f"this is not a standard Whisper encoder"
        )
    if dims.n_audio_head <= 0 or dims.n_audio_state % dims.n_audio_head:
        raise CheckpointError(f"{source}: width {dims.n_audio_state} is not divisible into {dims.n_audio_head} heads")
    if dims.n_audio_layer <= 0:
        raise CheckpointError(f"{source}: the encoder has no residual blocks")


# --------------------------------------------------------------------------- transformers folders
_HF_LAYER_NAMES = {
    "self_attn.q_proj": "attn.query",
    "self_attn.k_proj": "attn.key",
    "self_attn.v_proj": "attn.value",
    "self_attn.out_proj": "attn.out",
    "self_attn_layer_norm": "attn_ln",
    "fc1": "mlp.0",
    "fc2": "mlp.2",
    "final_layer_norm": "mlp_ln",
}
_HF_TOP_NAMES = {"conv1": "conv1", "conv2": "conv2", "layer_norm": "ln_post"}


def _read_transformers_folder(folder: Path) -> tuple[EncoderDims, dict[str, torch.Tensor]]:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{folder} is a folder but has no config.json (expected a transformers Whisper model folder)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("model_type") != "whisper":
        raise CheckpointError(f"{folder}/config.json describes a {config.get('model_type')!r} model, not whisper")
    if config.get("activation_function", "gelu") != "gelu":
        raise CheckpointError(f"{folder}: activation {config['activation_function']!r} differs from Whisper's gelu")
    dims = EncoderDims(
        n_mels=int(config["num_mel_bins"]),
        n_audio_ctx=int(config["max_source_positions"]),
        n_audio_state=int(config["d_model"]),
        n_audio_head=int(config["encoder_attention_heads"]),
        n_audio_layer=int(config["encoder_layers"]),
    )
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            weights = load_checkpoint_file(folder / name)
            break
    else:
        raise CheckpointError(f"{folder} has no model.safetensors or pytorch_model.bin (sharded checkpoints are not supported)")
    return dims, _rename_transformers_keys(weights, str(folder))


def _rename_transformers_keys(weights: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for key, tensor in weights.items():
        # WhisperModel saves `encoder.*`, WhisperForConditionalGeneration `model.encoder.*`.
        _, sep, rest = key.partition("encoder.")
        if not sep or key[: key.index("encoder.")] not in ("", "model."):
            continue
        if rest == "embed_positions.weight":
            state["positional_embedding"] = tensor
            continue
        parts = rest.split(".")
        if parts[0] == "layers":
            layer, inner = parts[1], ".".join(parts[2:-1])
            if inner not in _HF_LAYER_NAMES:
                raise CheckpointError(f"{source}: unknown encoder tensor {key}")
            state[f"blocks.{layer}.{_HF_LAYER_NAMES[inner]}.{parts[-1]}"] = tensor
        elif parts[0] in _HF_TOP_NAMES and len(parts) == 2:
            state[f"{_HF_TOP_NAMES[parts[0]]}.{parts[1]}"] = tensor
        else:
            raise CheckpointError(f"{source}: unknown encoder tensor {key}")
    if not state:
        raise CheckpointError(f"{source} holds no Whisper encoder tensors")
    return state
