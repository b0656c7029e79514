import os
from pathlib import Path

import pytest
import torch

from latentsync_core import host
from latentsync_core.errors import ProcessingInterrupted


def test_runs_without_comfyui():
    assert not host.IN_COMFYUI
    assert host.get_device().type in {"cpu", "cuda", "mps"}


def test_dtype_choice():
    assert host.get_dtype("cpu") == torch.float32
    assert host.get_dtype("cpu", "bf16") == torch.bfloat16
    assert host.get_dtype("cpu", "fp16") == torch.float16
    with pytest.raises(ValueError, match="auto, fp16, bf16 or fp32"):
        host.get_dtype("cpu", "int8")


def test_model_folders_follow_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTSYNC_MODELS_DIR", str(tmp_path))
    (tmp_path / "latentsync").mkdir()
    (tmp_path / "latentsync" / "whisper").mkdir()
    (tmp_path / "latentsync" / "latentsync_unet.pt").write_bytes(b"x")
    (tmp_path / "latentsync" / "notes.txt").write_text("not a checkpoint")
    (tmp_path / "latentsync" / "whisper" / "tiny.pt").write_bytes(b"x")
    assert host.list_models("latentsync") == ["latentsync_unet.pt", "whisper/tiny.pt"]
    # whisper/tiny.pt shipped inside the LatentSync download is found from the whisper kind too
    assert host.find_model("whisper", "tiny.pt") == tmp_path / "latentsync" / "whisper" / "tiny.pt"
    assert host.find_model("latentsync", "missing.pt") is None
    assert host.default_model_path("vae", "x") == tmp_path / "vae" / "x"


def test_interrupt_raises_once():
    host.request_interrupt()
    with pytest.raises(ProcessingInterrupted):
        host.check_interrupt()
    host.check_interrupt()  # flag consumed


def test_progress_counts():
    with host.Progress(3) as bar:
        bar.update()
        bar.update(2)
        assert bar.current == 3
