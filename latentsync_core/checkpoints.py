"""Reading and writing state dicts safely: never unpickle code, never hold two copies of a big file."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from .atomic import atomic_path
from .errors import CheckpointError

SAFETENSORS_SUFFIXES = {".safetensors", ".sft"}


def load_checkpoint_file(path: Path | str, mmap: bool = True) -> Any:
    """Load a `.pt/.pth/.ckpt/.bin` (weights only, memory-mapped) or `.safetensors` file.

    Memory mapping keeps a multi-GB checkpoint out of RAM until its tensors are copied into the model.
    Errors name the file and the likely cause (missing, truncated, not a torch file).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own opaque errors on corrupt headers
            raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except RuntimeError as exc:
        if mmap and "mmap" in str(exc).lower():  # legacy (non-zip) torch files cannot be mapped
            return load_checkpoint_file_unmapped(path)
        raise CheckpointError(f"{path} is not a readable torch checkpoint, or it is truncated ({exc})") from exc
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable torch checkpoint, or it is truncated ({exc})") from exc


def load_checkpoint_file_unmapped(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable torch checkpoint, or it is truncated ({exc})") from exc


def extract_state_dict(obj: Any, source: str, container_keys: tuple[str, ...] = ("state_dict",)) -> dict[str, torch.Tensor]:
    """Return the tensor mapping inside a loaded checkpoint (`{"state_dict": ...}` or a bare dict)."""
    if isinstance(obj, Mapping):
        for key in container_keys:
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise CheckpointError(
        f"{source} holds no state dict (expected a mapping of tensor names, optionally under "
        f"one of {list(container_keys)})"
    )


def save_checkpoint_file(obj: Any, path: Path | str) -> Path:
    """Save `obj` (a torch-saveable dict, or a flat tensor dict for .safetensors) via temp + rename."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() in SAFETENSORS_SUFFIXES:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in obj.items()}, str(tmp))
        else:
            torch.save(obj, tmp)
    return path
