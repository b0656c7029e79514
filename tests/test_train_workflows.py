"""The training and scoring workflows (and their API twins): valid against the nodes, and run end to end on the
fixture weights through the workflow harness."""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.harness import Executor, is_ui_workflow, pack_node_mappings, run_workflow
from tests.talking_clip import write_talking_video, one_torch_thread  # noqa: F401  (autouse fixture)

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
NAMES = ("latentsync_train", "latentsync_score")


def load(name: str) -> dict:
    return json.loads((WORKFLOWS / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, fixture_models):
    root = tmp_path_factory.mktemp("train_workflows")
    models = root / "models"
    # A private copy: training writes checkpoints into models/latentsync.
    for sub in ("latentsync", "whisper", "vae"):
        shutil.copytree(fixture_models / sub, models / sub)
    (root / "input" / "latentsync_dataset").mkdir(parents=True)
    write_talking_video(root / "input" / "latentsync_video.mp4", 40, seed=7)
    for i in range(2):
        write_talking_video(root / "input" / "latentsync_dataset" / f"speaker{i}.mp4", 40, seed=10 + i)
    return {"input_dir": root / "input", "output_dir": root / "output", "models_dir": models, "temp_dir": root / "temp"}


@pytest.mark.parametrize("name", NAMES)
def test_workflows_validate_and_convert_to_their_twins(name, dirs):
    ui, api = load(name), load(f"{name}_api")
    assert is_ui_workflow(ui)
    executor = Executor(pack_node_mappings(), **dirs)
    assert executor.to_api(ui) == api
    for workflow in (ui, api):
        assert executor.validate(workflow).warnings == []


def test_score_workflow_reports_confidence_and_offset(dirs):
    result = run_workflow(load("latentsync_score_api"), pack_node_mappings(), **dirs)
    node = next(k for k, v in load("latentsync_score_api").items() if v["class_type"] == "LatentSyncScoreLipSync")
    confidence, offset, distance, summary = (result.value(node, i) for i in range(4))
    assert isinstance(confidence, float) and confidence >= 0 and isinstance(offset, int) and abs(offset) <= 15
    assert 0 <= distance <= 2 and summary in result.ui[node]["text"][0] and "AV offset" in summary


def test_train_workflow_prepares_trains_and_saves(dirs):
    prompt = copy.deepcopy(load("latentsync_train_api"))
    by_type = {v["class_type"]: k for k, v in prompt.items()}
    prep, train = prompt[by_type["LatentSyncPrepareDataset"]], prompt[by_type["LatentSyncTrainStage2"]]
    prep["inputs"].update(input_folder=str(dirs["input_dir"] / "latentsync_dataset"), resolution=64,
                          segment_seconds=1.6, max_offset=15)  # the random SyncNet finds any offset
    train["inputs"].update(steps=2, save_every=1, learning_rate=1e-4, gradient_checkpointing=False)
    result = run_workflow(prompt, pack_node_mappings(), **dirs)

    manifest = Path(result.value(by_type["LatentSyncPrepareDataset"], 0))
    assert manifest == dirs["output_dir"] / "latentsync_dataset" / "manifest.jsonl"
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(records) == 2 and all(r["av_offset"] is not None for r in records)  # SyncNet step ran

    node = by_type["LatentSyncTrainStage2"]
    unet, plot, checkpoint = (result.value(node, i) for i in range(3))
    saved = sorted(p.name for p in (dirs["models_dir"] / "latentsync").glob("latentsync_stage2-*.pt"))
    assert saved == ["latentsync_stage2-step0000001.pt", "latentsync_stage2-step0000002.pt"]
    assert Path(checkpoint).name == saved[-1]
    assert plot.shape == (1, 360, 640, 3) and float(plot.min()) >= 0 and float(plot.max()) <= 1
    preview = result.ui[node]["images"][0]
    assert preview["type"] == "temp" and len(list(dirs["temp_dir"].rglob(preview["filename"]))) == 1
    # The returned U-Net holds the saved weights; the loader's cached model was not modified.
    from latentsync_core import host
    from latentsync_core.unet import load_unet

    trained = host.managed_module(unet)
    reloaded = load_unet(checkpoint)
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in reloaded.state_dict().items())
    original = load_unet(dirs["models_dir"] / "latentsync" / "latentsync_unet.pt")
    differs = [k for k, v in original.state_dict().items() if not torch.equal(v, reloaded.state_dict()[k])]
    assert differs and all("motion_modules." in k or "attentions." in k for k in differs)
    assert np.isfinite(np.asarray(plot)).all()
