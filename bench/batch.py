"""Batch throughput on this machine: jobs per hour of `python -m latentsync_core batch` with 1 and 2 workers.

    python bench/batch.py [--media ../shared/media] [--jobs 6] [--frames 25] [--workers 1,2] [--repeats 2]

Each job lip-syncs a short clip cut from the shared demo (400x400 face crop, 25 fps) to its own audio,
with `--weights random-tiny`, 1 step: the figures measure the batch machinery plus the pipeline's
per-frame work, not a real model. One local Ray serves every run; each run starts its own workers.
Columns: wall = run_batch end to end (worker start-up and model loading included), steady = first job
started -> last job finished; medians of --repeats; "vs 1 worker" divides by the 1-worker median.
The load average is printed because other processes share the CPU during a measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _jobs_file(root: Path, media: Path, jobs: int, frames: int) -> Path:
    from tests.node_media import trimmed_shared_clip

    trimmed_shared_clip(media / "demo1_video.mp4", root / "clip.mp4", num_frames=frames)
    lines = [json.dumps({"video": "clip.mp4", "audio": "clip.mp4", "out": f"job{i}.mp4", "seed": i})
             for i in range(jobs)]
    path = root / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _one_run(jobs_file: Path, out_dir: Path, workers: int) -> dict:
    from latentsync_core.batch.driver import run_batch
    from latentsync_core.cli import _build_parser

    options = _build_parser().parse_args(["batch", "--jobs", str(jobs_file), "--out", str(out_dir),
                                          "--weights", "random-tiny", "--steps", "1"])
    marks = {"first_start": None, "last_finish": None}

    def on_event(event):
        now = time.perf_counter()
        if event["event"] == "started" and marks["first_start"] is None:
            marks["first_start"] = now
        elif event["event"] == "finished":
            marks["last_finish"] = now

    started = time.perf_counter()
    summary = run_batch(jobs_file, out_dir, options, workers=workers, on_event=on_event)
    wall = time.perf_counter() - started
    if summary.failed:
        raise SystemExit(f"{summary.failed} jobs failed: {[r['error'] for r in summary.records if r['error']]}")
    return {"wall": wall, "steady": marks["last_finish"] - marks["first_start"], "jobs": summary.done,
            "frames": summary.frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--media", type=Path, default=Path(os.environ.get("LATENTSYNC_MEDIA_DIR",
                                                                          REPO.parent / "shared" / "media")))
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--frames", type=int, default=25, help="frames per clip (25 = 1 s)")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("LATENTSYNC_PROGRESS", "0")

    import ray

    from latentsync_core.batch.driver import connect

    counts = [int(w) for w in args.workers.split(",")]
    load_before = os.getloadavg()
    connect()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        jobs_file = _jobs_file(Path(tmp), args.media, args.jobs, args.frames)
        for workers in counts:
            runs = [_one_run(jobs_file, Path(tmp) / f"out_w{workers}_r{r}", workers) for r in range(args.repeats)]
            rows[workers] = {key: statistics.median(run[key] for run in runs) for key in ("wall", "steady")}
            rows[workers]["frames"] = runs[0]["frames"]
            print(f"  {workers} worker(s): {[round(run['wall'], 1) for run in runs]} s wall", flush=True)
    ray.shutdown()
    load_after = os.getloadavg()

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"\n{args.jobs} jobs x {args.frames} frames (400x400, 25 fps), --weights random-tiny --steps 1, "
          f"{cpus} CPUs, median of {args.repeats}; load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after (shared machine)\n")
    print("| workers | wall s | jobs/hour (wall) | steady s | jobs/hour (steady) | output fps (steady) | vs 1 worker |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    base = rows.get(1, rows[counts[0]])
    for workers in counts:
        row = rows[workers]
        print(f"| {workers} | {row['wall']:.1f} | {args.jobs / row['wall'] * 3600:.0f} | {row['steady']:.1f} | "
              f"{args.jobs / row['steady'] * 3600:.0f} | {row['frames'] / row['steady']:.2f} | "
              f"{base['wall'] / row['wall']:.2f}x |")


if __name__ == "__main__":
    main()
