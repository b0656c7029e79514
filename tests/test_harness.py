"""The workflow harness validates and runs prompts the way ComfyUI does (tests/harness)."""
from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest
import torch

from tests.harness import (
    ExecutionError,
    Executor,
    UiConversionError,
    WorkflowValidationError,
    pack_node_mappings,
    run_workflow,
    ui_to_api,
    validate_workflow,
)
from tests.harness.executor import _node_contract_problems

CALLS: list[str] = []  # "<class>:<unique id>" per call, in call order


@pytest.fixture(autouse=True)
def _clear_calls():
    CALLS.clear()


# --------------------------------------------------------------------------- test-only nodes
class _Logged:
    """Base of the test nodes: records each call (with the node's id) in CALLS."""

    @classmethod
    def log(cls, unique_id):
        CALLS.append(f"{cls.__name__}:{unique_id}")


class IntSource(_Logged):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 1, "min": -10, "max": 10})},
                "hidden": {"unique_id": "UNIQUE_ID"}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value, unique_id):
        self.log(unique_id)
        return (value,)


class Scale(_Logged):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT",), "factor": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0})},
                "hidden": {"unique_id": "UNIQUE_ID"}}

    RETURN_TYPES = ("FLOAT",)
    FUNCTION = "run"

    def run(self, x, factor, unique_id):
        self.log(unique_id)
        return (x * factor,)


class Add(_Logged):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT",), "b": ("INT",)}, "optional": {"c": ("INT", {"default": 0})},
                "hidden": {"unique_id": "UNIQUE_ID"}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, a, b, unique_id, c=None):
        self.log(unique_id)
        return (a + b + (0 if c is None else 100 * c),)


class Choose(_Logged):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mode": (["double", "negate"],), "x": ("INT",)}, "hidden": {"unique_id": "UNIQUE_ID"}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, mode, x, unique_id):
        self.log(unique_id)
        return (2 * x if mode == "double" else -x,)


class Letter(_Logged):
    """A V3-style combo (as ComfyUI's INPUT_TYPES shows V3 nodes): type "COMBO", options in the dict."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"letter": ("COMBO", {"options": ["a", "b"]})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    def run(self, letter):
        return (letter,)


class Collect(_Logged):
    """The output node: takes INT or FLOAT and reports it in its ui dict."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT,FLOAT",)}, "hidden": {"unique_id": "UNIQUE_ID", "prompt": "PROMPT"}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, value, unique_id, prompt):
        self.log(unique_id)
        return {"ui": {"values": [value], "prompt_ids": [sorted(prompt)]}}


class AnyType(str):
    """How node packs write a wildcard type: only __ne__ is overridden."""

    def __ne__(self, other):
        return False


class CollectAny(Collect):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (AnyType("*"),)}, "hidden": {"unique_id": "UNIQUE_ID", "prompt": "PROMPT"}}


class CollectStar(Collect):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*",)}, "hidden": {"unique_id": "UNIQUE_ID", "prompt": "PROMPT"}}


class Boom(_Logged):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT",)}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, x):
        raise ValueError(f"kaboom {x}")


class TwoOutputs(_Logged):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"x": ("INT",), "how": (["short", "bare", "none", "ok"],)}}

    RETURN_TYPES = ("INT", "INT")
    FUNCTION = "run"

    def run(self, x, how):
        return {"short": (x,), "bare": x, "none": None, "ok": (x, -x)}[how]


class CheckedPath(_Logged):
    """VALIDATE_INPUTS takes `path`, so ComfyUI skips the combo check for it and asks the node instead."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"path": (["listed.ok"],), "x": ("INT", {"min": 0, "max": 5})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def VALIDATE_INPUTS(cls, path):
        return True if path.endswith(".ok") else f"no such file: {path}"

    def run(self, path, x):
        return (len(path) + x,)


class Range(_Logged):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"n": ("INT", {"min": 0, "max": 10})}}

    RETURN_TYPES = ("INT",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "run"

    def run(self, n):
        return (list(range(1, n + 1)),)


class Sum(_Logged):
    INPUT_IS_LIST = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"values": ("INT",)}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, values):
        return (sum(values),)


class ModelsDirProbe(_Logged):
    """Reads the models folder through latentsync_core.host, as the pack's nodes do."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"

    def run(self):
        from latentsync_core import host

        return (str(host.models_root()),)


