"""Turn a workflow saved by the ComfyUI frontend (nodes / links / widgets_values) into an API prompt.

The frontend does this itself when queueing (graphToPrompt). Its rules, as reproduced here:

* a node's `widgets_values` follow the order of its widgets, which are created from INPUT_TYPES in
  declaration order (required, then optional) for every INT / FLOAT / STRING / BOOLEAN / COMBO /
  list-typed input that is not `forceInput`;
* an INT input named "seed" or "noise_seed", or any input declaring `control_after_generate`, is
  followed by an extra "control after generate" widget ("fixed", "increment", "decrement",
  "randomize") whose value is not sent; neither are the upload widgets that follow a combo with
  `image_upload` / `video_upload` (one button) or `audio_upload` (player + button);
* a linked input is sent as [origin id, origin slot], overriding a widget of the same name;
* Note / MarkdownNote nodes are dropped; links through Reroute nodes are followed to their source;
  muted nodes (mode 2) are dropped with the links from them; bypassed nodes (mode 4) are dropped
  and each link from one is rewired to its input of the same type (same slot index first); a
  PrimitiveNode is dropped and its value written into the widget it feeds.

Subgraphs are not supported and raise UiConversionError.
"""
from __future__ import annotations

from typing import Any, Mapping

from .executor import declared_inputs, input_info

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
SEED_INPUT_NAMES = {"seed", "noise_seed"}
# Widgets the frontend adds after an upload-enabled combo (values saved, never sent to the backend).
UPLOAD_EXTRA_WIDGETS = {"image_upload": 1, "animated_image_upload": 1, "video_upload": 1, "audio_upload": 2}
NOTE_TYPES = {"Note", "MarkdownNote"}
MODE_MUTED, MODE_BYPASSED = 2, 4


class UiConversionError(ValueError):
    """The UI workflow cannot be turned into an API prompt (the message names the node)."""


def is_ui_workflow(workflow: Any) -> bool:
    return isinstance(workflow, Mapping) and isinstance(workflow.get("nodes"), list) and "links" in workflow


