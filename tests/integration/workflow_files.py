"""The shipped workflows and how tests shorten them.

UI-format workflows sit in workflows/ (the folder ComfyUI serves as the pack's templates, each with a
`<name>.jpg` thumbnail); their API-format twins for `POST /prompt` in workflows/api/<name>_api.json.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
API_DIR = WORKFLOWS / "api"
UI_FILES = sorted(WORKFLOWS.glob("*.json"))
API_FILES = sorted(API_DIR.glob("*.json"))

# Inputs that make a CPU run of a shipped workflow take seconds instead of hours, by node type. Training runs
# two steps on 64 px faces and saves after each; the random SyncNet finds any offset and any confidence, so the
# sync filters are off.
SHORT_RUN: dict[str, dict] = {
    "LatentSyncSampler": {"steps": 1},
    "LatentSyncAllInOne": {"steps": 1},
    "LatentSyncPrepareDataset": {"resolution": 64, "segment_seconds": 1.6, "max_offset": 15, "min_sync_confidence": 0.0,
                                 "min_sync_ratio": 0.0},
    "LatentSyncTrainStage2": {"steps": 2, "save_every": 1, "learning_rate": 1e-4, "gradient_checkpointing": False},
}


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def api_twin(ui_path: Path) -> Path:
    return API_DIR / f"{Path(ui_path).stem}_api.json"


def shortened(prompt: dict) -> dict:
    """A copy of an API prompt with SHORT_RUN applied."""
    prompt = copy.deepcopy(prompt)
    for node in prompt.values():
        for name, value in SHORT_RUN.get(node["class_type"], {}).items():
            assert name in node["inputs"], f"{node['class_type']} has no input {name!r}: update SHORT_RUN"
            node["inputs"][name] = value
    return prompt


def node_ids(prompt: dict, class_type: str) -> list[str]:
    return [k for k, v in prompt.items() if v["class_type"] == class_type]
