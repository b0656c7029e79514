"""The one place that talks to ComfyUI.

Inside a running ComfyUI the functions here delegate to `comfy.model_management`, `comfy.utils`
and `folder_paths`; in tests and the CLI (no ComfyUI importable) they fall back to plain torch,
tqdm and a models directory taken from ``LATENTSYNC_MODELS_DIR`` (default ``./models``).
No other module of the pack imports `comfy` or `folder_paths`: keep it that way, so the core stays
importable and testable without ComfyUI.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Iterable, Iterator

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


def input_dir() -> Path:
    if _folder_paths is not None:
        return Path(_folder_paths.get_input_directory())
    return Path(os.environ.get("LATENTSYNC_INPUT_DIR", "input")).resolve()


# --------------------------------------------------------------------------- model management
class ModelHolder(torch.nn.Module):
    """The module ComfyUI's ModelPatcher manages for one of our networks.

    ModelPatcher assigns `model.device` on every load; our networks expose `device` as a read-only
    property, so they travel inside this plain container instead of being patched themselves.
    """

    def __init__(self, net: torch.nn.Module, kind: str):
        super().__init__()
        self.net = net
        self.kind = kind
        self.device = offload_device()

    def get_dtype(self) -> torch.dtype:  # ModelPatcher.model_dtype() asks for this
        for tensor in self.net.parameters():
            return tensor.dtype
        return torch.float32


class LocalModelPatcher:
    """What `manage_model` gives outside ComfyUI: the ModelPatcher attributes the pack reads."""

    def __init__(self, model: ModelHolder, load_device: torch.device, offload_device: torch.device):
        self.model = model
        self.load_device = load_device
        self.offload_device = offload_device

    def __repr__(self) -> str:
        return f"LocalModelPatcher({self.model.kind}, load_device={self.load_device})"


def manage_model(module: torch.nn.Module, kind: str):
    """Hand `module` to the host's model manager and return the handle nodes pass around.

    Inside ComfyUI this is a `comfy.model_patcher.ModelPatcher`, so ComfyUI moves the weights to the
    GPU when a node needs them (`load_to_device`), offloads them when other models need the memory,
    and keeps them loaded between queue runs. Elsewhere it is a `LocalModelPatcher`. `kind` names the
    network in messages ("unet", "whisper").
    """
    holder = ModelHolder(module, kind)
    if _mm is not None:
        try:
            import comfy.model_patcher as _model_patcher
        except ImportError:  # a partial ComfyUI (test doubles): manage locally
            _model_patcher = None
        if _model_patcher is not None:
            _COMFY_MANAGED.add(module)
            return _model_patcher.ModelPatcher(holder, load_device=get_device(), offload_device=offload_device())
    return LocalModelPatcher(holder, get_device(), offload_device())


# Networks whose device placement belongs to ComfyUI's model manager (weak: a dropped model leaves the set).
_COMFY_MANAGED: "weakref.WeakSet[torch.nn.Module]" = weakref.WeakSet()


def release_module(module: torch.nn.Module) -> None:
    """Done with `module` for now: free its compute-device memory for the next stage.

    A network ComfyUI's model manager holds stays where the manager put it: moving it ourselves would
    leave the manager believing it is loaded, and the manager offloads it anyway when another model
    needs the memory. Anything else (CLI, tests) moves to the offload device.
    """
    if module in _COMFY_MANAGED:
        return
    module.to(offload_device())


def is_managed(value, kind: str | None = None) -> bool:
    """True when `value` is a handle made by `manage_model` (of `kind`, when given)."""
    holder = getattr(value, "model", None)
    return isinstance(holder, ModelHolder) and (kind is None or holder.kind == kind)


def managed_module(managed) -> torch.nn.Module:
    """The network inside a `manage_model` handle, wherever its weights are now."""
    if not is_managed(managed):
        raise TypeError(f"expected a handle from manage_model, got {type(managed).__name__}")
    return managed.model.net


def load_to_device(*managed) -> torch.nn.Module | list[torch.nn.Module]:
    """Make sure the handles' weights are on the compute device; return the network (a list for several).

    Inside ComfyUI, `comfy.model_management.load_models_gpu` loads them together (offloading other
    models first if memory is short); elsewhere the weights are moved to each handle's load device.
    """
    nets = [managed_module(handle) for handle in managed]
    patchers = [handle for handle in managed if not isinstance(handle, LocalModelPatcher)]
    if patchers and _mm is not None:
        _mm.load_models_gpu(patchers)
    for handle in managed:
        if isinstance(handle, LocalModelPatcher):
            handle.model.to(handle.load_device)
            handle.model.device = handle.load_device
    return nets[0] if len(nets) == 1 else nets


# --------------------------------------------------------------------------- VIDEO values and saved files
class FileVideo:
    """Outside ComfyUI: a VIDEO value backed by a file, with the comfy_api VideoFromFile methods the pack uses."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def get_stream_source(self) -> str:
        return str(self.path)

    def get_components(self):
        from types import SimpleNamespace

        from .convert import video_components

        images, audio, fps = video_components(self.path)
        return SimpleNamespace(images=images, audio=audio, frame_rate=fps)

    def get_dimensions(self) -> tuple[int, int]:
        from .media.video import probe_video

        info = probe_video(self.path)
        return info.width, info.height

    def save_to(self, path, format: str = "auto", codec: str = "auto", metadata: dict | None = None) -> None:
        import shutil

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path, path)