def _links_by_id(workflow: Mapping) -> dict[int, tuple[int, int, int, int, Any]]:
    """link id -> (origin id, origin slot, target id, target slot, type); both saved link layouts."""
    links = {}
    for link in workflow.get("links") or []:
        if isinstance(link, Mapping):  # schema version 1
            links[link["id"]] = (link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"], link.get("type"))
        else:  # version 0.4: [id, origin_id, origin_slot, target_id, target_slot, type]
            links[link[0]] = tuple(link[1:6])
    return links


def widget_inputs(spec: Mapping[str, Mapping]) -> list[tuple[str, bool, int]]:
    """(input name, followed by a control widget?, number of upload widgets after it), in widget order."""
    widgets = []
    for name in declared_inputs(spec):
        input_type, _, extra = input_info(spec, name)
        is_widget = isinstance(input_type, (list, tuple)) or input_type in WIDGET_TYPES
        if not is_widget or extra.get("forceInput"):
            continue
        has_control = bool(extra.get("control_after_generate")) or (input_type == "INT" and name in SEED_INPUT_NAMES)
        uploads = sum(count for flag, count in UPLOAD_EXTRA_WIDGETS.items() if extra.get(flag))
        widgets.append((name, has_control, uploads))
    return widgets


def _map_widgets(node: Mapping, spec: Mapping) -> dict[str, Any]:
    node_ref = f"node {node['id']} ({node['type']})"
    saved = node.get("widgets_values")
    widgets = widget_inputs(spec)
    if isinstance(saved, Mapping):  # some nodes save their widgets by name
        return {name: saved[name] for name, _, _ in widgets if name in saved}
    values = list(saved or [])
    mapped: dict[str, Any] = {}
    position = 0
    for name, has_control, uploads in widgets:
        if position >= len(values):
            raise UiConversionError(f"{node_ref}: widgets_values has {len(values)} value(s) but the node "
                                    f"definition has more widget inputs (no value for {name!r}); the workflow "
                                    "was saved with a different version of the node")
        mapped[name] = values[position]
        position += 1
        # The control value is skipped only when it is one: workflows saved without the control
        # widget (hand-written files) go straight on to the next widget.
        if has_control and position < len(values) and values[position] in CONTROL_VALUES:
            position += 1
        position = min(position + uploads, len(values))
    if position != len(values):
        raise UiConversionError(f"{node_ref}: widgets_values has {len(values) - position} value(s) left over "
                                f"after the widget inputs {[w[0] for w in widgets]}: {values[position:]!r}; "
                                "the workflow was saved with a different version of the node")
    return mapped


def _types_overlap(a: Any, b: Any) -> bool:
    if a == b or "*" in (a, b):
        return True
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    return bool({t.strip() for t in a.split(",")} & {t.strip() for t in b.split(",")})


class _Graph:
    def __init__(self, workflow: Mapping, node_mappings: Mapping[str, type]):
        self.nodes = {node["id"]: node for node in workflow["nodes"]}
        self.links = _links_by_id(workflow)
        self.mappings = node_mappings
        subgraphs = {sg.get("id") for sg in (workflow.get("definitions") or {}).get("subgraphs") or []}
        for node in workflow["nodes"]:
            if node.get("type") in subgraphs:
                raise UiConversionError(f"node {node['id']} is a subgraph ({node['type']}); subgraphs are not supported, "
                                        "unpack it in the frontend before saving")

    def resolve(self, link_id: int, wanted_type: Any) -> tuple[int, int] | None:
        """Where the value of link `link_id` really comes from, or None when nothing is sent."""
        seen = set()
        while link_id is not None and link_id not in seen:
            seen.add(link_id)
            if link_id not in self.links:
                raise UiConversionError(f"link {link_id} is used by a node but missing from the workflow's links")
            origin_id, origin_slot = self.links[link_id][:2]
            origin = self.nodes.get(origin_id)
            if origin is None:
                raise UiConversionError(f"link {link_id} comes from node {origin_id}, which is not in the workflow")
            if origin["type"] == "Reroute":
                link_id = self._input_link(origin, 0)
                continue
            if origin["type"] == "PrimitiveNode" or origin.get("mode") == MODE_MUTED:
                return None
            if origin.get("mode") == MODE_BYPASSED:
                link_id = self._bypass_link(origin, origin_slot, wanted_type)
                continue
            return origin_id, origin_slot
        return None

    @staticmethod
    def _input_link(node: Mapping, slot: int) -> int | None:
        inputs = node.get("inputs") or []
        return inputs[slot].get("link") if slot < len(inputs) else None

    @staticmethod
    def _bypass_link(node: Mapping, slot: int, wanted_type: Any) -> int | None:
        """The link a bypassed node passes through to its output `slot`: the input at the same index
        when its type fits that output, else the first linked input of the wanted type."""
        inputs = node.get("inputs") or []
        outputs = node.get("outputs") or []
        output_type = outputs[slot].get("type") if slot < len(outputs) else wanted_type
        if slot < len(inputs) and inputs[slot].get("link") is not None and _types_overlap(inputs[slot].get("type"), output_type):
            return inputs[slot]["link"]
        linked = [i for i in inputs if i.get("link") is not None]
        for candidate in linked:
            if candidate.get("type") == wanted_type:
                return candidate["link"]
        for candidate in linked:
            if _types_overlap(candidate.get("type"), wanted_type):
                return candidate["link"]
        return None

    def primitive_values(self) -> dict[tuple[int, str], Any]:
        """(target node id, input name) -> value, for every widget a PrimitiveNode drives."""
        values = {}
        for node in self.nodes.values():
            if node["type"] != "PrimitiveNode" or node.get("mode") == MODE_MUTED:
                continue
            saved = node.get("widgets_values") or []
            if not saved:
                continue
            for output in node.get("outputs") or []:
                for link_id in output.get("links") or []:
                    _, _, target_id, target_slot, _ = self.links[link_id]
                    target_inputs = self.nodes[target_id].get("inputs") or []
                    if target_slot < len(target_inputs):
                        widget = target_inputs[target_slot].get("widget") or {}
                        values[(target_id, widget.get("name", target_inputs[target_slot]["name"]))] = saved[0]
        return values

    def to_api(self) -> dict[str, dict]:
        primitives = self.primitive_values()
        prompt: dict[str, dict] = {}
        for node_id, node in sorted(self.nodes.items(), key=lambda item: item[0]):
            node_type = node["type"]
            if node_type in NOTE_TYPES or node_type in ("Reroute", "PrimitiveNode"):
                continue
            if node.get("mode") in (MODE_MUTED, MODE_BYPASSED):
                continue
            inputs: dict[str, Any] = {}
            class_def = self.mappings.get(node_type)
            if class_def is not None:  # unknown types are left to validation ("missing_node_type")
                spec = class_def.INPUT_TYPES()
                inputs.update(_map_widgets(node, spec))
            for (target_id, name), value in primitives.items():
                if target_id == node_id:
                    inputs[name] = value
            for slot in node.get("inputs") or []:
                if slot.get("link") is None:
                    continue
                source = self.resolve(slot["link"], slot.get("type"))
                if source is not None:
                    inputs[slot["name"]] = [str(source[0]), int(source[1])]
            prompt[str(node_id)] = {"inputs": inputs, "class_type": node_type,
                                    "_meta": {"title": node.get("title") or node_type}}
        return prompt


def ui_to_api(workflow: Mapping, node_mappings: Mapping[str, type]) -> dict[str, dict]:
    """The API prompt the frontend would queue for `workflow`, using the node classes' INPUT_TYPES."""
    if not is_ui_workflow(workflow):
        raise UiConversionError("not a UI-format workflow (expected 'nodes' and 'links' keys)")
    return _Graph(workflow, node_mappings).to_api()
