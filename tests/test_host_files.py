"""host.py's files and model handles outside ComfyUI: confined user paths, streamed VIDEO sources and their temp
copies, numbered outputs, and who may move a model between devices."""
from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from latentsync_core import host
from latentsync_core.errors import LatentSyncError


@pytest.mark.parametrize("name, expected", [
    ("clips", "clips"), ("a/b/../c", "a/c"), ("  spaced  ", "spaced"), ("./x", "x"), (".", ""),
])
def test_confined_path_accepts_names_inside_the_folder(tmp_path, name, expected):
    assert host.confined_path(tmp_path, name, "output_folder") == tmp_path / expected


def test_confined_path_accepts_an_absolute_path_inside_the_folder(tmp_path):
    assert host.confined_path(tmp_path, str(tmp_path / "sub" / "x.mp4"), "video_path") == tmp_path / "sub" / "x.mp4"


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "/etc/passwd", "~/x"])
def test_confined_path_refuses_names_outside_the_folder_naming_the_input(tmp_path, name):
    with pytest.raises(LatentSyncError, match=rf"the 'checkpoint_prefix' input '{name}' points outside {tmp_path}: "
                                              r"use a name relative to that folder, without '\.\.'"):
        host.confined_path(tmp_path, name, "checkpoint_prefix")


def test_confined_path_refuses_an_empty_name(tmp_path):
    with pytest.raises(LatentSyncError, match="the 'input_folder' input is empty"):
        host.confined_path(tmp_path, "  ", "input_folder")


def test_confined_path_does_not_confuse_a_sibling_with_a_common_prefix(tmp_path):
    (tmp_path / "output").mkdir()
    with pytest.raises(LatentSyncError, match="points outside"):
        host.confined_path(tmp_path / "output", str(tmp_path / "output2" / "x"), "filename_prefix")


def test_next_output_path_numbers_files_inside_the_output_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTSYNC_OUTPUT_DIR", str(tmp_path))
    first, subfolder = host.next_output_path("clips/take", "mp4")
    assert (first, subfolder) == (tmp_path / "clips" / "take_00001_.mp4", "clips")
    first.write_bytes(b"")
    assert host.next_output_path("clips/take", "mp4")[0].name == "take_00002_.mp4"
    assert host.next_output_path("solo")[1] == ""
    for prefix in ("../escape", "/tmp/escape"):
        with pytest.raises(LatentSyncError, match=f"'filename_prefix' input '{prefix}' points outside"):
            host.next_output_path(prefix)
    assert not (tmp_path.parent / "escape_00001_.mp4").exists()


def test_video_source_file_streams_files_and_removes_spilled_uploads(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTSYNC_TEMP_DIR", str(tmp_path / "temp"))
    clip_file = tmp_path / "clip.mp4"
    clip_file.write_bytes(b"not really a video")
    with host.video_source_file(SimpleNamespace(get_stream_source=lambda: str(clip_file))) as path:
        assert path == clip_file
    assert clip_file.is_file()  # the user's own file is never removed

    upload = io.BytesIO(b"uploaded bytes")
    upload.read(3)
    with host.video_source_file(SimpleNamespace(get_stream_source=lambda: upload)) as spilled:
        assert spilled.parent == tmp_path / "temp" / "latentsync" and spilled.read_bytes() == b"uploaded bytes"
    assert not spilled.exists() and upload.tell() == 0

    with pytest.raises(RuntimeError, match="decoder failed"):
        with host.video_source_file(SimpleNamespace(get_stream_source=lambda: io.BytesIO(b"x"))) as spilled:
            raise RuntimeError("decoder failed")
    assert not spilled.exists()

    with host.video_source_file(SimpleNamespace(get_components=lambda: None)) as path:
        assert path is None
    with host.video_source_file(SimpleNamespace(get_stream_source=lambda: str(tmp_path / "gone.mp4"))) as path:
        assert path is None


def test_manage_model_outside_comfyui_moves_weights_on_load():
    net = torch.nn.Linear(2, 2)
    handle = host.manage_model(net, "probe")
    assert isinstance(handle, host.LocalModelPatcher) and host.is_managed(handle, "probe")
    assert not host.is_managed(handle, "unet") and not host.is_managed(net)
    assert host.load_to_device(handle) is net and handle.model.device == host.get_device()
    with pytest.raises(TypeError):
        host.managed_module(net)


def test_release_module_moves_only_what_comfyui_does_not_manage(monkeypatch):
    moved = []

    class Probe(torch.nn.Linear):
        def to(self, *args, **kwargs):
            moved.append(args)
            return self

    local = Probe(2, 2)
    host.manage_model(local, "whisper")  # outside ComfyUI: a LocalModelPatcher, ours to move
    host.release_module(local)
    assert moved == [(host.offload_device(),)]
    managed = Probe(2, 2)
    monkeypatch.setattr(host, "_COMFY_MANAGED", {managed})  # as manage_model records a ComfyUI ModelPatcher's net
    host.release_module(managed)
    assert len(moved) == 1  # left where ComfyUI's model manager put it


def test_input_dir_outside_comfyui_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTSYNC_INPUT_DIR", str(tmp_path))
    assert host.input_dir() == Path(tmp_path)
