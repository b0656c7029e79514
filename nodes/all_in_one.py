"""LatentSync (all-in-one, streaming): a whole video file in, a lip-synced mp4 out, in bounded memory."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from comfy_api.latest import io, ui

from latentsync_core import host

from .common import (CATEGORY, DetectorSettings, FaceDetectorType, UnetType, WhisperType, auto_resolution,
                     frame_spacing_input, frame_spacing_value, output, require_choice, require_model, sampler_inputs,
                     sampler_options, unet_resolution)
from .faces import MASK_SHAPES, RESOLUTIONS

STREAM_BLENDS = ["crop_box", "seamless"]  # the stream pastes whole frames: Paste Back's "mouth" is graph-only


def _modes():
    from latentsync_core.pipeline import LOOP_MODES, TAIL_MODES

    return list(LOOP_MODES), list(TAIL_MODES)


@contextlib.contextmanager
def video_input(video, video_path: str) -> Iterator[tuple]:
    """(what `lipsync` reads, fps for in-memory frames or None) for the block: the VIDEO's file when it has one,
    so it is decoded chunk by chunk (an upload held in memory is spilled to the temp folder and removed after);
    its frames otherwise; else `video_path`, a file in ComfyUI's input folder."""
    from latentsync_core.convert import image_to_uint8, video_components
    from latentsync_core.errors import LatentSyncError, MediaError

    if video is not None:
        with host.video_source_file(video) as path:
            if path is not None:
                yield path, None
                return
        images, _audio, fps = video_components(video)  # an in-memory VIDEO: its frames are in RAM already
        yield image_to_uint8(images), fps
        return
    if not video_path.strip():
        raise LatentSyncError("connect a VIDEO (e.g. from LoadVideo) or type a video_path")
    path = host.confined_path(host.input_dir(), video_path, "video_path")
    if not path.is_file():
        raise MediaError(f"video_path {video_path!r} does not exist (looked for {path}); give the name of a file in "
                         "ComfyUI's input folder")
    yield path, None


