"""Paste-back seams on real frames: official ``crop_box`` vs ``seamless``.

    python bench/blend.py [--media ../shared/media] [--frames 4] [--resolution 256] [--write docs/blend]

Per clip, a few frames are detected (bundled detector) and aligned; the "generated" face is the
aligned crop itself with a colour/brightness offset (x1.1, +18 R, +4 G, -12 B) inside the mouth mask
(outside it the official decoder copies the original pixels back), i.e. exactly the situation that
leaves a U-shaped seam. Both blends paste it back and we measure, per frame (median over frames):

* seam energy: mean squared Sobel gradient of (output - original frame) over the band where each
  blend changes from original to generated (crop_box: the mouth-mask edge; seamless: its feathered
  band; the seamless figure is the larger of its value on both bands). Baseline: crop_box;
* interior: largest |seamless - crop_box| over the mouth interior (where seamless applies no
  correction), which must be 0: the generated mouth itself is left as the official pastes it;
* outside: pixels outside the warped mask that seamless changed (must be 0);
* time: median of 3 runs, ms per frame, of each paste-back over the clip's frames (baseline: crop_box).

``--write`` saves small before/after crops (PNG) around the first face of each clip.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from latentsync_core.face import align_faces, detect_faces, mouth_mask, restore_faces  # noqa: E402
from latentsync_core.face.blend import blend_weights, frame_weight  # noqa: E402
from latentsync_core.media.video import iter_video_frames  # noqa: E402

CLIPS = ("demo1_video.mp4", "demo2_video.mp4")
GAIN, OFFSET = 1.1, np.array([18.0, 4.0, -12.0])


def seam_energy(image: np.ndarray, reference: np.ndarray, weight: np.ndarray) -> float:
    diff = image.astype(np.float32) - reference.astype(np.float32)
    gx, gy = cv2.Sobel(diff, cv2.CV_32F, 1, 0), cv2.Sobel(diff, cv2.CV_32F, 0, 1)
    band = (weight > 0.02) & (weight < 0.98)
    return float((gx ** 2 + gy ** 2).sum(-1)[band].mean())


def synthetic_faces(crops: np.ndarray, resolution: int) -> torch.Tensor:
    mouth = mouth_mask(resolution).numpy()[None, :, :, None]
    faces = crops.astype(np.float32)
    faces = np.clip(faces * (1 - mouth) + (faces * GAIN + OFFSET) * mouth, 0, 255)
    return torch.from_numpy(faces).permute(0, 3, 1, 2) / 127.5 - 1


def crop_around(frame: np.ndarray, affine: np.ndarray, resolution: int, width: int = 200) -> np.ndarray:
    """The lower face of ``frame`` (the crop box's lower half, axis-aligned), scaled to ``width``."""
    inv = cv2.invertAffineTransform(affine.astype(np.float64))
    corners = np.array([[0, 0.35], [1, 0.35], [0, 1], [1, 1]]) * resolution
    pts = corners @ inv[:, :2].T + inv[:, 2]
    x0, y0 = np.floor(pts.min(0)).astype(int)
    x1, y1 = np.ceil(pts.max(0)).astype(int)
    h, w = frame.shape[:2]
    part = frame[max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)]
    return cv2.resize(part, (width, int(round(part.shape[0] * width / part.shape[1]))), interpolation=cv2.INTER_AREA)


def run_clip(path: Path, frames_wanted: int, resolution: int, write: Path | None) -> dict:
    frames = np.concatenate(list(iter_video_frames(path, start=30, max_frames=frames_wanted * 10, chunk_size=50)))
    frames = frames[::10][:frames_wanted]
    track = detect_faces(frames, "bundled")
    frames, points = frames[track.valid], track.points[track.valid]
    crops, affines = align_faces(frames, points, resolution, False)
    faces = synthetic_faces(crops, resolution)
    timings = {"crop_box": [], "seamless": []}
    for _ in range(3):
        for blend in timings:
            start = time.perf_counter()
            restore_faces(frames, faces, affines, blend=blend)
            timings[blend].append((time.perf_counter() - start) * 1000 / len(frames))
    official = restore_faces(frames, faces, affines)
    seamless = restore_faces(frames, faces, affines, blend="seamless")
    m, w = blend_weights(resolution)
    edge = cv2.GaussianBlur(mouth_mask(resolution).numpy(), (0, 0), 1.0)
    core = cv2.erode(((m >= 1) & (w <= 0)).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(np.float32)
    rows = []
    for i in range(len(frames)):
        hw = frames.shape[1:3]
        sharp, soft = frame_weight(edge, affines[i], hw), frame_weight(m, affines[i], hw)
        interior = frame_weight(core, affines[i], hw) >= 1
        ours = max(seam_energy(seamless[i], frames[i], sharp), seam_energy(seamless[i], frames[i], soft))
        rows.append({
            "crop_box": seam_energy(official[i], frames[i], sharp),
            "seamless": ours,
            "interior": int(np.abs(seamless[i].astype(int) - official[i].astype(int))[interior].max()),
            "outside": int((seamless[i] != frames[i])[soft <= 0].any(-1).sum()),
        })
    if write is not None:
        write.mkdir(parents=True, exist_ok=True)
        stem = path.stem.replace("_video", "")
        panels = [crop_around(img[0], affines[0], resolution) for img in (frames, official, seamless)]
        cv2.imwrite(str(write / f"{stem}_blend.png"), cv2.cvtColor(np.concatenate(panels, axis=1), cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_PNG_COMPRESSION, 9])
    result = {k: [r[k] for r in rows] for k in rows[0]}
    result["ms"] = {k: statistics.median(v) for k, v in timings.items()}
    result["size"] = f"{frames.shape[2]}x{frames.shape[1]}"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "media")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--write", type=Path, default=None, help="folder for before/after PNG crops")
    args = parser.parse_args(argv)
    print("| clip | frames | seam energy crop_box | seam energy seamless | ratio | interior max diff | "
          "changed outside mask | ms/frame crop_box | ms/frame seamless |")
    print("|---|---|---|---|---|---|---|---|---|")
    for clip in CLIPS:
        res = run_clip(args.media / clip, args.frames, args.resolution, args.write)
        cb, sl = statistics.median(res["crop_box"]), statistics.median(res["seamless"])
        print(f"| {clip} | {len(res['crop_box'])} | {cb:.1f} | {sl:.1f} | {sl / cb:.3f} | "
              f"{max(res['interior'])} | {sum(res['outside'])} px | {res['ms']['crop_box']:.1f} | "
              f"{res['ms']['seamless']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
