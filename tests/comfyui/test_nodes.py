"""The pack's V3 nodes called directly (`Cls.execute(...)`) inside the real ComfyUI's Python API, on fixture
weights and a short clip of a moving real face. How they load and run in a server is tested in
tests/integration; here: values, conventions and error messages, node by node."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

pytest.importorskip("comfy_api.latest", reason="ComfyUI's source is not on the path: set COMFYUI_DIR (see conftest)")

from comfy_api.latest import InputImpl, Types, io  # noqa: E402

from latentsync_core import host  # noqa: E402
from latentsync_core.convert import image_to_uint8, uint8_to_image  # noqa: E402
from latentsync_core.errors import (CheckpointError, InputMismatchError, LatentSyncError,  # noqa: E402
                                    ModelMissingError, ProcessingInterrupted)
from nodes import NODE_LIST  # noqa: E402
from tests.node_media import AUDIO_RATE, face_frames, speech_like_audio  # noqa: E402

NODES = {cls.GET_SCHEMA().node_id: cls for cls in NODE_LIST}
FRAMES = 16  # one sampler window
FPS = 25.0
STEPS = 1
SAMPLER = dict(seed=1247, steps=STEPS, cfg=1.5, scheduler="ddim", deepcache_interval=0, noise_mode="shared",
               silence_gating=False)


def run(node_id: str, **inputs) -> io.NodeOutput:
    out = NODES[node_id].execute(**inputs)
    assert isinstance(out, io.NodeOutput)
    return out


def audio_input(seconds: float, rate: int = AUDIO_RATE) -> dict:
    return {"waveform": torch.from_numpy(speech_like_audio(seconds, rate))[None], "sample_rate": rate}


@pytest.fixture(scope="module")
def models(fixture_models):
    from latentsync_core.vae import load_vae

    unet, = run("LatentSyncUNetLoader", unet_name="latentsync_unet.pt", dtype="auto").result
    whisper, = run("LatentSyncWhisperLoader", whisper_name="tiny.pt").result
    detector, = run("LatentSyncFaceDetectorLoader", backend="bundled", detect_every=1, smoothing=0.0,
                    which_face="largest", face_index=0, point_x=0.5, point_y=0.5).result
    vae = load_vae(fixture_models / "vae" / "sd-vae-ft-mse.safetensors")
    return {"unet": unet, "whisper": whisper, "detector": detector, "vae": vae}


@pytest.fixture(scope="module")
def clip():
    frames = face_frames(FRAMES)
    return {"frames": frames, "images": uint8_to_image(frames), "audio": audio_input(FRAMES / FPS)}


def crop(models, images, resolution="auto", mask_shape="bowl", with_unet=True):
    extra = {"unet": models["unet"]} if with_unet else {}
    return run("LatentSyncFaceCrop", images=images, face_detector=models["detector"], fps=FPS, resolution=resolution,
               mask_shape=mask_shape, **extra).result


def features_for(models, audio, fps=FPS, frame_count=0, silence=False, images=None):
    extra = {"images": images} if images is not None else {}
    out, = run("LatentSyncAudioFeatures", audio=audio, whisper=models["whisper"], fps=fps, frame_count=frame_count,
               silence_detection=silence, **extra).result
    return out


def sample(models, face_data, features, vae=None, unet=None, **settings):
    return run("LatentSyncSampler", unet=unet or models["unet"], vae=models["vae"] if vae is None else vae,
               face_data=face_data, audio_features=features, **{**SAMPLER, **settings}).result


def paste(images, generated, face_data, blend="crop_box", feather=8.0):
    out, = run("LatentSyncPasteBack", images=images, generated_faces=generated, face_data=face_data, blend=blend,
               feather=feather).result
    return out


@pytest.fixture(scope="module")
def cropped(models, clip):
    return crop(models, clip["images"])


@pytest.fixture(scope="module")
def features(models, clip):
    return features_for(models, clip["audio"], silence=True, images=clip["images"])


@pytest.fixture(scope="module")
def sampled(models, cropped, features):
    return sample(models, cropped[1], features)


# --------------------------------------------------------------------------- registration
def test_every_node_is_a_v3_node_described_for_the_ui():
    expected = {"LatentSyncUNetLoader", "LatentSyncWhisperLoader", "LatentSyncFaceDetectorLoader",
                "LatentSyncAudioFeatures", "LatentSyncFaceCrop", "LatentSyncSampler", "LatentSyncPasteBack",
                "LatentSyncLengthAdjust", "LatentSyncAllInOne", "LatentSyncPrepareDataset", "LatentSyncTrainStage2",
                "LatentSyncScoreLipSync"}
    assert set(NODES) == expected and len(NODE_LIST) == len(expected)
    for node_id, cls in NODES.items():
        assert issubclass(cls, io.ComfyNode) and not hasattr(cls, "INPUT_TYPES_V1")
        schema = cls.GET_SCHEMA()
        assert schema.category == "LatentSync" and schema.description and schema.display_name
        for item in schema.inputs + schema.outputs:
            assert item.tooltip, f"{node_id}.{item.id} has no tooltip"
        info = cls.GET_NODE_INFO_V1()
        assert len(info["output_name"]) == len(info["output"])
    output_nodes = {node_id for node_id, cls in NODES.items() if cls.GET_SCHEMA().is_output_node}
    assert output_nodes == {"LatentSyncAllInOne", "LatentSyncPrepareDataset", "LatentSyncTrainStage2",
                            "LatentSyncScoreLipSync"}


def test_saved_workflows_keep_their_input_and_output_names():
    """Saved workflows store widget values by position and links by output slot: both must stay."""
    def names(node_id):
        info = NODES[node_id].GET_NODE_INFO_V1()
        return info["input_order"], info["output_name"], info["output"]

    order, outputs, types = names("LatentSyncSampler")
    assert order == {"required": ["unet", "vae", "face_data", "audio_features", "seed", "steps", "cfg", "scheduler",
                                  "deepcache_interval", "noise_mode", "silence_gating"],
                     "optional": ["frame_spacing"]}
    assert (outputs, types) == (["generated_faces", "latent"], ["IMAGE", "LATENT"])
    order, outputs, types = names("LatentSyncAllInOne")
    assert order["optional"] == ["video", "video_path", "frame_spacing", "blend"]
    assert order["required"][-1] == "filename_prefix"
    assert (outputs, types) == (["video"], ["VIDEO"])
    order, outputs, types = names("LatentSyncTrainStage2")
    assert order["required"][:4] == ["unet", "vae", "whisper", "dataset"]
    assert (outputs, types) == (["unet", "loss_plot", "checkpoint"], ["LATENTSYNC_UNET", "IMAGE", "STRING"])
    seed = NODES["LatentSyncSampler"].GET_NODE_INFO_V1()["input"]["required"]["seed"]
    assert seed[0] == "INT" and seed[1]["control_after_generate"] is True


# --------------------------------------------------------------------------- loaders
def test_unet_loader_returns_a_managed_unet_and_lists_only_unets(models, fixture_models):
    # the fixtures put a SyncNet (and nothing else but the U-Net) in models/latentsync: it must not be offered
    assert (fixture_models / "latentsync" / "stable_syncnet.pt").is_file()
    unet_name = NODES["LatentSyncUNetLoader"].GET_NODE_INFO_V1()["input"]["required"]["unet_name"]
    assert unet_name[0] == "COMBO" and unet_name[1]["options"] == ["latentsync_unet.pt"]
    unet = host.managed_module(models["unet"])
    assert host.is_managed(models["unet"], "unet") and unet.config["in_channels"] == 13
    assert type(models["unet"]).__name__ == "ModelPatcher"  # ComfyUI's model manager owns it
    assert host.load_to_device(models["unet"]) is unet


def test_unet_loader_names_the_missing_file_and_how_to_get_it(fixture_models):
    message = NODES["LatentSyncUNetLoader"].validate_inputs(unet_name="gone.pt")
    assert "'gone.pt'" in message and "models/latentsync" in message
    assert NODES["LatentSyncUNetLoader"].validate_inputs(unet_name="latentsync_unet.pt") is True
    with pytest.raises(ModelMissingError, match="hf download ByteDance/LatentSync-1.6"):
        run("LatentSyncUNetLoader", unet_name="missing/latentsync_unet.pt", dtype="auto")
    with pytest.raises(LatentSyncError, match="'dtype' input is 'fp8'; choose one of: auto, fp16, bf16, fp32"):
        run("LatentSyncUNetLoader", unet_name="latentsync_unet.pt", dtype="fp8")


def test_whisper_loader_finds_the_official_layout_too(models):
    assert NODES["LatentSyncWhisperLoader"].validate_inputs(whisper_name="tiny.pt") is True
    encoder = host.managed_module(models["whisper"])
    assert host.is_managed(models["whisper"], "whisper") and encoder.conv1.out_channels == 64


def test_face_detector_loader_maps_the_face_choice():
    from latentsync_core.face import FaceChoice

    base = dict(backend="bundled", detect_every=3, smoothing=0.5, face_index=0, point_x=0.25, point_y=0.75)
    settings, = run("LatentSyncFaceDetectorLoader", which_face="nearest_point", **base).result
    assert (settings.every_k, settings.smoothing, settings.face_choice) == (3, 0.5, FaceChoice("nearest", point=(0.25, 0.75)))
    settings, = run("LatentSyncFaceDetectorLoader", which_face="index", **{**base, "face_index": 2}).result
    assert settings.face_choice == FaceChoice("index", index=2)
    with pytest.raises(LatentSyncError, match="'which_face' input is 'biggest'"):
        run("LatentSyncFaceDetectorLoader", which_face="biggest", **base)


# --------------------------------------------------------------------------- audio features
def test_audio_features_frame_count_follows_images_or_the_audio(models, clip, features):
    assert features.num_frames == FRAMES and features.fps == FPS and features.silent.shape == (FRAMES,)
    # The speech-like clip pauses after 0.24 s: frames 6..15 at 25 fps, minus the speech padding (0.1 s).
    assert not features.silent[:7].any() and features.silent[9:].all()
    longer = features_for(models, audio_input(1.0), fps=30.0)
    assert longer.num_frames == 30 and longer.silent is None
    assert features_for(models, audio_input(1.0), frame_count=7, images=clip["images"]).num_frames == 7


def test_audio_features_wants_the_whisper_loader(clip):
    with pytest.raises(LatentSyncError, match="Load Whisper"):
        run("LatentSyncAudioFeatures", audio=clip["audio"], whisper=None, fps=FPS, frame_count=0,
            silence_detection=False)


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
    assert np.ptp(data.info.affines[:, :, 2], axis=0).max() > 3  # the clip moves the face by +-6 px
    assert (faces[1:] - faces[:-1]).abs().mean() < 0.05


def test_face_crop_resolution_choices(models, clip):
    faces, data, _ = crop(models, clip["images"][:2], "256", "jaw", with_unet=False)
    assert faces.shape == (2, 256, 256, 3) and data.mask_shape == "jaw"
    with pytest.raises(LatentSyncError, match="connect the U-Net loader"):
        crop(models, clip["images"][:2], with_unet=False)
    with pytest.raises(LatentSyncError, match=r"'resolution' input is '384'; choose one of: auto, 256, 512"):
        crop(models, clip["images"][:2], "384")


def test_auto_resolution_rules():
    from types import SimpleNamespace

    from nodes.common import auto_resolution

    official = {"block_out_channels": [320, 640, 1280, 1280]}
    assert auto_resolution(SimpleNamespace(trained_resolution=256, config=official)) == 256
    assert auto_resolution(SimpleNamespace(trained_resolution=None, config=official)) == 512  # 1.6, as the CLI
    assert auto_resolution(SimpleNamespace(trained_resolution=None, config={"block_out_channels": [8, 8, 8, 8]})) == 128


def test_frames_without_a_face_are_flagged_and_passed_through(models, clip, sampled):
    images = clip["images"].clone()
    images[3] = 0.5  # a flat grey frame: no face
    faces, data, masks = crop(models, images)
    assert data.info.valid.tolist() == [i != 3 for i in range(FRAMES)]
    assert masks[3].abs().max() == 0 and masks[4].max() == 1
    assert np.isnan(data.info.affines[3]).all()
    out = paste(images, sampled[0], data)
    assert torch.equal(out[3], images[3]) and not torch.equal(out[4], images[4])


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


def test_sampler_image_output_is_clamped_to_0_1(models, sampled, cropped):
    """IMAGE values are 0..1 in ComfyUI; the raw VAE decode of the same latents strays outside."""
    from latentsync_core.vae import as_latent_vae
    from latentsync_core.vae.base import scale_latents

    generated, latent = sampled
    assert float(generated.min()) >= 0.0 and float(generated.max()) <= 1.0
    raw = (as_latent_vae(models["vae"]).decode(scale_latents(latent["samples"])) + 1) / 2
    assert float(raw.min()) < 0.0 or float(raw.max()) > 1.0  # so the clamp did something
    mouth = cropped[2] == 1
    inside = (raw >= 0) & (raw <= 1)
    region = mouth[:, None].expand_as(raw) & inside
    torch.testing.assert_close(generated.permute(0, 3, 1, 2)[region], raw[region], atol=1e-5, rtol=0)


def test_latent_output_is_unscaled_so_comfyuis_vae_decode_gives_the_generated_faces(models, cropped, features,
                                                                                   comfy_tiny_vae):
    """ComfyUI's LATENT is the raw VAE latent (VAE Decode divides nothing out): decoding the Sampler's latent
    with ComfyUI's own VAE gives generated_faces where the model regenerated (mouth area, active frames)."""
    generated, latent = sample(models, cropped[1], features, vae=comfy_tiny_vae, seed=5)
    decoded = comfy_tiny_vae.decode(latent["samples"])  # what the core VAEDecode node does
    mouth = (cropped[2] == 1)[..., None].expand_as(generated)
    torch.testing.assert_close(decoded[mouth], generated[mouth], atol=2e-5, rtol=0)
    # the U-Net's scaled latents (the old output) decode to something else
    from latentsync_core.vae import SCALING_FACTOR

    rescaled = comfy_tiny_vae.decode(latent["samples"] * SCALING_FACTOR)
    assert (rescaled[mouth] - generated[mouth]).abs().max() > 0.05


