"""Validate and run API-format ComfyUI prompts in-process, the way ComfyUI's executor does.

ComfyUI cannot be installed from a package registry, so CI runs the pack's workflows here. The
rules follow ComfyUI's `execution.validate_prompt` / `validate_inputs` and its executor, error type
names included, so that a prompt rejected by ComfyUI is rejected here too:

* every node needs a known `class_type`; at least one `OUTPUT_NODE` (else "prompt_no_outputs");
* only nodes an output depends on are validated and run, each once, in dependency order;
* linked inputs: `[node_id, slot]`, the slot's RETURN_TYPE must match the input type (exact match,
  a custom `__ne__` on either side, or overlapping comma-separated type lists; a plain "*" string
  is not a wildcard in ComfyUI's V1 check and is not one here);
* constant inputs: INT/FLOAT/STRING/BOOLEAN values are coerced with int()/float()/str()/bool(),
  then min, max and COMBO choices are checked unless the node's VALIDATE_INPUTS takes that input;
  VALIDATE_INPUTS gets the constants (links as None) and must return True;
* hidden inputs (UNIQUE_ID, PROMPT, EXTRA_PNGINFO, ...) are filled in; INPUT_IS_LIST /
  OUTPUT_IS_LIST list mapping works as in ComfyUI; a node returns a tuple of len(RETURN_TYPES)
  values or {"ui": ..., "result": (...)}.

Deliberately stricter than ComfyUI (each of these would fail or misbehave there later anyway):
a prompt is rejected when ANY output fails validation (ComfyUI drops the bad outputs and runs the
rest); a "COMBO" input (the V1 form of V3 combos, options in the extra dict) is checked against its
options like a list-typed one; a cycle or a link to a missing node/slot is reported as such
instead of as an exception; a node returning the wrong number of values, None, or a non-tuple is
an ExecutionError. Not supported (clear errors): node expansion ("expand"), ExecutionBlocker, V3
`io.ComfyNode` classes. Lazy inputs are evaluated eagerly.
"""
from __future__ import annotations

import asyncio
import copy
import inspect
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

# Hidden input kinds a V1 node may request, and what ComfyUI fills in for each.
_HIDDEN_KINDS = ("PROMPT", "DYNPROMPT", "EXTRA_PNGINFO", "UNIQUE_ID", "AUTH_TOKEN_COMFY_ORG", "API_KEY_COMFY_ORG")
_COMBO_LIST_LIMIT = 20  # ComfyUI leaves longer option lists out of its error details


# --------------------------------------------------------------------------- errors
@dataclass(frozen=True)
class ValidationIssue:
    """One problem with a prompt; `type` uses ComfyUI's names (e.g. "value_bigger_than_max")."""

    type: str
    message: str
    node_id: str | None = None
    class_type: str | None = None
    input_name: str | None = None
    details: str = ""

    def __str__(self) -> str:
        where = ""
        if self.node_id is not None:
            where = f"node {self.node_id} ({self.class_type})"
            if self.input_name is not None:
                where += f" input {self.input_name!r}"
            where += ": "
        details = f" [{self.details}]" if self.details else ""
        return f"{where}{self.type}: {self.message}{details}"


class WorkflowValidationError(ValueError):
    """The prompt would be refused by ComfyUI; `errors` lists every problem found."""

    def __init__(self, errors: list[ValidationIssue]):
        self.errors = list(errors)
        lines = [f"workflow failed validation ({len(self.errors)} error(s)):"]
        lines += [f"  - {issue}" for issue in self.errors]
        super().__init__("\n".join(lines))

    @property
    def types(self) -> set[str]:
        return {issue.type for issue in self.errors}

    def issues_of(self, type_: str) -> list[ValidationIssue]:
        return [issue for issue in self.errors if issue.type == type_]


class ExecutionError(RuntimeError):
    """A node failed while running; the node's own exception (if any) is chained as __cause__."""

    def __init__(self, node_id: str, class_type: str, message: str):
        self.node_id = node_id
        self.class_type = class_type
        super().__init__(f"node {node_id} ({class_type}) failed: {message}")


# --------------------------------------------------------------------------- results
@dataclass
class ValidatedPrompt:
    prompt: dict[str, dict]  # a copy with constants coerced as ComfyUI coerces them
    outputs: list[str]  # ids of the output nodes, sorted
    warnings: list[ValidationIssue] = field(default_factory=list)  # ignored inputs (ComfyUI drops them silently)


