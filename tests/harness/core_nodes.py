"""Working doubles of the ComfyUI core nodes the pack's workflows use.

Each double shows ComfyUI's V1-visible contract of the real node (input names, types, COMBO
options and flags, defaults and bounds, RETURN_TYPES, OUTPUT_NODE, hidden inputs, VALIDATE_INPUTS)
as of comfy_extras/nodes_video.py, comfy_extras/nodes_audio.py and nodes.py; V3 nodes appear the
way ComfyUI's INPUT_TYPES() shows them (a combo is ("COMBO", {"options": [...]})). They really read
and write media through latentsync_core (imported lazily), against the folders an Executor gives.

The VIDEO value mirrors comfy_api's VideoFromFile / VideoFromComponents: `get_components()` returns
`.images` (IMAGE [N, H, W, 3] float 0..1), `.audio` (AUDIO dict or None) and `.frame_rate`
(Fraction); `save_to(path, format=, codec=, metadata=)` writes a file. Differences from ComfyUI:
saving a VideoFromFile unchanged copies the file (ComfyUI remuxes its streams), and no metadata
(prompt JSON) is embedded.
"""
from __future__ import annotations

import mimetypes
import os
import shutil
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from .executor import HarnessDirs

VIDEO_CONTAINERS = ["auto", "mp4"]  # comfy_api VideoContainer.as_input()
VIDEO_CODECS = ["auto", "h264"]  # comfy_api VideoCodec.as_input()
VAE_EXTENSIONS = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}  # folder_paths.supported_pt_extensions


class HarnessSetupError(RuntimeError):
    """A double needs a folder the Executor was not given, or a feature the harness does not have."""


# --------------------------------------------------------------------------- VIDEO values
@dataclass
class VideoComponents:
    images: Any  # IMAGE tensor [N, H, W, 3]
    frame_rate: Fraction
    audio: dict | None = None  # AUDIO {"waveform": [1, C, T], "sample_rate": int}
    metadata: dict | None = None


class VideoFromComponents:
    def __init__(self, components: VideoComponents):
        self._components = components

    def get_components(self) -> VideoComponents:
        c = self._components
        return VideoComponents(images=c.images, frame_rate=c.frame_rate, audio=c.audio)

    def get_dimensions(self) -> tuple[int, int]:
        images = self._components.images
        return int(images.shape[2]), int(images.shape[1])

    def save_to(self, path, format: str = "auto", codec: str = "auto", metadata: dict | None = None) -> None:
        # The only formats ComfyUI's VideoFromComponents writes.
        if format not in ("auto", "mp4"):
            raise ValueError("Only MP4 format is supported for now")
        if codec not in ("auto", "h264"):
            raise ValueError("Only H264 codec is supported for now")
        from latentsync_core.convert import audio_to_clip, image_to_uint8
        from latentsync_core.media.writer import write_video

        c = self._components
        audio = audio_to_clip(c.audio) if c.audio is not None else None
        write_video(path, image_to_uint8(c.images), Fraction(c.frame_rate), audio=audio)


class VideoFromFile:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def get_components(self) -> VideoComponents:
        from latentsync_core.convert import video_components

        images, audio, fps = video_components(self.path)
        return VideoComponents(images=images, frame_rate=fps, audio=audio)

    def get_stream_source(self) -> str:
        """As comfy_api's VideoFromFile: the file path, so consumers can stream instead of decoding."""
        return str(self.path)

    def get_dimensions(self) -> tuple[int, int]:
        from latentsync_core.media.video import probe_video

        info = probe_video(self.path)
        return info.width, info.height

    def save_to(self, path, format: str = "auto", codec: str = "auto", metadata: dict | None = None) -> None:
        import av

        with av.open(str(self.path)) as container:
            container_names = container.format.name.split(",")
            video_codec = container.streams.video[0].codec_context.name if container.streams.video else None
        reuse = (format == "auto" or format in container_names) and (codec == "auto" or codec == video_codec)
        if reuse:  # ComfyUI remuxes the streams unchanged here
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.path, path)
        else:
            VideoFromComponents(self.get_components()).save_to(path, format=format, codec=codec, metadata=metadata)


