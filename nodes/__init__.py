"""Thin ComfyUI node classes; every node calls into latentsync_core and holds no model logic.

Each module in this package exports its own NODE_CLASS_MAPPINGS / NODE_DISPLAY_NAME_MAPPINGS;
they are merged here in a fixed order.
"""
from __future__ import annotations

import importlib

_NODE_MODULES: list[str] = [
    "loaders", "audio", "faces", "sampler", "paste", "length", "all_in_one", "training",
]

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}

for _name in _NODE_MODULES:
    _module = importlib.import_module(f".{_name}", __name__)
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
