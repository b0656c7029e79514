"""`run` options reach the engine: DeepCache 3, training-rate spacing, official length, batch, compile."""
from __future__ import annotations

import pytest

from latentsync_core.cli import _build_parser
from latentsync_core.pipeline.cli import options_from_args


def _options(*flags):
    return options_from_args(_build_parser().parse_args(["run", *flags]), 64)


def test_defaults_are_the_official_run():
    options = _options()
    assert options.sampler.deepcache_interval == 3
    assert options.frame_spacing == "auto" and options.official_length is True
    assert options.batch == 1 and options.compile is False and options.channels_last is None  # auto: CUDA only
    assert options.blend == "crop_box"


def test_flags_reach_the_options():
    options = _options("--deepcache", "0", "--frame-spacing", "off", "--no-official-length", "--batch", "auto",
                       "--compile")
    assert options.sampler.deepcache_interval == 0 and options.frame_spacing == "off"
    assert options.official_length is False and options.batch == "auto" and options.compile is True
    assert _options("--frame-spacing", "3", "--batch", "4").frame_spacing == 3
    assert _options("--blend", "seamless").blend == "seamless"


@pytest.mark.parametrize("flags,message", [(["--frame-spacing", "fast"], "--frame-spacing takes auto, off"),
                                           (["--batch", "0"], "--batch takes auto or a number"),
                                           (["--blend", "poisson"], "argument --blend: invalid choice")])
def test_bad_values_are_named(flags, message, capsys):
    with pytest.raises(SystemExit):
        _build_parser().parse_args(["run", *flags])
    assert message in capsys.readouterr().err


def test_demo_script_hands_its_arguments_to_run_not_to_pip():
    """README command (a) with extra arguments: pip, run first by the sourced set-up, must not see them."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    venv_python = repo / ".venv" / "bin" / "python"
    if Path(sys.executable).resolve() != venv_python.resolve():
        pytest.skip("scripts/demo.sh installs into ./.venv: run this test from that venv (scripts/test.sh does)")
    env = {**os.environ, "LATENTSYNC_TORCH_SPEC": "torch"}  # keep the installed torch: nothing to download
    result = subprocess.run(["bash", "scripts/demo.sh", "--weights", "random-tiny", "--help"], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--weights" in result.stdout and "no such option" not in result.stderr