class CollectText(Collect):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("STRING",)}, "hidden": {"unique_id": "UNIQUE_ID", "prompt": "PROMPT"}}


class Seeded(_Logged):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF}),
                             "image": ("IMAGE",),
                             "text": ("STRING", {"multiline": True}),
                             "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0}),
                             "x": ("INT", {"forceInput": True})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, seed, image, text, strength, x):
        return (int(seed % 1000 + len(text) + strength * 10 + x + image.shape[0]),)


class MakeImage(_Logged):
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"batch": ("INT", {"default": 1, "min": 1, "max": 8}),
                             "fill": (["black", "white"], {"default": "black"})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    def run(self, batch, fill):
        return (torch.full((batch, 4, 4, 3), 1.0 if fill == "white" else 0.0),)


NODES = {cls.__name__: cls for cls in (IntSource, Scale, Add, Choose, Letter, Collect, CollectAny, CollectStar, Boom,
                                       TwoOutputs, CheckedPath, Range, Sum, ModelsDirProbe, CollectText, Seeded,
                                       MakeImage)}


def run(prompt, **options):
    return run_workflow(prompt, NODES, include_core_nodes=False, **options)


def rejected(prompt) -> WorkflowValidationError:
    with pytest.raises(WorkflowValidationError) as info:
        validate_workflow(prompt, NODES, include_core_nodes=False)
    return info.value


def node(class_type, **inputs):
    return {"class_type": class_type, "inputs": inputs}


def valid_prompt():
    # Ids are out of dependency order on purpose: execution must follow the links, not the keys.
    return {
        "1": node("Collect", value=["7", 0]),
        "7": node("Choose", mode="double", x=["12", 0]),
        "12": node("Add", a=["20", 0], b=["21", 0]),
        "20": node("IntSource", value=3),
        "21": node("IntSource", value=-4),
        "30": node("Scale", x=["20", 0], factor=0.5),
        "31": node("Collect", value=["30", 0]),
    }


# --------------------------------------------------------------------------- execution
def test_valid_workflow_runs_each_needed_node_once_in_dependency_order():
    result = run(valid_prompt())
    assert result.value("12") == -1 and result.value("7") == -2 and result.value("30") == 1.5
    assert result.ui["1"]["values"] == [-2] and result.ui["31"]["values"] == [1.5]
    assert sorted(result.executed, key=int) == ["1", "7", "12", "20", "21", "30", "31"]
    assert len(CALLS) == 7 and [c.split(":")[1] for c in CALLS] == result.executed
    position = {node_id: i for i, node_id in enumerate(result.executed)}
    for consumer, producers in {"1": ["7"], "7": ["12"], "12": ["20", "21"], "30": ["20"], "31": ["30"]}.items():
        assert all(position[p] < position[consumer] for p in producers), (consumer, result.executed)
    # Hidden inputs: UNIQUE_ID is the node's own id, PROMPT the whole prompt.
    assert CALLS.count("Collect:1") == 1 and result.ui["1"]["prompt_ids"] == [sorted(valid_prompt())]


def test_unused_branches_are_neither_run_nor_validated():
    prompt = valid_prompt()
    prompt["40"] = node("Boom", x=["20", 0])  # would raise if run
    prompt["41"] = node("IntSource", value=999)  # out of range, but ComfyUI only validates what outputs need
    prompt["42"] = node("Add", a=["41", 0])  # missing b
    result = run(prompt)
    assert not {"40", "41", "42"} & set(result.executed)
    assert not any(c.startswith("Boom") for c in CALLS)


def test_optional_inputs_may_be_omitted_or_given():
    prompt = {"1": node("IntSource", value=2), "2": node("Add", a=["1", 0], b=["1", 0]), "3": node("Collect", value=["2", 0])}
    assert run(prompt).value("2") == 4
    prompt["2"]["inputs"]["c"] = 3
    assert run(prompt).value("2") == 304


def test_constants_are_coerced_like_comfyui():
    prompt = {"1": node("IntSource", value="7"), "2": node("Scale", x=["1", 0], factor="1"), "3": node("Collect", value=["2", 0])}
    result = run(prompt)
    assert result.value("1") == 7 and type(result.value("1")) is int
    assert type(result.value("2")) is float
    assert result.prompt["1"]["inputs"]["value"] == 7