def test_silence_gating_keeps_silent_faces_and_the_seed_matters(models, cropped, features, sampled):
    gated, latent = sample(models, cropped[1], features, cfg=1.0, silence_gating=True)
    silent = features.silent.numpy()
    assert silent.any() and (~silent).any()
    assert np.array_equal(image_to_uint8(gated[silent]), cropped[1].crops[silent])
    assert latent["samples"][silent].abs().max() == 0
    assert latent["samples"][~silent].abs().sum(dim=(1, 2, 3)).min() > 0
    assert not np.array_equal(image_to_uint8(gated[~silent]), cropped[1].crops[~silent])
    other_seed, _ = sample(models, cropped[1], features, seed=7)
    assert not torch.allclose(other_seed, sampled[0], atol=1e-3)


def test_sampler_frame_spacing_reaches_the_engines_window_plan(models, cropped, features, monkeypatch):
    """At 50 fps, auto spaces each window's frames 2 apart (25 fps, as trained); off keeps them consecutive.
    Either way every face is regenerated."""
    import dataclasses

    from latentsync_core.pipeline import LipsyncEngine

    faces = dataclasses.replace(cropped[1], fps=Fraction(50))
    audio = dataclasses.replace(features, fps=Fraction(50), silent=None)
    planned = []
    original = LipsyncEngine.plan

    def spy(self, active, fps):
        windows = original(self, active, fps)
        planned.append(windows)
        return windows

    monkeypatch.setattr(LipsyncEngine, "plan", spy)
    for spacing in ("auto", "off", "2", 2):
        sample(models, faces, audio, frame_spacing=spacing)
    auto, off, two, api_two = planned
    assert off == [list(range(FRAMES))]
    assert auto == two == api_two and sorted(i for w in auto for i in w) == list(range(FRAMES))
    assert all(np.all(np.diff(w) == 2) for w in auto) and len(auto) == 2
    sample(models, faces, audio)  # saved before the input existed: auto
    assert planned[-1] == auto
    with pytest.raises(LatentSyncError, match="'frame_spacing' input is '5'"):
        sample(models, faces, audio, frame_spacing="5")