@dataclass
class WorkflowResult:
    """What a run produced.

    `outputs[node_id]` holds ComfyUI's internal form: one list per output slot, holding one value
    per call of the node (a single value for ordinary nodes; OUTPUT_IS_LIST slots hold the whole
    list). `value()` unwraps the ordinary case. `ui[node_id]` is the merged "ui" dict a node
    returned (output nodes); `executed` lists node ids in the order they ran.
    """

    prompt: dict[str, dict]
    outputs: dict[str, list[list[Any]]]
    ui: dict[str, dict[str, list]]
    executed: list[str]

    def value(self, node_id: str, slot: int = 0) -> Any:
        values = self.outputs[str(node_id)][slot]
        if len(values) != 1:
            raise ValueError(f"node {node_id} slot {slot} holds {len(values)} values (a list output); read outputs[...] instead")
        return values[0]


# --------------------------------------------------------------------------- node-definition helpers
def _input_types(class_def: type) -> dict[str, dict]:
    spec = class_def.INPUT_TYPES()
    if not isinstance(spec, dict):
        raise TypeError(f"{class_def.__name__}.INPUT_TYPES() returned {type(spec).__name__}, not a dict")
    return spec


def input_info(spec: Mapping[str, Mapping], name: str) -> tuple[Any, str | None, dict]:
    """(type, category, extra options) of input `name`; category None when the node has no such input."""
    for category in ("required", "optional", "hidden"):
        group = spec.get(category) or {}
        if name in group:
            entry = group[name]
            if isinstance(entry, (tuple, list)):
                input_type = entry[0] if len(entry) > 0 else None
                extra = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            else:  # hidden inputs are written as a bare string in V1 nodes
                input_type, extra = entry, {}
            return input_type, category, extra
    return None, None, {}


def declared_inputs(spec: Mapping[str, Mapping]) -> list[str]:
    """Required then optional input names, in declaration order (hidden inputs excluded)."""
    return [*(spec.get("required") or {}), *(spec.get("optional") or {})]


def combo_options(input_type: Any, extra: Mapping) -> list | None:
    """The allowed values of a combo input: a list type (V1) or "COMBO" with options (V3 in V1 form)."""
    if isinstance(input_type, (list, tuple)):
        return list(input_type)
    if input_type == "COMBO" and isinstance(extra.get("options"), (list, tuple)):
        return list(extra["options"])
    return None


def types_compatible(received: Any, expected: Any) -> bool:
    """ComfyUI's link type rule (comfy_execution.validation.validate_node_input, non-strict)."""
    # `not a != b` rather than `a == b`: "any type" classes used by node packs override only __ne__.
    if not received != expected:
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    received_set = {t.strip() for t in received.split(",")}
    expected_set = {t.strip() for t in expected.split(",")}
    return bool(received_set & expected_set)


def _node_contract_problems(class_def: Any) -> list[str]:
    if not isinstance(class_def, type):
        return [f"mapping value is {type(class_def).__name__}, not a class"]
    if hasattr(class_def, "define_schema") and not hasattr(class_def, "FUNCTION"):
        return ["V3 io.ComfyNode classes are not supported by the harness; give a V1 class"]
    problems = []
    if not callable(getattr(class_def, "INPUT_TYPES", None)):
        problems.append("no INPUT_TYPES classmethod")
    if not isinstance(getattr(class_def, "RETURN_TYPES", None), (tuple, list)):
        problems.append("RETURN_TYPES missing or not a tuple")
    function = getattr(class_def, "FUNCTION", None)
    if not isinstance(function, str) or not callable(getattr(class_def, function, None)):
        problems.append(f"FUNCTION {function!r} does not name a method")
    return problems


def _is_output_node(class_def: type) -> bool:
    return getattr(class_def, "OUTPUT_NODE", False) is True


def _link_parts(value: Any) -> tuple[Any, Any] | None:
    """ComfyUI treats any list constant as a link; this is its [node_id, slot] when it has two parts."""
    if isinstance(value, list) and len(value) == 2:
        return value[0], value[1]
    return None