def test_node_exception_is_wrapped_with_node_id_and_chained():
    prompt = {"1": node("IntSource", value=5), "2": node("Boom", x=["1", 0]), "3": node("Collect", value=["2", 0])}
    with pytest.raises(ExecutionError) as info:
        run(prompt)
    error = info.value
    assert (error.node_id, error.class_type) == ("2", "Boom")
    assert "node 2 (Boom)" in str(error) and "kaboom 5" in str(error)
    assert isinstance(error.__cause__, ValueError) and str(error.__cause__) == "kaboom 5"
    assert not any(c.startswith("Collect") for c in CALLS)


@pytest.mark.parametrize("how, message", [("short", "returned 1 value(s)"), ("bare", "returned int, not a tuple"),
                                          ("none", "returned NoneType")])
def test_wrong_return_arity_raises(how, message):
    prompt = {"1": node("IntSource", value=5), "2": node("TwoOutputs", x=["1", 0], how=how),
              "3": node("Collect", value=["2", 1])}
    with pytest.raises(ExecutionError) as info:
        run(prompt)
    assert info.value.node_id == "2" and message in str(info.value) and "RETURN_TYPES" in str(info.value)


def test_second_output_slot_is_routed():
    prompt = {"1": node("IntSource", value=5), "2": node("TwoOutputs", x=["1", 0], how="ok"),
              "3": node("Collect", value=["2", 1])}
    assert run(prompt).ui["3"]["values"] == [-5]


def test_list_outputs_map_over_plain_nodes_and_feed_list_inputs_whole():
    prompt = {"1": node("Range", n=4), "2": node("IntSource", value=10), "3": node("Add", a=["1", 0], b=["2", 0]),
              "4": node("Sum", values=["3", 0]), "5": node("Collect", value=["4", 0]), "6": node("Collect", value=["3", 0])}
    result = run(prompt)
    assert result.outputs["1"] == [[1, 2, 3, 4]]
    assert result.outputs["3"] == [[11, 12, 13, 14]] and CALLS.count("Add:3") == 4
    assert result.value("4") == 50
    assert result.ui["6"]["values"] == [11, 12, 13, 14]  # ui dicts of the four calls are merged
    with pytest.raises(ValueError, match="4 values"):
        result.value("3")


def test_executor_points_host_folders_at_its_own_and_restores_them(tmp_path):
    before = os.environ.get("LATENTSYNC_MODELS_DIR")
    prompt = {"1": node("ModelsDirProbe"), "2": node("CollectText", value=["1", 0])}
    result = run(prompt, models_dir=tmp_path / "models")
    assert result.value("1") == str((tmp_path / "models").resolve())
    assert os.environ.get("LATENTSYNC_MODELS_DIR") == before


# --------------------------------------------------------------------------- validation
def _only(error: WorkflowValidationError, type_: str):
    assert error.types == {type_}, str(error)
    (issue,) = error.errors
    return issue


def test_rejects_wrong_link_type():
    prompt = {"1": node("Letter", letter="a"), "2": node("Add", a=["1", 0], b=3), "3": node("Collect", value=["2", 0])}
    issue = _only(rejected(prompt), "return_type_mismatch")
    assert (issue.node_id, issue.class_type, issue.input_name) == ("2", "Add", "a")
    assert "received_type(STRING) mismatch input_type(INT)" in issue.details


def test_link_type_rules_follow_comfyui():
    source = {"1": node("Letter", letter="b")}
    # An __ne__-overriding "any" type accepts everything; a plain "*" string is an ordinary type name in ComfyUI.
    assert run({**source, "2": node("CollectAny", value=["1", 0])}).ui["2"]["values"] == ["b"]
    assert _only(rejected({**source, "2": node("CollectStar", value=["1", 0])}), "return_type_mismatch").input_name == "value"
    # Comma-separated types match when they overlap ("INT" into "INT,FLOAT" ran in the valid prompt); STRING does not.
    assert _only(rejected({**source, "2": node("Collect", value=["1", 0])}), "return_type_mismatch").node_id == "2"


def test_rejects_missing_required_input():
    prompt = {"1": node("IntSource", value=1), "2": node("Add", a=["1", 0]), "3": node("Collect", value=["2", 0])}
    issue = _only(rejected(prompt), "required_input_missing")
    assert (issue.node_id, issue.input_name) == ("2", "b")


