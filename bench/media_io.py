"""Video decode / encode throughput of latentsync_core.media (frames per second, median of N runs).

    python bench/media_io.py [--video PATH] [--runs 3] [--encode-frames 50]

Decode rows read demo1_video.mp4 (1080x1920 HEVC, 25 fps) end to end; the baseline is PyAV's bare
decode (no RGB conversion), and "PyAV default rgb24" is how ComfyUI's own loader converts frames.
Encode rows write `--encode-frames` real 1080x1920 frames to mp4 with VideoWriter at crf 18.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from latentsync_core.media.video import iter_video_frames, probe_video  # noqa: E402
from latentsync_core.media.writer import VideoWriter  # noqa: E402

DEFAULT_VIDEO = Path(os.environ.get("LATENTSYNC_MEDIA_DIR", Path(__file__).resolve().parents[2] / "shared" / "media"))
DEFAULT_VIDEO = DEFAULT_VIDEO / "demo1_video.mp4"


def _decode_only(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def _decode_default_rgb(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for frame in container.decode(stream) if frame.to_ndarray(format="rgb24") is not None)


def _decode_ours(path: Path) -> int:
    return sum(len(chunk) for chunk in iter_video_frames(path, chunk_size=16))


def _encode(frames: np.ndarray, preset: str, folder: Path) -> int:
    with VideoWriter(folder / f"bench_{preset}.mp4", 25, crf=18, preset=preset) as writer:
        for frame in frames:
            writer.write(frame)
    return len(frames)


def _measure(cases: dict, runs: int) -> dict:
    """Median frames/s and CPU ms/frame (all threads) per case; runs interleave the cases so that
    load from other processes drifts over all of them alike."""
    rates: dict = {name: [] for name in cases}
    cpu: dict = {name: [] for name in cases}
    counts: dict = {}
    for _ in range(runs):
        for name, fn in cases.items():
            wall, process = time.perf_counter(), time.process_time()
            counts[name] = fn()
            rates[name].append(counts[name] / (time.perf_counter() - wall))
            cpu[name].append((time.process_time() - process) / counts[name] * 1000)
    return {name: (counts[name], statistics.median(rates[name]), statistics.median(cpu[name])) for name in cases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--encode-frames", type=int, default=50)
    args = parser.parse_args()
    if not args.video.is_file():
        sys.exit(f"video not found: {args.video} (pass --video or set LATENTSYNC_MEDIA_DIR)")

    info = probe_video(args.video)
    print(f"input: {args.video.name} {info.width}x{info.height} {info.fps} fps {info.num_frames} frames; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; PyAV {av.__version__}; "
          f"median of {args.runs} interleaved runs")
    video = args.video
    decode = _measure({
        "decode: PyAV decode only (baseline)": lambda: _decode_only(video),
        "decode: PyAV default rgb24 (ComfyUI-style)": lambda: _decode_default_rgb(video),
        "decode: iter_video_frames (ours, upright RGB)": lambda: sum(1 for _ in iter_video_frames(video)),
        "decode: iter_video_frames chunk_size=16": lambda: _decode_ours(video),
    }, args.runs)
    frames = np.stack([f for _, f in zip(range(args.encode_frames), iter_video_frames(video))])
    with tempfile.TemporaryDirectory() as folder:
        encode = _measure({
            f"encode: VideoWriter crf 18 preset {preset}": (lambda p=preset: _encode(frames, p, Path(folder)))
            for preset in ("medium", "veryfast")
        }, args.runs)
        sizes = {preset: (Path(folder) / f"bench_{preset}.mp4").stat().st_size / 1024 for preset in ("medium", "veryfast")}

    print(f"| {'case':<48} | {'frames':>6} | {'frames/s':>8} | {'ratio':>6} | {'CPU ms/frame':>12} |")
    print(f"|{'-' * 50}|{'-' * 8}|{'-' * 10}|{'-' * 8}|{'-' * 14}|")
    for results in (decode, encode):
        base = next(iter(results.values()))[1]
        for name, (count, fps, cpu_ms) in results.items():
            print(f"| {name:<48} | {count:>6} | {fps:>8.1f} | {fps / base:>6.2f} | {cpu_ms:>12.1f} |")
    print("ratio: decode rows vs PyAV decode only; encode rows vs preset medium (the default). "
          f"Output sizes: medium {sizes['medium']:.0f} KiB, veryfast {sizes['veryfast']:.0f} KiB "
          f"for {args.encode_frames} frames.")


if __name__ == "__main__":
    main()
