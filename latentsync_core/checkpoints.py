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


MAX_LISTED_KEYS = 12


def check_state_dict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str,
                     architecture: str, expected: str) -> None:
    """Strict key and shape check: raise CheckpointError listing missing, unexpected and wrongly shaped keys.

    The official loaders use strict=False and silently keep random weights for anything they miss;
    we refuse instead, naming the file (`source`), the `architecture` and what file was `expected`.
    """
    model_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(model_shapes) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(model_shapes))
    mismatched = sorted(k for k in set(model_shapes) & set(state_dict)
                        if tuple(state_dict[k].shape) != model_shapes[k])
    if not (missing or unexpected or mismatched):
        return

    def listed(items: list[str]) -> str:
        return ", ".join(items[:MAX_LISTED_KEYS]) + (", ..." if len(items) > MAX_LISTED_KEYS else "")

    lines = [f"{source} does not match the {architecture} architecture inferred from it ({len(model_shapes)} keys):"]
    for title, items in (("missing", missing), ("unexpected", unexpected)):
        if items:
            lines.append(f"  {len(items)} {title} key(s): {listed(items)}")
    if mismatched:
        shapes = [f"{k} {list(state_dict[k].shape)} (model {list(model_shapes[k])})" for k in mismatched]
        lines.append(f"  {len(mismatched)} key(s) with the wrong shape: {listed(shapes)}")
    lines.append(f"Expected {expected}; a partial or modified file cannot be loaded safely.")
    raise CheckpointError("\n".join(lines))
