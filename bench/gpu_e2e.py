"""End-to-end lip-sync speed, file to file, where users run it: seconds of wall time per second of video.

    python bench/gpu_e2e.py                       # GPU: the default matrix; CPU: a small smoke run
    python bench/gpu_e2e.py --device cuda --resolution 512 --steps 20 --deepcache 3 --seconds 8 --json out.json
    python bench/gpu_e2e.py --device cuda --official /path/to/LatentSync   # + the official pipeline, same clip/weights

Every row runs the whole pipeline on one mp4 (decode -> detect -> align -> Whisper -> VAE encode -> U-Net
-> VAE decode -> restore -> encode) through `latentsync_core.pipeline.lipsync`, in a fresh child process
so its peak RSS and VRAM are its own. Per-stage seconds come from `latentsync_core.profile` (exclusive
wall time, the device synchronised at stage boundaries on CUDA); "other" is glue outside any stage.

Weights: `full-size` writes random weights of the official architectures in the official formats
(`python -m latentsync_core.fixtures DIR --full-size`) once into --work (or use --models DIR); `tiny`
uses the tiny test fixtures. The clip: the first N seconds of demo1 from LATENTSYNC_MEDIA_DIR
(default ../shared/media) fitted into 1920x1080 at 25 fps (looped back and forth when N is longer),
else a synthetic one (a photographed face on a 1080p canvas with a moving mouth and a tone).

Defaults. GPU: two rows on full-size weights over an 8 s clip, "512 px, 20 steps DDIM, CFG 1.5,
DeepCache 3" (the official inference.sh) and "draft" (256 px, DPM-Solver++ 4 steps, CFG 1.0, TAESD from
MODELS/vae_approx when there, else the full SD VAE). CPU: one smoke row (tiny weights, 256 px, 1 s, 2 steps).
Any of --resolution/--steps/--deepcache/--cfg/--draft/--seconds replaces the matrix by one row.

--batch and --compile need an engine that takes them (windows per U-Net call, torch.compile); the
current `lipsync` has neither, so asking for them stops with an error instead of measuring something else.
Figures are medians over --repeat runs of the same row; the first run of a row is not dropped, so
use --repeat 3 when --compile is on (compilation lands in the first run).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FPS = 25
CLIP_SIZE = (1920, 1080)  # width, height
GPU_SECONDS, CPU_SECONDS = 8.0, 1.0
STAGE_ORDER = ("audio_load", "whisper", "decode", "detect", "align", "vae_encode", "unet", "vae_decode", "restore",
               "encode")


# --------------------------------------------------------------------------- the clip
def media_dir() -> Path:
    return Path(os.environ.get("LATENTSYNC_MEDIA_DIR", REPO.parent / "shared" / "media"))


def _fit(frame, size: tuple[int, int]):
    """Scale `frame` to fit inside `size` (w, h) keeping its aspect, centred on black."""
    import cv2
    import numpy as np

    w, h = size
    scale = min(w / frame.shape[1], h / frame.shape[0])
    new = (max(2, round(frame.shape[1] * scale)), max(2, round(frame.shape[0] * scale)))
    small = cv2.resize(frame, new, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.zeros((h, w, 3), np.uint8)
    y, x = (h - new[1]) // 2, (w - new[0]) // 2
    out[y:y + new[1], x:x + new[0]] = small
    return out


def _pingpong(n_source: int, n_out: int) -> list[int]:
    period = max(1, 2 * n_source - 2)
    return [(i % period) if (i % period) < n_source else period - (i % period) for i in range(n_out)]


def _write_wav(path: Path, samples, rate: int) -> None:
    import numpy as np

    pcm = (np.clip(samples, -1.0, 1.0) * 32767).round().astype("<i2")  # [C, T]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(pcm.shape[0])
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.T.tobytes())


def _demo_clip(video: Path, audio: Path, frames: int, size: tuple[int, int]):
    """(frames iterator, AudioClip): demo1 fitted to `size`, ping-ponged to `frames`, audio tiled to match."""
    import numpy as np

    from latentsync_core.media.audio_file import AudioClip, read_audio
    from latentsync_core.media.video import iter_video_frames, probe_video

    n_source = min(probe_video(video).num_frames, frames)
    fitted = (_fit(f, size) for f in iter_video_frames(video, max_frames=n_source))
    if n_source == frames:  # no looping needed: stream instead of holding the frames
        pictures = fitted
    else:
        source = list(fitted)
        pictures = (source[i] for i in _pingpong(len(source), frames))
    clip = read_audio(audio)
    need = round(frames / FPS * clip.sample_rate)
    reps = -(-need // clip.num_samples)
    samples = np.tile(clip.samples, (1, reps))[:, :need]
    return pictures, AudioClip(samples, clip.sample_rate)


def _synthetic_clip(frames: int, size: tuple[int, int]):
    """A photographed face (scikit-image's astronaut) on a 1080p canvas whose mouth opens with a tone's loudness."""
    import numpy as np

    from latentsync_core.media.audio_file import AudioClip

    try:
        from skimage.data import astronaut
    except ImportError:
        raise SystemExit(f"no demo clip in {media_dir()} and scikit-image is not installed to draw one: set "
                         "LATENTSYNC_MEDIA_DIR to a folder with demo1_video.mp4 / demo1_audio.wav") from None
    face = _fit(astronaut(), (size[0], size[1]))
    scale = size[1] / 512
    cx, cy = size[0] // 2 + round((222 - 256) * scale), round(158 * scale)  # the photo's mouth
    rate = 16000
    t = np.arange(round(frames / FPS * rate)) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)  # three syllables a second
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * envelope).astype(np.float32)[None]

    def frames_iter():
        for i in range(frames):
            frame = face.copy()
            half_h = round((2 + 10 * envelope[min(len(t) - 1, i * rate // FPS)]) * scale)
            half_w = round(14 * scale)
            frame[cy - half_h:cy + half_h, cx - half_w:cx + half_w] = 12
            yield frame

    return frames_iter(), AudioClip(audio, rate)


def make_clip(work: Path, seconds: float, size: tuple[int, int] = CLIP_SIZE) -> tuple[Path, Path, int, str]:
    """(video mp4, audio wav, frames, description) for `seconds` of 25 fps video; cached in `work`."""
    from latentsync_core.media.writer import write_video

    frames = max(1, round(seconds * FPS))
    demo_video, demo_audio = media_dir() / "demo1_video.mp4", media_dir() / "demo1_audio.wav"
    kind = "demo1" if demo_video.is_file() and demo_audio.is_file() else "synthetic"
    stem = work / f"clip_{kind}_{size[0]}x{size[1]}_{frames}f"
    video, audio = stem.with_suffix(".mp4"), stem.with_suffix(".wav")
    if not (video.is_file() and audio.is_file()):
        pictures, clip = (_demo_clip(demo_video, demo_audio, frames, size) if kind == "demo1"
                          else _synthetic_clip(frames, size))
        _write_wav(audio, clip.samples, clip.sample_rate)
        write_video(video, (f[None] for f in pictures), FPS, audio=audio)
    what = (f"{kind} ({'first frames of ' + demo_video.name + ' fitted' if kind == 'demo1' else 'drawn'} into "
            f"{size[0]}x{size[1]}), {frames} frames at {FPS} fps = {frames / FPS:g} s")
    return video, audio, frames, what


# --------------------------------------------------------------------------- weights
def prepare_models(args, work: Path) -> Path:
    if args.models:
        return Path(args.models)
    if args.weights == "tiny":
        from latentsync_core.fixtures import write_fixtures
        from latentsync_core.fixtures.full_size import write_taesd

        root = work / "models_tiny"
        if not (root / "latentsync" / "latentsync_unet.pt").is_file():
            write_fixtures(root)
            write_taesd(root, seed=0)  # TAESD is small at full size: the draft row uses it on tiny weights too
        return root
    from latentsync_core.fixtures.full_size import write_full_size

    root = work / f"models_full_{args.fixture_dtype}"
    if not (root / "latentsync" / "latentsync_unet.pt").is_file():
        print(f"writing full-size random weights ({args.fixture_dtype}) to {root} ...", flush=True)
        started = time.perf_counter()
        write_full_size(root, dtype=args.fixture_dtype)
        print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
    return root


# --------------------------------------------------------------------------- engine capabilities
def engine_options() -> set[str]:
    """Names of the optional throughput options the installed engine accepts (LipsyncOptions/SamplerOptions fields)."""
    from latentsync_core.pipeline import LipsyncOptions, SamplerOptions

    return {f.name for cls in (LipsyncOptions, SamplerOptions) for f in dataclasses.fields(cls)}


def check_engine_support(args) -> None:
    fields = engine_options()
    wanted = {"batch": args.batch is not None, "compile": bool(args.compile)}
    unsupported = [name for name, asked in wanted.items() if asked and name not in fields]
    if unsupported:
        flags = ", ".join(f"--{name}" for name in unsupported)
        raise SystemExit(f"{flags}: not supported by this engine yet (latentsync_core.pipeline.LipsyncOptions has no "
                         f"{' / '.join(unsupported)} option); run without {flags}")


# --------------------------------------------------------------------------- child: one row
def child(spec: dict) -> dict:
    import resource

    import torch

    from latentsync_core.pipeline import LipsyncOptions, SamplerOptions, lipsync, load_models
    from latentsync_core.profile import Profile

    os.environ.setdefault("LATENTSYNC_PROGRESS", "0")
    device = torch.device(spec["device"])
    cuda = device.type == "cuda"
    started = time.perf_counter()
    models = load_models(Path(spec["models"]), device=device, dtype=spec["dtype"], resolution=spec["resolution"])
    vae = models.vae
    if spec["vae"] == "taesd":
        from latentsync_core.vae import find_taesd, load_taesd

        vae = load_taesd(*find_taesd(spec["models"]), device=device, dtype=models.dtype)
    load_s = time.perf_counter() - started
    sampler = SamplerOptions(steps=spec["steps"], guidance=spec["cfg"], deepcache_interval=spec["deepcache"],
                             scheduler=spec["scheduler"])
    extra = {k: spec[k] for k in ("batch", "compile") if spec.get(k) is not None}
    sampler_fields = {f.name for f in dataclasses.fields(SamplerOptions)}
    if extra:  # only reached when check_engine_support found the fields
        sampler = dataclasses.replace(sampler, **{k: v for k, v in extra.items() if k in sampler_fields})
    options = LipsyncOptions(sampler=sampler, resolution=spec["resolution"],
                             **{k: v for k, v in extra.items() if k not in sampler_fields})
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(spec["repeat"]):
            models.whisper.to(device)  # each run starts as a fresh one does (a run offloads Whisper when done with it)
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats(device)
            with Profile(cuda_sync=cuda) as prof:
                begin = time.perf_counter()
                result = lipsync(spec["video"], spec["audio"], Path(tmp) / "out.mp4", unet=models.unet,
                                 vae=vae, whisper=models.whisper, options=options)
                if cuda:
                    torch.cuda.synchronize()
                wall = time.perf_counter() - begin
            out_frames = _count_frames(Path(tmp) / "out.mp4")
            runs.append({"wall_s": wall, "stages": dict(prof.seconds), "main_stages": dict(prof.main_seconds),
                         "background_stages": sorted(prof.background), "frames": result.frames,
                         "frames_in_file": out_frames, "video_seconds": result.video_seconds,
                         "windows": result.stats.windows, "regenerated": result.stats.regenerated,
                         "peak_vram_gb": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None})
    median = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
    return {**median, "wall_s_runs": [r["wall_s"] for r in runs], "load_s": load_s,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "dtype": str(models.dtype).replace("torch.", ""), "device_name": _device_name(device)}


def _count_frames(path: Path) -> int:
    from latentsync_core.media.video import probe_video

    return probe_video(path).num_frames


def _device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def run_child(spec: dict) -> dict:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                          capture_output=True, text=True, cwd=str(REPO), env=dict(os.environ, LATENTSYNC_PROGRESS="0"))
    if proc.returncode != 0:
        raise SystemExit(f"row {spec['name']!r} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the official pipeline
# Times LipsyncPipeline.__call__ (the official run without model loading) and its peak VRAM, then runs
# the official scripts/inference.py unchanged.
_OFFICIAL_WRAPPER = r"""
import json, resource, runpy, sys, time, torch
from latentsync.pipelines import lipsync_pipeline as lp
out_json = sys.argv.pop(1)
original = lp.LipsyncPipeline.__call__
def timed(self, *a, **k):
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); t = time.perf_counter()
    r = original(self, *a, **k)
    torch.cuda.synchronize()
    json.dump({"wall_s": time.perf_counter() - t, "peak_vram_gb": torch.cuda.max_memory_allocated() / 2**30,
               "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}, open(out_json, "w"))
    return r
lp.LipsyncPipeline.__call__ = timed
sys.argv[0] = "scripts/inference.py"
runpy.run_module("scripts.inference", run_name="__main__", alter_sys=True)
"""


def official_workdir(official: Path, models: Path, scratch: Path, aux: Path | None) -> Path:
    """A scratch cwd where the official script finds our files under its hard-coded relative paths.

    It reads configs/ and latentsync/ from its cwd, checkpoints/whisper/tiny.pt, the insightface models in
    checkpoints/auxiliary, and loads the VAE as "stabilityai/sd-vae-ft-mse", which diffusers takes as a local
    folder when one exists at that path: so everything is linked here and the checkout is left untouched.
    """
    missing = [p for p in ("scripts/inference.py", "configs/unet/stage2_512.yaml", "latentsync") if
               not (official / p).exists()]
    if missing:
        raise SystemExit(f"--official {official}: not an official LatentSync checkout (missing {missing}); "
                         "clone https://github.com/bytedance/LatentSync there")
    aux = aux or official / "checkpoints" / "auxiliary"
    if not (aux / "models" / "buffalo_l").is_dir():
        raise SystemExit(f"the official face detector needs insightface buffalo_l in {aux}/models/buffalo_l "
                         "(pass --official-aux DIR with models/buffalo_l inside); it cannot download here")
    work = scratch / "official_cwd"
    for name in ("configs", "latentsync", "scripts"):
        _link(work / name, official / name)
    _link(work / "checkpoints" / "whisper" / "tiny.pt", models / "whisper" / "tiny.pt")
    _link(work / "checkpoints" / "auxiliary", aux)
    _link(work / "stabilityai" / "sd-vae-ft-mse", models / "vae" / "sd-vae-ft-mse")
    return work


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(target.resolve(), target_is_directory=target.is_dir())


def run_official(args, row: dict, models: Path, video: Path, audio: Path, scratch: Path) -> dict:
    config = "configs/unet/stage2_512.yaml" if row["resolution"] == 512 else "configs/unet/stage2.yaml"
    aux = Path(args.official_aux) if args.official_aux else None
    work = official_workdir(Path(args.official), models, scratch, aux)
    python = args.official_python or sys.executable
    runs = []
    for i in range(args.repeat):
        out_json, out_video = scratch / f"official_{i}.json", scratch / f"official_{i}.mp4"
        cmd = [python, "-c", _OFFICIAL_WRAPPER, str(out_json), "--unet_config_path", config,
               "--inference_ckpt_path", str(models / "latentsync" / "latentsync_unet.pt"),
               "--video_path", str(video), "--audio_path", str(audio), "--video_out_path", str(out_video),
               "--inference_steps", str(row["steps"]), "--guidance_scale", str(row["cfg"]),
               "--temp_dir", str(scratch / "official_temp")]
        if row["deepcache"]:
            if row["deepcache"] != 3:
                print("note: the official inference.py has DeepCache interval 3 only", flush=True)
            cmd.append("--enable_deepcache")
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=str(work), capture_output=True, text=True)
        total = time.perf_counter() - started
        if proc.returncode != 0 or not out_json.is_file():
            raise SystemExit(f"the official pipeline failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        measured = json.loads(out_json.read_text())
        frames = _count_frames(out_video)
        runs.append({**measured, "process_s": total, "frames": frames, "frames_in_file": frames,
                     "video_seconds": frames / FPS})
    median = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
    return {**median, "wall_s_runs": [r["wall_s"] for r in runs], "load_s": median["process_s"] - median["wall_s"],
            "stages": {}, "dtype": "fp16 (official: fp16 when compute capability > 7)"}


# --------------------------------------------------------------------------- rows and report
def plan_rows(args, device: str) -> list[dict]:
    explicit = any(getattr(args, k) is not None for k in ("resolution", "steps", "deepcache", "cfg", "seconds")) \
        or args.draft or device == "cpu"
    base = {"batch": args.batch_value, "compile": True if args.compile else None}
    if explicit:
        draft = args.draft
        row = {"name": "draft" if draft else "custom",
               "resolution": args.resolution or (256 if draft or device == "cpu" else 512),
               "steps": args.steps or (4 if draft else (2 if device == "cpu" else 20)),
               "cfg": args.cfg if args.cfg is not None else (1.0 if draft else 1.5),
               "deepcache": args.deepcache if args.deepcache is not None else (0 if draft or device == "cpu" else 3),
               "scheduler": "dpmpp_2m" if draft else "ddim", "draft": draft, **base}
        row["name"] = (f"{'draft ' if draft else ''}{row['resolution']} px, {row['steps']} steps {row['scheduler']}, "
                       f"CFG {row['cfg']:g}, DeepCache {row['deepcache'] or 'off'}")
        return [row]
    return [
        {"name": "512 px, 20 steps ddim, CFG 1.5, DeepCache 3", "resolution": 512, "steps": 20, "cfg": 1.5,
         "deepcache": 3, "scheduler": "ddim", "draft": False, **base},
        {"name": "draft 256 px, 4 steps dpmpp_2m, CFG 1, DeepCache off", "resolution": 256, "steps": 4, "cfg": 1.0,
         "deepcache": 0, "scheduler": "dpmpp_2m", "draft": True, **base},
    ]


def summarise(row: dict, measured: dict, impl: str) -> dict:
    wall, video_s = measured["wall_s"], measured["video_seconds"]
    stages = {k: round(v, 4) for k, v in sorted(measured["stages"].items(), key=lambda kv: _stage_rank(kv[0]))}
    main = measured.get("main_stages", {})
    return {**row, "impl": impl, **{k: v for k, v in measured.items() if k not in ("stages", "main_stages")},
            "s_per_video_second": wall / video_s if video_s else None,
            "fps_out": measured["frames"] / wall if wall else None,
            "stages": stages, "main_thread_stage_s": round(sum(main.values()), 4) if stages else None,
            "other_s": round(wall - sum(main.values()), 4) if stages else None}


def _stage_rank(name: str) -> int:
    return STAGE_ORDER.index(name) if name in STAGE_ORDER else len(STAGE_ORDER)


def _fmt(value, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def print_table(rows: list[dict]) -> None:
    print("\n| row | impl | device | dtype | frames | wall s | s / video s | fps out | peak VRAM GB | peak RSS GB "
          "| load s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['impl']} | {r.get('device_name', '')} | {r.get('dtype', '')} | {r['frames']} | "
              f"{_fmt(r['wall_s'])} | {_fmt(r['s_per_video_second'])} | {_fmt(r['fps_out'], '.1f')} | "
              f"{_fmt(r['peak_vram_gb'])} | {_fmt(r['peak_rss_gb'])} | {_fmt(r['load_s'], '.1f')} |")
    staged = [r for r in rows if r["stages"]]
    if not staged:
        return
    names = [s for s in STAGE_ORDER if any(s in r["stages"] for r in staged)]
    names += sorted({s for r in staged for s in r["stages"]} - set(names))
    print("\nper-stage wall time, seconds (share of the run's wall time; * = ran in a background thread, "
          "overlapped with the others; other = main-thread time outside any stage):\n")
    background = {s for r in staged for s in r.get("background_stages", [])}
    print("| row | " + " | ".join(n + ("*" if n in background else "") for n in names) + " | other |")
    print("|---|" + "---|" * (len(names) + 1))
    for r in staged:
        cells = [f"{r['stages'].get(s, 0.0):.2f} ({100 * r['stages'].get(s, 0.0) / r['wall_s']:.0f} %)" for s in names]
        other = f"{r['other_s']:.2f} ({100 * r['other_s'] / r['wall_s']:.0f} %)"
        print(f"| {r['name']} | " + " | ".join(cells) + f" | {other} |")


def environment(device: str) -> dict:
    import torch

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=str(REPO), capture_output=True, text=True)
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "device": device, "torch": torch.__version__, "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None, "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "commit": commit.stdout.strip() or None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None, help="default: cuda when available")
    parser.add_argument("--weights", choices=["full-size", "tiny"], default=None,
                        help="default: full-size on cuda, tiny on cpu")
    parser.add_argument("--models", help="an existing models root (ComfyUI layout) instead of writing random weights")
    parser.add_argument("--fixture-dtype", choices=["fp16", "fp32", "official"], default="fp16",
                        help="dtype of the written full-size files (fp16: half the disk and write time)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp16", "bf16", "fp32"],
                        help="compute dtype (auto: fp16 on recent GPUs, fp32 on CPU)")
    parser.add_argument("--resolution", type=int, choices=[64, 256, 512], default=None,
                        help="face crop size (64: the tiny fixtures' own size, for smoke tests)")
    parser.add_argument("--seconds", type=float, default=None, help=f"clip length (default {GPU_SECONDS:g} on GPU, "
                                                                     f"{CPU_SECONDS:g} on CPU)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--cfg", type=float, default=None)
    parser.add_argument("--deepcache", type=int, default=None, help="DeepCache interval (0 = off)")
    parser.add_argument("--draft", action="store_true",
                        help="256 px, DPM-Solver++ 4 steps, CFG 1, TAESD (MODELS/vae_approx) when present")
    parser.add_argument("--batch", default=None, help="windows per U-Net call: a number or 'auto' (engine option)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                        help="torch.compile the U-Net (engine option)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; figures are the median run")
    parser.add_argument("--json", help="write the rows as JSON here")
    parser.add_argument("--work", help="folder for the clip and written weights (kept; default: a temp folder)")
    parser.add_argument("--official", help="an official LatentSync checkout: also run it on the same clip/weights")
    parser.add_argument("--official-python", help="python of the official checkout's environment (default: this one)")
    parser.add_argument("--official-aux", help="folder with models/buffalo_l (default: OFFICIAL/checkpoints/auxiliary)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch here")
    if args.official and device != "cuda":
        raise SystemExit("--official: the official pipeline runs on CUDA only (its inference.py hard-codes 'cuda')")
    if args.repeat < 1:
        raise SystemExit("--repeat must be >= 1")
    args.weights = args.weights or ("full-size" if device == "cuda" else "tiny")
    args.batch_value = None if args.batch is None else (args.batch if args.batch == "auto" else int(args.batch))
    check_engine_support(args)
    seconds = args.seconds if args.seconds is not None else (GPU_SECONDS if device == "cuda" else CPU_SECONDS)

    with tempfile.TemporaryDirectory(prefix="gpu_e2e_") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        video, audio, frames, clip_desc = make_clip(work, seconds)
        models = prepare_models(args, work)
        print(f"clip: {clip_desc}\nweights: {args.weights} ({models})", flush=True)
        from latentsync_core.vae import find_taesd

        taesd = find_taesd(models) is not None
        results = []
        for row in plan_rows(args, device):
            draft = row.pop("draft")
            row["vae"] = "taesd" if draft and taesd else "sd-vae-ft-mse"
            if row["vae"] == "taesd":
                row["name"] += ", TAESD"
            elif draft:
                print(f"note: no TAESD in {models}/vae_approx: the draft row uses the full SD VAE", flush=True)
            spec = {**row, "device": device, "dtype": args.dtype, "models": str(models), "video": str(video),
                    "audio": str(audio), "repeat": args.repeat}
            print(f"running: {row['name']} ...", flush=True)
            results.append(summarise(row, run_child(spec), "ours"))
            if args.official and row["vae"] != "taesd" and row["scheduler"] == "ddim" and args.weights == "full-size":
                print(f"running the official pipeline: {row['name']} ...", flush=True)
                official = run_official(args, row, models, video, audio, work)
                results.append(summarise(row, {**official, "device_name": results[-1]["device_name"]}, "official"))
        report = {"bench": "gpu_e2e", "env": environment(device), "clip": clip_desc, "frames_expected": frames,
                  "weights": args.weights, "rows": results}
        print_table(results)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            tmp_json = Path(args.json).with_suffix(".json.tmp")
            tmp_json.write_text(json.dumps(report, indent=2))
            tmp_json.replace(args.json)
            print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
