"""The pack inside a real ComfyUI 0.3.64 server: registration, templates, every API workflow, errors, LATENT.

The server is the session fixture `comfy` (conftest.py): models written only by `python -m
latentsync_core.fixtures`, a 20-frame clip in input/. Every workflow runs with SHORT_RUN's inputs (1 sampler step,
2 training steps) so the whole file takes minutes on a CPU.
"""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from tests.integration.conftest import CLIP_FRAMES, PACK_NAME, error_message, output_files
from tests.integration.workflow_files import API_DIR, API_FILES, UI_FILES, load, node_ids, shortened

BASIC_API = API_DIR / "latentsync_basic_api.json"
# The pack's node ids: a stable entry point (saved workflows and API clients use them).
PACK_NODE_IDS = {
    "LatentSyncUNetLoader", "LatentSyncWhisperLoader", "LatentSyncFaceDetectorLoader", "LatentSyncFaceCrop",
    "LatentSyncAudioFeatures", "LatentSyncSampler", "LatentSyncPasteBack", "LatentSyncLengthAdjust",
    "LatentSyncAllInOne", "LatentSyncPrepareDataset", "LatentSyncTrainStage2", "LatentSyncScoreLipSync",
}


def test_object_info_lists_every_pack_node(comfy):
    info = comfy.get("/object_info")
    ours = {name for name, node in info.items() if node.get("python_module") == f"custom_nodes.{PACK_NAME}"}
    assert ours == PACK_NODE_IDS, (f"missing: {sorted(PACK_NODE_IDS - ours)}, unexpected: {sorted(ours - PACK_NODE_IDS)}"
                                   f"\n{comfy.log_tail()}")
    assert all(info[name]["category"].startswith("LatentSync") for name in ours)
    # The fixture files show up in the loaders' lists, where the README says users put the real ones.
    assert "latentsync_unet.pt" in _choices(info["LatentSyncUNetLoader"]["input"]["required"]["unet_name"])
    assert "tiny.pt" in _choices(info["LatentSyncWhisperLoader"]["input"]["required"]["whisper_name"])
    assert "sd-vae-ft-mse.safetensors" in _choices(info["VAELoader"]["input"]["required"]["vae_name"])


def _choices(spec: list) -> list:
    """A combo input's options: V1 nodes list them first, V3 nodes as ["COMBO", {"options": [...]}]."""
    return spec[0] if isinstance(spec[0], list) else spec[1].get("options", [])


def test_templates_are_exactly_the_ui_workflows_with_thumbnails(comfy):
    templates = comfy.get("/api/workflow_templates")
    assert sorted(templates.get(PACK_NAME, [])) == sorted(p.stem for p in UI_FILES)
    for path in UI_FILES:
        assert comfy.get(f"/api/workflow_templates/{PACK_NAME}/{path.name}") == load(path)
        # The frontend's template browser shows <name>.jpg as the card's thumbnail.
        status, content_type, body = comfy.get_raw(f"/api/workflow_templates/{PACK_NAME}/{path.stem}.jpg")
        assert status == 200 and content_type == "image/jpeg" and body[:3] == b"\xff\xd8\xff", path.stem


def _check_video(path, source, frames: int) -> None:
    from latentsync_core.media.video import probe_video

    info, src = probe_video(path), probe_video(source)
    assert src.num_frames == CLIP_FRAMES and info.num_frames == frames, (path.name, info.num_frames, frames)
    assert info.fps == src.fps and (info.width, info.height) == (src.width, src.height)
    assert info.has_audio, f"{path.name} has no audio track"


def _checks_graph_lip_sync(comfy, prompt, entry) -> None:
    """The step-by-step graph keeps the video's frames (no Length Adjust in it)."""
    files = output_files(comfy, entry)
    assert files, f"no video saved: {entry['outputs']}"
    for path in files:
        _check_video(path, comfy.inputs["video"], CLIP_FRAMES)


def _checks_streamed_lip_sync(comfy, prompt, entry) -> None:
    """The all-in-one node follows the audio's length as the official pipeline counts it (one frame per Whisper
    chunk), extending the 20-frame clip by pingpong."""
    from latentsync_core.audio.chunks import official_frame_count
    from latentsync_core.media.audio_file import read_audio

    audio = read_audio(comfy.base / "input" / "latentsync_audio.wav")
    expected = official_frame_count(audio.num_samples, audio.sample_rate, 25)
    assert expected >= CLIP_FRAMES
    files = output_files(comfy, entry)
    assert files, f"no video saved: {entry['outputs']}"
    for path in files:
        _check_video(path, comfy.inputs["video"], expected)


