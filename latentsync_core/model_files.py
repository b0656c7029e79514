"""The official model files: where each one lives, where it comes from, and how to fetch it."""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from . import host
from .errors import MissingModel, ModelMissingError

log = logging.getLogger("latentsync")


@dataclass(frozen=True)
class ModelFile:
    description: str
    kind: str  # model folder (host.model_dirs)
    name: str  # path relative to that folder; a folder for diffusers-format models
    repo_id: str
    repo_files: tuple[str, ...]  # files to fetch from the repo, relative to its root
    local_dir_suffix: str = ""  # download root relative to the kind folder, so repo paths land on `name`
    alternatives: tuple[str, ...] = ()  # other accepted names in the same folders, tried after `name`

    def find(self) -> Path | None:
        path = host.find_model(self.kind, self.name)
        if path is not None and path.is_dir():
            # A diffusers-format folder counts only when complete (an aborted download leaves it half empty).
            if not all((path / Path(f).name).is_file() for f in self.repo_files):
                path = None
        for other in self.alternatives:
            if path is not None:
                break
            path = host.find_model(self.kind, other)
        return path

    def expected_path(self) -> Path:
        return host.default_model_path(self.kind, self.name)

    def download_dir(self) -> Path:
        return (host.model_dirs(self.kind)[0] / self.local_dir_suffix).resolve()

    def download_command(self) -> str:
        files = " ".join(self.repo_files)
        return f"hf download {self.repo_id} {files} --local-dir {self.download_dir()}"

    def missing(self) -> MissingModel:
        return MissingModel(self.description, self.expected_path(), self.download_command())


UNET = ModelFile("LatentSync 1.6 U-Net", "latentsync", "latentsync_unet.pt",
                 "ByteDance/LatentSync-1.6", ("latentsync_unet.pt",))
WHISPER_TINY = ModelFile("Whisper tiny audio encoder", "whisper", "tiny.pt",
                         "ByteDance/LatentSync-1.6", ("whisper/tiny.pt",), local_dir_suffix="..")
SYNCNET = ModelFile("StableSyncNet (training and sync scoring)", "latentsync", "stable_syncnet.pt",
                    "ByteDance/LatentSync-1.6", ("stable_syncnet.pt",))
VAE = ModelFile("Stable Diffusion VAE sd-vae-ft-mse", "vae", "sd-vae-ft-mse",
                "stabilityai/sd-vae-ft-mse", ("config.json", "diffusion_pytorch_model.safetensors"),
                local_dir_suffix="sd-vae-ft-mse",
                # the single-file forms ComfyUI users keep in models/vae (LDM keys)
                alternatives=("sd-vae-ft-mse.safetensors", "vae-ft-mse-840000-ema-pruned.safetensors"))

INFERENCE_MODELS = (UNET, WHISPER_TINY, VAE)


def missing_models(models=INFERENCE_MODELS) -> list[MissingModel]:
    return [m.missing() for m in models if m.find() is None]


def require_models(models=INFERENCE_MODELS) -> None:
    missing = missing_models(models)
    if missing:
        raise ModelMissingError(missing)


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect, so an offline machine fails in seconds rather than after hub retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        return False
    host_name = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host_name, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def download_models(models=INFERENCE_MODELS) -> list[Path]:
    """Fetch absent files with huggingface_hub; offline, raise ModelMissingError listing them."""
    absent = [m for m in models if m.find() is None]
    if not absent:
        return []
    if not hub_reachable():
        log.warning("the Hugging Face hub is not reachable (offline?); cannot download missing weights")
        raise ModelMissingError([m.missing() for m in absent])
    from huggingface_hub import hf_hub_download

    fetched = []
    failures: list[MissingModel] = []
    for model in absent:
        target = model.download_dir()
        try:
            for repo_file in model.repo_files:
                fetched.append(Path(hf_hub_download(model.repo_id, repo_file, local_dir=target)))
        except Exception as exc:  # offline, gated, or a hub outage: report, do not crash
            miss = model.missing()
            miss.description += f" (download failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
            failures.append(miss)
    if failures:
        raise ModelMissingError(failures)
    return fetched