def video_from_file(path: str | os.PathLike):
    """A VIDEO socket value for a finished video file (ComfyUI's VideoFromFile inside ComfyUI)."""
    if _folder_paths is not None:
        try:
            from comfy_api.latest import InputImpl

            return InputImpl.VideoFromFile(str(path))
        except ImportError:  # ComfyUI older than the comfy_api VIDEO type
            pass
    return FileVideo(path)


def _encodes_to_stream(video) -> bool:
    """True for a ComfyUI VIDEO whose stream source would be made by encoding its frames (comfy_api's default
    `get_stream_source`, e.g. VideoFromComponents): its frames are already in memory, use them directly."""
    if _folder_paths is None:
        return False
    try:
        from comfy_api.latest import Input
    except ImportError:
        return False
    return isinstance(video, Input.Video) and type(video).get_stream_source is Input.Video.get_stream_source


@contextlib.contextmanager
def video_source_file(video) -> Iterator[Path | None]:
    """The file a VIDEO value reads from, so it can be decoded chunk by chunk (None for in-memory frames).

    ComfyUI's VideoFromFile exposes it through `get_stream_source()`: a path, or a BytesIO for uploads
    held in memory. Such an upload is written to the temp folder so it too can be streamed, and the copy
    is removed when the block ends (every run would otherwise leave a full copy of the video behind).
    """
    get_source = getattr(video, "get_stream_source", None)
    source = get_source() if callable(get_source) and not _encodes_to_stream(video) else None
    if isinstance(source, (str, os.PathLike)):
        yield Path(source) if Path(source).is_file() else None
        return
    if not (callable(getattr(source, "read", None)) and callable(getattr(source, "seek", None))):
        yield None
        return
    import shutil
    import uuid

    path = temp_dir() / f"video_source_{uuid.uuid4().hex}.mp4"
    try:
        source.seek(0)
        with open(path, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        source.seek(0)
        yield path
    finally:
        path.unlink(missing_ok=True)


def confined_path(base: str | os.PathLike, name: str, input_name: str) -> Path:
    """`name` (relative to `base`, or absolute but inside it) as a path inside the folder `base`.

    Every user-supplied name that becomes a path goes through here, so a prompt cannot read or write
    outside ComfyUI's folders with `..` or an absolute path. The check is lexical, like ComfyUI's own
    savers: a symlink the user placed inside `base` may still point elsewhere.
    """
    from .errors import LatentSyncError

    text = str(name).strip()
    root = Path(os.path.abspath(base))
    if not text:
        raise LatentSyncError(f"the {input_name!r} input is empty: type a name inside {root}")
    given = Path(text).expanduser()
    path = Path(os.path.abspath(given if given.is_absolute() else root / given))
    if path != root and root not in path.parents:
        raise LatentSyncError(f"the {input_name!r} input {text!r} points outside {root}: use a name relative to that "
                              "folder, without '..' (put the files there, or link them in)")
    return path


def next_output_path(filename_prefix: str, extension: str = "mp4", width: int = 0, height: int = 0) -> tuple[Path, str]:
    """(path, subfolder) of the next numbered output file for `filename_prefix`, as ComfyUI's savers name them.

    `filename_prefix` may hold subfolders ("latentsync/clip") and ComfyUI's %date% style tokens inside ComfyUI.
    """
    root = output_dir()
    confined_path(root, filename_prefix, "filename_prefix")
    if _folder_paths is not None:
        folder, name, counter, subfolder, _ = _folder_paths.get_save_image_path(filename_prefix, str(root), width, height)
        folder = Path(folder)
    else:
        relative = confined_path(root, filename_prefix, "filename_prefix").relative_to(root)
        folder, name = root / relative.parent, relative.name
        subfolder = "" if relative.parent == Path(".") else relative.parent.as_posix()
        folder.mkdir(parents=True, exist_ok=True)
        counters = [int(p.name[len(name) + 1:].split("_")[0]) for p in folder.glob(f"{name}_*")
                    if p.name[len(name) + 1:].split("_")[0].isdigit()]
        counter = max(counters, default=0) + 1
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}_{counter:05}_.{extension}", subfolder