def test_sampler_stops_when_the_user_interrupts(models, cropped, features):
    host.request_interrupt()
    try:
        with pytest.raises(ProcessingInterrupted):
            sample(models, cropped[1], features)
    finally:
        host.clear_interrupt()


def test_sampler_stops_on_comfyuis_own_interrupt(models, cropped, features):
    import comfy.model_management as mm

    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            sample(models, cropped[1], features)
    finally:
        mm.interrupt_current_processing(False)


# --------------------------------------------------------------------------- paste back
def test_paste_back_changes_the_face_and_nothing_far_from_it(sampled, cropped, clip):
    out = paste(clip["images"], sampled[0], cropped[1])
    assert out.shape == clip["images"].shape and float(out.min()) >= 0 and float(out.max()) <= 1
    far = np.ones(out.shape[:3], bool)
    for i, (x1, y1, x2, y2) in enumerate(cropped[1].info.boxes):
        w, h = x2 - x1, y2 - y1
        far[i, max(int(y1 - h), 0):int(y2 + h), max(int(x1 - w), 0):int(x2 + w)] = False
    assert torch.equal(out[torch.from_numpy(far)], clip["images"][torch.from_numpy(far)])
    assert (out - clip["images"]).abs().amax(dim=(1, 2, 3)).min() > 0.05  # every frame got a new mouth