def _hidden_value(kind: Any, node_id: str, prompt: dict, extra_data: Mapping) -> tuple[bool, Any]:
    if isinstance(kind, (tuple, list)):  # V3 nodes seen through INPUT_TYPES write ("PROMPT",)
        kind = kind[0] if kind else None
    values = {
        "PROMPT": prompt,
        "DYNPROMPT": None,  # ComfyUI's DynamicPrompt object; no node of this pack needs it
        "EXTRA_PNGINFO": extra_data.get("extra_pnginfo"),
        "UNIQUE_ID": node_id,
        "AUTH_TOKEN_COMFY_ORG": extra_data.get("auth_token_comfy_org"),
        "API_KEY_COMFY_ORG": extra_data.get("api_key_comfy_org"),
    }
    if kind in values:
        return True, values[kind]
    return False, None


def _call(function, kwargs: dict) -> Any:
    result = function(**kwargs)
    if inspect.isawaitable(result):  # async node functions are awaited to completion
        result = asyncio.run(_await(result))
    return result


async def _await(awaitable):
    return await awaitable


# --------------------------------------------------------------------------- validation
class _Validator:
    def __init__(self, prompt: dict[str, dict], mappings: Mapping[str, type], extra_data: Mapping):
        self.prompt = prompt
        self.mappings = mappings
        self.extra_data = extra_data
        self.errors: list[ValidationIssue] = []
        self.warnings: list[ValidationIssue] = []
        self.state: dict[str, bool] = {}  # node id -> valid, once finished
        self.visiting: set[str] = set()

    def issue(self, type_: str, message: str, node_id=None, input_name=None, details: str = "") -> None:
        node = self.prompt.get(node_id) if node_id is not None else None
        class_type = node.get("class_type") if isinstance(node, dict) else None
        self.errors.append(ValidationIssue(type_, message, node_id, class_type, input_name, details))

    # ---- whole prompt
    def run(self) -> ValidatedPrompt:
        if not isinstance(self.prompt, dict):
            raise WorkflowValidationError([ValidationIssue("invalid_prompt", "an API prompt is a dict of node id -> node")])
        self.check_nodes()
        if self.errors:  # ComfyUI stops at the first unknown node; nothing below is meaningful then
            raise WorkflowValidationError(self.errors)
        outputs = sorted((node_id for node_id, node in self.prompt.items()
                          if _is_output_node(self.mappings[node["class_type"]])), key=_id_sort_key)
        if not outputs:
            raise WorkflowValidationError([ValidationIssue(
                "prompt_no_outputs", "Prompt has no outputs: no node of the prompt has OUTPUT_NODE = True")])
        for node_id in outputs:
            self.validate_node(node_id)
        if self.errors:
            raise WorkflowValidationError(self.errors)
        return ValidatedPrompt(self.prompt, outputs, self.warnings)

    def check_nodes(self) -> None:
        for node_id, node in self.prompt.items():
            if not isinstance(node_id, str):
                self.issue("invalid_prompt", f"node id {node_id!r} is not a string (API prompts key nodes by string ids)")
                continue
            if not isinstance(node, dict) or "class_type" not in node:
                self.issue("missing_node_type", f"Node '#{node_id}' has no class_type", node_id)
                continue
            class_type = node["class_type"]
            if class_type not in self.mappings:
                self.issue("missing_node_type",
                           f"Node '{class_type}' not found. The custom node may not be installed.", node_id)
                continue
            problems = _node_contract_problems(self.mappings[class_type])
            if problems:
                self.issue("invalid_node_class", f"{class_type} is not a usable ComfyUI node: {'; '.join(problems)}", node_id)
            if not isinstance(node.get("inputs"), dict):
                self.issue("invalid_prompt", "node has no 'inputs' dict", node_id)

    # ---- one node (depth first from the outputs, like ComfyUI's recursive validate_inputs)
    def validate_node(self, node_id: str) -> bool:
        if node_id in self.state:
            return self.state[node_id]
        if node_id in self.visiting:
            self.issue("dependency_cycle", "Dependency cycle detected: this node depends on its own output", node_id)
            return False
        self.visiting.add(node_id)
        try:
            valid = self._validate_node(node_id)
        except Exception as ex:  # a crashing INPUT_TYPES / VALIDATE_INPUTS is reported, as in ComfyUI
            self.issue("exception_during_validation", "Exception when validating node", node_id,
                       details=f"{type(ex).__name__}: {ex}")
            valid = False
        self.visiting.discard(node_id)
        self.state[node_id] = valid
        return valid

    def _validate_node(self, node_id: str) -> bool:
        node = self.prompt[node_id]
        inputs: dict = node["inputs"]
        class_def = self.mappings[node["class_type"]]
        spec = _input_types(class_def)
        validate_fn = getattr(class_def, "VALIDATE_INPUTS", None)
        validate_args: list[str] = []
        validate_kwargs = False
        if validate_fn is not None:
            argspec = inspect.getfullargspec(validate_fn)
            validate_args, validate_kwargs = argspec.args, argspec.varkw is not None
        first_error = len(self.errors)
        upstream_valid = True
        received_types: dict[str, Any] = {}

        for name in inputs:
            _, category, _ = input_info(spec, name)
            if category is None:
                self._check_undeclared(node_id, name, inputs[name])
            elif category == "hidden":
                self.warnings.append(ValidationIssue(
                    "hidden_input_overridden", "hidden inputs are filled in by the executor; the prompt's value is ignored",
                    node_id, node["class_type"], name))

        for name in declared_inputs(spec):
            input_type, category, extra = input_info(spec, name)
            if name not in inputs:
                if category == "required":
                    self.issue("required_input_missing", "Required input is missing", node_id, name)
                continue
            value = inputs[name]
            if isinstance(value, list):
                source = self._check_link(node_id, name, value, input_type, "input_types" not in validate_args)
                if source is None:
                    continue
                received_types[name] = source[1]
                if not self.validate_node(source[0]):
                    upstream_valid = False
                continue
            skip_value_checks = name in validate_args or validate_kwargs
            self._check_constant(node_id, inputs, name, input_type, extra, skip_value_checks)

        def own_errors() -> int:  # upstream nodes append their errors to the same list
            return sum(1 for issue in self.errors[first_error:] if issue.node_id == node_id)

        # ComfyUI also runs VALIDATE_INPUTS on nodes that already failed; skipping it then only avoids
        # a second, derived error (e.g. a TypeError for the missing argument).
        if validate_fn is not None and (validate_args or validate_kwargs) and own_errors() == 0:
            self._run_validate_inputs(node_id, class_def, spec, validate_fn, validate_args, validate_kwargs, received_types)
        return upstream_valid and own_errors() == 0

    def _check_undeclared(self, node_id: str, name: str, value: Any) -> None:
        # ComfyUI drops unknown constants silently but still follows (and passes on) unknown links.
        if isinstance(value, list):
            source = self._check_link(node_id, name, value, None, check_type=False)
            if source is not None:
                self.validate_node(source[0])
        else:
            self.warnings.append(ValidationIssue(
                "unknown_input_ignored", "the node declares no such input; ComfyUI ignores it",
                node_id, self.prompt[node_id]["class_type"], name, repr(value)))

    def _check_link(self, node_id, name, value, input_type, check_type: bool) -> tuple[str, Any] | None:
        parts = _link_parts(value)
        if parts is None:
            self.issue("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                       node_id, name, details=repr(value))
            return None
        source_id, slot = parts
        if not isinstance(source_id, str) or source_id not in self.prompt:
            self.issue("bad_linked_input", f"linked node {source_id!r} is not in the prompt", node_id, name)
            return None
        return_types = tuple(getattr(self.mappings[self.prompt[source_id]["class_type"]], "RETURN_TYPES", ()))
        if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot < len(return_types):
            self.issue("bad_linked_input",
                       f"node {source_id} ({self.prompt[source_id]['class_type']}) has no output slot {slot!r} "
                       f"(it has {len(return_types)})", node_id, name)
            return None
        received = return_types[slot]
        if check_type and input_type is not None and not types_compatible(received, input_type):
            self.issue("return_type_mismatch", "Return type mismatch between linked nodes", node_id, name,
                       details=f"{name}, received_type({received}) mismatch input_type({input_type})")
            return None
        return source_id, received

    def _check_constant(self, node_id, inputs, name, input_type, extra, skip_value_checks: bool) -> None:
        value = inputs[name]
        if isinstance(value, dict) and "__value__" in value:  # how the frontend sends list-valued widgets
            value = inputs[name] = value["__value__"]
        converters = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
        if isinstance(input_type, str) and input_type in converters:
            try:
                value = inputs[name] = converters[input_type](value)
            except Exception as ex:
                self.issue("invalid_input_type", f"Failed to convert an input value to a {input_type} value",
                           node_id, name, details=f"{name}, {value!r}, {ex}")
                return
        if skip_value_checks:
            return
        if "min" in extra and value < extra["min"]:
            self.issue("value_smaller_than_min", f"Value {value} smaller than min of {extra['min']}", node_id, name)
            return
        if "max" in extra and value > extra["max"]:
            self.issue("value_bigger_than_max", f"Value {value} bigger than max of {extra['max']}", node_id, name)
            return
        options = combo_options(input_type, extra)
        if options is not None and value not in options:
            listed = f"(list of length {len(options)})" if len(options) > _COMBO_LIST_LIMIT else str(options)
            self.issue("value_not_in_list", "Value not in list", node_id, name, details=f"{name}: '{value}' not in {listed}")

    def _run_validate_inputs(self, node_id, class_def, spec, validate_fn, args, has_kwargs, received_types) -> None:
        node = self.prompt[node_id]
        available: dict[str, Any] = {}
        for name, value in node["inputs"].items():
            _, category, _ = input_info(spec, name)
            if isinstance(value, list):
                available[name] = None  # linked values do not exist yet at validation time
            elif category is not None:
                available[name] = value
        for name, kind in (spec.get("hidden") or {}).items():
            known, value = _hidden_value(kind, node_id, {}, self.extra_data)
            if known:
                available[name] = value
        kwargs = {k: v for k, v in available.items() if has_kwargs or k in args}
        if "input_types" in args:
            kwargs["input_types"] = received_types
        if getattr(class_def, "INPUT_IS_LIST", False):  # such nodes see every argument as a list, here too
            kwargs = {k: [v] for k, v in kwargs.items()}
        result = _call(validate_fn, kwargs)
        if result is not True:
            reason = "" if result is False else f" - {result}"
            for name in kwargs:
                self.issue("custom_validation_failed", "Custom validation failed for node", node_id, name,
                           details=f"{name}{reason}")


def _id_sort_key(node_id: str) -> tuple:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def validate_prompt(prompt: Mapping[str, dict], node_mappings: Mapping[str, type],
                    extra_data: Mapping | None = None) -> ValidatedPrompt:
    """Check `prompt` as ComfyUI would before queueing it; raise WorkflowValidationError listing every problem."""
    working = copy.deepcopy(dict(prompt)) if isinstance(prompt, Mapping) else prompt
    return _Validator(working, node_mappings, extra_data or {}).run()


# --------------------------------------------------------------------------- execution
def _execution_order(prompt: dict[str, dict], outputs: list[str]) -> list[str]:
    """Nodes the outputs need, each once, dependencies first (a topological dissolve, like ComfyUI's)."""
    needed: dict[str, set[str]] = {}  # node -> nodes it waits for
    stack = list(outputs)
    while stack:
        node_id = stack.pop()
        if node_id in needed:
            continue
        parents = {v[0] for v in prompt[node_id]["inputs"].values() if _link_parts(v) is not None}
        needed[node_id] = parents
        stack.extend(parents)
    waiting = {node_id: set(parents) for node_id, parents in needed.items()}
    output_set = set(outputs)
    order: list[str] = []
    while waiting:
        ready = sorted((n for n, parents in waiting.items() if not parents), key=_id_sort_key)
        if not ready:
            raise WorkflowValidationError([ValidationIssue(
                "dependency_cycle", f"Dependency cycle detected among nodes {sorted(waiting, key=_id_sort_key)}")])
        # As ComfyUI does: an output node that is ready runs first, so its result appears early.
        node_id = next((n for n in ready if n in output_set), ready[0])
        order.append(node_id)
        del waiting[node_id]
        for parents in waiting.values():
            parents.discard(node_id)
    return order


class _Runner:
    def __init__(self, prompt: dict[str, dict], mappings: Mapping[str, type], extra_data: Mapping):
        self.prompt = prompt
        self.mappings = mappings
        self.extra_data = extra_data
        self.outputs: dict[str, list[list[Any]]] = {}
        self.ui: dict[str, dict[str, list]] = {}

    def run_node(self, node_id: str) -> None:
        class_type = self.prompt[node_id]["class_type"]
        class_def = self.mappings[class_type]
        try:
            input_lists = self.gather_inputs(node_id, class_def)
            instance = class_def()
            function = getattr(instance, class_def.FUNCTION)
            returns = [_call(function, kwargs) for kwargs in self.calls(node_id, class_def, input_lists)]
        except ExecutionError:
            raise
        except Exception as ex:
            raise ExecutionError(node_id, class_type, f"{type(ex).__name__}: {ex}") from ex
        self.outputs[node_id], ui = self.merge_returns(node_id, class_def, returns)
        if ui:
            self.ui[node_id] = ui

    def gather_inputs(self, node_id: str, class_def: type) -> dict[str, list]:
        """Every input as a list of values (ComfyUI's internal form: constants become one-item lists)."""
        spec = _input_types(class_def)
        data: dict[str, list] = {}
        for name, value in self.prompt[node_id]["inputs"].items():
            _, category, extra = input_info(spec, name)
            parts = _link_parts(value)
            if parts is not None and not extra.get("rawLink", False):
                source_id, slot = parts
                data[name] = self.outputs[source_id][slot]
            elif category is not None:
                data[name] = [value]
        for name, kind in (spec.get("hidden") or {}).items():
            known, value = _hidden_value(kind, node_id, self.prompt, self.extra_data)
            if known:
                data[name] = [value]
        return data

    def calls(self, node_id: str, class_def: type, input_lists: dict[str, list]) -> Iterator[dict]:
        """Keyword arguments of each call: one call with whole lists, or one per list item (shorter lists repeat their last item)."""
        if getattr(class_def, "INPUT_IS_LIST", False):
            yield dict(input_lists)
            return
        empty = [name for name, values in input_lists.items() if len(values) == 0]
        if empty:
            raise ExecutionError(node_id, self.prompt[node_id]["class_type"],
                                 f"input(s) {empty} received an empty list from an OUTPUT_IS_LIST node; nothing to run on")
        count = max((len(values) for values in input_lists.values()), default=1)
        for index in range(count):
            yield {name: values[min(index, len(values) - 1)] for name, values in input_lists.items()}

    def merge_returns(self, node_id: str, class_def: type, returns: list) -> tuple[list[list[Any]], dict]:
        class_type = self.prompt[node_id]["class_type"]
        return_types = tuple(class_def.RETURN_TYPES)
        results: list[tuple] = []
        uis: list[dict] = []
        for value in returns:
            if isinstance(value, dict):
                if "expand" in value:
                    raise ExecutionError(node_id, class_type, "node expansion ('expand' results) is not supported by the harness")
                if "ui" in value:
                    uis.append(value["ui"])
                if "result" in value:
                    results.append(self.checked_tuple(node_id, class_type, return_types, value["result"]))
                elif return_types:
                    raise ExecutionError(node_id, class_type,
                                         f"returned a dict without 'result' but declares RETURN_TYPES {return_types}")
            else:
                results.append(self.checked_tuple(node_id, class_type, return_types, value))
        output_is_list = tuple(getattr(class_def, "OUTPUT_IS_LIST", None) or (False,) * len(return_types))
        if len(output_is_list) != len(return_types):
            raise ExecutionError(node_id, class_type,
                                 f"OUTPUT_IS_LIST has {len(output_is_list)} entries for {len(return_types)} RETURN_TYPES")
        merged: list[list[Any]] = []
        for slot, is_list in enumerate(output_is_list):
            values: list[Any] = []
            for result in results:
                if is_list:
                    if not isinstance(result[slot], (list, tuple)):
                        raise ExecutionError(node_id, class_type, f"OUTPUT_IS_LIST slot {slot} returned "
                                                                  f"{type(result[slot]).__name__}, not a list")
                    values.extend(result[slot])
                else:
                    values.append(result[slot])
            merged.append(values)
        ui = {key: [item for part in uis for item in part[key]] for key in uis[0]} if uis else {}
        return merged, ui

    @staticmethod
    def checked_tuple(node_id, class_type, return_types: tuple, value: Any) -> tuple:
        if not isinstance(value, (tuple, list)):
            raise ExecutionError(node_id, class_type, f"returned {type(value).__name__}, not a tuple of "
                                                      f"{len(return_types)} value(s) for RETURN_TYPES {return_types}")
        if len(value) != len(return_types):
            raise ExecutionError(node_id, class_type, f"returned {len(value)} value(s) but RETURN_TYPES "
                                                      f"{return_types} declares {len(return_types)}")
        return tuple(value)


def execute_prompt(validated: ValidatedPrompt, node_mappings: Mapping[str, type],
                   extra_data: Mapping | None = None) -> WorkflowResult:
    """Run a prompt that `validate_prompt` accepted."""
    runner = _Runner(validated.prompt, node_mappings, extra_data or {})
    order = _execution_order(validated.prompt, validated.outputs)
    for node_id in order:
        runner.run_node(node_id)
    return WorkflowResult(validated.prompt, runner.outputs, runner.ui, order)


# --------------------------------------------------------------------------- the public entry points
@dataclass
class HarnessDirs:
    """ComfyUI's folders as the core-node doubles see them (None: that folder is not available)."""

    input_dir: Path | None = None
    output_dir: Path | None = None
    models_dir: Path | None = None
    temp_dir: Path | None = None


class Executor:
    """A ComfyUI stand-in: the pack's nodes plus the core-node doubles, over the given folders.

    While it validates or runs, LATENTSYNC_MODELS_DIR / LATENTSYNC_OUTPUT_DIR / LATENTSYNC_TEMP_DIR
    point at its folders, so the pack's nodes (through latentsync_core.host) see the same models and
    output folders as the doubles.
    """

    def __init__(self, node_mappings: Mapping[str, type] | None = None, *, input_dir=None, output_dir=None,
                 models_dir=None, temp_dir=None, include_core_nodes: bool = True,
                 extra_data: Mapping | None = None):
        self.dirs = HarnessDirs(*(Path(d) if d is not None else None for d in (input_dir, output_dir, models_dir, temp_dir)))
        self.extra_data = dict(extra_data or {})
        mappings: dict[str, type] = {}
        if include_core_nodes:
            from .core_nodes import core_node_mappings

            mappings.update(core_node_mappings(self.dirs))
        clashes = sorted(set(mappings) & set(node_mappings or {}))
        if clashes:
            raise ValueError(f"node classes {clashes} clash with ComfyUI core nodes; rename them")
        mappings.update(node_mappings or {})
        self.node_mappings: dict[str, type] = mappings

    @contextmanager
    def _host_environment(self) -> Iterator[None]:
        wanted = {"LATENTSYNC_MODELS_DIR": self.dirs.models_dir, "LATENTSYNC_OUTPUT_DIR": self.dirs.output_dir,
                  "LATENTSYNC_TEMP_DIR": self.dirs.temp_dir}
        saved = {key: os.environ.get(key) for key in wanted}
        try:
            for key, path in wanted.items():
                if path is not None:
                    os.environ[key] = str(path)
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def to_api(self, workflow: Mapping) -> dict[str, dict]:
        """`workflow` as an API prompt (converted when it is in the frontend's UI format)."""
        from .ui_to_api import is_ui_workflow, ui_to_api

        if is_ui_workflow(workflow):
            with self._host_environment():
                return ui_to_api(workflow, self.node_mappings)
        return copy.deepcopy(dict(workflow))

    def validate(self, workflow: Mapping) -> ValidatedPrompt:
        prompt = self.to_api(workflow)
        with self._host_environment():
            return validate_prompt(prompt, self.node_mappings, self.extra_data)

    def run(self, workflow: Mapping) -> WorkflowResult:
        validated = self.validate(workflow)
        with self._host_environment():
            return execute_prompt(validated, self.node_mappings, self.extra_data)


def run_workflow(workflow: Mapping, node_mappings: Mapping[str, type] | None = None, **executor_options) -> WorkflowResult:
    """Validate then run `workflow` (API or UI format); options are Executor's (input_dir=, output_dir=, models_dir=, ...)."""
    return Executor(node_mappings, **executor_options).run(workflow)


def validate_workflow(workflow: Mapping, node_mappings: Mapping[str, type] | None = None, **executor_options) -> ValidatedPrompt:
    """Only the validation half of run_workflow."""
    return Executor(node_mappings, **executor_options).validate(workflow)


def pack_node_mappings() -> dict[str, type]:
    """This pack's NODE_CLASS_MAPPINGS (nodes/__init__.py), as ComfyUI would register them."""
    import importlib

    return dict(importlib.import_module("nodes").NODE_CLASS_MAPPINGS)