@pytest.mark.parametrize("source, value, error_type", [
    ("IntSource", -11, "value_smaller_than_min"),
    ("IntSource", 11, "value_bigger_than_max"),
    ("Scale", -0.01, "value_smaller_than_min"),
    ("Scale", 2.5, "value_bigger_than_max"),
])
def test_rejects_out_of_range_values(source, value, error_type):
    if source == "IntSource":
        prompt = {"1": node("IntSource", value=value), "2": node("Collect", value=["1", 0])}
        name = "value"
    else:
        prompt = {"1": node("IntSource", value=1), "2": node("Scale", x=["1", 0], factor=value), "3": node("Collect", value=["2", 0])}
        name = "factor"
    issue = _only(rejected(prompt), error_type)
    assert issue.input_name == name and str(value) in issue.message


def test_bounds_are_inclusive():
    prompt = {"1": node("IntSource", value=10), "2": node("Scale", x=["1", 0], factor=2.0), "3": node("Collect", value=["2", 0]),
              "4": node("IntSource", value=-10), "5": node("Scale", x=["4", 0], factor=0.0), "6": node("Collect", value=["5", 0])}
    result = run(prompt)
    assert result.ui["3"]["values"] == [20.0] and result.ui["6"]["values"] == [-0.0]


def test_rejects_unconvertible_value():
    issue = _only(rejected({"1": node("IntSource", value="ten"), "2": node("Collect", value=["1", 0])}), "invalid_input_type")
    assert issue.input_name == "value" and "ten" in issue.details


@pytest.mark.parametrize("prompt, name", [
    ({"1": node("IntSource", value=1), "2": node("Choose", mode="triple", x=["1", 0]), "3": node("Collect", value=["2", 0])}, "mode"),
    ({"1": node("Letter", letter="c"), "2": node("CollectAny", value=["1", 0])}, "letter"),
])
def test_rejects_value_not_in_combo(prompt, name):
    issue = _only(rejected(prompt), "value_not_in_list")
    assert issue.input_name == name and "not in" in issue.details


def test_validate_inputs_replaces_the_builtin_checks_of_its_inputs():
    base = {"1": node("CheckedPath", path="unlisted.ok", x=2), "2": node("Collect", value=["1", 0])}
    assert run(base).value("1") == len("unlisted.ok") + 2  # not in the combo list, but VALIDATE_INPUTS takes `path`
    issue = _only(rejected({**base, "1": node("CheckedPath", path="missing.txt", x=2)}), "custom_validation_failed")
    assert issue.input_name == "path" and "no such file: missing.txt" in issue.details
    # `x` is not a VALIDATE_INPUTS argument, so its max still applies.
    assert _only(rejected({**base, "1": node("CheckedPath", path="a.ok", x=6)}), "value_bigger_than_max").input_name == "x"


def test_rejects_unknown_node_class():
    issue = _only(rejected({"1": node("IntSource", value=1), "2": node("NoSuchNode", x=["1", 0]), "3": node("Collect", value=["1", 0])}),
                  "missing_node_type")
    assert issue.node_id == "2" and "NoSuchNode" in issue.message
    assert _only(rejected({"1": {"inputs": {}}, "2": node("Collect", value=1)}), "missing_node_type").node_id == "1"


@pytest.mark.parametrize("link, fragment", [
    (["99", 0], "'99' is not in the prompt"),
    (["1", 1], "has no output slot 1"),
    (["1", -1], "has no output slot -1"),
    ([1, 0], "1 is not in the prompt"),  # ids are strings in API prompts
    (["1", 0, 0], "length-2 list"),
])
def test_rejects_bad_links(link, fragment):
    issue = _only(rejected({"1": node("IntSource", value=1), "2": node("Collect", value=link)}), "bad_linked_input")
    assert issue.node_id == "2" and issue.input_name == "value"
    assert fragment in issue.message + issue.details


def test_rejects_cycles():
    prompt = {"1": node("IntSource", value=1), "2": node("Add", a=["1", 0], b=["3", 0]), "3": node("Add", a=["2", 0], b=["1", 0]),
              "4": node("Collect", value=["3", 0])}
    error = rejected(prompt)
    assert error.types == {"dependency_cycle"}
    assert {issue.node_id for issue in error.errors} <= {"2", "3"}


def test_rejects_prompt_without_output_node():
    error = rejected({"1": node("IntSource", value=1), "2": node("Add", a=["1", 0], b=["1", 0])})
    assert error.types == {"prompt_no_outputs"}


