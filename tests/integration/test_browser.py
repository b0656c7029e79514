"""Every UI workflow in the real ComfyUI editor (frontend 1.27.10) in Debian's headless Chromium.

Loads the workflow as the template browser does (`app.loadGraphData`), fails on any alert/confirm, error toast,
dialog or unregistered node type, checks the layout as the editor drew it (no overlapping nodes, everything on a
1920x1080 screen), then shortens the run in the page's own widgets and queues it through `app.queuePrompt`, so
the frontend's graph-to-prompt conversion is what runs. Screenshots go to the artifacts folder
(LATENTSYNC_ARTIFACTS, default tests/artifacts): `<name>.png` as loaded (scripts/make_thumbnails.py turns these
into the templates' thumbnails) and `<name>-done.png` after the run.
"""
from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import artifacts_dir, error_message, require
from tests.integration.workflow_files import SHORT_RUN, UI_FILES, api_twin, load

CHROMIUM = os.environ.get("LATENTSYNC_CHROMIUM", "/usr/bin/chromium")
SCREEN = {"width": 1920, "height": 1080}
TITLE_HEIGHT = 30 + 20  # LiteGraph's node title bar above node.pos, and the node-source badge above that

# Toasts that are not about the workflow (none expected today; add with a reason if the frontend grows one).
IGNORED_TOASTS: tuple[str, ...] = ()


@pytest.fixture(scope="module")
def browser(comfy):
    require(Path(CHROMIUM).is_file(), f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "the playwright Python package is not installed (requirements-comfyui-test.txt)")
    # A fresh user folder opens the template browser on first load: mark the tutorial as done.
    urllib.request.urlopen(urllib.request.Request(comfy.url + "/api/settings/Comfy.TutorialCompleted",
                                                  data=b"true", method="POST"), timeout=30)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


def _open_editor(browser, comfy):
    page = browser.new_page(viewport=SCREEN)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(f"{d.type}: {d.message}"), d.dismiss()))
    page.goto(comfy.url)
    page.wait_for_function("() => document.querySelector('#graph-canvas') && window.app?.graph", timeout=180_000)
    page.wait_for_timeout(1000)
    return page, dialogs


def _complaints(page, dialogs: list[str]) -> list[str]:
    found = list(dialogs)
    for text in page.locator(".p-toast-message").all_inner_texts():
        if not any(ignored in text for ignored in IGNORED_TOASTS):
            found.append(f"toast: {text}")
    found += [f"dialog: {text}" for text in page.locator(".p-dialog").all_inner_texts()]
    return found


LAYOUT_JS = """() => {
  const nodes = window.app.graph._nodes.map(n => ({id: n.id, type: n.type, x: n.pos[0], y: n.pos[1] - %d,
      w: n.size[0], h: n.size[1] + %d, registered: !!LiteGraph.registered_node_types[n.type]}));
  const ds = window.app.canvas.ds;
  return {nodes, scale: ds.scale, offset: [ds.offset[0], ds.offset[1]],
          canvas: [window.app.canvas.canvas.clientWidth, window.app.canvas.canvas.clientHeight]};
}""" % (TITLE_HEIGHT, TITLE_HEIGHT)


def layout_problems(nodes: list[dict], scale: float, offset, screen) -> list[str]:
    """Overlapping node rectangles (title bar included) and nodes off the screen at the saved view."""
    problems = []
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            if a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and \
                    b["y"] < a["y"] + a["h"]:
                problems.append(f"#{a['id']} {a['type']} overlaps #{b['id']} {b['type']}")
        left, top = (a["x"] + offset[0]) * scale, (a["y"] + offset[1]) * scale
        right, bottom = (a["x"] + a["w"] + offset[0]) * scale, (a["y"] + a["h"] + offset[1]) * scale
        if left < 0 or top < 0 or right > screen[0] or bottom > screen[1]:
            problems.append(f"#{a['id']} {a['type']} is off screen: ({left:.0f}, {top:.0f})-({right:.0f}, "
                            f"{bottom:.0f}) on {screen[0]}x{screen[1]}")
    return problems


# Inputs the frontend serialises for its own preview widgets (LoadVideo's player, LoadAudio's); the server
# ignores them, and the API twins leave them out.
PREVIEW_WIDGETS = {"video-preview", "audioUI"}


def _without_meta(prompt: dict) -> dict:
    return {k: {"class_type": v["class_type"],
                "inputs": {name: value for name, value in v["inputs"].items() if name not in PREVIEW_WIDGETS}}
            for k, v in prompt.items()}


SHORTEN_JS = """short => {
  const changed = [];
  for (const node of window.app.graph._nodes) {
    for (const [name, value] of Object.entries(short[node.type] || {})) {
      const widget = (node.widgets || []).find(w => w.name === name);
      if (!widget) throw new Error(`${node.type} has no widget ${name}`);
      widget.value = value;
      changed.push(`${node.type}.${name}=${value}`);
    }
  }
  return changed;
}"""


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_ui_workflow_loads_cleanly_and_runs_from_the_editor(browser, comfy, path):
    page, dialogs = _open_editor(browser, comfy)
    try:
        page.evaluate("async wf => { await window.app.loadGraphData(wf); }", load(path))
        page.wait_for_timeout(2500)  # let dialogs, toasts and video previews render
        shots = artifacts_dir()
        page.screenshot(path=str(shots / f"{path.stem}.png"))
        assert _complaints(page, dialogs) == [], f"{path.name} raised on load"

        layout = page.evaluate(LAYOUT_JS)
        missing = [f"#{n['id']} {n['type']}" for n in layout["nodes"] if not n["registered"]]
        assert not missing, f"node types not registered: {missing}"
        problems = layout_problems(layout["nodes"], layout["scale"], layout["offset"], layout["canvas"])
        assert not problems, "\n".join(problems)

        # The frontend's own UI-to-API conversion gives exactly the committed API twin.
        converted = page.evaluate("async () => (await window.app.graphToPrompt()).output")
        (shots / api_twin(path).name).write_text(json.dumps(converted, indent=2))
        assert _without_meta(converted) == _without_meta(load(api_twin(path))), (
            f"{api_twin(path).name} differs from the editor's conversion of {path.name} (saved in {shots})")

        changed = page.evaluate(SHORTEN_JS, SHORT_RUN)
        with page.expect_response(lambda r: r.url.endswith("/api/prompt") and r.request.method == "POST") as sent:
            page.evaluate("async () => { await window.app.queuePrompt(0); }")
        reply = sent.value.json()
        assert "prompt_id" in reply, f"queue refused: {json.dumps(reply)[:3000]}"
        entry = comfy.wait(reply["prompt_id"])
        page.wait_for_timeout(1000)
        page.screenshot(path=str(shots / f"{path.stem}-done.png"))
        assert entry["status"]["status_str"] == "success", (
            f"{path.name} (shortened: {changed}): {error_message(entry)}\n{comfy.log_tail()}")
        assert _complaints(page, dialogs) == [], f"{path.name} raised while running"
    finally:
        page.close()