# --------------------------------------------------------------------------- folder helpers
def _folder(dirs: HarnessDirs, kind: str) -> Path:
    path = getattr(dirs, kind)
    if path is None:
        raise HarnessSetupError(f"this workflow needs the Executor's {kind} (pass {kind}=... to run_workflow/Executor)")
    return Path(path)


def annotated_path(dirs: HarnessDirs, name: str) -> Path:
    """folder_paths.get_annotated_filepath: "clip.mp4 [output]" lives in the output folder, plain names in input."""
    for suffix, kind in ((" [output]", "output_dir"), (" [input]", "input_dir"), (" [temp]", "temp_dir")):
        if name.endswith(suffix):
            return _folder(dirs, kind) / name[: -len(suffix)]
    return _folder(dirs, "input_dir") / name


def _annotated_exists(dirs: HarnessDirs, name: str) -> bool:
    try:
        return annotated_path(dirs, name).exists()
    except HarnessSetupError:
        return False


def _input_files(dirs: HarnessDirs, content_types: tuple[str, ...]) -> list[str]:
    """Files directly in the input folder whose mime type is one of `content_types` (folder_paths.filter_files_content_types)."""
    if dirs.input_dir is None or not Path(dirs.input_dir).is_dir():
        return []
    names = []
    for entry in sorted(os.listdir(dirs.input_dir)):
        mime, _ = mimetypes.guess_type(entry, strict=False)
        if mime and mime.split("/")[0] in content_types and (Path(dirs.input_dir) / entry).is_file():
            names.append(entry)
    return names


def save_path(dirs: HarnessDirs, filename_prefix: str, width: int, height: int) -> tuple[Path, str, int, str]:
    """(folder, file stem, next counter, subfolder) as folder_paths.get_save_image_path computes them."""
    output_dir = _folder(dirs, "output_dir").resolve()
    if "%" in filename_prefix:
        now = time.localtime()
        for key, value in {"%width%": width, "%height%": height, "%year%": now.tm_year,
                           "%month%": f"{now.tm_mon:02}", "%day%": f"{now.tm_mday:02}", "%hour%": f"{now.tm_hour:02}",
                           "%minute%": f"{now.tm_min:02}", "%second%": f"{now.tm_sec:02}"}.items():
            filename_prefix = filename_prefix.replace(key, str(value))
    normalized = os.path.normpath(filename_prefix)
    subfolder, stem = os.path.dirname(normalized), os.path.basename(normalized)
    folder = (output_dir / subfolder).resolve()
    if os.path.commonpath((output_dir, folder)) != str(output_dir):
        raise ValueError(f"Saving outside the output folder is not allowed: {folder} is not inside {output_dir}")
    folder.mkdir(parents=True, exist_ok=True)
    counters = [0]
    for existing in os.listdir(folder):
        if existing.startswith(stem + "_"):
            digits = existing[len(stem) + 1:].split("_")[0]
            if digits.isdigit():
                counters.append(int(digits))
    return folder, stem, max(counters) + 1, subfolder


# --------------------------------------------------------------------------- the doubles
class _CoreNode:
    dirs: HarnessDirs = HarnessDirs()  # replaced per Executor by core_node_mappings()


class LoadVideo(_CoreNode):
    @classmethod
    def INPUT_TYPES(cls):
        files = _input_files(cls.dirs, ("video",))
        return {"required": {"file": ("COMBO", {"multiselect": False, "options": files, "video_upload": True})}}

    RETURN_TYPES = ("VIDEO",)
    RETURN_NAMES = ("VIDEO",)
    FUNCTION = "execute"
    CATEGORY = "image/video"

    @classmethod
    def VALIDATE_INPUTS(cls, file):
        if not _annotated_exists(cls.dirs, file):
            return f"Invalid video file: {file}"
        return True

    def execute(self, file):
        return (VideoFromFile(annotated_path(self.dirs, file)),)


class GetVideoComponents(_CoreNode):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"video": ("VIDEO", {"tooltip": "The video to extract components from."})}}

    RETURN_TYPES = ("IMAGE", "AUDIO", "FLOAT")
    RETURN_NAMES = ("images", "audio", "fps")
    FUNCTION = "execute"
    CATEGORY = "image/video"

    def execute(self, video):
        components = video.get_components()
        return (components.images, components.audio, float(components.frame_rate))