def test_reports_every_error_of_every_output():
    prompt = {"1": node("IntSource", value=50), "2": node("Collect", value=["1", 0]),
              "3": node("Choose", mode="x", x=["4", 0]), "4": node("IntSource", value=-50), "5": node("Collect", value=["3", 0])}
    error = rejected(prompt)
    assert sorted((i.node_id, i.type) for i in error.errors) == [
        ("1", "value_bigger_than_max"), ("3", "value_not_in_list"), ("4", "value_smaller_than_min")]
    assert "node 3 (Choose) input 'mode'" in str(error)


def test_unknown_constant_inputs_are_ignored_with_a_warning():
    validated = validate_workflow({"1": node("IntSource", value=1, stale=True), "2": node("Collect", value=["1", 0])},
                                  NODES, include_core_nodes=False)
    assert [(w.node_id, w.input_name, w.type) for w in validated.warnings] == [("1", "stale", "unknown_input_ignored")]


def test_executor_refuses_pack_nodes_that_shadow_core_nodes():
    with pytest.raises(ValueError, match="LoadVideo"):
        Executor({"LoadVideo": IntSource})


@pytest.mark.parametrize("name", sorted(pack_node_mappings()))
def test_pack_nodes_follow_the_node_contract(name):
    class_def = pack_node_mappings()[name]
    assert _node_contract_problems(class_def) == []
    spec = class_def.INPUT_TYPES()
    assert set(spec) <= {"required", "optional", "hidden"}
    assert name not in Executor().node_mappings or Executor().node_mappings[name] is class_def


# --------------------------------------------------------------------------- UI format
def _ui_workflow():
    """A small graph as the frontend saves it (format 0.4): seed + randomize, a Reroute, a Note."""
    return {
        "last_node_id": 7, "last_link_id": 5, "version": 0.4, "groups": [], "config": {}, "extra": {},
        "nodes": [
            {"id": 1, "type": "MakeImage", "mode": 0, "inputs": [],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1], "slot_index": 0}], "widgets_values": [2, "white"]},
            {"id": 2, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*", "link": 1}],
             "outputs": [{"name": "", "type": "IMAGE", "links": [2]}]},
            {"id": 3, "type": "IntSource", "mode": 0, "inputs": [],
             "outputs": [{"name": "INT", "type": "INT", "links": [3]}], "widgets_values": [4]},
            {"id": 4, "type": "Seeded", "mode": 0, "title": "My sampler",
             "inputs": [{"name": "image", "type": "IMAGE", "link": 2}, {"name": "x", "type": "INT", "link": 3}],
             "outputs": [{"name": "INT", "type": "INT", "links": [4]}],
             "widgets_values": [123456, "randomize", "hello", 0.5]},
            {"id": 5, "type": "Collect", "mode": 0, "inputs": [{"name": "value", "type": "INT,FLOAT", "link": 4}],
             "outputs": [], "widgets_values": []},
            {"id": 6, "type": "Note", "mode": 0, "inputs": [], "outputs": [], "widgets_values": ["remember the milk"]},
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 4, 0, "IMAGE"], [3, 3, 0, 4, 1, "INT"], [4, 4, 0, 5, 0, "INT"]],
    }


def test_ui_to_api_converts_widgets_links_and_seed_controls():
    api = ui_to_api(_ui_workflow(), NODES)
    assert api == {
        "1": {"inputs": {"batch": 2, "fill": "white"}, "class_type": "MakeImage", "_meta": {"title": "MakeImage"}},
        "3": {"inputs": {"value": 4}, "class_type": "IntSource", "_meta": {"title": "IntSource"}},
        "4": {"inputs": {"seed": 123456, "text": "hello", "strength": 0.5, "image": ["1", 0], "x": ["3", 0]},
              "class_type": "Seeded", "_meta": {"title": "My sampler"}},
        "5": {"inputs": {"value": ["4", 0]}, "class_type": "Collect", "_meta": {"title": "Collect"}},
    }
    result = run(api)
    assert result.value("4") == 456 + len("hello") + 5 + 4 + 2
    assert run(_ui_workflow()).ui["5"]["values"] == [result.value("4")]  # run_workflow converts UI format itself


