"""Node tests against the real ComfyUI source: `comfy_api` comes from $COMFYUI_DIR.

Run them with ComfyUI's own venv, which has ComfyUI's and the pack's requirements
(`$COMFYUI_PYTHON -m pytest tests/comfyui`). Without COMFYUI_DIR they are skipped with the reason, or
fail at once when CI=true, so CI can never pass by skipping them. ComfyUI's folders (models, input,
output, temp) are pointed at a fresh temporary folder, so the tests never touch a real installation.
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

COMFYUI_DIR = os.environ.get("COMFYUI_DIR", "")
SKIP_REASON = ("COMFYUI_DIR is not set: these tests need ComfyUI 0.3.64's source and venv (run "
               "`eval \"$(bash ../shared/comfyui/setup.sh .comfyui --with-pack . --name ComfyUI-LatentSync)\"`, "
               "then `$COMFYUI_PYTHON -m pytest tests/comfyui`)")

if not COMFYUI_DIR:
    if os.environ.get("CI", "").lower() == "true":
        raise RuntimeError(f"CI=true but {SKIP_REASON}")
    AVAILABLE = False
else:
    if not (Path(COMFYUI_DIR) / "comfy_api").is_dir():
        raise RuntimeError(f"COMFYUI_DIR={COMFYUI_DIR} holds no ComfyUI source (no comfy_api folder)")
    # The checkout's `tests` (a namespace package) is bound before ComfyUI's own regular `tests` package
    # comes on the path, which would otherwise win; ComfyUI goes last so its top-level `nodes` module
    # does not shadow the pack's nodes/ either.
    import tests  # noqa: F401

    sys.path.append(COMFYUI_DIR)
    from comfy.cli_args import args

    args.cpu = True  # before comfy.model_management is imported: this machine's torch has no CUDA

    import folder_paths

    BASE = Path(tempfile.mkdtemp(prefix="latentsync-comfyui-tests-"))
    atexit.register(shutil.rmtree, BASE, ignore_errors=True)
    folder_paths.models_dir = str(BASE / "models")
    for name in ("input", "output", "temp"):
        (BASE / name).mkdir()
    folder_paths.set_input_directory(str(BASE / "input"))
    folder_paths.set_output_directory(str(BASE / "output"))
    folder_paths.set_temp_directory(str(BASE / "temp"))
    AVAILABLE = True


@pytest.fixture(scope="session")
def comfy_base() -> Path:
    return BASE


@pytest.fixture(scope="session")
def fixture_models(comfy_base) -> Path:
    """ComfyUI's models folder, filled by `python -m latentsync_core.fixtures` (tiny unit-test models)."""
    from latentsync_core import host
    from latentsync_core.fixtures import write_fixtures

    root = comfy_base / "models"
    write_fixtures(root)
    host.register_model_folders()
    return root


@pytest.fixture(scope="session")
def comfy_tiny_vae(fixture_models):
    """ComfyUI's own VAE object (comfy.sd.VAE, what the core VAELoader returns) holding the tiny fixture VAE:
    the same LDM-layout file, with its narrower widths given as config (VAELoader assumes the full SD size)."""
    import comfy.sd
    import comfy.utils

    state = comfy.utils.load_torch_file(str(fixture_models / "vae" / "sd-vae-ft-mse.safetensors"))
    ddconfig = {"double_z": True, "z_channels": 4, "resolution": 64, "in_channels": 3, "out_ch": 3, "ch": 32,
                "ch_mult": [1, 1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
    vae = comfy.sd.VAE(sd=state, config={"params": {"ddconfig": ddconfig, "embed_dim": 4}})
    missing, unexpected = vae.first_stage_model.load_state_dict(state, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    return vae
