"""Template thumbnails from the browser test's screenshots: workflows/<name>.jpg for every UI workflow.

ComfyUI's template browser shows `<name>.jpg` beside `<name>.json` as the card's picture. The browser test
(tests/integration/test_browser.py) saves `<name>.png`, the editor as the workflow loads on a 1920x1080 screen;
this crops the graph (its nodes and groups at the saved view) out of it and writes a small jpg.

    python scripts/make_thumbnails.py [ARTIFACTS_DIR]   # default: $LATENTSYNC_ARTIFACTS or tests/artifacts
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
CANVAS_BOX = (64, 78, 1920, 1080)  # the graph canvas in a 1920x1080 screenshot (frontend 1.27.10)
TITLE_HEIGHT = 30
WIDTH = 640


def graph_box(workflow: dict, margin: int = 10) -> tuple[int, int, int, int]:
    """The screenshot pixels the workflow's nodes and groups cover, at its saved view."""
    ds = workflow.get("extra", {}).get("ds", {"scale": 1, "offset": [0, 0]})
    boxes = [(n["pos"][0], n["pos"][1] - TITLE_HEIGHT, n["size"][0], n["size"][1] + TITLE_HEIGHT)
             for n in workflow["nodes"]] + [tuple(g["bounding"]) for g in workflow.get("groups", [])]
    def to_screen(x, y):
        return (CANVAS_BOX[0] + (x + ds["offset"][0]) * ds["scale"], CANVAS_BOX[1] + (y + ds["offset"][1]) * ds["scale"])
    left, top = to_screen(min(b[0] for b in boxes), min(b[1] for b in boxes))
    right, bottom = to_screen(max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes))
    return (max(CANVAS_BOX[0], round(left) - margin), max(CANVAS_BOX[1], round(top) - margin),
            min(CANVAS_BOX[2], round(right) + margin), min(CANVAS_BOX[3], round(bottom) + margin))


def make_thumbnail(screenshot: Path, target: Path) -> Path:
    workflow = json.loads(target.with_suffix(".json").read_text())
    image = Image.open(screenshot).convert("RGB").crop(graph_box(workflow))
    image = image.resize((WIDTH, round(WIDTH * image.height / image.width)), Image.Resampling.LANCZOS)
    tmp = target.with_name(target.name + ".tmp")
    image.save(tmp, "JPEG", quality=82, optimize=True)
    tmp.replace(target)
    return target


def main(argv: list[str]) -> int:
    artifacts = Path(argv[0] if argv else os.environ.get("LATENTSYNC_ARTIFACTS", REPO / "tests" / "artifacts"))
    missing = []
    for workflow in sorted((REPO / "workflows").glob("*.json")):
        shot = artifacts / f"{workflow.stem}.png"
        if not shot.is_file():
            missing.append(shot.name)
            continue
        print(make_thumbnail(shot, workflow.with_suffix(".jpg")))
    if missing:
        print(f"no screenshot for {missing} in {artifacts}: run tests/integration/test_browser.py first",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
