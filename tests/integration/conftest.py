"""One real ComfyUI 0.3.64 server for the whole integration session (API and browser tests).

Needs COMFYUI_DIR / COMFYUI_PYTHON (scripts/test.sh builds them with ../shared/comfyui/setup.sh). Outside CI a
missing ComfyUI or chromium skips these tests; with CI=true it fails them, so CI never passes without running.

Everything the server touches lives in a temporary --base-directory: the pack is linked into its custom_nodes
under the name users give it, its models/ is filled by `python -m latentsync_core.fixtures` (exactly what the
README tells users to run), and its input/ gets a short clip cut from ../shared/media (or a synthetic face clip
when the media is absent), a speech-like wav, and a folder of short clips for the training workflow.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

import tests  # noqa: F401  (this checkout's tests/ first, should ComfyUI's folder, which has one too, join sys.path)

REPO = Path(__file__).resolve().parents[2]
PACK_NAME = "ComfyUI-LatentSync"
CLIP_FRAMES = 20
DATASET_CLIP_FRAMES = 48
START_TIMEOUT_S = 300
RUN_TIMEOUT_S = 600
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip (on a developer's machine) or fail (in CI) when something the real-ComfyUI tests need is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the real-ComfyUI tests must run; bash scripts/test.sh sets this up)")
    pytest.skip(reason)


def artifacts_dir() -> Path:
    path = Path(os.environ.get("LATENTSYNC_ARTIFACTS", REPO / "tests" / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A thin HTTP client for the routes the tests use."""

    def __init__(self, port: int, base: Path, log: Path):
        self.url = f"http://127.0.0.1:{port}"
        self.base, self.log = base, log

    def get_raw(self, path: str) -> tuple[int, str, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=60) as response:
                return response.status, response.headers.get("Content-Type", ""), response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers.get("Content-Type", ""), err.read()

    def get(self, path: str):
        status, _, body = self.get_raw(path)
        assert status == 200, f"GET {path}: HTTP {status}: {body[:500]!r}"
        return json.loads(body)

    def post(self, path: str, payload) -> tuple[int, dict]:
        request = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def queue(self, prompt: dict) -> tuple[int, dict]:
        return self.post("/prompt", {"prompt": prompt, "client_id": uuid.uuid4().hex})

    def wait(self, prompt_id: str, timeout: float = RUN_TIMEOUT_S) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("status_str") in ("success", "error"):
                return entry
            time.sleep(0.5)
        raise AssertionError(f"prompt {prompt_id} did not finish within {timeout} s\n{self.log_tail()}")

    def run(self, prompt: dict, what: str) -> dict:
        """Queue `prompt`, wait, and return its history entry; fail with the server's own error otherwise."""
        status, reply = self.queue(prompt)
        assert status == 200, f"{what} refused (HTTP {status}): {json.dumps(reply, indent=1)[:4000]}"
        entry = self.wait(reply["prompt_id"])
        assert entry["status"]["status_str"] == "success", f"{what}: {error_message(entry)}\n{self.log_tail()}"
        return entry

    def log_tail(self, chars: int = 4000) -> str:
        return "server log tail:\n" + self.log.read_text(errors="replace")[-chars:]


def error_message(entry: dict) -> str:
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return f"{data.get('node_type')}: {data.get('exception_type')}: {data.get('exception_message')}"
    return ""


def output_files(server: Server, entry: dict, node_id: str | None = None) -> list[Path]:
    """Files an entry's output nodes saved to output/ (images, videos), in the order they reported them."""
    files = []
    for nid, node_output in entry.get("outputs", {}).items():
        if node_id is not None and nid != node_id:
            continue
        for key in ("images", "videos", "gifs"):
            for item in node_output.get(key, []):
                if isinstance(item, dict) and item.get("type") == "output":
                    files.append(server.base / "output" / item.get("subfolder", "") / item["filename"])
    return files


def _prepare_inputs(input_dir: Path) -> dict:
    from tests.node_media import trimmed_shared_clip, write_audio_file, write_face_clip

    media = Path(os.environ.get("LATENTSYNC_MEDIA_DIR", REPO.parent / "shared" / "media"))
    video = input_dir / "latentsync_video.mp4"
    dataset = input_dir / "latentsync_dataset"
    dataset.mkdir()
    source = media / "demo1_video.mp4"
    if source.is_file():
        trimmed_shared_clip(source, video, CLIP_FRAMES)
        for i in range(2):  # the crop box of trimmed_shared_clip frames demo1's face (demo2's only partly)
            trimmed_shared_clip(source, dataset / f"speaker{i}.mp4", DATASET_CLIP_FRAMES)
        origin = "shared demo clips"
    else:
        write_face_clip(video, CLIP_FRAMES)
        for i in range(2):
            write_face_clip(dataset / f"speaker{i}.mp4", DATASET_CLIP_FRAMES)
        origin = "synthetic face clips"
    write_audio_file(input_dir / "latentsync_audio.wav", CLIP_FRAMES / 25)
    return {"video": video, "dataset": dataset, "origin": origin}


def _write_models(python: str, models: Path) -> None:
    """The README's command, run the way users run it (a separate process, the ComfyUI venv)."""
    result = subprocess.run([python, "-m", "latentsync_core.fixtures", str(models)], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"fixtures command failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="session")
def comfy(tmp_path_factory) -> Server:
    comfy_dir = os.environ.get("COMFYUI_DIR")
    require(bool(comfy_dir) and (Path(comfy_dir or ".") / "main.py").is_file(),
            "COMFYUI_DIR does not point at a ComfyUI checkout")
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    base = tmp_path_factory.mktemp("comfy_base")
    for name in ("custom_nodes", "input", "output", "temp", "user", "models"):
        (base / name).mkdir()
    (base / "custom_nodes" / PACK_NAME).symlink_to(REPO, target_is_directory=True)
    _write_models(python, base / "models")
    inputs = _prepare_inputs(base / "input")

    port = _free_port()
    log_path = base / "server.log"
    # The server must find models only where users keep them: no test-only redirections.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATENTSYNC_MODELS")}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory", str(base),
             "--database-url", "sqlite:///:memory:", "--disable-auto-launch"],
            cwd=Path(comfy_dir).resolve(), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = Server(port, base, log_path)
    server.inputs = inputs
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise AssertionError(f"ComfyUI exited with {process.returncode}\n{server.log_tail()}")
            try:
                server.get("/system_stats")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"ComfyUI did not start in {START_TIMEOUT_S} s\n{server.log_tail()}")
                time.sleep(1)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        shutil.copy(log_path, artifacts_dir() / "comfyui-server.log")
