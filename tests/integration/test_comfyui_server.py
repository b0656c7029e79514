"""The pack inside a real ComfyUI server: node registration, every API workflow, error reporting.

Runs only when COMFYUI_DIR points at a ComfyUI checkout (ComfyUI is not on any package registry, so
CI covers the same workflows with tests/harness instead). The server runs with COMFYUI_PYTHON (default:
this interpreter), which needs ComfyUI's requirements and this pack's requirements installed.

Everything the server touches lives in a temporary --base-directory: the pack is linked into its
custom_nodes, fixture weights go into its models (plus a full-size random SD VAE, since ComfyUI's own
VAELoader only builds the real SD architecture), a short clip cut from the shared demo video (or a
synthetic face clip when the media is absent) goes into its input.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
CLIP_FRAMES = 20
START_TIMEOUT_S = 240
RUN_TIMEOUT_S = 420

pytestmark = pytest.mark.skipif(not COMFYUI_DIR, reason="set COMFYUI_DIR to a ComfyUI checkout (and COMFYUI_PYTHON "
                                                        "to its venv's python) to run the real-ComfyUI test")


# --------------------------------------------------------------------------- helpers
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str):
        with urllib.request.urlopen(self.base + path, timeout=30) as response:
            return json.loads(response.read())

    def post(self, path: str, payload: dict) -> tuple[int, dict]:
        request = urllib.request.Request(self.base + path, data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def queue(self, prompt: dict) -> tuple[int, dict]:
        return self.post("/prompt", {"prompt": prompt, "client_id": uuid.uuid4().hex})

    def wait(self, prompt_id: str, timeout: float = RUN_TIMEOUT_S) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get(f"/history/{prompt_id}")
            entry = history.get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None and (
                    entry["status"].get("status_str") in ("success", "error")):
                return entry
            time.sleep(0.5)
        raise AssertionError(f"prompt {prompt_id} did not finish within {timeout} s")


def _write_full_size_sd_vae(path: Path) -> None:
    """A random VAE with sd-vae-ft-mse's exact architecture, in the single-file layout ComfyUI loads."""
    import torch
    from diffusers import AutoencoderKL

    from latentsync_core.checkpoints import save_checkpoint_file
    from latentsync_core.vae.ldm_keys import diffusers_to_ldm

    torch.manual_seed(0)
    model = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                          block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                          sample_size=512)
    state = {k: v.to(torch.float16) for k, v in model.state_dict().items()}
    save_checkpoint_file(diffusers_to_ldm(state), path)


