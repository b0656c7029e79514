"""The pack installs and loads the way ComfyUI loads custom nodes, and its metadata is consistent."""
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FAKE_COMFY = Path(__file__).resolve().parent / "fake_comfy"


def _requirement_names(lines):
    names = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_pyproject_dependencies_match_requirements():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = pyproject["project"]
    assert "comfyui" not in project["name"].lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    requirements = (REPO / "requirements.txt").read_text().splitlines()
    assert sorted(_requirement_names(project["dependencies"])) == sorted(_requirement_names(requirements))
    req_specs = sorted(l.split("#")[0].strip() for l in requirements if l.split("#")[0].strip())
    assert sorted(project["dependencies"]) == req_specs
    comfy = pyproject["tool"]["comfy"]
    assert {"PublisherId", "DisplayName", "Icon"} <= set(comfy)


def test_core_imports_without_comfyui():
    code = "import sys, latentsync_core, latentsync_core.host as h; assert not h.IN_COMFYUI; assert 'comfy' not in sys.modules and 'folder_paths' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_only_host_imports_comfy():
    """latentsync_core talks to ComfyUI only through host.py; the nodes use only ComfyUI's public node API."""
    offenders = []
    for path in list((REPO / "latentsync_core").rglob("*.py")) + list((REPO / "nodes").rglob("*.py")):
        if path.name == "host.py" and path.parent.name == "latentsync_core":
            continue
        text = path.read_text()
        if path.parent.name == "nodes":
            text = re.sub(r"^\s*from\s+comfy_api\.latest\s+import\s+[\w, ]+$", "", text, flags=re.M)
        if re.search(r"^\s*(import|from)\s+(comfy|folder_paths|comfy_api|comfy_extras|nodes)\b", text, re.M):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_pack_root_imports_without_comfyui():
    """pytest imports the checkout's __init__.py when it collects the core tests: it must not need ComfyUI."""
    script = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("pack", {str(REPO / "__init__.py")!r},
                                              submodule_search_locations=[{str(REPO)!r}])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
assert not hasattr(module, "comfy_entrypoint") and "comfy_api" not in sys.modules
"""
    subprocess.run([sys.executable, "-c", script], check=True)


def test_host_delegates_to_comfy_inside_comfyui(tmp_path):
    script = """
import comfy.model_management as mm, comfy.utils as cu
from latentsync_core import host
from latentsync_core.errors import ProcessingInterrupted
with host.Progress(4) as bar:
    bar.update(3)
assert cu.reported[-1] == (3, 4), cu.reported
mm.interrupt_processing = True
try:
    host.check_interrupt()
except mm.InterruptProcessingException:
    pass
else:
    raise SystemExit("interrupt not delegated")
host.empty_cache()
assert mm.calls == ["soft_empty_cache"]
(root := __import__("pathlib").Path(host.models_root()) / "latentsync").mkdir(parents=True)
(root / "a.pt").write_bytes(b"x")
(root / "readme.txt").write_text("x")
assert host.list_models("latentsync") == ["a.pt"], host.list_models("latentsync")
assert host.find_model("latentsync", "a.pt") == root / "a.pt"
print("ok")
"""
    env = dict(os.environ, PYTHONPATH=f"{FAKE_COMFY}{os.pathsep}{REPO}", FAKE_COMFY_ROOT=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == "ok"


def test_cli_reports_missing_models_with_exit_2(tmp_path):
    env = dict(os.environ, LATENTSYNC_MODELS_DIR=str(tmp_path / "models"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "latentsync_core", "run"], cwd=REPO, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "models missing:" in proc.stderr
    assert str(tmp_path / "models" / "latentsync" / "latentsync_unet.pt") in proc.stderr
    assert "hf download ByteDance/LatentSync-1.6 latentsync_unet.pt" in proc.stderr
    assert "Traceback" not in proc.stderr