class LatentSyncAllInOne(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        loop_modes, tail_modes = _modes()
        return io.Schema(
            node_id="LatentSyncAllInOne", display_name="LatentSync (all-in-one, streaming)", category=CATEGORY,
            description="The whole lip-sync in one node for long or high-resolution videos: reads the video chunk by "
                        "chunk, tracks the face, samples 16-frame windows and writes the finished mp4 (with the "
                        "audio) straight to the output folder, so memory does not grow with the video. Returns the "
                        "saved VIDEO and shows a preview.",
            inputs=[
                UnetType.Input("unet", tooltip="From Load LatentSync U-Net."),
                WhisperType.Input("whisper", tooltip="From Load Whisper (LatentSync)."),
                io.Vae.Input("vae", tooltip="sd-vae-ft-mse, from a VAELoader."),
                FaceDetectorType.Input("face_detector", tooltip="From Load Face Detector (LatentSync)."),
                io.Audio.Input("audio", tooltip="The speech to lip-sync to."),
                io.Combo.Input("resolution", options=RESOLUTIONS, default="auto",
                               tooltip="Face crop size. auto: what the U-Net was trained at (1.5: 256, 1.6: 512)."),
                io.Combo.Input("mask_shape", options=MASK_SHAPES, default="bowl",
                               tooltip="Area to regenerate. bowl: the official lower-face mask; jaw: only below the "
                                       "nose line."),
                io.Combo.Input("loop_mode", options=loop_modes, default="pingpong",
                               tooltip="When the audio is longer than the video: pingpong (official), loop, freeze on "
                                       "the last frame, or trim_audio to stop with the video."),
                io.Combo.Input("tail_mode", options=tail_modes, default="trim",
                               tooltip="When the video is longer than the audio: trim it (official) or keep the rest "
                                       "unchanged."),
                *sampler_inputs(),
                io.String.Input("filename_prefix", default="latentsync/LatentSync",
                                tooltip="Output file name prefix, relative to the output folder."),
                io.Video.Input("video", optional=True,
                               tooltip="The video (LoadVideo). A file-backed VIDEO is streamed from disk, never "
                                       "decoded whole."),
                io.String.Input("video_path", optional=True, default="",
                                tooltip="Instead of 'video': the name of a video file in ComfyUI's input folder."),
                frame_spacing_input(),
                # optional and last like frame_spacing: workflows saved without it keep the official paste
                io.Combo.Input("blend", options=STREAM_BLENDS, default="crop_box", optional=True,
                               tooltip="How the new faces are pasted into the frames. crop_box: the whole face crop "
                                       "with a soft edge (official). seamless: only the mouth area, with a feathered "
                                       "edge and colour/brightness matched to the frame, so no seam shows."),
            ],
            outputs=[output(io.Video, "video", "The saved lip-synced video.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, unet, whisper, vae, face_detector, audio, resolution: str, mask_shape: str, loop_mode: str,
                tail_mode: str, seed: int, steps: int, cfg: float, scheduler: str, deepcache_interval: int,
                noise_mode: str, silence_gating: bool, filename_prefix: str, video=None,
                video_path: str = "", frame_spacing: str = "auto", blend: str = "crop_box") -> io.NodeOutput:
        out_path, subfolder = lipsync_to_file(
            unet, whisper, vae, face_detector, audio, resolution, mask_shape, loop_mode, tail_mode, seed, steps, cfg,
            scheduler, deepcache_interval, noise_mode, silence_gating, filename_prefix, video, video_path,
            frame_spacing, blend)
        preview = ui.PreviewVideo([ui.SavedResult(out_path.name, subfolder, io.FolderType.output)])
        return io.NodeOutput(host.video_from_file(out_path), ui=preview)


def lipsync_to_file(unet, whisper, vae, face_detector, audio, resolution: str, mask_shape: str, loop_mode: str,
                    tail_mode: str, seed: int, steps: int, cfg: float, scheduler: str, deepcache_interval: int,
                    noise_mode: str, silence_gating: bool, filename_prefix: str, video=None,
                    video_path: str = "", frame_spacing: str = "auto",
                    blend: str = "crop_box") -> tuple[Path, str]:
    """Run the streaming lip-sync into the next numbered file of `filename_prefix`: (path, output subfolder)."""
    from latentsync_core.errors import InputMismatchError, LatentSyncError
    from latentsync_core.pipeline import LipsyncOptions, lipsync
    from latentsync_core.vae import as_latent_vae

    unet_handle = require_model(unet, "unet", "unet", "Load LatentSync U-Net")
    whisper_handle = require_model(whisper, "whisper", "whisper", "Load Whisper (LatentSync)")
    if not isinstance(face_detector, DetectorSettings):
        raise LatentSyncError("the 'face_detector' input must come from a Load Face Detector (LatentSync) node")
    require_choice(resolution, RESOLUTIONS, "resolution")
    require_choice(mask_shape, MASK_SHAPES, "mask_shape")
    require_choice(blend, STREAM_BLENDS, "blend")
    latent_vae = as_latent_vae(vae, "vae")
    module = host.managed_module(unet_handle)
    size = auto_resolution(module) if resolution == "auto" else int(resolution)
    trained = unet_resolution(module)
    if trained and trained != size:
        raise InputMismatchError(f"the U-Net was trained on {trained} px faces but resolution is {size}: set "
                                 f"resolution to {trained} or auto")
    options = LipsyncOptions(
        sampler=sampler_options(seed, steps, cfg, scheduler, deepcache_interval, noise_mode),
        resolution=size, loop_mode=loop_mode, tail_mode=tail_mode, silence=bool(silence_gating),
        mask_shape=mask_shape, frame_spacing=frame_spacing_value(frame_spacing), blend=blend,
        tracker={"every_k": face_detector.every_k, "smoothing": face_detector.smoothing,
                 "face_choice": face_detector.face_choice})
    with video_input(video, video_path) as (source, fps):
        out_path, subfolder = host.next_output_path(filename_prefix, "mp4")
        net, encoder = host.load_to_device(unet_handle, whisper_handle)
        lipsync(source, audio, out_path, unet=net, vae=latent_vae, whisper=encoder,
                detector=face_detector.detector, options=options, fps=fps)
    return out_path, subfolder


NODES = [LatentSyncAllInOne]