def _checks_score(comfy, prompt, entry) -> None:
    (node,) = node_ids(prompt, "LatentSyncScoreLipSync")
    summary = " ".join(entry["outputs"][node]["text"])
    assert "AV offset" in summary and "confidence" in summary.lower(), summary


def _checks_train(comfy, prompt, entry) -> None:
    from latentsync_core.unet import load_unet

    (prep,) = node_ids(prompt, "LatentSyncPrepareDataset")
    manifest = comfy.base / "output" / prompt[prep]["inputs"]["output_folder"] / "manifest.jsonl"
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(records) == 2, records  # one clip per source video in input/latentsync_dataset
    (train,) = node_ids(prompt, "LatentSyncTrainStage2")
    prefix = prompt[train]["inputs"]["checkpoint_prefix"]
    saved = sorted((comfy.base / "models" / "latentsync").glob(f"{prefix}-step*.pt"))
    assert [p.name for p in saved] == [f"{prefix}-step0000001.pt", f"{prefix}-step0000002.pt"]
    trained, original = load_unet(saved[-1]), load_unet(comfy.base / "models" / "latentsync" / "latentsync_unet.pt")
    assert any(not np.array_equal(v.numpy(), original.state_dict()[k].numpy())
               for k, v in trained.state_dict().items()), "training changed no weight"


CHECKS = {"latentsync_basic": _checks_graph_lip_sync, "latentsync_long_video": _checks_streamed_lip_sync,
          "latentsync_score": _checks_score, "latentsync_train": _checks_train}


def test_every_api_workflow_has_checks():
    assert sorted(CHECKS) == sorted(p.stem.removesuffix("_api") for p in API_FILES)


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.stem)
def test_api_workflow_runs_and_its_outputs_decode(comfy, path):
    prompt = shortened(load(path))
    entry = comfy.run(prompt, path.name)
    CHECKS[path.stem.removesuffix("_api")](comfy, prompt, entry)


def test_fps_mismatch_is_an_execution_error_naming_the_input(comfy):
    prompt = shortened(load(BASIC_API))
    (audio,) = node_ids(prompt, "LatentSyncAudioFeatures")
    prompt[audio]["inputs"]["fps"] = 30.0  # the clip is 25 fps
    status, reply = comfy.queue(prompt)
    assert status == 200, reply
    entry = comfy.wait(reply["prompt_id"])
    assert entry["status"]["status_str"] == "error"
    message = error_message(entry)
    assert "fps" in message and "30" in message and "25" in message, message


@pytest.mark.parametrize("node_type, field, value", [
    ("LatentSyncUNetLoader", "unet_name", "no_such_unet.pt"),
    ("LoadVideo", "file", "no_such_clip.mp4"),
])
def test_missing_file_is_refused_with_400_naming_it(comfy, node_type, field, value):
    prompt = load(BASIC_API)
    (node,) = node_ids(prompt, node_type)
    prompt[node]["inputs"][field] = value
    status, reply = comfy.queue(prompt)
    assert status == 400, reply
    errors = json.dumps(reply["node_errors"][node])
    assert value in errors, errors