def test_ui_to_api_accepts_seed_without_control_value_and_dict_links():
    workflow = _ui_workflow()
    workflow["nodes"][3]["widgets_values"] = [7, "hi", 1.0]
    workflow["links"] = [dict(zip(("id", "origin_id", "origin_slot", "target_id", "target_slot", "type"), link))
                         for link in workflow["links"]]
    assert ui_to_api(workflow, NODES)["4"]["inputs"] == {"seed": 7, "text": "hi", "strength": 1.0, "image": ["1", 0], "x": ["3", 0]}


def test_ui_to_api_handles_bypassed_muted_and_primitive_nodes():
    workflow = _ui_workflow()
    nodes = workflow["nodes"]
    # Bypass the Seeded node: Collect then reads IntSource (Seeded's INT input of the same type).
    nodes[3]["mode"] = 4
    api = ui_to_api(workflow, NODES)
    assert "4" not in api and api["5"]["inputs"] == {"value": ["3", 0]}
    # Mute IntSource instead: it disappears with its link, leaving Seeded's forced input empty.
    nodes[3]["mode"], nodes[2]["mode"] = 0, 2
    api = ui_to_api(workflow, NODES)
    assert "3" not in api and "x" not in api["4"]["inputs"]
    assert _only(rejected(api), "required_input_missing").input_name == "x"
    # A PrimitiveNode driving the "text" widget: its value is sent, the node itself is not.
    nodes[2]["mode"] = 0
    nodes[3]["inputs"].append({"name": "text", "type": "STRING", "widget": {"name": "text"}, "link": 5})
    nodes.append({"id": 7, "type": "PrimitiveNode", "mode": 0, "inputs": [],
                  "outputs": [{"name": "STRING", "type": "STRING", "links": [5], "widget": {"name": "text"}}],
                  "widgets_values": ["from primitive"]})
    workflow["links"].append([5, 7, 0, 4, 2, "STRING"])
    api = ui_to_api(workflow, NODES)
    assert "7" not in api and api["4"]["inputs"]["text"] == "from primitive"


def test_ui_to_api_rejects_widget_values_that_do_not_fit_the_node():
    workflow = _ui_workflow()
    workflow["nodes"][0]["widgets_values"] = [2, "white", "extra"]
    with pytest.raises(UiConversionError, match=r"node 1 \(MakeImage\).*left over"):
        ui_to_api(workflow, NODES)
    workflow["nodes"][0]["widgets_values"] = [2]
    with pytest.raises(UiConversionError, match="no value for 'fill'"):
        ui_to_api(workflow, NODES)


def test_ui_conversion_leaves_unknown_types_to_validation():
    workflow = _ui_workflow()
    workflow["nodes"][2]["type"] = "GoneNode"
    assert _only(rejected(ui_to_api(workflow, NODES)), "missing_node_type").node_id == "3"


# --------------------------------------------------------------------------- core-node doubles
def _write_clip(path, frames=10, fps=25, with_audio=True):
    from latentsync_core.media.audio_file import AudioClip
    from latentsync_core.media.writer import write_video

    y, x = np.mgrid[0:48, 0:64]
    video = np.stack([np.stack([(x * 4 + 12 * i) % 256, (y * 5) % 256, np.full_like(x, 20 * i)], -1)
                      for i in range(frames)]).astype(np.uint8)
    audio = None
    if with_audio:
        t = np.arange(int(16000 * frames / fps)) / 16000
        audio = AudioClip(0.3 * np.sin(2 * np.pi * 440 * t)[None].astype(np.float32), 16000)
    write_video(path, video, Fraction(fps), audio=audio)
    return video


@pytest.fixture
def media_dirs(tmp_path):
    dirs = {"input_dir": tmp_path / "input", "output_dir": tmp_path / "output", "models_dir": tmp_path / "models"}
    for path in dirs.values():
        path.mkdir()
    return dirs


