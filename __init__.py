"""ComfyUI-LatentSync: ComfyUI loads this file from custom_nodes/ and reads the two mappings below."""
import os
import sys

# ComfyUI imports this folder as a package under its own name; the core library is imported as the
# top-level `latentsync_core` (one copy shared by nodes, CLI and tests), so the folder goes on sys.path.
_PACK_DIR = os.path.dirname(os.path.abspath(__file__))
if _PACK_DIR not in sys.path:
    sys.path.insert(0, _PACK_DIR)

from latentsync_core import host as _host  # noqa: E402

if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402
else:
    # Imported as a plain file rather than a package: pytest does this to a checkout whose folder name is
    # not an identifier (e.g. ComfyUI-LatentSync). ComfyUI always imports it as a package.
    from nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

_host.register_model_folders()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