def test_graph_nodes_give_the_streaming_pipelines_frames(models, sampled, cropped, features, clip):
    """The graph (Face Crop -> Sampler -> Paste Back) and the all-in-one node / CLI (pipeline.lipsync_frames)
    run the same stage functions with the same seeds, windows and noise: the frames agree to rounding."""
    from latentsync_core.pipeline import FrameSource, LipsyncOptions, SamplerOptions, lipsync_frames

    graph = paste(clip["images"], sampled[0], cropped[1])
    options = LipsyncOptions(sampler=SamplerOptions(steps=STEPS, guidance=1.5, seed=1247), resolution=64)
    streamed = np.stack(list(lipsync_frames(
        FrameSource.open(clip["frames"], fps=FPS), FRAMES,
        lambda idx: torch.cat([features.chunk_range(i, i + 1) for i in idx]),
        host.managed_module(models["unet"]), models["vae"], models["detector"].detector, options=options)))
    diff = np.abs(streamed.astype(np.int16) - image_to_uint8(graph).astype(np.int16))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-4
    assert np.abs(streamed.astype(np.int16) - clip["frames"].astype(np.int16)).max() > 20


def test_paste_back_of_an_edited_copy_uses_the_clamped_values_it_is_given(sampled, cropped, clip):
    """The Sampler's clamped IMAGE remembers its overshoot for Paste Back (so graph == stream); a tensor made
    from it by another node has none, and Paste Back then pastes exactly the 0..1 values it received."""
    copy = sampled[0].clone()
    direct = paste(clip["images"], sampled[0], cropped[1])
    from_copy = paste(clip["images"], copy, cropped[1])
    assert float(from_copy.min()) >= 0 and float(from_copy.max()) <= 1
    assert not torch.equal(from_copy, direct)  # the random VAE overshoots, so the two differ somewhere
    assert not hasattr(copy, "latentsync_overshoot")


