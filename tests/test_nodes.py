"""The pack's nodes called directly on fixture weights and a short clip of a moving real face.

Workflows through the harness are in test_workflows.py; the generic node contract (INPUT_TYPES,
RETURN_TYPES, FUNCTION) is checked per node by test_harness.py.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from latentsync_core import host
from latentsync_core.convert import image_to_uint8, uint8_to_image
from latentsync_core.errors import (CheckpointError, InputMismatchError, LatentSyncError, ModelMissingError,
                                    ProcessingInterrupted)
from nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from tests.node_media import AUDIO_RATE, face_frames, speech_like_audio

FRAMES = 16  # one sampler window
FPS = 25.0
STEPS = 1


def node(name):
    return NODE_CLASS_MAPPINGS[name]()


def audio_input(seconds: float, rate: int = AUDIO_RATE) -> dict:
    return {"waveform": torch.from_numpy(speech_like_audio(seconds, rate))[None], "sample_rate": rate}


@pytest.fixture(scope="module")
def models(fixture_models):
    from latentsync_core.vae import load_vae

    unet, = node("LatentSyncUNetLoader").load("latentsync_unet.pt", "auto")
    whisper, = node("LatentSyncWhisperLoader").load("tiny.pt")
    detector, = node("LatentSyncFaceDetectorLoader").load("bundled", 1, 0.0, "largest", 0, 0.5, 0.5)
    vae = load_vae(fixture_models / "vae" / "sd-vae-ft-mse.safetensors")
    return {"unet": unet, "whisper": whisper, "detector": detector, "vae": vae}


@pytest.fixture(scope="module")
def clip():
    frames = face_frames(FRAMES)
    return {"frames": frames, "images": uint8_to_image(frames), "audio": audio_input(FRAMES / FPS)}


@pytest.fixture(scope="module")
def cropped(models, clip):
    return node("LatentSyncFaceCrop").crop(clip["images"], models["detector"], FPS, "auto", "bowl", unet=models["unet"])


@pytest.fixture(scope="module")
def features(models, clip):
    return node("LatentSyncAudioFeatures").encode(clip["audio"], models["whisper"], FPS, 0, True, images=clip["images"])[0]


@pytest.fixture(scope="module")
def sampled(models, cropped, features):
    return node("LatentSyncSampler").sample(models["unet"], models["vae"], cropped[1], features, 1247, STEPS, 1.5,
                                            "ddim", 0, "shared", False)


# --------------------------------------------------------------------------- registration
def test_every_node_is_described_for_the_ui():
    inference_nodes = {"LatentSyncUNetLoader", "LatentSyncWhisperLoader", "LatentSyncFaceDetectorLoader",
                       "LatentSyncAudioFeatures", "LatentSyncFaceCrop", "LatentSyncSampler", "LatentSyncPasteBack",
                       "LatentSyncLengthAdjust", "LatentSyncAllInOne"}
    assert inference_nodes <= set(NODE_CLASS_MAPPINGS)
    assert set(NODE_DISPLAY_NAME_MAPPINGS) == set(NODE_CLASS_MAPPINGS)
    for name, cls in NODE_CLASS_MAPPINGS.items():
        assert cls.CATEGORY == "LatentSync" and cls.DESCRIPTION
        assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES)
        spec = cls.INPUT_TYPES()
        for group in ("required", "optional"):
            for input_name, entry in (spec.get(group) or {}).items():
                assert entry[1].get("tooltip"), f"{name}.{input_name} has no tooltip"
    assert NODE_CLASS_MAPPINGS["LatentSyncAllInOne"].OUTPUT_NODE is True


# --------------------------------------------------------------------------- loaders
def test_unet_loader_returns_a_managed_unet_and_lists_only_unets(models, fixture_models):
    # the fixtures put a SyncNet (and nothing else but the U-Net) in models/latentsync: it must not be offered
    assert (fixture_models / "latentsync" / "stable_syncnet.pt").is_file()
    names = NODE_CLASS_MAPPINGS["LatentSyncUNetLoader"].INPUT_TYPES()["required"]["unet_name"][0]
    assert names == ["latentsync_unet.pt"]
    unet = host.managed_module(models["unet"])
    assert host.is_managed(models["unet"], "unet") and unet.config["in_channels"] == 13
    assert host.load_to_device(models["unet"]) is unet


def test_unet_loader_names_the_missing_file_and_how_to_get_it(fixture_models):
    message = NODE_CLASS_MAPPINGS["LatentSyncUNetLoader"].VALIDATE_INPUTS("gone.pt")
    assert "'gone.pt'" in message and "models/latentsync" in message
    message = NODE_CLASS_MAPPINGS["LatentSyncUNetLoader"].VALIDATE_INPUTS("latentsync_unet.pt")
    assert message is True
    with pytest.raises(ModelMissingError, match="hf download ByteDance/LatentSync-1.6"):
        node("LatentSyncUNetLoader").load("missing/latentsync_unet.pt", "auto")


def test_whisper_loader_finds_the_official_layout_too(models, fixture_models):
    assert NODE_CLASS_MAPPINGS["LatentSyncWhisperLoader"].VALIDATE_INPUTS("tiny.pt") is True
    encoder = host.managed_module(models["whisper"])
    assert host.is_managed(models["whisper"], "whisper") and encoder.conv1.out_channels == 64


def test_face_detector_loader_maps_the_face_choice():
    from latentsync_core.face import FaceChoice

    settings, = node("LatentSyncFaceDetectorLoader").load("bundled", 3, 0.5, "nearest_point", 0, 0.25, 0.75)
    assert (settings.every_k, settings.smoothing, settings.face_choice) == (3, 0.5, FaceChoice("nearest", point=(0.25, 0.75)))
    settings, = node("LatentSyncFaceDetectorLoader").load("bundled", 1, 0.0, "index", 2, 0.5, 0.5)
    assert settings.face_choice == FaceChoice("index", index=2)


# --------------------------------------------------------------------------- audio features
def test_audio_features_frame_count_follows_images_or_the_audio(models, clip, features):
    assert features.num_frames == FRAMES and features.fps == FPS and features.silent.shape == (FRAMES,)
    # The speech-like clip pauses after 0.24 s: frames 6..15 at 25 fps, minus the speech padding (0.1 s).
    assert not features.silent[:7].any() and features.silent[9:].all()
    longer, = node("LatentSyncAudioFeatures").encode(audio_input(1.0), models["whisper"], 30.0, 0, False)
    assert longer.num_frames == 30 and longer.silent is None
    fixed, = node("LatentSyncAudioFeatures").encode(audio_input(1.0), models["whisper"], 25.0, 7, False,
                                                    images=clip["images"])
    assert fixed.num_frames == 7


def test_audio_features_wants_the_whisper_loader(clip):
    with pytest.raises(LatentSyncError, match="Load Whisper"):
        node("LatentSyncAudioFeatures").encode(clip["audio"], None, FPS, 0, False)


# --------------------------------------------------------------------------- face crop
def test_face_crop_aligns_every_frame_at_the_unets_resolution(cropped, clip):
    from latentsync_core.face import mouth_mask

    faces, data, masks = cropped
    assert data.resolution == 64  # tiny U-Net (3 levels): the smallest size with 2x2 deepest latents
    assert faces.shape == (FRAMES, 64, 64, 3) and masks.shape == (FRAMES, 64, 64)
    assert data.info.valid.all() and data.fps == FPS and data.info.frame_size == clip["frames"].shape[1:3]
    assert np.array_equal(image_to_uint8(faces), data.crops)
    assert torch.equal(masks[3], mouth_mask(64, "bowl"))
    # The crop follows the moving face: the same facial point lands on the same crop pixel.
    spread = np.ptp(data.info.affines[:, :, 2], axis=0)
    assert spread.max() > 3  # the clip moves the face by +-6 px
    assert (faces[1:] - faces[:-1]).abs().mean() < 0.05


def test_face_crop_resolution_choices(models, clip):
    crop = node("LatentSyncFaceCrop")
    faces, data, _ = crop.crop(clip["images"][:2], models["detector"], FPS, "256", "jaw")
    assert faces.shape == (2, 256, 256, 3) and data.mask_shape == "jaw"
    with pytest.raises(LatentSyncError, match="connect the U-Net loader"):
        crop.crop(clip["images"][:2], models["detector"], FPS, "auto", "bowl")


def test_auto_resolution_rules():
    from types import SimpleNamespace

    from nodes.common import auto_resolution

    official = {"block_out_channels": [320, 640, 1280, 1280]}
    assert auto_resolution(SimpleNamespace(trained_resolution=256, config=official)) == 256
    assert auto_resolution(SimpleNamespace(trained_resolution=None, config=official)) == 512  # 1.6, as the CLI
    assert auto_resolution(SimpleNamespace(trained_resolution=None, config={"block_out_channels": [8, 8, 8, 8]})) == 128


# --------------------------------------------------------------------------- sampler
def test_sampler_regenerates_only_the_mouth_area(sampled, cropped):
    generated, latent = sampled
    faces, data, masks = cropped
    assert generated.shape == faces.shape and latent["samples"].shape == (FRAMES, 4, 8, 8)
    keep = (masks == 0)[..., None].expand_as(faces)
    assert torch.allclose(generated[keep], faces[keep], atol=1e-6)
    mouth = (masks == 1)[..., None].expand_as(faces)
    assert (generated[mouth] - faces[mouth]).abs().mean() > 0.02
    assert latent["samples"].abs().sum(dim=(1, 2, 3)).min() > 0


def test_silence_gating_keeps_silent_faces_and_the_seed_matters(models, cropped, features, sampled):
    sampler = node("LatentSyncSampler")
    gated, latent = sampler.sample(models["unet"], models["vae"], cropped[1], features, 1247, STEPS, 1.0, "ddim", 0,
                                   "shared", True)
    silent = features.silent.numpy()
    assert silent.any() and (~silent).any()
    assert torch.equal(image_to_uint8_tensor(gated[silent]), torch.from_numpy(cropped[1].crops[silent]))
    assert latent["samples"][silent].abs().max() == 0
    assert latent["samples"][~silent].abs().sum(dim=(1, 2, 3)).min() > 0
    assert not torch.equal(image_to_uint8_tensor(gated[~silent]), torch.from_numpy(cropped[1].crops[~silent]))
    # Same seed -> same faces is shown by test_graph_nodes_give_the_streaming_pipelines_frames.
    other_seed, _ = sampler.sample(models["unet"], models["vae"], cropped[1], features, 7, STEPS, 1.5, "ddim", 0,
                                   "shared", False)
    assert not torch.allclose(other_seed, sampled[0], atol=1e-3)


def image_to_uint8_tensor(image):
    return torch.from_numpy(image_to_uint8(image))


def test_sampler_stops_when_the_user_interrupts(models, cropped, features):
    host.request_interrupt()
    try:
        with pytest.raises(ProcessingInterrupted):
            node("LatentSyncSampler").sample(models["unet"], models["vae"], cropped[1], features, 1, STEPS, 1.5, "ddim",
                                             0, "shared", False)
    finally:
        host.clear_interrupt()


# --------------------------------------------------------------------------- paste back
def test_paste_back_changes_the_face_and_nothing_far_from_it(sampled, cropped, clip):
    out, = node("LatentSyncPasteBack").paste(clip["images"], sampled[0], cropped[1], "crop_box", 8.0)
    assert out.shape == clip["images"].shape
    boxes = cropped[1].info.boxes
    far = np.ones(out.shape[:3], bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        w, h = x2 - x1, y2 - y1
        far[i, max(int(y1 - h), 0):int(y2 + h), max(int(x1 - w), 0):int(x2 + w)] = False
    assert torch.equal(out[torch.from_numpy(far)], clip["images"][torch.from_numpy(far)])
    assert (out - clip["images"]).abs().amax(dim=(1, 2, 3)).min() > 0.05  # every frame got a new mouth


def test_graph_nodes_give_the_streaming_pipelines_frames(models, sampled, cropped, features, clip):
    """The graph (Face Crop -> Sampler -> Paste Back) and the all-in-one node / CLI (pipeline.lipsync_frames)
    run the same stage functions with the same seeds, windows and noise: the frames agree to rounding."""
    from latentsync_core.pipeline import FrameSource, LipsyncOptions, SamplerOptions, lipsync_frames

    graph, = node("LatentSyncPasteBack").paste(clip["images"], sampled[0], cropped[1], "crop_box", 8.0)
    options = LipsyncOptions(sampler=SamplerOptions(steps=STEPS, guidance=1.5, seed=1247), resolution=64)
    streamed = np.stack(list(lipsync_frames(
        FrameSource.open(clip["frames"], fps=FPS), FRAMES, lambda idx: torch.cat([features.chunk_range(i, i + 1) for i in idx]),
        host.managed_module(models["unet"]), models["vae"], models["detector"].detector, options=options)))
    diff = np.abs(streamed.astype(np.int16) - image_to_uint8(graph).astype(np.int16))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-4
    assert np.abs(streamed.astype(np.int16) - clip["frames"].astype(np.int16)).max() > 20


def test_paste_back_mouth_blend_changes_less_than_the_crop_box(sampled, cropped, clip):
    box, = node("LatentSyncPasteBack").paste(clip["images"], sampled[0], cropped[1], "crop_box", 8.0)
    mouth, = node("LatentSyncPasteBack").paste(clip["images"], sampled[0], cropped[1], "mouth", 2.0)
    changed_box = ((box - clip["images"]).abs() > 2 / 255).sum()
    changed_mouth = ((mouth - clip["images"]).abs() > 2 / 255).sum()
    assert 0 < changed_mouth < changed_box


def test_paste_back_leaves_frames_with_unchanged_faces_bit_identical(cropped, clip):
    unchanged = uint8_to_image(cropped[1].crops)
    out, = node("LatentSyncPasteBack").paste(clip["images"], unchanged, cropped[1], "crop_box", 8.0)
    assert torch.equal(out, clip["images"])


# --------------------------------------------------------------------------- bad input, named at the node
def test_mismatched_fps_between_video_and_audio_features(models, cropped, clip):
    wrong, = node("LatentSyncAudioFeatures").encode(clip["audio"], models["whisper"], 30.0, 0, False, images=clip["images"])
    with pytest.raises(InputMismatchError, match=r"30 fps.*25 fps.*fps inputs of both Audio Features and Face Crop"):
        node("LatentSyncSampler").sample(models["unet"], models["vae"], cropped[1], wrong, 1, STEPS, 1.5, "ddim", 0,
                                         "shared", False)


def test_audio_features_for_a_different_frame_count(models, cropped, clip):
    short, = node("LatentSyncAudioFeatures").encode(clip["audio"], models["whisper"], FPS, 10, False)
    with pytest.raises(InputMismatchError, match="covers 10 frames but face_data holds 16"):
        node("LatentSyncSampler").sample(models["unet"], models["vae"], cropped[1], short, 1, STEPS, 1.5, "ddim", 0,
                                         "shared", False)


def test_faces_from_a_video_of_another_length_at_paste_back(sampled, cropped, clip):
    with pytest.raises(InputMismatchError, match="'images' has 12 frames but 'face_data' was made from a video of 16"):
        node("LatentSyncPasteBack").paste(clip["images"][:12], sampled[0], cropped[1], "crop_box", 8.0)
    bigger = torch.nn.functional.pad(clip["images"], (0, 0, 0, 8))
    with pytest.raises(InputMismatchError, match="328x320 but 'face_data' was made from 320x320"):
        node("LatentSyncPasteBack").paste(bigger, sampled[0], cropped[1], "crop_box", 8.0)


def test_unet_at_512_with_faces_aligned_at_256(models, clip, features):
    unet, = node("LatentSyncUNetLoader").load("latentsync_unet.pt", "fp32")
    host.managed_module(unet).trained_resolution = 512
    _, faces_256, _ = node("LatentSyncFaceCrop").crop(clip["images"], models["detector"], FPS, "256", "bowl")
    with pytest.raises(InputMismatchError, match="trained on 512 px faces but Face Crop & Align aligned them at 256"):
        node("LatentSyncSampler").sample(unet, models["vae"], faces_256, features, 1, STEPS, 1.5, "ddim", 0, "shared",
                                         False)
    # auto follows the U-Net's trained resolution
    _, faces_auto, _ = node("LatentSyncFaceCrop").crop(clip["images"][:1], models["detector"], FPS, "auto", "bowl",
                                                       unet=unet)
    assert faces_auto.resolution == 512


def test_missing_vae(models, cropped, features):
    with pytest.raises(CheckpointError, match="'vae' input is a NoneType, not a VAE.*sd-vae-ft-mse"):
        node("LatentSyncSampler").sample(models["unet"], None, cropped[1], features, 1, STEPS, 1.5, "ddim", 0, "shared",
                                         False)


def test_non_sd_vaes(models, cropped, features):
    from types import SimpleNamespace

    from diffusers import AutoencoderKL

    flux_like = AutoencoderKL(block_out_channels=(32, 32, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
                              up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=16, norm_num_groups=32)
    comfy_video_vae = SimpleNamespace(first_stage_model=object(), patcher=object(), encode=lambda x: x,
                                      latent_channels=16, latent_dim=3)
    for vae in (flux_like, comfy_video_vae):
        with pytest.raises(CheckpointError, match="'vae' input has 16-channel latents.*sd-vae-ft-mse"):
            node("LatentSyncSampler").sample(models["unet"], vae, cropped[1], features, 1, STEPS, 1.5, "ddim", 0,
                                             "shared", False)


def test_wrong_values_on_custom_sockets_name_the_node_to_connect(models, cropped, features, clip):
    with pytest.raises(LatentSyncError, match="'face_data' input received a dict; connect the face_data output"):
        node("LatentSyncSampler").sample(models["unet"], models["vae"], {}, features, 1, STEPS, 1.5, "ddim", 0,
                                         "shared", False)
    with pytest.raises(LatentSyncError, match="'unet' input received nothing; connect a Load LatentSync U-Net"):
        node("LatentSyncSampler").sample(None, models["vae"], cropped[1], features, 1, STEPS, 1.5, "ddim", 0,
                                         "shared", False)
    with pytest.raises(LatentSyncError, match="silence_detection"):
        plain, = node("LatentSyncAudioFeatures").encode(clip["audio"], models["whisper"], FPS, 0, False,
                                                        images=clip["images"])
        node("LatentSyncSampler").sample(models["unet"], models["vae"], cropped[1], plain, 1, STEPS, 1.5, "ddim", 0,
                                         "shared", True)


# --------------------------------------------------------------------------- length adjust
@pytest.mark.parametrize("mode, expected", [
    ("pingpong", [0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 0, 1]),
    ("loop", [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]),
    ("freeze", [0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4]),
    ("trim_audio", [0, 1, 2, 3, 4]),
])
def test_length_adjust_extends_a_short_video(mode, expected):
    images = torch.arange(5, dtype=torch.float32).view(5, 1, 1, 1).expand(5, 2, 2, 3).clone()
    audio = audio_input(12 / 30, rate=16000)  # 12 frames at 30 fps
    frames, fitted, count = node("LatentSyncLengthAdjust").adjust(images, audio, 30.0, mode, "trim", True)
    assert frames[:, 0, 0, 0].tolist() == expected and count == len(expected)
    assert fitted["waveform"].shape[-1] == round(len(expected) / 30 * 16000)
    assert torch.equal(fitted["waveform"], audio["waveform"][..., :fitted["waveform"].shape[-1]])


def test_length_adjust_trims_or_keeps_a_long_video_at_any_fps():
    images = torch.rand(40, 2, 2, 3)
    audio = audio_input(1.0, rate=16000)
    fps = 30000 / 1001  # 1 s of audio covers 30 frames at 29.97 fps
    frames, fitted, count = node("LatentSyncLengthAdjust").adjust(images, audio, fps, "pingpong", "trim", True)
    assert count == 30 and torch.equal(frames, images[:30])
    frames, fitted, count = node("LatentSyncLengthAdjust").adjust(images, audio, fps, "pingpong", "keep", True)
    samples = round(Fraction(40) / Fraction(30000, 1001) * 16000)
    assert count == 40 and fitted["waveform"].shape[-1] == samples
    assert torch.equal(fitted["waveform"][..., :16000], audio["waveform"]) and fitted["waveform"][..., 16000:].abs().max() == 0
    _, unpadded, _ = node("LatentSyncLengthAdjust").adjust(images, audio, fps, "pingpong", "keep", False)
    assert torch.equal(unpadded["waveform"], audio["waveform"])


# --------------------------------------------------------------------------- all-in-one
def test_all_in_one_from_a_path_from_memory_and_a_missing_file(models, clip, fixture_models, tmp_path, monkeypatch):
    from latentsync_core.media.video import probe_video, read_video
    from latentsync_core.media.writer import write_video
    from tests.harness import VideoComponents, VideoFromComponents

    monkeypatch.setenv("LATENTSYNC_OUTPUT_DIR", str(tmp_path / "out"))
    source = write_video(tmp_path / "clip.mp4", clip["frames"][:8], Fraction(25))
    settings = dict(unet=models["unet"], whisper=models["whisper"], vae=models["vae"], face_detector=models["detector"],
                    audio=audio_input(8 / FPS), resolution="auto", mask_shape="bowl", loop_mode="pingpong",
                    tail_mode="trim", seed=1, steps=1, cfg=1.0, scheduler="ddim", deepcache_interval=0,
                    noise_mode="shared", silence_gating=False, filename_prefix="tests/run")
    allinone = node("LatentSyncAllInOne")
    result = allinone.run(**settings, video_path=str(source))
    saved = tmp_path / "out" / "tests" / result["ui"]["images"][0]["filename"]
    assert result["ui"]["images"][0]["subfolder"] == "tests" and saved.name == "run_00001_.mp4"
    info = probe_video(saved)
    assert (info.num_frames, info.fps, info.has_audio) == (8, Fraction(25), True)
    assert result["result"][0].get_stream_source() == str(saved)

    in_memory = VideoFromComponents(VideoComponents(images=clip["images"][:8], frame_rate=Fraction(25)))
    again = allinone.run(**settings, video=in_memory)
    second = tmp_path / "out" / "tests" / again["ui"]["images"][0]["filename"]
    assert second.name == "run_00002_.mp4"
    # Frames from memory and from the (lossy) file differ a little; the lip-sync is the same run.
    assert np.abs(read_video(second)[0].astype(int) - read_video(saved)[0].astype(int)).mean() < 3

    with pytest.raises(LatentSyncError, match="does not exist"):
        allinone.run(**settings, video_path=str(tmp_path / "none.mp4"))
    with pytest.raises(LatentSyncError, match="connect a VIDEO"):
        allinone.run(**settings)
    with pytest.raises(InputMismatchError, match="trained on 512 px faces but resolution is 256"):
        unet, = node("LatentSyncUNetLoader").load("latentsync_unet.pt", "fp32")
        host.managed_module(unet).trained_resolution = 512
        allinone.run(**{**settings, "unet": unet, "resolution": "256"}, video_path=str(source))


# --------------------------------------------------------------------------- host model management
def test_manage_model_outside_comfyui_moves_weights_on_load():
    net = torch.nn.Linear(2, 2)
    handle = host.manage_model(net, "probe")
    assert isinstance(handle, host.LocalModelPatcher) and host.is_managed(handle, "probe")
    assert not host.is_managed(handle, "unet") and not host.is_managed(net)
    assert host.load_to_device(handle) is net and handle.model.device == host.get_device()
    with pytest.raises(TypeError):
        host.managed_module(net)


def test_video_source_path_streams_files_and_spills_in_memory_uploads(tmp_path, monkeypatch):
    import io
    from types import SimpleNamespace

    monkeypatch.setenv("LATENTSYNC_TEMP_DIR", str(tmp_path / "temp"))
    clip_file = tmp_path / "clip.mp4"
    clip_file.write_bytes(b"not really a video")
    assert host.video_source_path(SimpleNamespace(get_stream_source=lambda: str(clip_file))) == clip_file
    upload = io.BytesIO(b"uploaded bytes")
    upload.read(3)
    spilled = host.video_source_path(SimpleNamespace(get_stream_source=lambda: upload))
    assert spilled.parent == tmp_path / "temp" / "latentsync" and spilled.read_bytes() == b"uploaded bytes"
    assert host.video_source_path(SimpleNamespace(get_components=lambda: None)) is None
    assert host.video_source_path(SimpleNamespace(get_stream_source=lambda: str(tmp_path / "gone.mp4"))) is None


def test_next_output_path_numbers_files_inside_the_output_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTSYNC_OUTPUT_DIR", str(tmp_path))
    first, subfolder = host.next_output_path("clips/take", "mp4")
    assert (first, subfolder) == (tmp_path / "clips" / "take_00001_.mp4", "clips")
    first.write_bytes(b"")
    assert host.next_output_path("clips/take", "mp4")[0].name == "take_00002_.mp4"
    assert host.next_output_path("solo")[1] == ""
    with pytest.raises(ValueError, match="inside the output folder"):
        host.next_output_path("../escape")


def test_frames_without_a_face_are_flagged_and_passed_through(models, clip, sampled):
    images = clip["images"].clone()
    images[3] = 0.5  # a flat grey frame: no face
    faces, data, masks = node("LatentSyncFaceCrop").crop(images, models["detector"], FPS, "auto",
                                                         "bowl", unet=models["unet"])
    assert data.info.valid.tolist() == [i != 3 for i in range(FRAMES)]
    assert masks[3].abs().max() == 0 and masks[4].max() == 1
    assert np.isnan(data.info.affines[3]).all()
    out, = node("LatentSyncPasteBack").paste(images, sampled[0], data, "crop_box", 8.0)
    assert torch.equal(out[3], images[3]) and not torch.equal(out[4], images[4])
