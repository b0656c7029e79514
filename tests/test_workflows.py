"""The shipped workflow files, as files: fast checks that need neither ComfyUI nor a model.

workflows/ is the folder ComfyUI serves as this pack's templates, so it must hold only UI-format workflows, each
with a `<name>.jpg` thumbnail; the API twins for `POST /prompt` live in workflows/api/. Running them, loading them
in the editor and the frontend's own UI-to-API conversion are tested against a real ComfyUI in tests/integration.
"""
from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "workflows"
UI_FILES = sorted(WORKFLOWS.glob("*.json"))
API_FILES = sorted((WORKFLOWS / "api").glob("*.json"))
CONTROL_MODES = {"fixed", "increment", "decrement", "randomize"}
TITLE_HEIGHT = 30
BADGE_HEIGHT = 20  # the node-source badge ("LatentSync") drawn above a node's title bar
# The editor's canvas on a 1920x1080 browser viewport (frontend 1.27.10: side bar and top menu around it).
CANVAS = (1856, 1002)
MAX_THUMBNAIL_BYTES = 150_000


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def pack_node_ids() -> set[str]:
    """Node ids declared in nodes/ (V3 `node_id=` or V1 mapping keys), read from the source."""
    ids = set()
    for source in (REPO / "nodes").glob("*.py"):
        text = source.read_text()
        ids |= set(re.findall(r'node_id\s*=\s*"(\w+)"', text))
        ids |= set(re.findall(r'"(LatentSync\w+)"\s*:\s*[A-Z]\w*[,}\s]', text))
    return ids


def test_workflows_folder_holds_only_ui_workflows_each_with_an_api_twin():
    assert [p.stem for p in UI_FILES] == ["latentsync_basic", "latentsync_long_video", "latentsync_score",
                                          "latentsync_train"]
    for path in UI_FILES:
        workflow = load(path)
        assert isinstance(workflow.get("nodes"), list) and "links" in workflow and workflow.get("version"), path.name
    assert [p.name for p in API_FILES] == [f"{p.stem}_api.json" for p in UI_FILES]
    assert all("class_type" in node for path in API_FILES for node in load(path).values())
    assert not list(WORKFLOWS.glob("*_api.json")), "API twins in workflows/ show up as broken templates"


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_ui_workflow_has_a_uuid_a_thumbnail_a_note_and_groups(path):
    workflow = load(path)
    assert str(uuid.UUID(workflow["id"])) == workflow["id"], "the frontend rejects a non-UUID id"
    thumbnail = path.with_suffix(".jpg")
    assert thumbnail.is_file(), f"{thumbnail.name} missing: the template browser shows it (scripts/make_thumbnails.py)"
    data = thumbnail.read_bytes()
    assert data[:3] == b"\xff\xd8\xff" and len(data) <= MAX_THUMBNAIL_BYTES
    notes = [n for n in workflow["nodes"] if n["type"] == "MarkdownNote"]
    texts = [n["widgets_values"][0] for n in notes]
    assert any(text.startswith("## LatentSync") for text in texts), "a note says what the workflow does"
    if any(n["type"] == "LatentSyncPrepareDataset" for n in workflow["nodes"]):
        assert any("ComfyUI/input/latentsync_dataset/" in text for text in texts), "a note says where the clips go"
    assert workflow["groups"], "nodes are grouped by step"


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_ui_workflow_nodes_do_not_overlap_and_fit_a_1920x1080_screen(path):
    workflow = load(path)
    top = TITLE_HEIGHT + BADGE_HEIGHT
    rects = [(n["id"], n["pos"][0], n["pos"][1] - top, n["size"][0], n["size"][1] + top) for n in workflow["nodes"]]
    overlaps = [(a[0], b[0]) for i, a in enumerate(rects) for b in rects[i + 1:]
                if a[1] < b[1] + b[3] and b[1] < a[1] + a[3] and a[2] < b[2] + b[4] and b[2] < a[2] + a[4]]
    assert overlaps == [], f"overlapping nodes: {overlaps}"
    ds = workflow["extra"]["ds"]
    boxes = [r[1:] for r in rects] + [tuple(g["bounding"]) for g in workflow["groups"]]
    for x, y, w, h in boxes:
        left, top = (x + ds["offset"][0]) * ds["scale"], (y + ds["offset"][1]) * ds["scale"]
        right, bottom = (x + w + ds["offset"][0]) * ds["scale"], (y + h + ds["offset"][1]) * ds["scale"]
        assert left >= 0 and top >= 0 and right <= CANVAS[0] and bottom <= CANVAS[1], (x, y, w, h)
    for group in workflow["groups"]:  # a title wider than its group runs into the next one
        assert len(group["title"]) * group.get("font_size", 24) * 0.6 <= group["bounding"][2], group["title"]
    groups = [g["bounding"] for g in workflow["groups"]]
    for node_id, x, y, w, h in rects:
        inside = [g for g in groups if g[0] <= x and g[1] <= y and x + w <= g[0] + g[2] and y + h <= g[1] + g[3]]
        crossing = [g for g in groups if g not in inside and x < g[0] + g[2] and g[0] < x + w and y < g[1] + g[3]
                    and g[1] < y + h]
        assert not crossing, f"node {node_id} sticks out of a group: {crossing}"


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_ui_workflow_and_its_api_twin_agree(path):
    ui, api = load(path), load(WORKFLOWS / "api" / f"{path.stem}_api.json")
    nodes = {str(n["id"]): n for n in ui["nodes"] if n["type"] != "MarkdownNote"}
    assert {k: n["type"] for k, n in nodes.items()} == {k: n["class_type"] for k, n in api.items()}
    known = pack_node_ids()
    unknown = sorted({n["type"] for n in nodes.values() if n["type"].startswith("LatentSync")} - known)
    assert unknown == [], f"node ids not declared in nodes/: {unknown}"
    linked = {}
    for _, source, slot, target, target_slot, _type in ui["links"]:
        name = next(i["name"] for i in nodes[str(target)]["inputs"] if i.get("link") is not None
                    and i["link"] == _link_id(ui, source, slot, target, target_slot))
        linked[(str(target), name)] = [str(source), slot]
    api_links = {(k, name): v for k, n in api.items() for name, v in n["inputs"].items() if isinstance(v, list)}
    assert api_links == linked
    for key, node in api.items():
        literals = [v for v in node["inputs"].values() if not isinstance(v, list)]
        widgets = list(nodes[key].get("widgets_values", []))
        assert _is_subsequence(literals, widgets), (key, node["class_type"], literals, widgets)
        if "seed" in node["inputs"]:
            seed_at = widgets.index(node["inputs"]["seed"])
            assert widgets[seed_at + 1] in CONTROL_MODES, f"{node['class_type']}: no control_after_generate after seed"


def _link_id(ui: dict, source, slot, target, target_slot) -> int:
    return next(link[0] for link in ui["links"] if link[1:5] == [source, slot, target, target_slot])


def _is_subsequence(items: list, sequence: list) -> bool:
    it = iter(sequence)
    return all(any(item == value for value in it) for item in items)
