"""Prepare LatentSync Dataset -> Train LatentSync (stage 2), and Score Lip Sync, called as V3 nodes on the fixture
weights and synthetic talking clips; plus the folders and names they accept."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("comfy_api.latest", reason="ComfyUI's source is not on the path: set COMFYUI_DIR (see conftest)")

from comfy_api.latest import io  # noqa: E402

from latentsync_core import host  # noqa: E402
from latentsync_core.errors import LatentSyncError  # noqa: E402
from nodes import NODE_LIST  # noqa: E402
from tests.talking_clip import one_torch_thread, write_talking_video  # noqa: E402,F401  (autouse fixture)

NODES = {cls.GET_SCHEMA().node_id: cls for cls in NODE_LIST}
PREPARE = dict(input_folder="latentsync_dataset", output_folder="latentsync_dataset", resolution=64,
               segment_seconds=1.6, min_frames=32, detect_scenes=True, syncnet_name="none",
               min_sync_confidence=0.0, max_offset=15)  # a random SyncNet judges every clip out of sync
TRAIN = dict(steps=2, learning_rate=1e-4, batch_size=1, preset="stage2", lora_rank=4, mixed_precision="auto",
             gradient_checkpointing=False, seed=0, save_every=1, checkpoint_prefix="latentsync_stage2",
             syncnet_name="none", resume=False)


def run(node_id: str, **inputs) -> io.NodeOutput:
    return NODES[node_id].execute(**inputs)


@pytest.fixture(scope="module")
def dataset_videos(comfy_base, fixture_models):
    folder = comfy_base / "input" / "latentsync_dataset"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(2):
        write_talking_video(folder / f"speaker{i}.mp4", 40, seed=10 + i)
    return folder


@pytest.fixture(scope="module")
def models(fixture_models):
    from latentsync_core.vae import load_vae

    unet, = run("LatentSyncUNetLoader", unet_name="latentsync_unet.pt", dtype="fp32").result
    whisper, = run("LatentSyncWhisperLoader", whisper_name="tiny.pt").result
    return {"unet": unet, "whisper": whisper, "vae": load_vae(fixture_models / "vae" / "sd-vae-ft-mse.safetensors")}


@pytest.fixture(scope="module")
def prepared(dataset_videos):
    return run("LatentSyncPrepareDataset", **PREPARE)


def test_prepare_writes_the_dataset_into_the_output_folder(prepared, comfy_base):
    manifest, summary = prepared.result
    assert Path(manifest) == comfy_base / "output" / "latentsync_dataset" / "manifest.jsonl"
    assert Path(manifest).is_file(), summary
    records = [json.loads(line) for line in Path(manifest).read_text().splitlines()]
    assert len(records) == 2 and all(Path(manifest).parent.joinpath(r["clip"]).exists() for r in records), records
    assert prepared.ui.as_dict() == {"text": (summary,)}


def test_prepare_is_rerun_when_the_source_videos_change(dataset_videos):
    cls = NODES["LatentSyncPrepareDataset"]
    before = cls.fingerprint_inputs(input_folder="latentsync_dataset")
    assert cls.fingerprint_inputs(input_folder="latentsync_dataset") == before
    extra = dataset_videos / "extra.mp4"
    shutil.copyfile(dataset_videos / "speaker0.mp4", extra)
    try:
        assert cls.fingerprint_inputs(input_folder="latentsync_dataset") != before
    finally:
        extra.unlink()


def test_train_saves_official_checkpoints_and_returns_the_trained_unet(prepared, models, fixture_models, comfy_base):
    from latentsync_core.unet import load_unet

    out = run("LatentSyncTrainStage2", unet=models["unet"], vae=models["vae"], whisper=models["whisper"],
              dataset=prepared.result[0], **TRAIN)
    unet, plot, checkpoint = out.result
    saved = sorted(p.name for p in (fixture_models / "latentsync").glob("latentsync_stage2-*.pt"))
    assert saved == ["latentsync_stage2-step0000001.pt", "latentsync_stage2-step0000002.pt"]
    assert Path(checkpoint).name == saved[-1]
    assert plot.shape == (1, 360, 640, 3) and float(plot.min()) >= 0 and float(plot.max()) <= 1
    ui = out.ui
    preview = ui["images"][0]
    assert preview["type"] == "temp" and (comfy_base / "temp" / preview["subfolder"] / preview["filename"]).is_file()
    assert ui["text"] == (f"trained to step 2; saved {checkpoint}",)
    # The returned U-Net holds the saved weights; the loader's cached model was not modified.
    trained = host.managed_module(unet)
    reloaded = load_unet(checkpoint)
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in reloaded.state_dict().items())
    original = host.managed_module(models["unet"]).state_dict()
    differs = [k for k, v in original.items() if not torch.equal(v, reloaded.state_dict()[k])]
    assert differs and all("motion_modules." in k or "attentions." in k for k in differs)


@pytest.mark.parametrize("inputs, message", [
    ({"input_folder": "../elsewhere"}, r"'input_folder' input '\.\./elsewhere' points outside .*input"),
    ({"input_folder": "/etc"}, r"'input_folder' input '/etc' points outside"),
    ({"output_folder": "/tmp/dataset"}, r"'output_folder' input '/tmp/dataset' points outside .*output"),
    ({"output_folder": ""}, r"'output_folder' input is empty"),
])
def test_prepare_keeps_its_folders_inside_comfyuis(inputs, message):
    with pytest.raises(LatentSyncError, match=message):
        run("LatentSyncPrepareDataset", **{**PREPARE, **inputs})


@pytest.mark.parametrize("inputs, message", [
    ({"checkpoint_prefix": "../../custom_nodes/evil"}, r"'checkpoint_prefix' input '\.\./\.\./custom_nodes/evil' "
                                                       r"points outside .*latentsync"),
    ({"checkpoint_prefix": "runs/mine"}, r"'checkpoint_prefix' input 'runs/mine' must be a file name prefix without "
                                         r"folders"),
    ({"dataset": "/etc/manifest.jsonl"}, r"'dataset' input '/etc/manifest.jsonl' is not inside ComfyUI's output "
                                         r"folder .* or input folder"),
])
def test_train_keeps_its_paths_inside_comfyuis_folders(models, fixture_models, inputs, message):
    before = sorted((fixture_models / "latentsync").iterdir())
    settings = {"dataset": "latentsync_dataset/manifest.jsonl", **TRAIN, **inputs}
    with pytest.raises(LatentSyncError, match=message):
        run("LatentSyncTrainStage2", unet=models["unet"], vae=models["vae"], whisper=models["whisper"], **settings)
    assert sorted((fixture_models / "latentsync").iterdir()) == before


def test_score_reports_confidence_and_offset(dataset_videos):
    from latentsync_core.convert import clip_to_audio, uint8_to_image
    from latentsync_core.media.audio_file import read_audio
    from latentsync_core.media.video import read_video

    frames, fps = read_video(dataset_videos / "speaker0.mp4")
    audio = clip_to_audio(read_audio(dataset_videos / "speaker0.mp4"))
    out = run("LatentSyncScoreLipSync", images=uint8_to_image(frames), audio=audio, fps=float(fps),
              syncnet_name="stable_syncnet.pt", aligned_faces=False, vshift=15, stride=1)
    confidence, offset, distance, summary = out.result
    assert isinstance(confidence, float) and confidence >= 0 and isinstance(offset, int) and abs(offset) <= 15
    assert 0 <= distance <= 2 and "AV offset" in summary and out.ui.as_dict() == {"text": (summary,)}
    message = NODES["LatentSyncScoreLipSync"].validate_inputs(syncnet_name="gone.pt")
    assert "'gone.pt' is not in models/latentsync" in message and "hf download" in message