def _prepare_input(input_dir: Path) -> dict:
    from tests.node_media import trimmed_shared_clip, write_audio_file, write_face_clip

    media = Path(os.environ.get("LATENTSYNC_MEDIA_DIR", REPO.parent / "shared" / "media"))
    video = input_dir / "latentsync_video.mp4"
    if (media / "demo1_video.mp4").is_file():
        trimmed_shared_clip(media / "demo1_video.mp4", video, CLIP_FRAMES)
        source = "shared demo1 clip"
    else:
        write_face_clip(video, CLIP_FRAMES)
        source = "synthetic face clip"
    write_audio_file(input_dir / "latentsync_audio.wav", CLIP_FRAMES / 25)
    return {"video": video, "source": source}


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    from latentsync_core.fixtures import write_fixtures

    comfy_dir = Path(COMFYUI_DIR).resolve()
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    base = tmp_path_factory.mktemp("comfy_base")
    for name in ("custom_nodes", "input", "output", "temp", "user", "models"):
        (base / name).mkdir()
    link = base / "custom_nodes" / "ComfyUI-LatentSync"
    link.symlink_to(REPO, target_is_directory=True)
    write_fixtures(base / "models")
    _write_full_size_sd_vae(base / "models" / "vae" / "sd-vae-ft-mse.safetensors")
    inputs = _prepare_input(base / "input")

    port = _free_port()
    log_path = base / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATENTSYNC_")}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory", str(base),
             "--database-url", "sqlite:///:memory:", "--disable-auto-launch"],
            cwd=comfy_dir, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = Server(port)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise AssertionError(f"ComfyUI exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                server.get("/system_stats")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"ComfyUI did not start in {START_TIMEOUT_S} s:\n{log_path.read_text()[-4000:]}")
                time.sleep(1)
        yield {"server": server, "base": base, "log": log_path, "inputs": inputs, "comfy_dir": comfy_dir}
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        link.unlink()
        print(f"\nComfyUI log: {log_path}")


def _api_workflows() -> list[Path]:
    """The lip-sync workflows, which save a video. The training and scoring twins need a prepared dataset
    folder in input/ and save no video; test_train_workflows.py runs them end to end through the harness."""
    return [WORKFLOWS / "latentsync_basic_api.json", WORKFLOWS / "latentsync_long_video_api.json"]


def _output_files(entry: dict) -> list[Path]:
    files = []
    for node_output in entry.get("outputs", {}).values():
        for key in ("images", "videos", "gifs"):
            for item in node_output.get(key, []):
                if isinstance(item, dict) and item.get("type") == "output":
                    files.append(Path(item.get("subfolder", "")) / item["filename"])
    return files


def _error_message(entry: dict) -> str:
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return f"{data.get('node_type')}: {data.get('exception_type')}: {data.get('exception_message')}"
    return ""


# --------------------------------------------------------------------------- tests
def test_object_info_lists_every_node(comfy):
    from nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    info = comfy["server"].get("/object_info")
    missing = sorted(set(NODE_CLASS_MAPPINGS) - set(info))
    assert missing == [], f"not registered in ComfyUI: {missing}\n{comfy['log'].read_text()[-3000:]}"
    for name in NODE_CLASS_MAPPINGS:
        assert info[name]["display_name"] == NODE_DISPLAY_NAME_MAPPINGS[name]
        assert info[name]["category"] == "LatentSync"
    # The fixture weights show up in the loaders' lists, through the pack's model folders.
    assert "latentsync_unet.pt" in info["LatentSyncUNetLoader"]["input"]["required"]["unet_name"][0]
    assert "tiny.pt" in info["LatentSyncWhisperLoader"]["input"]["required"]["whisper_name"][0]


def test_workflows_are_served_as_templates(comfy):
    templates = comfy["server"].get("/workflow_templates")
    assert {"latentsync_basic", "latentsync_long_video"} <= set(templates.get("ComfyUI-LatentSync", []))
    served = comfy["server"].get("/api/workflow_templates/ComfyUI-LatentSync/latentsync_basic.json")
    assert served == json.loads((WORKFLOWS / "latentsync_basic.json").read_text())


@pytest.mark.parametrize("workflow", _api_workflows(), ids=lambda p: p.stem)
def test_api_workflow_runs_and_saves_a_video(comfy, workflow):
    from latentsync_core.media.video import probe_video

    prompt = json.loads(workflow.read_text())
    status, reply = comfy["server"].queue(prompt)
    assert status == 200, f"{workflow.name} refused: {json.dumps(reply, indent=1)[:3000]}"
    entry = comfy["server"].wait(reply["prompt_id"])
    assert entry["status"]["status_str"] == "success", (_error_message(entry) or
                                                       comfy["log"].read_text()[-4000:])
    files = _output_files(entry)
    assert files, f"{workflow.name} reported no output file: {entry['outputs']}"
    for relative in files:
        info = probe_video(comfy["base"] / "output" / relative)
        source = probe_video(comfy["inputs"]["video"])
        assert info.num_frames == source.num_frames == CLIP_FRAMES
        assert info.fps == source.fps
        assert (info.width, info.height) == (source.width, source.height)
        assert info.has_audio


def test_execution_error_names_the_inputs_to_fix(comfy):
    prompt = json.loads((WORKFLOWS / "latentsync_basic_api.json").read_text())
    audio_node = next(node for node in prompt.values() if node["class_type"] == "LatentSyncAudioFeatures")
    audio_node["inputs"]["fps"] = 30.0  # the clip is 25 fps
    status, reply = comfy["server"].queue(prompt)
    assert status == 200, reply
    entry = comfy["server"].wait(reply["prompt_id"])
    assert entry["status"]["status_str"] == "error"
    message = _error_message(entry)
    assert "fps" in message and "30" in message and "25" in message, message


def test_validation_error_comes_back_as_400(comfy):
    prompt = json.loads((WORKFLOWS / "latentsync_basic_api.json").read_text())
    loader_id, loader = next((k, n) for k, n in prompt.items() if n["class_type"] == "LatentSyncUNetLoader")
    loader["inputs"]["unet_name"] = "no_such_unet.pt"
    status, reply = comfy["server"].queue(prompt)
    assert status == 400
    errors = json.dumps(reply["node_errors"][loader_id])
    assert "no_such_unet.pt" in errors and "models/latentsync" in errors
