"""Every workflow in workflows/ checked against the node definitions and run end to end on fixture weights.

The API twins are what `POST /prompt` takes; the UI files are what users open. Both are validated the
way ComfyUI validates a prompt (tests/harness), the UI files convert to exactly their twins, and the
twins run through the harness on a short clip of a moving real face.
"""
from __future__ import annotations

import copy
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tests.harness import (ExecutionError, Executor, WorkflowValidationError, is_ui_workflow, pack_node_mappings,
                           run_workflow)
from tests.harness import core_nodes
from tests.node_media import write_audio_file, write_face_clip

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
ALL_UI_FILES = sorted(p for p in WORKFLOWS.glob("*.json") if not p.name.endswith("_api.json"))
# The lip-sync workflows; training and scoring ones are exercised in test_train_workflows.py.
UI_FILES = [WORKFLOWS / "latentsync_basic.json", WORKFLOWS / "latentsync_long_video.json"]
API_FILES = [p.with_name(p.stem + "_api.json") for p in UI_FILES]
FRAMES = 16
FPS = 25
TEST_STEPS = 1  # the twins say 20 (official); 1 keeps the CPU run short and takes the same path


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def fast(prompt: dict) -> dict:
    prompt = copy.deepcopy(prompt)
    for node in prompt.values():
        if "steps" in node["inputs"]:
            node["inputs"]["steps"] = TEST_STEPS
    return prompt


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, fixture_models):
    root = tmp_path_factory.mktemp("workflows")
    (root / "input").mkdir()
    write_face_clip(root / "input" / "latentsync_video.mp4", FRAMES, FPS)
    write_audio_file(root / "input" / "latentsync_audio.wav", FRAMES / FPS)
    return {"input_dir": root / "input", "output_dir": root / "output", "models_dir": fixture_models}


@pytest.fixture(scope="module")
def streamed_video_files():
    """Spy on the LoadVideo double (ComfyUI's VideoFromFile): every whole-file decode (get_components)
    is recorded, so a workflow that should stream proves it does."""
    original = core_nodes.VideoFromFile.get_components
    decoded = []

    def get_components(self):
        decoded.append(self.path)
        return original(self)

    core_nodes.VideoFromFile.get_components = get_components
    yield decoded
    core_nodes.VideoFromFile.get_components = original


@pytest.fixture(scope="module")
def runs(dirs, streamed_video_files):
    results = {}
    for path in API_FILES:
        decoded_before = len(streamed_video_files)
        result = run_workflow(fast(load(path)), pack_node_mappings(), **dirs)
        saved = [dirs["output_dir"] / item["subfolder"] / item["filename"]
                 for ui in result.ui.values() for item in ui.get("images", [])]
        results[path.stem] = {"result": result, "files": saved,
                              "decoded_whole": streamed_video_files[decoded_before:]}
    return results


def test_there_is_a_basic_and_a_long_video_workflow_each_with_an_api_twin():
    assert set(UI_FILES) <= set(ALL_UI_FILES)
    assert sorted(WORKFLOWS.glob("*_api.json")) == sorted(p.with_name(p.stem + "_api.json") for p in ALL_UI_FILES)
    for path in ALL_UI_FILES:
        assert is_ui_workflow(load(path)), path.name


@pytest.mark.parametrize("path", UI_FILES + API_FILES, ids=lambda p: p.name)
def test_workflow_validates_against_the_node_definitions(path, dirs):
    validated = Executor(pack_node_mappings(), **dirs).validate(load(path))
    assert validated.warnings == []
    types = {node["class_type"] for node in validated.prompt.values()}
    assert types & set(pack_node_mappings()), "the workflow uses no LatentSync node"


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.name)
def test_ui_workflow_converts_to_its_committed_api_twin(path, dirs):
    api = Executor(pack_node_mappings(), **dirs).to_api(load(path))
    twin = load(path.with_name(path.stem + "_api.json"))
    assert api == twin


def test_basic_workflow_uses_the_documented_graph():
    prompt = load(WORKFLOWS / "latentsync_basic_api.json")
    by_type = {node["class_type"]: (node_id, node["inputs"]) for node_id, node in prompt.items()}
    chain = ["LoadVideo", "GetVideoComponents", "LatentSyncFaceCrop", "LatentSyncSampler", "LatentSyncPasteBack",
             "CreateVideo", "SaveVideo"]
    sockets = {"GetVideoComponents": "video", "LatentSyncFaceCrop": "images", "LatentSyncSampler": "face_data",
               "LatentSyncPasteBack": "generated_faces", "CreateVideo": "images", "SaveVideo": "video"}
    for upstream, downstream in zip(chain, chain[1:]):
        assert by_type[downstream][1][sockets[downstream]][0] == by_type[upstream][0], (upstream, downstream)
    audio_id = by_type["LoadAudio"][0]
    assert by_type["LatentSyncAudioFeatures"][1]["audio"] == [audio_id, 0]
    assert by_type["CreateVideo"][1]["audio"] == [audio_id, 0]
    assert by_type["VAELoader"][1]["vae_name"] == "sd-vae-ft-mse.safetensors"
    fps_link = [by_type["GetVideoComponents"][0], 2]
    for consumer in ("LatentSyncFaceCrop", "LatentSyncAudioFeatures", "CreateVideo"):
        assert by_type[consumer][1]["fps"] == fps_link, consumer


