"""Thin ComfyUI V3 node classes; every node calls into latentsync_core and holds no model logic.

Each module in this package exports its `NODES` list; they are joined here in a fixed order (the order
of the node menu).
"""
from __future__ import annotations

import importlib

_NODE_MODULES: list[str] = [
    "loaders", "audio", "faces", "sampler", "paste", "length", "all_in_one", "training",
]

NODE_LIST: list[type] = []

for _name in _NODE_MODULES:
    NODE_LIST.extend(importlib.import_module(f".{_name}", __name__).NODES)
