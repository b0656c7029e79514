"""Face pipeline speed on the real clips: detect+track, align, restore, separately and together.

    python bench/face_pipeline.py [--media ../shared/media] [--frames 100] [--repeats 3]

Frames are decoded before timing (decode speed is the media bench's business). Every figure is the
median of ``--repeats`` runs. Baselines: restore is compared with the same algorithm run the way the
official runs it (whole frame, one frame at a time: ``region="full"``), and both align and restore
with the official figures measured on this CPU (3.7 ms align, 85 ms restore per 1080x1920 frame).
Detection reports its rate over every frame of each clip and the frame-to-frame jitter of the three
points: the median and RMS of |p[t] - (p[t-1] + p[t+1]) / 2| in pixels (real head motion included).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from latentsync_core.face import FaceAligner, FaceTracker, get_detector, restore_faces  # noqa: E402
from latentsync_core.media.video import iter_video_frames, read_video  # noqa: E402

OFFICIAL_ALIGN_MS = 3.7
OFFICIAL_RESTORE_MS = 85.0
CLIPS = ("demo1_video.mp4", "demo2_video.mp4")


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def jitter(points: np.ndarray) -> tuple[float, float]:
    p = points.astype(np.float64)
    residual = np.linalg.norm(p[1:-1] - (p[:-2] + p[2:]) / 2, axis=-1)
    return float(np.median(residual)), float(np.sqrt((residual ** 2).mean()))


def bench_detection(media: Path, detector, every_k: int, smoothing: float, max_frames: int | None):
    rows = []
    for clip in CLIPS:
        tracker = FaceTracker(detector, every_k=every_k, smoothing=smoothing)
        elapsed, parts = 0.0, []
        for chunk in iter_video_frames(media / clip, max_frames=max_frames, chunk_size=25):
            start = time.perf_counter()
            parts.append(tracker.process(chunk))
            elapsed += time.perf_counter() - start
        valid = np.concatenate([p.valid for p in parts])
        points = np.concatenate([p.points for p in parts])
        med, rms = jitter(points[valid])
        rows.append((clip, len(valid), valid.mean() * 100, len(valid) / elapsed, med, rms))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=Path(__file__).resolve().parent.parent.parent / "shared" / "media")
    parser.add_argument("--frames", type=int, default=50, help="frames per clip for align/restore timing")
    parser.add_argument("--detect-frames", type=int, default=0, help="frames per clip for detection (0 = all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=512)
    args = parser.parse_args()
    if not (args.media / CLIPS[0]).is_file():
        sys.exit(f"real clips not found in {args.media}")
    torch.set_grad_enabled(False)
    detector = get_detector("bundled")

    print(f"## Detection + tracking (bundled detector, CPU, {torch.get_num_threads()} torch threads)\n")
    print("| clip | every_k | smoothing | frames | face found | fps | jitter median px | jitter RMS px |")
    print("|---|---|---|---|---|---|---|---|")
    for every_k, smoothing in ((1, 0.0), (5, 0.0), (1, 0.5)):
        for clip, n, rate, fps, med, rms in bench_detection(args.media, detector, every_k, smoothing,
                                                           args.detect_frames or None):
            print(f"| {clip} | {every_k} | {smoothing} | {n} | {rate:.1f} % | {fps:.1f} | {med:.2f} | {rms:.2f} |")

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    r = args.resolution
    print(f"\n## Align and restore, R={r}, 1080x1920 frames, ms per frame (median of {args.repeats})\n")
    print("| clip | device | detect | align | restore | restore full-frame per-frame | restore speed-up | "
          "vs official align 3.7 | vs official restore 85 | detect+align+restore fps |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for clip in CLIPS:
        frames, _ = read_video(args.media / clip, max_frames=args.frames)
        n = len(frames)
        track = FaceTracker(detector).process(frames)
        t_detect = timed(lambda: FaceTracker(detector).process(frames), 1) / n
        points = track.points
        for device in devices:
            def align():
                return FaceAligner(r, device=device).align(frames, points, as_tensor=True)

            crops, affines = align()
            faces = crops / 127.5 - 1
            if device == "cuda":
                torch.cuda.synchronize()
            t_align = timed(lambda: (align(), torch.cuda.synchronize() if device == "cuda" else None), args.repeats) / n
            t_restore = timed(lambda: restore_faces(frames, faces, affines, device=device), args.repeats) / n
            subset = slice(0, min(n, 8))
            t_full = timed(lambda: restore_faces(frames[subset], faces[subset], affines[subset], device=device,
                                                 region="full"), 1) / min(n, 8)
            total = t_detect + t_align + t_restore
            print(f"| {clip} | {device} | {t_detect * 1e3:.1f} | {t_align * 1e3:.1f} | {t_restore * 1e3:.1f} | "
                  f"{t_full * 1e3:.1f} | {t_full / t_restore:.1f}x | {OFFICIAL_ALIGN_MS / (t_align * 1e3):.2f}x | "
                  f"{OFFICIAL_RESTORE_MS / (t_restore * 1e3):.1f}x | {1 / total:.1f} |")


if __name__ == "__main__":
    main()