def _video(path: Path):
    from latentsync_core.media.video import probe_video, read_video

    return probe_video(path), read_video(path)[0]


def test_basic_workflow_runs_end_to_end(runs, dirs):
    run = runs["latentsync_basic_api"]
    assert len(run["files"]) == 1 and run["files"][0].parent.name == "latentsync"
    info, frames = _video(run["files"][0])
    source_info, source = _video(dirs["input_dir"] / "latentsync_video.mp4")
    assert (info.num_frames, info.fps, info.width, info.height) == (FRAMES, Fraction(FPS), source_info.width,
                                                                     source_info.height)
    assert info.has_audio and info.audio_sample_rate == 44100
    diff = np.abs(frames.astype(np.int16) - source.astype(np.int16)).mean(axis=(0, 3))
    # The mouth of the clip's face (rows ~150-190, columns ~130-200) changes; the far corners do not.
    assert diff[150:190, 130:200].mean() > 4 * max(diff[:40, :40].mean(), diff[-40:, -40:].mean(), 0.25)


def test_long_video_workflow_streams_the_file_and_matches_the_graph(runs, dirs):
    run = runs["latentsync_long_video_api"]
    assert run["decoded_whole"] == [], "the all-in-one node decoded the whole VIDEO instead of streaming its file"
    assert runs["latentsync_basic_api"]["decoded_whole"], "GetVideoComponents should decode (sanity check of the spy)"
    info, frames = _video(run["files"][0])
    assert (info.num_frames, info.fps, info.has_audio) == (FRAMES, Fraction(FPS), True)
    _, graph = _video(runs["latentsync_basic_api"]["files"][0])
    _, source = _video(dirs["input_dir"] / "latentsync_video.mp4")
    # Same stage functions and settings: the frames agree up to the H.264 encoding of two near-identical inputs.
    assert np.abs(frames.astype(np.int16) - graph.astype(np.int16)).mean() < 1.0
    assert np.abs(frames.astype(np.int16) - source.astype(np.int16)).mean() > 2.0


def test_workflow_with_mismatched_fps_fails_at_the_sampler_naming_the_inputs(dirs):
    prompt = fast(load(WORKFLOWS / "latentsync_basic_api.json"))
    audio_id = next(k for k, n in prompt.items() if n["class_type"] == "LatentSyncAudioFeatures")
    prompt[audio_id]["inputs"]["fps"] = 30.0
    with pytest.raises(ExecutionError, match="LatentSyncSampler.*30 fps.*25 fps"):
        run_workflow(prompt, pack_node_mappings(), **dirs)


def test_workflow_with_a_missing_vae_file_is_refused_before_running(dirs):
    prompt = load(WORKFLOWS / "latentsync_basic_api.json")
    vae_id = next(k for k, n in prompt.items() if n["class_type"] == "VAELoader")
    prompt[vae_id]["inputs"]["vae_name"] = "sdxl_vae.safetensors"
    with pytest.raises(WorkflowValidationError) as info:
        run_workflow(prompt, pack_node_mappings(), **dirs)
    (issue,) = info.value.errors
    assert (issue.type, issue.node_id, issue.input_name) == ("value_not_in_list", vae_id, "vae_name")


def test_workflow_with_a_missing_unet_names_the_file_and_the_download(dirs):
    prompt = load(WORKFLOWS / "latentsync_long_video_api.json")
    unet_id = next(k for k, n in prompt.items() if n["class_type"] == "LatentSyncUNetLoader")
    prompt[unet_id]["inputs"]["unet_name"] = "latentsync_unet_1.5.pt"
    with pytest.raises(WorkflowValidationError) as info:
        run_workflow(prompt, pack_node_mappings(), **dirs)
    (issue,) = info.value.errors
    assert issue.type == "custom_validation_failed" and issue.node_id == unet_id
    assert "'latentsync_unet_1.5.pt' is not in models/latentsync" in issue.details
    assert "hf download ByteDance/LatentSync-1.6 latentsync_unet.pt" in issue.details
