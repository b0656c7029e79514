"""Loader nodes: the LatentSync U-Net, the Whisper audio encoder, the face detector."""
from __future__ import annotations

from latentsync_core import host, model_files

from .common import CATEGORY, UNET, WHISPER

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


class LatentSyncUNetLoader:
    DESCRIPTION = ("Loads a LatentSync U-Net checkpoint (1.5 at 256 px, 1.6 at 512 px) from models/latentsync. "
                   "ComfyUI manages its memory: it stays loaded between runs and is offloaded when needed.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (UNET,)
    RETURN_NAMES = ("unet",)
    OUTPUT_TOOLTIPS = ("The U-Net, for the LatentSync Sampler and the all-in-one node.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "unet_name": (_unet_names(), {"tooltip": "Checkpoint in models/latentsync (official: latentsync_unet.pt)."}),
            "dtype": (DTYPES, {"default": "auto", "tooltip": "Weight precision. auto: fp16 on recent GPUs, fp32 on CPU."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, unet_name):
        if host.find_model("latentsync", unet_name) is None:
            return _missing_message("latentsync", unet_name, model_files.UNET)
        return True

    def load(self, unet_name: str, dtype: str):
        from latentsync_core.unet import load_unet

        path = _model_path("latentsync", unet_name, model_files.UNET)
        compute_dtype = host.get_dtype(host.get_device(), dtype)
        unet = load_unet(path, device=host.offload_device(), dtype=compute_dtype)
        return (host.manage_model(unet, "unet"),)


class LatentSyncWhisperLoader:
    DESCRIPTION = "Loads the Whisper audio encoder LatentSync is conditioned on (whisper/tiny.pt of the official release)."
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (WHISPER,)
    RETURN_NAMES = ("whisper",)
    OUTPUT_TOOLTIPS = ("The audio encoder, for Audio Features and the all-in-one node.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "whisper_name": (host.list_models("whisper"), {
                "tooltip": "Whisper checkpoint in models/whisper or models/latentsync/whisper (official: tiny.pt)."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, whisper_name):
        if host.find_model("whisper", whisper_name) is None:
            return _missing_message("whisper", whisper_name, model_files.WHISPER_TINY)
        return True

    def load(self, whisper_name: str):
        from latentsync_core.audio import load_whisper

        path = _model_path("whisper", whisper_name, model_files.WHISPER_TINY)
        encoder = load_whisper(path, device=host.offload_device(), dtype=host.get_dtype(host.get_device()))
        return (host.manage_model(encoder, "whisper"),)


NODE_CLASS_MAPPINGS = {
    "LatentSyncUNetLoader": LatentSyncUNetLoader,
    "LatentSyncWhisperLoader": LatentSyncWhisperLoader,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LatentSyncUNetLoader": "Load LatentSync U-Net",
    "LatentSyncWhisperLoader": "Load Whisper (LatentSync)",
}
