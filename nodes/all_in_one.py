"""LatentSync (all-in-one, streaming): a whole video file in, a lip-synced mp4 out, in bounded memory."""
from __future__ import annotations

from latentsync_core import host

from .common import (CATEGORY, FACE_DETECTOR, UNET, WHISPER, DetectorSettings, auto_resolution, require_model,
                     sampler_inputs, sampler_options, unet_resolution)
from .faces import MASK_SHAPES, RESOLUTIONS


def _modes():
    from latentsync_core.pipeline import LOOP_MODES, TAIL_MODES

    return list(LOOP_MODES), list(TAIL_MODES)


def video_input(video, video_path: str):
    """(what `lipsync` reads, fps for in-memory frames or None): the VIDEO's file when it has one, so it is
    decoded chunk by chunk; its frames otherwise; else `video_path` (absolute, or relative to the input folder)."""
    from pathlib import Path

    from latentsync_core.convert import image_to_uint8, video_components
    from latentsync_core.errors import LatentSyncError, MediaError

    if video is not None:
        path = host.video_source_path(video)
        if path is not None:
            return path, None
        images, _audio, fps = video_components(video)  # an in-memory VIDEO: its frames are in RAM already
        return image_to_uint8(images), fps
    if not video_path.strip():
        raise LatentSyncError("connect a VIDEO (e.g. from LoadVideo) or type a video_path")
    path = Path(video_path.strip()).expanduser()
    if not path.is_absolute() and host.input_dir() is not None:
        path = host.input_dir() / path
    if not path.is_file():
        raise MediaError(f"video_path {video_path!r} does not exist (looked for {path}); give an absolute path or "
                         "a file name in ComfyUI's input folder")
    return path, None


class LatentSyncAllInOne:
    DESCRIPTION = ("The whole lip-sync in one node for long or high-resolution videos: reads the video chunk by "
                   "chunk, tracks the face, samples 16-frame windows and writes the finished mp4 (with the audio) "
                   "straight to the output folder, so memory does not grow with the video. Returns the saved "
                   "VIDEO and shows a preview.")
    CATEGORY = CATEGORY
    FUNCTION = "run"
    OUTPUT_NODE = True
    RETURN_TYPES = ("VIDEO",)
    RETURN_NAMES = ("video",)
    OUTPUT_TOOLTIPS = ("The saved lip-synced video.",)

    @classmethod
    def INPUT_TYPES(cls):
        loop_modes, tail_modes = _modes()
        return {
            "required": {
                "unet": (UNET, {"tooltip": "From Load LatentSync U-Net."}),
                "whisper": (WHISPER, {"tooltip": "From Load Whisper (LatentSync)."}),
                "vae": ("VAE", {"tooltip": "sd-vae-ft-mse, from a VAELoader."}),
                "face_detector": (FACE_DETECTOR, {"tooltip": "From Load Face Detector (LatentSync)."}),
                "audio": ("AUDIO", {"tooltip": "The speech to lip-sync to."}),
                "resolution": (RESOLUTIONS, {"default": "auto", "tooltip":
                                             "Face crop size. auto: what the U-Net was trained at (1.5: 256, 1.6: 512)."}),
                "mask_shape": (MASK_SHAPES, {"default": "bowl", "tooltip":
                                             "Area to regenerate. bowl: the official lower-face mask; jaw: only "
                                             "below the nose line."}),
                "loop_mode": (loop_modes, {"default": "pingpong", "tooltip":
                                           "When the audio is longer than the video: pingpong (official), loop, "
                                           "freeze on the last frame, or trim_audio to stop with the video."}),
                "tail_mode": (tail_modes, {"default": "trim", "tooltip":
                                           "When the video is longer than the audio: trim it (official) or keep the "
                                           "rest unchanged."}),
                **sampler_inputs(),
                "filename_prefix": ("STRING", {"default": "latentsync/LatentSync", "tooltip":
                                               "Output file name prefix, relative to the output folder."}),
            },
            "optional": {
                "video": ("VIDEO", {"tooltip": "The video (LoadVideo). A file-backed VIDEO is streamed from disk, "
                                               "never decoded whole."}),
                "video_path": ("STRING", {"default": "", "tooltip":
                                          "Instead of 'video': a video file path (absolute, or in the input folder)."}),
            },
        }

    def run(self, unet, whisper, vae, face_detector, audio, resolution: str, mask_shape: str, loop_mode: str,
            tail_mode: str, seed: int, steps: int, cfg: float, scheduler: str, deepcache_interval: int,
            noise_mode: str, silence_gating: bool, filename_prefix: str, video=None, video_path: str = ""):
        from latentsync_core.errors import InputMismatchError, LatentSyncError
        from latentsync_core.pipeline import LipsyncOptions, lipsync
        from latentsync_core.vae import as_latent_vae

        unet_handle = require_model(unet, "unet", "unet", "Load LatentSync U-Net")
        whisper_handle = require_model(whisper, "whisper", "whisper", "Load Whisper (LatentSync)")
        if not isinstance(face_detector, DetectorSettings):
            raise LatentSyncError("the 'face_detector' input must come from a Load Face Detector (LatentSync) node")
        latent_vae = as_latent_vae(vae, "vae")
        module = host.managed_module(unet_handle)
        size = auto_resolution(module) if resolution == "auto" else int(resolution)
        trained = unet_resolution(module)
        if trained and trained != size:
            raise InputMismatchError(f"the U-Net was trained on {trained} px faces but resolution is {size}: set "
                                     f"resolution to {trained} or auto")
        source, fps = video_input(video, video_path)
        options = LipsyncOptions(
            sampler=sampler_options(seed, steps, cfg, scheduler, deepcache_interval, noise_mode),
            resolution=size, loop_mode=loop_mode, tail_mode=tail_mode, silence=bool(silence_gating),
            mask_shape=mask_shape,
            tracker={"every_k": face_detector.every_k, "smoothing": face_detector.smoothing,
                     "face_choice": face_detector.face_choice})
        out_path, subfolder = host.next_output_path(filename_prefix, "mp4")
        net, encoder = host.load_to_device(unet_handle, whisper_handle)
        lipsync(source, audio, out_path, unet=net, vae=latent_vae, whisper=encoder,
                detector=face_detector.detector, options=options, fps=fps)
        preview = {"filename": out_path.name, "subfolder": subfolder, "type": "output"}
        return {"ui": {"images": [preview], "animated": (True,)}, "result": (host.video_from_file(out_path),)}


NODE_CLASS_MAPPINGS = {"LatentSyncAllInOne": LatentSyncAllInOne}
NODE_DISPLAY_NAME_MAPPINGS = {"LatentSyncAllInOne": "LatentSync (all-in-one, streaming)"}
