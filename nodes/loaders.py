"""Loader nodes: the LatentSync U-Net, the Whisper audio encoder, the face detector."""
from __future__ import annotations

from comfy_api.latest import io

from latentsync_core import host, model_files
from .common import CATEGORY, UnetType, WhisperType, output, require_choice

DTYPES = ["auto", "fp16", "bf16", "fp32"]


def _unet_names() -> list[str]:
    # models/latentsync also holds the official download's whisper/ folder and the SyncNet, which are no U-Nets.
    return [name for name in host.list_models("latentsync")
            if not name.startswith("whisper/") and "syncnet" not in name.lower()]


def _model_path(kind: str, name: str, spec: model_files.ModelFile):
    """The file `name` of models/`kind`, or ModelMissingError with where it belongs and how to get it."""
    from latentsync_core.errors import MissingModel, ModelMissingError

    path = host.find_model(kind, name)
    if path is None:
        raise ModelMissingError([MissingModel(spec.description, host.default_model_path(kind, name),
                                              spec.download_command())])
    return path


def _missing_message(kind: str, name: str, spec: model_files.ModelFile) -> str:
    folders = ", ".join(str(p) for p in host.model_dirs(kind))
    return f"{name!r} is not in models/{kind} (searched {folders}). Get the official file with: {spec.download_command()}"


class LatentSyncUNetLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LatentSyncUNetLoader", display_name="Load LatentSync U-Net", category=CATEGORY,
            description="Loads a LatentSync U-Net checkpoint (1.5 at 256 px, 1.6 at 512 px) from models/latentsync. "
                        "ComfyUI manages its memory: it stays loaded between runs and is offloaded when needed.",
            inputs=[
                io.Combo.Input("unet_name", options=_unet_names(),
                               tooltip="Checkpoint in models/latentsync (official: latentsync_unet.pt)."),
                io.Combo.Input("dtype", options=DTYPES, default="auto",
                               tooltip="Weight precision. auto: fp16 on recent GPUs, fp32 on CPU."),
            ],
            outputs=[output(UnetType, "unet", "The U-Net, for the LatentSync Sampler and the all-in-one node.")],
        )

    @classmethod
    def validate_inputs(cls, unet_name):
        if host.find_model("latentsync", unet_name) is None:
            return _missing_message("latentsync", unet_name, model_files.UNET)
        return True

    @classmethod
    def execute(cls, unet_name: str, dtype: str) -> io.NodeOutput:
        return io.NodeOutput(load_unet_model(unet_name, dtype))


def load_unet_model(unet_name: str, dtype: str):
    from latentsync_core.unet import load_unet

    path = _model_path("latentsync", unet_name, model_files.UNET)
    require_choice(dtype, DTYPES, "dtype")
    compute_dtype = host.get_dtype(host.get_device(), dtype)
    unet = load_unet(path, device=host.offload_device(), dtype=compute_dtype)
    return host.manage_model(unet, "unet")


class LatentSyncWhisperLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LatentSyncWhisperLoader", display_name="Load Whisper (LatentSync)", category=CATEGORY,
            description="Loads the Whisper audio encoder LatentSync is conditioned on (whisper/tiny.pt of the "
                        "official release).",
            inputs=[
                io.Combo.Input("whisper_name", options=host.list_models("whisper"),
                               tooltip="Whisper checkpoint in models/whisper or models/latentsync/whisper "
                                       "(official: tiny.pt)."),
            ],
            outputs=[output(WhisperType, "whisper", "The audio encoder, for Audio Features and the all-in-one node.")],
        )

    @classmethod
    def validate_inputs(cls, whisper_name):
        if host.find_model("whisper", whisper_name) is None:
            return _missing_message("whisper", whisper_name, model_files.WHISPER_TINY)
        return True

    @classmethod
    def execute(cls, whisper_name: str) -> io.NodeOutput:
        return io.NodeOutput(load_whisper_model(whisper_name))


def load_whisper_model(whisper_name: str):
    from latentsync_core.audio import load_whisper

    path = _model_path("whisper", whisper_name, model_files.WHISPER_TINY)
    encoder = load_whisper(path, device=host.offload_device(), dtype=host.get_dtype(host.get_device()))
    return host.manage_model(encoder, "whisper")


NODES = [LatentSyncUNetLoader, LatentSyncWhisperLoader]
