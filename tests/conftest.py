"""Shared test fixtures: the real media folder (skip when absent) and tiny random-weight models."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("LATENTSYNC_PROGRESS", "0")

COMFYUI_TESTS = Path(__file__).resolve().parent / "comfyui"


def _in_comfyui_interpreter() -> bool:
    """True under ComfyUI's own venv ($COMFYUI_PYTHON) or wherever comfy_api is importable already."""
    import importlib.util
    import sys

    comfy_python = os.environ.get("COMFYUI_PYTHON")
    if comfy_python and Path(os.path.abspath(comfy_python)).parent.parent == Path(os.path.abspath(sys.prefix)):
        return True
    return importlib.util.find_spec("comfy_api") is not None


def pytest_ignore_collect(collection_path, config):
    """tests/comfyui import ComfyUI itself and run under its venv: the core run (./.venv) leaves them out,
    unless they are asked for by path, where their conftest fails loudly or skips with the reason."""
    if collection_path != COMFYUI_TESTS:
        return None
    asked = any(COMFYUI_TESTS == Path(os.path.abspath(str(arg).split("::")[0])) or
                COMFYUI_TESTS in Path(os.path.abspath(str(arg).split("::")[0])).parents for arg in config.args)
    return None if asked or _in_comfyui_interpreter() else True


def _media_dir() -> Path:
    return Path(os.environ.get("LATENTSYNC_MEDIA_DIR", REPO_ROOT.parent / "shared" / "media"))


@pytest.fixture(scope="session")
def media_dir() -> Path:
    path = _media_dir()
    if not (path / "demo1_video.mp4").is_file():
        pytest.skip(f"real test media not found in {path} (set LATENTSYNC_MEDIA_DIR or provide ../shared/media)")
    return path


@pytest.fixture(scope="session")
def fixture_models(tmp_path_factory) -> Path:
    """A models root filled by `python -m latentsync_core.fixtures`, also exported as LATENTSYNC_MODELS_DIR."""
    from latentsync_core.fixtures import write_fixtures

    root = tmp_path_factory.mktemp("models")
    write_fixtures(root)
    previous = os.environ.get("LATENTSYNC_MODELS_DIR")
    os.environ["LATENTSYNC_MODELS_DIR"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("LATENTSYNC_MODELS_DIR", None)
    else:
        os.environ["LATENTSYNC_MODELS_DIR"] = previous
