"""ComfyUI-LatentSync: ComfyUI loads this file from custom_nodes/ and reads the two mappings below."""
from .latentsync_core import host as _host
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

_host.register_model_folders()

WEB_DIRECTORY = None
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
