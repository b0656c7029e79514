"""The pack loads through ComfyUI 0.3.64's own custom-node loader (`nodes.load_custom_node`, the V3
`comfy_entrypoint` path), registers its model folders and describes every node the way /object_info does.
The running server is tested in tests/integration; this is the quick check of the same loading code."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("comfy_api.latest", reason="ComfyUI's source is not on the path: set COMFYUI_DIR (see conftest)")

REPO = Path(__file__).resolve().parents[2]
NODE_IDS = ["LatentSyncUNetLoader", "LatentSyncWhisperLoader", "LatentSyncAudioFeatures",
            "LatentSyncFaceDetectorLoader", "LatentSyncFaceCrop", "LatentSyncSampler", "LatentSyncPasteBack",
            "LatentSyncLengthAdjust", "LatentSyncAllInOne", "LatentSyncPrepareDataset", "LatentSyncTrainStage2",
            "LatentSyncScoreLipSync"]

SCRIPT = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from comfy.cli_args import args
args.cpu = True
import folder_paths
folder_paths.models_dir = sys.argv[3]
import nodes
ok = asyncio.run(nodes.load_custom_node(sys.argv[2]))
ours = {k: v for k, v in nodes.NODE_CLASS_MAPPINGS.items() if getattr(v, "RELATIVE_PYTHON_MODULE", None) == "custom_nodes.ComfyUI-LatentSync"}
print(json.dumps({
    "ok": ok,
    "ids": list(ours),
    "display": {k: nodes.NODE_DISPLAY_NAME_MAPPINGS.get(k) for k in ours},
    "info": {k: v.GET_NODE_INFO_V1() for k, v in ours.items()},
    "folders": {k: folder_paths.folder_names_and_paths[k][0] for k in ("latentsync", "whisper", "insightface")},
}, default=str))
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    root = tmp_path_factory.mktemp("custom_nodes")
    link = root / "ComfyUI-LatentSync"  # the folder name users clone into custom_nodes/
    link.symlink_to(REPO, target_is_directory=True)
    comfy_dir = os.environ["COMFYUI_DIR"]
    out = subprocess.run([sys.executable, "-c", SCRIPT, comfy_dir, str(link), str(root / "models")], cwd=comfy_dir,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Error while calling comfy_entrypoint" not in out.stderr, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1]), root / "models"


def test_comfyuis_loader_registers_every_node_through_comfy_entrypoint(loaded):
    info, _ = loaded
    assert info["ok"] is True and info["ids"] == NODE_IDS
    assert all(info["display"][k] for k in NODE_IDS)
    for node_id, node in info["info"].items():
        assert node["category"] == "LatentSync" and node["python_module"] == "custom_nodes.ComfyUI-LatentSync"


def test_model_folders_are_registered(loaded):
    info, models = loaded
    assert info["folders"]["latentsync"][0] == str(models / "latentsync")
    assert info["folders"]["whisper"][:2] == [str(models / "whisper"), str(models / "latentsync" / "whisper")]
    assert info["folders"]["insightface"][0] == str(models / "insightface")