def test_paste_back_mouth_blend_changes_less_than_the_crop_box(sampled, cropped, clip):
    box = paste(clip["images"], sampled[0], cropped[1])
    mouth = paste(clip["images"], sampled[0], cropped[1], "mouth", 2.0)
    changed_box = ((box - clip["images"]).abs() > 2 / 255).sum()
    changed_mouth = ((mouth - clip["images"]).abs() > 2 / 255).sum()
    assert 0 < changed_mouth < changed_box
    with pytest.raises(LatentSyncError, match="'blend' input is 'poisson'"):
        paste(clip["images"], sampled[0], cropped[1], "poisson")


def test_paste_back_leaves_frames_with_unchanged_faces_bit_identical(cropped, clip):
    out = paste(clip["images"], uint8_to_image(cropped[1].crops), cropped[1])
    assert torch.equal(out, clip["images"])


# --------------------------------------------------------------------------- bad input, named at the node
def test_mismatched_fps_between_video_and_audio_features(models, cropped, clip):
    wrong = features_for(models, clip["audio"], fps=30.0, images=clip["images"])
    with pytest.raises(InputMismatchError, match=r"30 fps.*25 fps.*fps inputs of both Audio Features and Face Crop"):
        sample(models, cropped[1], wrong)


def test_audio_features_for_a_different_frame_count(models, cropped, clip):
    short = features_for(models, clip["audio"], frame_count=10)
    with pytest.raises(InputMismatchError, match="covers 10 frames but face_data holds 16"):
        sample(models, cropped[1], short)