def test_sampler_latent_through_core_vae_decode_equals_generated_faces(comfy, capsys):
    """ComfyUI's LATENT is unscaled: the core VAE Decode of the Sampler's `latent` must give `generated_faces`
    wherever the model regenerated the face (FaceCrop's mouth_mask = 1; outside it the Sampler keeps the original
    pixels, as the official pipeline does)."""
    from PIL import Image

    prompt = shortened(load(BASIC_API))
    for node in ("LatentSyncPasteBack", "CreateVideo", "SaveVideo"):
        for node_id in node_ids(prompt, node):
            del prompt[node_id]
    (sampler,) = node_ids(prompt, "LatentSyncSampler")
    (vae,) = node_ids(prompt, "VAELoader")
    (crop,) = node_ids(prompt, "LatentSyncFaceCrop")
    prompt.update({
        "90": {"class_type": "VAEDecode", "inputs": {"samples": [sampler, 1], "vae": [vae, 0]}},
        "91": {"class_type": "SaveImage", "inputs": {"images": ["90", 0], "filename_prefix": "latent_check/decoded"}},
        "92": {"class_type": "SaveImage", "inputs": {"images": [sampler, 0], "filename_prefix": "latent_check/faces"}},
        "93": {"class_type": "MaskToImage", "inputs": {"mask": [crop, 2]}},
        "94": {"class_type": "SaveImage", "inputs": {"images": ["93", 0], "filename_prefix": "latent_check/mask"}},
    })
    entry = comfy.run(prompt, "Sampler -> VAEDecode")

    def frames(node_id):
        return np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.float32)
                         for p in output_files(comfy, entry, node_id)])

    decoded, faces, mask = frames("91"), frames("92"), frames("94")
    assert decoded.shape == faces.shape and len(faces) == CLIP_FRAMES, (decoded.shape, faces.shape)
    regenerated = np.broadcast_to(mask >= 254, faces.shape)  # one mask for all frames, or one per frame
    diff = np.abs(decoded - faces)
    inside, outside = diff[regenerated], diff[~regenerated]
    with capsys.disabled():
        print(f"\nVAEDecode(latent) vs generated_faces, 8-bit levels, regenerated area ({regenerated.mean():.0%} of "
              f"pixels): max {inside.max():.0f}, mean {inside.mean():.3f}; kept area: mean {outside.mean():.1f}")
    assert 0.05 < regenerated.mean() < 0.95, "the mouth mask should cover part of the face"
    assert faces[regenerated].std() > 5, "generated faces are flat: the comparison would prove nothing"
    # Same latent, same VAE: only float round-off and 8-bit PNG quantisation may differ. (A latent still scaled
    # by 0.18215 decodes to a different image: tens of levels on average.)
    assert inside.max() <= 2 and inside.mean() <= 0.1, (inside.max(), inside.mean())


def test_ui_workflow_widget_values_match_the_node_definitions(comfy):
    """widgets_values line up with /object_info's widget inputs, incl. the seed's control_after_generate."""
    info = comfy.get("/object_info")
    problems = []
    for path in UI_FILES:
        for node in load(path)["nodes"]:
            if node["type"] not in info or not node["type"].startswith("LatentSync"):
                continue
            expected = _widget_specs(info[node["type"]])
            values = copy.copy(node.get("widgets_values", []))
            if len(values) != len(expected):
                problems.append(f"{path.stem} #{node['id']} {node['type']}: {len(values)} widget values, "
                                f"expected {len(expected)} ({[n for n, _ in expected]})")
                continue
            for (name, spec), value in zip(expected, values):
                problem = _check_value(spec, value)
                if problem:
                    problems.append(f"{path.stem} #{node['id']} {node['type']}.{name} = {value!r}: {problem}")
    assert not problems, "\n".join(problems)


def _widget_specs(node_info: dict) -> list[tuple[str, object]]:
    """(name, spec) per widget in the order the frontend creates them; ("control_after_generate", "CONTROL")
    after INT widgets that get one (the option, or the frontend's rule for inputs named seed/noise_seed)."""
    specs = []
    inputs = {**node_info["input"].get("required", {}), **node_info["input"].get("optional", {})}
    order = node_info.get("input_order", {})
    names = order.get("required", []) + order.get("optional", []) if order else list(inputs)
    for name in names:
        kind, options = inputs[name][0], (inputs[name][1] if len(inputs[name]) > 1 else {})
        if options.get("forceInput") or not (isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING",
                                                                                  "BOOLEAN", "COMBO")):
            continue
        specs.append((name, (kind, options)))
        if kind == "INT" and options.get("control_after_generate", name in ("seed", "noise_seed")):
            specs.append(("control_after_generate", "CONTROL"))
    return specs


def _check_value(spec, value) -> str:
    if spec == "CONTROL":
        return "" if value in ("fixed", "increment", "decrement", "randomize") else "not a control_after_generate mode"
    kind, options = spec
    choices = kind if isinstance(kind, list) else options.get("options")
    if choices is not None:
        return "" if value in choices else f"not one of {choices[:8]}"
    if kind == "BOOLEAN":
        return "" if isinstance(value, bool) else "not a boolean"
    if kind == "STRING":
        return "" if isinstance(value, str) else "not a string"
    if not isinstance(value, (int, float)) or isinstance(value, bool) or (kind == "INT" and value != int(value)):
        return f"not a number of type {kind}"
    low, high = options.get("min", -float("inf")), options.get("max", float("inf"))
    return "" if low <= value <= high else f"outside {low}..{high}"
