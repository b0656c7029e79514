"""U-Net speed and memory: one classifier-free-guidance forward (batch 2 x 16 frames) at 256 px and 512 px.

    python bench/unet_step.py [--checkpoint latentsync_unet.pt] [--cases 256:fp32,256:bf16,512:bf16]
        [--repeats 3] [--repeats-512 1] [--threads N] [--device cpu]
        [--official-root /path/to/LatentSync --official-python /path/to/its/venv/bin/python]

Without --checkpoint a full-size (1.27 B parameter) checkpoint with random weights is written to a
temporary folder and deleted at the end: speed does not depend on the weight values. Every measurement
runs in its own process, so peak RSS is that of one load (or one load plus forwards) alone.
Reported per case: median and min seconds of `unet(sample [2,13,16,S,S], t, audio [32,50,C])` after
one warm-up run, and the process's peak RSS. A separate table gives load_unet's peak RSS against the
model's size (the loader maps the file and assigns its tensors; it must not hold two copies).
With --official-root the official UNet3DConditionModel (configs/unet/stage2_512.yaml) runs the same
cases in that interpreter on the same weights and inputs, interleaved with ours; without it the
baseline column is the issue's figures for the official code on the project's 2-core CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
# Official implementation, one CFG forward on the project's 2-core CPU (figures quoted in the U-Net issue).
ISSUE_BASELINE_S = {("256", "fp32"): 43.0, ("256", "bf16"): 15.7, ("512", "bf16"): 93.0}


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux


def make_inputs(size: int, audio_width: int, dtype):
    import torch

    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 13, 16, size, size, generator=gen).to(dtype)
    audio = torch.randn(2 * 16, 50, audio_width, generator=gen).to(dtype)
    return sample, audio


def time_runs(forward, repeats: int, device) -> list[float]:
    import torch

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    forward()  # warm-up: first touch of memory-mapped weights, allocator growth
    sync()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward()
        sync()
        runs.append(time.perf_counter() - start)
    return runs


# --------------------------------------------------------------------------- workers (child processes)
def worker_write(path: str) -> dict:
    import torch

    sys.path.insert(0, str(REPO))
    from latentsync_core.checkpoints import save_checkpoint_file
    from latentsync_core.unet import LatentSyncUNet
    from latentsync_core.unet.tiny import randomize_

    with torch.device("meta"):
        model = LatentSyncUNet()
    model = randomize_(model.to_empty(device="cpu"), seed=0)  # skips the default init: every tensor is overwritten
    save_checkpoint_file({"state_dict": model.state_dict(), "global_step": 0}, path)
    return {"parameters": sum(p.numel() for p in model.parameters())}


def worker_load(path: str, dtype_name: str) -> dict:
    import torch

    sys.path.insert(0, str(REPO))
    from latentsync_core.unet import load_unet

    start = time.perf_counter()
    model = load_unet(path, dtype=getattr(torch, dtype_name))
    seconds = time.perf_counter() - start
    after_load = peak_rss_gb()
    with torch.no_grad():  # touch every weight, as the first forward does
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.float().sum()
    size = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()]) / 1e9
    return {"seconds": seconds, "rss_after_load": after_load, "rss_weights_resident": peak_rss_gb(), "model_gb": size}


def worker_ours(path: str, dtype_name: str, size: int, repeats: int, threads: int, device: str) -> dict:
    import torch

    sys.path.insert(0, str(REPO))
    from latentsync_core.unet import load_unet

    torch.set_num_threads(threads)
    dev = torch.device(device)
    model = load_unet(path, device=dev, dtype=getattr(torch, dtype_name))
    sample, audio = make_inputs(size, model.config["cross_attention_dim"], model.dtype)
    sample, audio = sample.to(dev), audio.to(dev)
    with torch.inference_mode():
        runs = time_runs(lambda: model(sample, 500, audio), repeats, dev)
    return {"runs": runs, "peak_rss": peak_rss_gb()}


def worker_official(root: str, path: str, dtype_name: str, size: int, repeats: int, threads: int, device: str) -> dict:
    import types

    import torch
    from omegaconf import OmegaConf

    torch.set_num_threads(threads)
    # The official package's utils import training-only dependencies (torchvision, decord); the U-Net needs one helper.
    utils_pkg = types.ModuleType("latentsync.utils")
    utils_pkg.__path__ = []
    util = types.ModuleType("latentsync.utils.util")
    util.zero_rank_log = lambda logger, message: None
    sys.modules.update({"latentsync.utils": utils_pkg, "latentsync.utils.util": util})
    sys.path.insert(0, root)
    from latentsync.models.unet import UNet3DConditionModel

    config = OmegaConf.to_container(OmegaConf.load(Path(root) / "configs/unet/stage2_512.yaml").model)
    dtype, dev = getattr(torch, dtype_name), torch.device(device)
    with torch.device("meta"):
        model = UNet3DConditionModel.from_config(config)
    state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)["state_dict"]
    state = {k: v.to(dev, dtype) for k, v in state.items()}
    torch.nn.Module.load_state_dict(model, state, strict=True, assign=True)
    model.eval()
    sample, audio = make_inputs(size, config["cross_attention_dim"], dtype)
    sample, audio = sample.to(dev), audio.to(dev)
    with torch.inference_mode():
        runs = time_runs(lambda: model(sample, 500, encoder_hidden_states=audio).sample, repeats, dev)
    return {"runs": runs, "peak_rss": peak_rss_gb()}


WORKERS = {"write": worker_write, "load": worker_load, "ours": worker_ours, "official": worker_official}


def run_worker(python: str, name: str, *args) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--worker", name, *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"worker {name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


# --------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a full-size U-Net checkpoint (default: write a random one)")
    parser.add_argument("--cases", default="256:fp32,256:bf16,512:bf16", help="comma-separated PIXELS:DTYPE")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case at 256 px")
    parser.add_argument("--repeats-512", type=int, default=1, help="timed runs per case at 512 px")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--load-dtypes", default="fp32,bf16", help="dtypes for the load_unet memory table ('' skips)")
    parser.add_argument("--official-root")
    parser.add_argument("--official-python")
    args = parser.parse_args()

    tmp = None
    checkpoint = args.checkpoint
    if checkpoint is None:
        tmp = tempfile.TemporaryDirectory(prefix="unet_bench_")
        checkpoint = str(Path(tmp.name) / "latentsync_unet.pt")
        print(f"writing a random full-size checkpoint to {checkpoint} ...", flush=True)
        info = run_worker(sys.executable, "write", checkpoint)
        print(f"  {info['parameters']:,} parameters, {os.path.getsize(checkpoint) / 1e9:.2f} GB", flush=True)
    try:
        load_rows = []
        for name in filter(None, args.load_dtypes.split(",")):
            result = run_worker(sys.executable, "load", checkpoint, DTYPES[name])
            load_rows.append((name, result))
            print(f"  load {name}: {result}", flush=True)
        rows = []
        for case in args.cases.split(","):
            pixels, dtype = case.split(":")
            size, repeats = int(pixels) // 8, args.repeats if int(pixels) < 512 else args.repeats_512
            common = (checkpoint, DTYPES[dtype], size, repeats, args.threads, args.device)
            ours = run_worker(sys.executable, "ours", *common)
            print(f"  ours {case}: {ours}", flush=True)
            official = None
            if args.official_root and args.official_python:
                official = run_worker(args.official_python, "official", args.official_root, *common)
                print(f"  official {case}: {official}", flush=True)
            rows.append((pixels, dtype, ours, official))
    finally:
        if tmp is not None:
            tmp.cleanup()
    print_tables(load_rows, rows, args)


def print_tables(load_rows, rows, args) -> None:
    print(f"\nload_unet peak RSS (GB), fresh process, file {'given' if args.checkpoint else 'random full-size'}")
    print(f"{'dtype':6} {'model GB':>9} {'load s':>7} {'RSS after load':>15} {'RSS weights resident':>21} {'ratio':>6}")
    for name, r in load_rows:
        peak = max(r["rss_after_load"], r["rss_weights_resident"])
        print(f"{name:6} {r['model_gb']:9.2f} {r['seconds']:7.1f} {r['rss_after_load']:15.2f} "
              f"{r['rss_weights_resident']:21.2f} {peak / r['model_gb']:6.2f}")
    measured_official = any(o is not None for *_, o in rows)
    baseline = "official (same run)" if measured_official else "official (issue figures)"
    print(f"\nOne CFG forward [2,13,16,S,S] on {args.device}, {args.threads} threads: seconds (median / min of runs)")
    print(f"{'px':>4} {'dtype':5} {'runs':>4} {'ours med':>9} {'ours min':>9} {'peak RSS GB':>12} "
          f"{baseline + ' med':>28} {'ratio ours/baseline':>20}")
    for pixels, dtype, ours, official in rows:
        med, low = statistics.median(ours["runs"]), min(ours["runs"])
        if official is not None:  # its RSS is not shown: it reflects this script's loading, not the official loader
            base = statistics.median(official["runs"])
            base_text = f"{base:.1f}"
        else:
            base = ISSUE_BASELINE_S.get((pixels, dtype))
            base_text = f"{base:.1f}" if base else "-"
        ratio = f"{med / base:.2f}" if base else "-"
        print(f"{pixels:>4} {dtype:5} {len(ours['runs']):4d} {med:9.1f} {low:9.1f} {ours['peak_rss']:12.2f} "
              f"{base_text:>28} {ratio:>20}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        name, raw = sys.argv[2], sys.argv[3:]
        converted = [int(a) if a.isdigit() else a for a in raw]
        print("RESULT " + json.dumps(WORKERS[name](*converted)), flush=True)
    else:
        main()