def test_faces_from_a_video_of_another_length_at_paste_back(sampled, cropped, clip):
    with pytest.raises(InputMismatchError, match="'images' has 12 frames but 'face_data' was made from a video of 16"):
        paste(clip["images"][:12], sampled[0], cropped[1])
    bigger = torch.nn.functional.pad(clip["images"], (0, 0, 0, 8))
    with pytest.raises(InputMismatchError, match="328x320 but 'face_data' was made from 320x320"):
        paste(bigger, sampled[0], cropped[1])


def test_unet_at_512_with_faces_aligned_at_256(models, clip, features):
    unet, = run("LatentSyncUNetLoader", unet_name="latentsync_unet.pt", dtype="fp32").result
    host.managed_module(unet).trained_resolution = 512
    _, faces_256, _ = crop(models, clip["images"], "256", with_unet=False)
    with pytest.raises(InputMismatchError, match="trained on 512 px faces but Face Crop & Align aligned them at 256"):
        sample(models, faces_256, features, unet=unet)
    _, faces_auto, _ = crop({**models, "unet": unet}, clip["images"][:1])  # auto follows the U-Net
    assert faces_auto.resolution == 512


def test_missing_vae(models, cropped, features):
    with pytest.raises(CheckpointError, match="'vae' input is a NoneType, not a VAE.*sd-vae-ft-mse"):
        run("LatentSyncSampler", unet=models["unet"], vae=None, face_data=cropped[1], audio_features=features,
            **SAMPLER)


