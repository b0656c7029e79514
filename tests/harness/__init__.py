"""Run ComfyUI workflows in-process against this pack's nodes and doubles of ComfyUI's core nodes.

    from tests.harness import run_workflow, pack_node_mappings
    result = run_workflow(workflow_json, pack_node_mappings(),
                          input_dir=tmp_path / "input", output_dir=tmp_path / "output", models_dir=fixture_models)
    result.value("5")          # output slot 0 of node "5"
    result.ui["9"]["images"]   # what an output node reported

`workflow_json` may be an API prompt or a workflow saved by the frontend (converted by ui_to_api).
Invalid prompts raise WorkflowValidationError (`.errors`, `.types`); failing nodes raise
ExecutionError naming the node, with the node's exception as `__cause__`.
"""
from .core_nodes import VideoComponents, VideoFromComponents, VideoFromFile, core_node_mappings
from .executor import (
    ExecutionError,
    Executor,
    HarnessDirs,
    ValidatedPrompt,
    ValidationIssue,
    WorkflowResult,
    WorkflowValidationError,
    pack_node_mappings,
    run_workflow,
    validate_prompt,
    validate_workflow,
)
from .ui_to_api import UiConversionError, is_ui_workflow, ui_to_api

__all__ = [
    "ExecutionError", "Executor", "HarnessDirs", "UiConversionError", "ValidatedPrompt", "ValidationIssue",
    "VideoComponents", "VideoFromComponents", "VideoFromFile", "WorkflowResult", "WorkflowValidationError",
    "core_node_mappings", "is_ui_workflow", "pack_node_mappings", "run_workflow", "ui_to_api",
    "validate_prompt", "validate_workflow",
]
