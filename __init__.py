"""ComfyUI-LatentSync: ComfyUI loads this folder from custom_nodes/ and calls `comfy_entrypoint` (V3 node API)."""
import importlib.util
import os
import sys

# ComfyUI imports this folder as a package under its own name; the core library is imported as the
# top-level `latentsync_core` (one copy shared by nodes, CLI and tests), so the folder goes on sys.path.
_PACK_DIR = os.path.dirname(os.path.abspath(__file__))
if _PACK_DIR not in sys.path:
    sys.path.insert(0, _PACK_DIR)

# pytest imports this file too, as the package of the checkout's root folder, when it collects the core
# tests; ComfyUI (comfy_api) is absent there and there is nothing to register. Inside a ComfyUI that lacks
# the V3 API the import below fails loudly instead.
if importlib.util.find_spec("comfy_api") is not None or "comfy" in sys.modules:
    from comfy_api.latest import ComfyExtension, io

    from latentsync_core import host as _host

    if __package__:
        from .nodes import NODE_LIST
    else:
        # Imported as a plain file, not a package: pytest does this to a checkout whose folder name is not an
        # identifier (ComfyUI-LatentSync, ci-check). ComfyUI always imports the folder as a package.
        from nodes import NODE_LIST

    _host.register_model_folders()

    class LatentSyncExtension(ComfyExtension):
        async def get_node_list(self) -> list[type[io.ComfyNode]]:
            return list(NODE_LIST)

    async def comfy_entrypoint() -> LatentSyncExtension:
        return LatentSyncExtension()

    __all__ = ["comfy_entrypoint"]