def test_non_sd_vaes(models, cropped, features):
    from types import SimpleNamespace

    from diffusers import AutoencoderKL

    flux_like = AutoencoderKL(block_out_channels=(32, 32, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
                              up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=16, norm_num_groups=32)
    comfy_video_vae = SimpleNamespace(first_stage_model=object(), patcher=object(), encode=lambda x: x,
                                      latent_channels=16, latent_dim=3)
    for vae in (flux_like, comfy_video_vae):
        with pytest.raises(CheckpointError, match="'vae' input has 16-channel latents.*sd-vae-ft-mse"):
            sample(models, cropped[1], features, vae=vae)


def test_wrong_values_on_custom_sockets_name_the_node_to_connect(models, cropped, features, clip):
    with pytest.raises(LatentSyncError, match="'face_data' input received a dict; connect the face_data output"):
        sample(models, {}, features)
    with pytest.raises(LatentSyncError, match="'unet' input received nothing; connect a Load LatentSync U-Net"):
        run("LatentSyncSampler", unet=None, vae=models["vae"], face_data=cropped[1], audio_features=features,
            **SAMPLER)
    plain = features_for(models, clip["audio"], images=clip["images"])
    with pytest.raises(LatentSyncError, match="silence_detection"):
        sample(models, cropped[1], plain, silence_gating=True)


# --------------------------------------------------------------------------- length adjust
@pytest.mark.parametrize("mode, expected", [
    ("pingpong", [0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 0, 1]),
    ("loop", [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]),
    ("freeze", [0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4]),
    ("trim_audio", [0, 1, 2, 3, 4]),
])
def test_length_adjust_extends_a_short_video(mode, expected):
    images = torch.arange(5, dtype=torch.float32).view(5, 1, 1, 1).expand(5, 2, 2, 3).clone() / 4
    audio = audio_input(12 / 30, rate=16000)  # 12 frames at 30 fps
    frames, fitted, count = run("LatentSyncLengthAdjust", images=images, audio=audio, fps=30.0, loop_mode=mode,
                                tail_mode="trim", pad_with_silence=True).result
    assert (frames[:, 0, 0, 0] * 4).round().tolist() == expected and count == len(expected)
    assert fitted["waveform"].shape[-1] == round(len(expected) / 30 * 16000)
    assert torch.equal(fitted["waveform"], audio["waveform"][..., :fitted["waveform"].shape[-1]])


def test_length_adjust_trims_or_keeps_a_long_video_at_any_fps():
    images = torch.rand(40, 2, 2, 3)
    audio = audio_input(1.0, rate=16000)
    fps = 30000 / 1001  # 1 s of audio covers 30 frames at 29.97 fps
    settings = dict(images=images, audio=audio, fps=fps, loop_mode="pingpong")
    frames, fitted, count = run("LatentSyncLengthAdjust", **settings, tail_mode="trim", pad_with_silence=True).result
    assert count == 30 and torch.equal(frames, images[:30])
    frames, fitted, count = run("LatentSyncLengthAdjust", **settings, tail_mode="keep", pad_with_silence=True).result
    samples = round(Fraction(40) / Fraction(30000, 1001) * 16000)
    assert count == 40 and fitted["waveform"].shape[-1] == samples
    assert torch.equal(fitted["waveform"][..., :16000], audio["waveform"])
    assert fitted["waveform"][..., 16000:].abs().max() == 0
    _, unpadded, _ = run("LatentSyncLengthAdjust", **settings, tail_mode="keep", pad_with_silence=False).result
    assert torch.equal(unpadded["waveform"], audio["waveform"])


# --------------------------------------------------------------------------- all-in-one
@pytest.fixture(scope="module")
def all_in_one(models, clip):
    return dict(unet=models["unet"], whisper=models["whisper"], vae=models["vae"], face_detector=models["detector"],
                audio=audio_input(8 / FPS), resolution="auto", mask_shape="bowl", loop_mode="pingpong",
                tail_mode="trim", **{**SAMPLER, "seed": 1, "cfg": 1.0}, filename_prefix="tests/run")


def test_all_in_one_from_a_path_and_from_memory(all_in_one, clip, comfy_base):
    from latentsync_core.audio import official_frame_count
    from latentsync_core.media.video import probe_video, read_video
    from latentsync_core.media.writer import write_video

    source = write_video(comfy_base / "input" / "aio_clip.mp4", clip["frames"][:8], Fraction(25))
    first = run("LatentSyncAllInOne", **all_in_one, video_path="aio_clip.mp4")
    preview = first.ui.as_dict()
    assert preview["animated"] == (True,) and preview["images"][0]["type"] == "output"
    assert preview["images"][0]["subfolder"] == "tests"
    saved = comfy_base / "output" / "tests" / preview["images"][0]["filename"]
    info = probe_video(saved)
    expected = official_frame_count(all_in_one["audio"]["waveform"].shape[-1], AUDIO_RATE, Fraction(25))
    assert (info.num_frames, info.fps, info.has_audio) == (expected, Fraction(25), True)
    video, = first.result
    assert isinstance(video, InputImpl.VideoFromFile) and video.get_stream_source() == str(saved)

    in_memory = InputImpl.VideoFromComponents(Types.VideoComponents(images=clip["images"][:8],
                                                                    frame_rate=Fraction(25)))
    again = run("LatentSyncAllInOne", **all_in_one, video=in_memory)
    second = comfy_base / "output" / "tests" / again.ui.as_dict()["images"][0]["filename"]
    assert second != saved and second.is_file()
    # Frames from memory and from the (lossy) file differ a little; the lip-sync is the same run.
    assert np.abs(read_video(second)[0].astype(int) - read_video(saved)[0].astype(int)).mean() < 3
    assert source.is_file()


def test_all_in_one_removes_its_temp_copy_of_an_uploaded_video(all_in_one, clip, comfy_base):
    """A VIDEO held in memory (an upload as BytesIO) is spilled to the temp folder to be streamed, then removed."""
    import io as pyio

    from latentsync_core.media.writer import write_video

    data = write_video(comfy_base / "upload.mp4", clip["frames"][:8], Fraction(25)).read_bytes()
    upload = InputImpl.VideoFromFile(pyio.BytesIO(data))
    seen = []
    original = host.video_source_file

    def spy(video):
        manager = original(video)

        class Recorder:
            def __enter__(self):
                path = manager.__enter__()
                seen.append(path)
                assert path is not None and path.is_file() and path.parent == host.temp_dir()
                return path

            def __exit__(self, *exc):
                return manager.__exit__(*exc)
        return Recorder()

    host.video_source_file = spy
    try:
        out = run("LatentSyncAllInOne", **all_in_one, video=upload)
    finally:
        host.video_source_file = original
    assert len(seen) == 1 and not seen[0].exists()
    assert list(host.temp_dir().glob("video_source_*")) == []
    assert (comfy_base / "output" / "tests" / out.ui.as_dict()["images"][0]["filename"]).is_file()
    # also when the run fails half-way
    with pytest.raises(LatentSyncError):
        run("LatentSyncAllInOne", **{**all_in_one, "resolution": "1024"}, video=upload)
    assert list(host.temp_dir().glob("video_source_*")) == []


def test_all_in_one_bad_inputs_name_the_input(all_in_one, models, comfy_base):
    with pytest.raises(LatentSyncError, match="does not exist"):
        run("LatentSyncAllInOne", **all_in_one, video_path="none.mp4")
    with pytest.raises(LatentSyncError, match="connect a VIDEO"):
        run("LatentSyncAllInOne", **all_in_one)
    with pytest.raises(LatentSyncError, match="'video_path' input '../secret.mp4' points outside"):
        run("LatentSyncAllInOne", **all_in_one, video_path="../secret.mp4")
    (comfy_base / "input" / "ok.mp4").write_bytes(b"")
    for prefix in ("../escape", "/tmp/escape", "tests/../../escape"):
        with pytest.raises(LatentSyncError, match=f"'filename_prefix' input '{prefix}' points outside"):
            run("LatentSyncAllInOne", **{**all_in_one, "filename_prefix": prefix}, video_path="ok.mp4")
    unet, = run("LatentSyncUNetLoader", unet_name="latentsync_unet.pt", dtype="fp32").result
    host.managed_module(unet).trained_resolution = 512
    with pytest.raises(InputMismatchError, match="trained on 512 px faces but resolution is 256"):
        run("LatentSyncAllInOne", **{**all_in_one, "unet": unet, "resolution": "256"}, video_path="ok.mp4")


def test_all_in_one_frame_spacing_and_blend_reach_the_stream_options(all_in_one, comfy_base, monkeypatch):
    import latentsync_core.pipeline as pipeline
    from nodes.all_in_one import lipsync_to_file

    seen = []
    monkeypatch.setattr(pipeline, "lipsync", lambda *a, options, **kw: seen.append(options))
    (comfy_base / "input" / "ok.mp4").write_bytes(b"")
    lipsync_to_file(**all_in_one, video_path="ok.mp4")  # saved before the inputs existed: the defaults
    lipsync_to_file(**all_in_one, video_path="ok.mp4", frame_spacing="3", blend="seamless")
    assert [(o.frame_spacing, o.blend) for o in seen] == [("auto", "crop_box"), (3, "seamless")]
    with pytest.raises(LatentSyncError, match="'blend' input is 'mouth'; choose one of: crop_box, seamless"):
        lipsync_to_file(**all_in_one, video_path="ok.mp4", blend="mouth")
