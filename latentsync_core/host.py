"""The one place that talks to ComfyUI.

Inside a running ComfyUI the functions here delegate to `comfy.model_management`, `comfy.utils`
and `folder_paths`; in tests and the CLI (no ComfyUI importable) they fall back to plain torch,
tqdm and a models directory taken from ``LATENTSYNC_MODELS_DIR`` (default ``./models``).
No other module of the pack imports `comfy` or `folder_paths`: keep it that way, so the core stays
importable and testable without ComfyUI.
"""
from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Iterable

import torch

from .errors import ProcessingInterrupted

try:  # ComfyUI puts its root on sys.path before loading custom nodes; elsewhere these are absent.
    import comfy.model_management as _mm
    import comfy.utils as _comfy_utils
    import folder_paths as _folder_paths
except ImportError:
    _mm = None
    _comfy_utils = None
    _folder_paths = None

IN_COMFYUI = _folder_paths is not None

# Model folder name -> file extensions listed for it. `vae` is ComfyUI's own and is only read here.
MODEL_FOLDERS = {
    "latentsync": {".pt", ".pth", ".ckpt", ".safetensors"},
    "whisper": {".pt", ".pth", ".safetensors"},
    "insightface": set(),  # insightface packs are folders of .onnx files; list everything.
}
CHECKPOINT_EXTENSIONS = {".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".sft"}


# --------------------------------------------------------------------------- devices and dtypes
def get_device() -> torch.device:
    if _mm is not None:
        return _mm.get_torch_device()
    forced = os.environ.get("LATENTSYNC_DEVICE")
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def offload_device() -> torch.device:
    if _mm is not None:
        return _mm.unet_offload_device()
    return torch.device("cpu")


def _cuda_supports_bf16(device: torch.device) -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def get_dtype(device: torch.device | str | None = None, preference: str = "auto") -> torch.dtype:
    """Pick the inference dtype for `device`.

    `preference` is "auto", "fp16", "bf16" or "fp32". "auto" follows the official choice on GPUs
    (fp16 where compute capability > 7, i.e. fp16 is fast and safe) and fp32 on CPU, where half
    precision matmuls are emulated and the official runs fp32.
    """
    explicit = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if preference in explicit:
        return explicit[preference]
    if preference != "auto":
        raise ValueError(f"dtype preference must be auto, fp16, bf16 or fp32, not {preference!r}")
    device = torch.device(device) if device is not None else get_device()
    if _mm is not None:
        if _mm.should_use_fp16(device):
            return torch.float16
        if _mm.should_use_bf16(device):
            return torch.bfloat16
        return torch.float32
    if device.type == "cuda":
        major, _minor = torch.cuda.get_device_capability(device)
        if major > 7:
            return torch.float16
        return torch.float32
    if device.type == "mps":
        return torch.float16
    return torch.float32


def empty_cache() -> None:
    if _mm is not None:
        _mm.soft_empty_cache()
    elif torch.cuda.is_available():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- interrupt
_interrupt_flag = threading.Event()


def request_interrupt() -> None:
    """Ask running work to stop at its next check (the CLI's SIGINT handler and tests use this)."""
    _interrupt_flag.set()


def clear_interrupt() -> None:
    _interrupt_flag.clear()


def check_interrupt() -> None:
    """Raise if the user asked to stop. Call between steps and windows, never inside a kernel."""
    if _mm is not None:
        # Raises ComfyUI's own InterruptProcessingException, which its executor expects.
        _mm.throw_exception_if_processing_interrupted()
    if _interrupt_flag.is_set():
        _interrupt_flag.clear()
        raise ProcessingInterrupted("processing was interrupted by the user")


# --------------------------------------------------------------------------- progress
class Progress:
    """Progress over `total` units: ComfyUI's node progress bar inside ComfyUI, tqdm elsewhere."""

    def __init__(self, total: int, desc: str = ""):
        self.total = max(int(total), 0)
        self.current = 0
        self._comfy = _comfy_utils.ProgressBar(self.total) if _comfy_utils is not None else None
        self._tqdm = None
        if self._comfy is None and os.environ.get("LATENTSYNC_PROGRESS", "1") != "0":
            from tqdm.auto import tqdm

            self._tqdm = tqdm(total=self.total, desc=desc, leave=False, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.current = min(self.current + n, self.total) if self.total else self.current + n
        if self._comfy is not None:
            self._comfy.update_absolute(self.current, self.total)
        if self._tqdm is not None:
            self._tqdm.update(n)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------- model folders
def models_root() -> Path:
    if _folder_paths is not None:
        return Path(_folder_paths.models_dir)
    return Path(os.environ.get("LATENTSYNC_MODELS_DIR", "models")).resolve()


def register_model_folders() -> None:
    """Make `models/latentsync`, `models/whisper`, `models/insightface` known to ComfyUI.

    Idempotent. Outside ComfyUI there is nothing to register: `model_dirs` derives the folders.
    """
    if _folder_paths is None:
        return
    root = models_root()
    for name, extensions in MODEL_FOLDERS.items():
        known = name in _folder_paths.folder_names_and_paths
        _folder_paths.add_model_folder_path(name, str(root / name), is_default=True)
        if not known and extensions:
            paths, _ = _folder_paths.folder_names_and_paths[name]
            _folder_paths.folder_names_and_paths[name] = (paths, set(extensions))
    # The official layout keeps whisper/tiny.pt inside the LatentSync download folder.
    _folder_paths.add_model_folder_path("whisper", str(root / "latentsync" / "whisper"))


def model_dirs(kind: str) -> list[Path]:
    """Folders searched for models of `kind` ("latentsync", "whisper", "insightface", "vae"), in order."""
    if _folder_paths is not None:
        register_model_folders()
        return [Path(p) for p in _folder_paths.get_folder_paths(kind)]
    root = models_root()
    dirs = [root / kind]
    if kind == "whisper":
        dirs.append(root / "latentsync" / "whisper")
    return dirs


def list_models(kind: str, extensions: Iterable[str] | None = None) -> list[str]:
    """Relative file names under the folders of `kind`, as ComfyUI COMBO inputs show them."""
    if _folder_paths is not None:
        register_model_folders()
        return list(_folder_paths.get_filename_list(kind))
    wanted = {e.lower() for e in (extensions or MODEL_FOLDERS.get(kind) or CHECKPOINT_EXTENSIONS)}
    names: set[str] = set()
    for folder in model_dirs(kind):
        if not folder.is_dir():
            continue
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix.lower() in wanted:
                names.add(path.relative_to(folder).as_posix())
    return sorted(names)


def find_model(kind: str, name: str) -> Path | None:
    """Full path of `name` (relative to a folder of `kind`, or absolute), or None when absent."""
    candidate = Path(name)
    if candidate.is_absolute():
        return candidate if candidate.exists() else None
    if _folder_paths is not None:
        register_model_folders()
        found = _folder_paths.get_full_path(kind, name)
        return Path(found) if found else None
    for folder in model_dirs(kind):
        path = folder / name
        if path.exists():
            return path
    return None


def default_model_path(kind: str, name: str) -> Path:
    """Where `name` is expected when it is missing (the first folder of `kind`)."""
    return model_dirs(kind)[0] / name


# --------------------------------------------------------------------------- scratch and outputs
def output_dir() -> Path:
    if _folder_paths is not None:
        return Path(_folder_paths.get_output_directory())
    path = Path(os.environ.get("LATENTSYNC_OUTPUT_DIR", "output")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def temp_dir() -> Path:
    if _folder_paths is not None:
        path = Path(_folder_paths.get_temp_directory())
    else:
        path = Path(os.environ.get("LATENTSYNC_TEMP_DIR", tempfile.gettempdir())) / "latentsync"
    path.mkdir(parents=True, exist_ok=True)
    return path


def input_dir() -> Path | None:
    if _folder_paths is not None:
        return Path(_folder_paths.get_input_directory())
    return None