def test_video_roundtrip_through_core_nodes(media_dirs):
    from latentsync_core.media.video import probe_video, read_video

    frames = _write_clip(media_dirs["input_dir"] / "clip.mp4")
    (media_dirs["input_dir"] / "notes.txt").write_text("not a video")
    prompt = {
        "1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "CreateVideo", "inputs": {"images": ["2", 0], "fps": ["2", 2], "audio": ["2", 1]}},
        "4": {"class_type": "SaveVideo", "inputs": {"video": ["3", 0], "filename_prefix": "lipsync/out", "format": "mp4", "codec": "h264"}},
    }
    executor = Executor(**media_dirs)
    assert executor.node_mappings["LoadVideo"].INPUT_TYPES()["required"]["file"][1]["options"] == ["clip.mp4"]
    result = executor.run(prompt)
    images, audio, fps = (result.value("2", i) for i in range(3))
    assert images.shape == (10, 48, 64, 3) and images.dtype == torch.float32 and fps == 25.0
    assert audio["sample_rate"] == 16000 and audio["waveform"].shape[:2] == (1, 1)
    assert result.ui["4"] == {"images": [{"filename": "out_00001_.mp4", "subfolder": "lipsync", "type": "output"}],
                              "animated": [True]}
    saved = media_dirs["output_dir"] / "lipsync" / "out_00001_.mp4"
    info = probe_video(saved)
    assert (info.num_frames, info.fps, info.width, info.height, info.has_audio) == (10, Fraction(25), 64, 48, True)
    decoded, _ = read_video(saved)
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 6  # two lossy encodes of a smooth pattern
    assert executor.run(prompt).ui["4"]["images"][0]["filename"] == "out_00002_.mp4"  # counter goes on


def test_save_video_of_a_loaded_file_keeps_it_unchanged_and_load_audio_reads_tracks(media_dirs):
    _write_clip(media_dirs["input_dir"] / "clip.mp4", frames=6)
    prompt = {"1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}},
              "2": {"class_type": "SaveVideo", "inputs": {"video": ["1", 0], "filename_prefix": "copy", "format": "auto", "codec": "auto"}},
              "3": {"class_type": "LoadAudio", "inputs": {"audio": "clip.mp4"}},
              "4": {"class_type": "CreateVideo", "inputs": {"images": ["5", 0], "fps": 12.5, "audio": ["3", 0]}},
              "5": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
              "6": {"class_type": "SaveVideo", "inputs": {"video": ["4", 0], "filename_prefix": "slow", "format": "auto", "codec": "auto"}}}
    result = run_workflow(prompt, **media_dirs)
    assert (media_dirs["output_dir"] / "copy_00001_.mp4").read_bytes() == (media_dirs["input_dir"] / "clip.mp4").read_bytes()
    audio = result.value("3")
    assert audio["sample_rate"] == 16000 and abs(audio["waveform"].shape[-1] - 16000 * 6 / 25) < 1100
    from latentsync_core.media.video import probe_video

    info = probe_video(media_dirs["output_dir"] / "slow_00001_.mp4")
    assert (info.num_frames, info.fps, info.has_audio) == (6, Fraction(25, 2), True)


def test_core_node_contracts_reject_what_comfyui_rejects(media_dirs):
    _write_clip(media_dirs["input_dir"] / "clip.mp4", frames=3, with_audio=False)
    executor = Executor(**media_dirs)

    def validation_error(prompt):
        with pytest.raises(WorkflowValidationError) as info:
            executor.validate(prompt)
        return info.value

    load = {"1": {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}}}
    save = {"class_type": "SaveVideo", "inputs": {"video": ["1", 0], "filename_prefix": "x", "format": "auto", "codec": "auto"}}
    # LoadVideo's VALIDATE_INPUTS (not the combo list) decides about the file, as in ComfyUI.
    issue = _only(validation_error({"1": {"class_type": "LoadVideo", "inputs": {"file": "nope.mp4"}}, "2": save}),
                  "custom_validation_failed")
    assert "Invalid video file: nope.mp4" in issue.details
    bad_format = {**save, "inputs": {**save["inputs"], "format": "webm"}}
    assert _only(validation_error({**load, "2": bad_format}), "value_not_in_list").input_name == "format"
    too_fast = {"2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
                "3": {"class_type": "CreateVideo", "inputs": {"images": ["2", 0], "fps": 240.0}},
                "4": {**save, "inputs": {**save["inputs"], "video": ["3", 0]}}}
    assert _only(validation_error({**load, **too_fast}), "value_bigger_than_max").input_name == "fps"
    wrong_type = {"2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
                  "3": {**save, "inputs": {**save["inputs"], "video": ["2", 0]}}}
    assert _only(validation_error({**load, **wrong_type}), "return_type_mismatch").input_name == "video"
    assert _only(validation_error({**load}), "prompt_no_outputs") is not None
    # A video without audio gives AUDIO None, which CreateVideo accepts.
    result = executor.run({**load, "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
                           "3": {"class_type": "CreateVideo", "inputs": {"images": ["2", 0], "fps": 8.0, "audio": ["2", 1]}},
                           "4": {**save, "inputs": {**save["inputs"], "video": ["3", 0]}}})
    assert result.value("2", 1) is None


