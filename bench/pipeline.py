"""End-to-end lip-sync speed (seconds of compute per second of video) and peak RSS.

    python bench/pipeline.py [--media ../shared/media] [--rows profile,tiny,rss,full256,full512,gpu] [--repeats 3]

Every run is a fresh child process (`--child`), so its peak RSS is its own. Rows:
  sampler   the denoising loop alone (one 16-frame window, tiny U-Net, 20 steps, no I/O): where DeepCache
            and CFG act; median of --repeats, ratios vs "CFG 1.5, DeepCache off".
  tiny      tiny random weights on CPU, first --tiny-frames frames of demo1: what the pipeline itself
            costs around the networks (decode, face tracking, VAE/U-Net calls, paste, encode).
            DeepCache off / 3 and CFG 1.5 / 1.0; ratios vs "tiny, CFG 1.5, DeepCache off".
  profile   the end-to-end CLI path (`lipsync`, file to file) on tiny random weights, first --tiny-frames
            frames of demo1: seconds and share of each stage (latentsync_core.profile: decode, detect, align,
            whisper, vae_encode, unet, vae_decode, restore, encode; "other" is the rest of the wall time).
            Decoding/detection and encoding run on their own threads, so shares can add up past 100 %.
  rss       peak RSS of a 10 s vs a 120 s 1080p output (demo1 + its audio, and the audio tiled to 120 s,
            which the pipeline pingpongs the 10 s clip over), and of the 10 s clip with its audio tiled to
            10 min (loop mode trim_audio: the output stops with the video, the audio is read and its Whisper
            features prepared). Streaming means all three should be within 20 %.
  full256 / full512
            full-size random weights (the 1.3 B-parameter U-Net, the SD VAE, Whisper tiny) at 256 / 512 px:
            --full-windows windows of 16 frames at --full-steps steps (CPU: a few windows; the per-step cost
            is what scales to 20 steps).
  gpu       (CUDA only) full-size at 512 on the whole clip: fp16 and bf16, DeepCache off/3, CFG 1.0/1.5.
Figures are medians over --repeats runs (the rss rows run once each: RSS does not vary run to run).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


# --------------------------------------------------------------------------- child
def _full_models(root: Path, resolution: int, device, dtype):
    import torch
    from diffusers import AutoencoderKL

    from latentsync_core.audio import load_whisper
    from latentsync_core.audio.tiny import TINY_DIMS, random_whisper_checkpoint
    from latentsync_core.checkpoints import save_checkpoint_file
    from latentsync_core.unet import DEFAULT_CONFIG, LatentSyncUNet
    from latentsync_core.unet.tiny import randomize_
    from latentsync_core.vae import DiffusersVAE

    unet = randomize_(LatentSyncUNet(DEFAULT_CONFIG), seed=0).eval().to(device, dtype)
    torch.manual_seed(0)
    vae = DiffusersVAE(AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                                     down_block_types=["DownEncoderBlock2D"] * 4,
                                     up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=4)).to(device, dtype)
    path = root / "whisper_tiny.pt"
    save_checkpoint_file(random_whisper_checkpoint(TINY_DIMS, seed=0), path)
    return unet, vae, load_whisper(path, device, dtype)


def child(spec: dict) -> dict:
    import resource

    import numpy as np
    import torch

    from latentsync_core import host
    from latentsync_core.pipeline import LipsyncOptions, SamplerOptions, lipsync, load_models
    from latentsync_core.fixtures import write_fixtures

    os.environ.setdefault("LATENTSYNC_PROGRESS", "0")
    device = torch.device(spec.get("device", "cpu"))
    dtype = host.get_dtype(device, spec.get("dtype", "fp32"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if spec["weights"] == "tiny":
            write_fixtures(tmp / "models")
            m = load_models(tmp / "models", device=device, dtype=dtype, resolution=64)
            unet, vae, whisper, resolution = m.unet, m.vae, m.whisper, 64
        else:
            resolution = spec["resolution"]
            unet, vae, whisper = _full_models(tmp, resolution, device, dtype)
        audio = spec["audio"]  # a file, as the CLI gets it (longer tracks are written by the parent)
        sampler = SamplerOptions(steps=spec["steps"], guidance=spec["cfg"], deepcache_interval=spec["deepcache"])
        options = LipsyncOptions(sampler=sampler, resolution=resolution, max_frames=spec.get("max_frames"),
                                 loop_mode=spec.get("loop_mode", "pingpong"))
        from latentsync_core.profile import Profile

        with Profile() as profile:
            start = time.perf_counter()
            result = lipsync(spec["video"], audio, tmp / "out.mp4", unet=unet, vae=vae, whisper=whisper,
                             options=options)
            seconds = time.perf_counter() - start
    return {"seconds": seconds, "video_seconds": result.video_seconds, "frames": result.frames,
            "windows": result.stats.windows, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "stages": dict(profile.seconds)}


def sampler_rows(repeats: int) -> list[tuple[str, float]]:
    import torch

    from latentsync_core.sampler import denoise
    from latentsync_core.unet.tiny import tiny_unet

    unet = tiny_unet(seed=0)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 4, 1, 8, 8, generator=g).repeat(1, 1, 16, 1, 1)
    mask, masked, ref = torch.ones(1, 1, 16, 8, 8), torch.randn(1, 4, 16, 8, 8, generator=g), torch.randn(1, 4, 16, 8, 8, generator=g)
    audio = torch.randn(16, 50, 64, generator=g)
    rows = []
    for name, cfg, dc in (("CFG 1.5, DeepCache off", 1.5, 0), ("CFG 1.5, DeepCache 3", 1.5, 3),
                          ("CFG 1.0, DeepCache off", 1.0, 0), ("CFG 1.0, DeepCache 3", 1.0, 3)):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            denoise(unet, noise, mask, masked, ref, audio, steps=20, guidance=cfg, deepcache_interval=dc)
            times.append(time.perf_counter() - start)
        rows.append((name, statistics.median(times)))
    return rows


# --------------------------------------------------------------------------- parent
_SCRATCH = tempfile.TemporaryDirectory(prefix="latentsync-bench-")


def tiled_audio(path: str, seconds: float) -> str:
    """A wav of `path`'s audio repeated to `seconds` (made here, so the children's RSS never holds it)."""
    import numpy as np
    from scipy.io import wavfile

    from latentsync_core.media.audio_file import read_audio

    clip = read_audio(path)
    reps = int(np.ceil(seconds * clip.sample_rate / clip.num_samples))
    tiled = np.tile(clip.samples, (1, reps))[:, :int(seconds * clip.sample_rate)]
    out = Path(_SCRATCH.name) / f"audio_{seconds:g}s.wav"
    wavfile.write(out, clip.sample_rate, np.ascontiguousarray(tiled.T))
    return str(out)


def run_child(spec: dict, threads: int | None) -> dict:
    env = dict(os.environ, LATENTSYNC_PROGRESS="0")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          env=env, cwd=str(REPO))
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({spec}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median_run(spec: dict, repeats: int, threads: int | None) -> dict:
    runs = [run_child(spec, threads) for _ in range(repeats)]
    out = dict(runs[0])
    for key in ("seconds", "rss_mb"):
        out[key] = statistics.median(r[key] for r in runs)
    out["runs"] = len(runs)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child")
    parser.add_argument("--media", default=str(REPO.parent / "shared" / "media"))
    parser.add_argument("--rows", default="tiny,rss,full256")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the children")
    parser.add_argument("--tiny-frames", type=int, default=64)
    parser.add_argument("--rss-seconds", default="10,120")
    parser.add_argument("--rss-steps", type=int, default=2)
    parser.add_argument("--full-windows", type=int, default=1)
    parser.add_argument("--full-steps", type=int, default=2)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0

    media = Path(args.media)
    video, audio = str(media / "demo1_video.mp4"), str(media / "demo1_audio.wav")
    if not Path(video).is_file():
        print(f"no sample clip in {media}; pass --media", file=sys.stderr)
        return 2
    rows = args.rows.split(",")
    table = []

    def add(name, spec, repeats):
        result = median_run(spec, repeats, args.threads)
        table.append((name, result))
        print(f"  done: {name}: {result}", file=sys.stderr, flush=True)

    if "sampler" in rows:
        print("\n| denoise one 16-frame window, tiny U-Net, 20 steps, CPU | seconds | vs first |\n|---|---|---|")
        results = sampler_rows(args.repeats)
        for name, seconds in results:
            print(f"| {name} | {seconds:.2f} | {seconds / results[0][1]:.2f}x |")
    base = {"video": video, "audio": audio, "weights": "tiny", "steps": 20, "cfg": 1.5, "deepcache": 0}
    if "profile" in rows:
        runs = [run_child({**base, "deepcache": 3, "max_frames": args.tiny_frames}, args.threads)
                for _ in range(args.repeats)]
        print_profile(runs, f"tiny random weights, CPU, first {args.tiny_frames} frames of demo1, 20 steps, "
                            f"CFG 1.5, DeepCache 3")
    if "tiny" in rows:
        for name, extra in (("tiny CPU, CFG 1.5, DeepCache off", {}), ("tiny CPU, CFG 1.5, DeepCache 3", {"deepcache": 3}),
                            ("tiny CPU, CFG 1.0, DeepCache off", {"cfg": 1.0})):
            add(name, {**base, **extra, "max_frames": args.tiny_frames}, args.repeats)
    if "rss" in rows:
        for seconds in (float(s) for s in args.rss_seconds.split(",")):
            spec = {**base, "steps": args.rss_steps, "audio": tiled_audio(audio, seconds)}
            add(f"RSS: {seconds:g} s of 1080p output (tiny, {args.rss_steps} steps)", spec, 1)
        spec = {**base, "steps": args.rss_steps, "audio": tiled_audio(audio, 600.0), "loop_mode": "trim_audio"}
        add(f"RSS: 10 s of 1080p output, 10 min audio track (tiny, {args.rss_steps} steps)", spec, 1)
    for res in (256, 512):
        if f"full{res}" in rows:
            spec = {**base, "weights": "full", "resolution": res, "steps": args.full_steps,
                    "max_frames": 16 * args.full_windows}
            add(f"full-size random {res} px CPU fp32, {args.full_windows} window(s), {args.full_steps} steps",
                spec, 1)
    if "gpu" in rows:
        import torch

        if not torch.cuda.is_available():
            print("gpu rows skipped: no CUDA device", file=sys.stderr)
        else:
            for dtype in ("fp16", "bf16"):
                for dc in (0, 3):
                    for cfg in (1.5, 1.0):
                        spec = {**base, "weights": "full", "resolution": 512, "device": "cuda", "dtype": dtype,
                                "deepcache": dc, "cfg": cfg}
                        add(f"full-size 512 px GPU {dtype}, DeepCache {dc or 'off'}, CFG {cfg}", spec, args.repeats)

    if not table:
        return 0
    print(f"\n| run | frames | windows | s per s of video | vs first row | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    first = table[0][1]["seconds"] / table[0][1]["video_seconds"] if table else 1
    for name, r in table:
        rate = r["seconds"] / r["video_seconds"]
        print(f"| {name} | {r['frames']} | {r['windows']} | {rate:.2f} | {rate / first:.2f}x | {r['rss_mb']:.0f} |")
    rss = [(name, r) for name, r in table if name.startswith("RSS:")]
    if len(rss) >= 2:
        base_name, base_run = rss[0]
        for name, r in rss[1:]:
            diff = (r["rss_mb"] - base_run["rss_mb"]) / base_run["rss_mb"]
            print(f"\nRSS flatness: {name[5:]}: {r['rss_mb']:.0f} MB vs {base_name[5:]}: {base_run['rss_mb']:.0f} MB: "
                  f"{100 * diff:+.1f} % (target within 20 %)")
    return 0


STAGES = ("decode", "detect", "align", "audio_load", "whisper", "vae_encode", "unet", "vae_decode", "restore",
          "encode")


def print_profile(runs: list[dict], title: str) -> None:
    """Median seconds per stage over the runs, and each stage's share of the run's wall time."""
    wall = statistics.median(r["seconds"] for r in runs)
    names = list(STAGES) + sorted({k for r in runs for k in r["stages"]} - set(STAGES))
    print(f"\n| stage ({title}) | seconds | share of wall time |\n|---|---|---|")
    counted = 0.0
    for name in names:
        seconds = statistics.median(r["stages"].get(name, 0.0) for r in runs)
        counted += seconds
        print(f"| {name} | {seconds:.2f} | {100 * seconds / wall:.1f} % |")
    print(f"| other (glue, waiting on the overlapped threads) | {max(wall - counted, 0):.2f} | "
          f"{100 * max(wall - counted, 0) / wall:.1f} % |")
    print(f"| **wall** ({runs[0]['frames']} frames, {len(runs)} runs, median) | {wall:.2f} | 100 % |")


if __name__ == "__main__":
    sys.exit(main())
