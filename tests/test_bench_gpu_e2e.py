"""CI smoke test of bench/gpu_e2e.py on CPU: the smallest run, end to end in a subprocess, and its JSON checked."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench" / "gpu_e2e.py"
STAGES = {"whisper", "decode", "detect", "align", "vae_encode", "unet", "vae_decode", "restore", "encode"}


def _bench_module():
    spec = importlib.util.spec_from_file_location("gpu_e2e", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    work = tmp_path_factory.mktemp("gpu_e2e")
    out = work / "result.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(BENCH), "--device", "cpu", "--weights", "tiny", "--resolution", "64",
                           "--seconds", "0.6", "--steps", "1", "--work", str(work), "--json", str(out)],
                          capture_output=True, text=True, cwd=str(REPO), env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


@pytest.mark.slow
def test_smoke_run_reports_one_sane_row(smoke):
    report, stdout = smoke
    assert report["bench"] == "gpu_e2e" and report["env"]["device"] == "cpu" and report["weights"] == "tiny"
    assert report["frames_expected"] == 15  # 0.6 s at 25 fps
    (row,) = report["rows"]
    assert row["impl"] == "ours" and (row["resolution"], row["steps"], row["scheduler"]) == (64, 1, "ddim")
    # The output follows the audio (0.6 s): the clip's 15 frames, or up to 2 more with the official length rule;
    # and the file written holds exactly the frames reported.
    assert 15 <= row["frames"] <= 17 and row["frames_in_file"] == row["frames"]
    assert row["video_seconds"] == pytest.approx(row["frames"] / 25)
    assert row["regenerated"] >= 1 and row["windows"] >= 1
    assert row["wall_s"] > 0 and row["load_s"] > 0 and row["wall_s_runs"] == [row["wall_s"]]
    assert row["s_per_video_second"] == pytest.approx(row["wall_s"] / row["video_seconds"])
    assert row["fps_out"] == pytest.approx(row["frames"] / row["wall_s"])
    assert row["peak_vram_gb"] is None  # CPU
    assert 0.05 < row["peak_rss_gb"] < 16
    assert "| row |" in stdout and row["name"] in stdout


@pytest.mark.slow
def test_smoke_run_times_every_stage_within_the_wall_time(smoke):
    (row,) = smoke[0]["rows"]
    stages = row["stages"]
    assert STAGES <= set(stages), sorted(stages)
    assert all(stages[name] > 0 for name in STAGES)
    # Main-thread stages are exclusive, so they fit in the wall time; background (prefetch) stages overlap.
    assert 0 < row["main_thread_stage_s"] <= row["wall_s"] + 1e-6
    assert row["other_s"] == pytest.approx(row["wall_s"] - row["main_thread_stage_s"], abs=1e-3)
    for name, seconds in stages.items():
        assert seconds <= row["wall_s"] + 1e-6, name
    assert "unet" not in row["background_stages"]


def test_engine_flags_fail_clearly_when_the_engine_lacks_them(monkeypatch):
    bench = _bench_module()
    monkeypatch.setattr(bench, "engine_options", lambda: {"sampler", "resolution"})
    with pytest.raises(SystemExit, match=r"--batch, --compile: not supported by this engine yet"):
        bench.check_engine_support(Namespace(batch="auto", compile=True))
    bench.check_engine_support(Namespace(batch=None, compile=False))  # nothing asked: fine


def test_engine_flags_are_accepted_when_the_engine_has_them(monkeypatch):
    bench = _bench_module()
    monkeypatch.setattr(bench, "engine_options", lambda: {"batch", "compile"})
    bench.check_engine_support(Namespace(batch="auto", compile=True))


def test_official_needs_cuda_and_a_checkout(tmp_path):
    bench = _bench_module()
    with pytest.raises(SystemExit, match="official pipeline runs on CUDA only"):
        bench.main(["--device", "cpu", "--official", str(tmp_path)])
    with pytest.raises(SystemExit, match="not an official LatentSync checkout"):
        bench.official_workdir(tmp_path, tmp_path, tmp_path / "scratch", None)


def test_official_workdir_links_our_files_where_the_official_script_looks(tmp_path):
    bench = _bench_module()
    official, models = tmp_path / "LatentSync", tmp_path / "models"
    for name in ("scripts/inference.py", "configs/unet/stage2_512.yaml", "latentsync/__init__.py",
                 "checkpoints/auxiliary/models/buffalo_l/x.onnx"):
        (official / name).parent.mkdir(parents=True, exist_ok=True)
        (official / name).write_text("")
    for name in ("whisper/tiny.pt", "vae/sd-vae-ft-mse/config.json"):
        (models / name).parent.mkdir(parents=True, exist_ok=True)
        (models / name).write_text(name)
    work = bench.official_workdir(official, models, tmp_path / "scratch", None)
    assert (work / "checkpoints" / "whisper" / "tiny.pt").read_text() == "whisper/tiny.pt"
    assert (work / "stabilityai" / "sd-vae-ft-mse" / "config.json").read_text() == "vae/sd-vae-ft-mse/config.json"
    assert (work / "scripts" / "inference.py").is_file() and (work / "checkpoints" / "auxiliary" / "models").is_dir()
    assert not (official / "stabilityai").exists()  # the checkout is left untouched


def test_pingpong_clip_indices_turn_at_the_ends():
    bench = _bench_module()
    assert bench._pingpong(3, 8) == [0, 1, 2, 1, 0, 1, 2, 1]
    assert bench._pingpong(1, 3) == [0, 0, 0]


def test_default_matrix_on_gpu_is_the_official_setting_and_the_draft():
    bench = _bench_module()
    args = Namespace(resolution=None, steps=None, deepcache=None, cfg=None, seconds=None, draft=False,
                     batch_value=None, compile=False)
    rows = bench.plan_rows(args, "cuda")
    assert [(r["resolution"], r["steps"], r["cfg"], r["deepcache"], r["scheduler"]) for r in rows] == [
        (512, 20, 1.5, 3, "ddim"), (256, 4, 1.0, 0, "dpmpp_2m")]
    (cpu,) = bench.plan_rows(args, "cpu")
    assert (cpu["resolution"], cpu["steps"]) == (256, 2)