def test_ui_workflow_with_upload_widgets_converts_and_runs(media_dirs):
    _write_clip(media_dirs["input_dir"] / "clip.mp4", frames=3, with_audio=True)
    executor = Executor(**media_dirs)

    def ui_node(id_, type_, widgets, inputs=(), links=None):
        return {"id": id_, "type": type_, "mode": 0, "widgets_values": widgets,
                "inputs": [{"name": n, "type": t, "link": l} for n, t, l in inputs],
                "outputs": [{"name": "out", "type": "*", "links": links or []}]}

    workflow = {
        "nodes": [
            ui_node(1, "LoadVideo", ["clip.mp4", "image"]),  # combo + the upload button's saved value
            ui_node(2, "GetVideoComponents", [], [("video", "VIDEO", 1)]),
            ui_node(3, "LoadAudio", ["clip.mp4", None, None]),  # combo + audio player + upload button
            ui_node(4, "CreateVideo", [12.0], [("images", "IMAGE", 2), ("audio", "AUDIO", 3)]),
            ui_node(5, "SaveVideo", ["video/ComfyUI", "auto", "auto"], [("video", "VIDEO", 4)]),
        ],
        "links": [[1, 1, 0, 2, 0, "VIDEO"], [2, 2, 0, 4, 0, "IMAGE"], [3, 3, 0, 4, 1, "AUDIO"], [4, 4, 0, 5, 0, "VIDEO"]],
    }
    api = executor.to_api(workflow)
    assert api["1"]["inputs"] == {"file": "clip.mp4"} and api["3"]["inputs"] == {"audio": "clip.mp4"}
    assert api["4"]["inputs"] == {"fps": 12.0, "images": ["2", 0], "audio": ["3", 0]}
    assert api["5"]["inputs"] == {"filename_prefix": "video/ComfyUI", "format": "auto", "codec": "auto", "video": ["4", 0]}
    result = executor.run(workflow)
    from latentsync_core.media.video import probe_video

    info = probe_video(media_dirs["output_dir"] / "video" / result.ui["5"]["images"][0]["filename"])
    assert (info.num_frames, info.fps, info.has_audio) == (3, Fraction(12), True)


def test_vae_loader_lists_files_like_comfyui_and_loads_them(media_dirs):
    vae_module = pytest.importorskip("latentsync_core.vae")
    from latentsync_core.vae.fixture import write_vae_fixture

    write_vae_fixture(media_dirs["models_dir"], seed=3)

    class KeepVAE:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"vae": ("VAE",)}}

        RETURN_TYPES = ()
        FUNCTION = "run"
        OUTPUT_NODE = True

        def run(self, vae):
            return {"ui": {"vae": [vae]}}

    executor = Executor({"KeepVAE": KeepVAE}, **media_dirs)
    options = executor.node_mappings["VAELoader"].INPUT_TYPES()["required"]["vae_name"][0]
    assert options == ["sd-vae-ft-mse.safetensors", "sd-vae-ft-mse/diffusion_pytorch_model.safetensors", "pixel_space"]
    name = "sd-vae-ft-mse/diffusion_pytorch_model.safetensors"
    result = executor.run({"1": {"class_type": "VAELoader", "inputs": {"vae_name": name}},
                           "2": {"class_type": "KeepVAE", "inputs": {"vae": ["1", 0]}}})
    loaded = result.ui["2"]["vae"][0]
    direct = vae_module.load_vae(media_dirs["models_dir"] / "vae" / name)
    assert type(loaded) is type(direct)
    mine, theirs = loaded.model.state_dict(), direct.model.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    with pytest.raises(WorkflowValidationError) as info:
        executor.validate({"1": {"class_type": "VAELoader", "inputs": {"vae_name": "sd-vae-ft-mse"}},
                           "2": {"class_type": "KeepVAE", "inputs": {"vae": ["1", 0]}}})
    assert info.value.types == {"value_not_in_list"}  # folders are not listed by ComfyUI's VAELoader either