class CreateVideo(_CoreNode):
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The images to create a video from."}),
                "fps": ("FLOAT", {"default": 30.0, "min": 1.0, "max": 120.0, "step": 1.0}),
            },
            "optional": {"audio": ("AUDIO", {"tooltip": "The audio to add to the video."})},
        }

    RETURN_TYPES = ("VIDEO",)
    RETURN_NAMES = ("VIDEO",)
    FUNCTION = "execute"
    CATEGORY = "image/video"

    def execute(self, images, fps, audio=None):
        return (VideoFromComponents(VideoComponents(images=images, audio=audio, frame_rate=Fraction(fps))),)


class SaveVideo(_CoreNode):
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "video": ("VIDEO", {"tooltip": "The video to save."}),
                "filename_prefix": ("STRING", {"default": "video/ComfyUI"}),
                "format": ("COMBO", {"multiselect": False, "options": VIDEO_CONTAINERS, "default": "auto"}),
                "codec": ("COMBO", {"multiselect": False, "options": VIDEO_CODECS, "default": "auto"}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    RETURN_TYPES = ()
    FUNCTION = "execute"
    OUTPUT_NODE = True
    CATEGORY = "image/video"

    def execute(self, video, filename_prefix, format, codec, prompt=None, extra_pnginfo=None):
        width, height = video.get_dimensions()
        folder, stem, counter, subfolder = save_path(self.dirs, filename_prefix, width, height)
        file = f"{stem}_{counter:05}_.mp4"  # VideoContainer.get_extension: auto and mp4 both give mp4
        metadata = dict(extra_pnginfo or {})
        if prompt is not None:
            metadata["prompt"] = prompt
        video.save_to(folder / file, format=format, codec=codec, metadata=metadata or None)
        return {"ui": {"images": [{"filename": file, "subfolder": subfolder, "type": "output"}], "animated": (True,)}}


class LoadAudio(_CoreNode):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"audio": (_input_files(cls.dirs, ("audio", "video")), {"audio_upload": True})}}

    RETURN_TYPES = ("AUDIO",)
    FUNCTION = "load"
    CATEGORY = "audio"

    @classmethod
    def VALIDATE_INPUTS(cls, audio):
        if not _annotated_exists(cls.dirs, audio):
            return f"Invalid audio file: {audio}"
        return True

    def load(self, audio):
        from latentsync_core.convert import clip_to_audio
        from latentsync_core.media.audio_file import read_audio

        return (clip_to_audio(read_audio(annotated_path(self.dirs, audio))),)


class VAELoader(_CoreNode):
    @classmethod
    def vae_list(cls) -> list[str]:
        """Weight files under models/vae (recursive, relative posix paths) plus "pixel_space", as ComfyUI lists them."""
        names = []
        folder = Path(cls.dirs.models_dir) / "vae" if cls.dirs.models_dir is not None else None
        if folder is not None and folder.is_dir():
            names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                           if p.is_file() and p.suffix.lower() in VAE_EXTENSIONS)
        return names + ["pixel_space"]

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae_name": (cls.vae_list(),)}}

    RETURN_TYPES = ("VAE",)
    FUNCTION = "load_vae"
    CATEGORY = "loaders"

    def load_vae(self, vae_name):
        if vae_name == "pixel_space":
            raise HarnessSetupError("the VAELoader double cannot make ComfyUI's pixel_space VAE; pick a VAE file")
        try:
            from latentsync_core.vae import load_vae
        except ImportError as exc:
            raise HarnessSetupError("the VAELoader double needs latentsync_core.vae.load_vae, which is missing") from exc
        return (load_vae(_folder(self.dirs, "models_dir") / "vae" / vae_name),)


CORE_NODES: tuple[type, ...] = (LoadVideo, GetVideoComponents, CreateVideo, SaveVideo, LoadAudio, VAELoader)


def core_node_mappings(dirs: HarnessDirs) -> dict[str, type]:
    """The doubles, as a NODE_CLASS_MAPPINGS bound to `dirs` (fresh subclasses, so executors never share folders)."""
    return {base.__name__: type(base.__name__, (base,), {"dirs": dirs, "__module__": __name__, "__qualname__": base.__qualname__})
            for base in CORE_NODES}
