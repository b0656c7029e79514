"""Whisper feature extraction speed: seconds of compute per minute of audio, ours vs the official code.

    python bench/audio_features.py [--checkpoint whisper/tiny.pt] [--durations 9.6,30,60,120]
        [--official-root /path/to/LatentSync --official-python /path/to/its/venv/bin/python]

Without --checkpoint a random-weight model of the full `tiny` architecture (384 wide, 4 blocks) is
written to a temporary folder: the speed does not depend on the weight values. Audio is the demo wav
from the shared media folder tiled to each duration (or a synthetic voice when it is absent).
Ours is timed from 16-bit samples to features (int->float, mel, encoder, stitching), on CPU in fp32
and, when CUDA is present, on GPU in fp16. With --official-root the official
`Audio2Feature.audio2feat` runs in that interpreter on the same wav and weights (its ffmpeg decode is
replaced by reading the wav, so only feature extraction is timed on both sides).
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

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SR = 16000


def official_worker(argv: list[str]) -> None:
    """Runs inside the official environment: time Audio2Feature.audio2feat on each wav, print JSON."""
    import types

    root, checkpoint, repeats, threads, *wavs = argv
    import torch
    from scipy.io import wavfile

    torch.set_num_threads(int(threads))
    sys.modules.setdefault("ffmpeg", types.ModuleType("ffmpeg"))  # imported by its file loader only
    sys.path.insert(0, root)
    import latentsync.whisper.whisper.audio as official_audio
    from latentsync.whisper.audio2feature import Audio2Feature

    def read_like_ffmpeg(path, sr=SR):  # what its ffmpeg call returns for a 16 kHz mono s16 wav
        return wavfile.read(path)[1].astype(np.float32) / 32768.0

    official_audio.load_audio = read_like_ffmpeg
    extractor = Audio2Feature(model_path=checkpoint, device="cuda" if torch.cuda.is_available() else "cpu")
    times = {}
    for wav in wavs:
        extractor.audio2feat(wav)  # warm-up
        runs = []
        for _ in range(int(repeats)):
            start, start_cpu = time.perf_counter(), time.process_time()
            extractor.audio2feat(wav)
            runs.append((time.perf_counter() - start, time.process_time() - start_cpu))
        times[wav] = runs
    print("RESULT " + json.dumps(times))


def demo_audio(seconds: float) -> np.ndarray:
    media = Path(os.environ.get("LATENTSYNC_MEDIA_DIR", REPO.parent / "shared" / "media"))
    wav = media / "demo1_audio.wav"
    if wav.is_file():
        from scipy.io import wavfile

        rate, base = wavfile.read(wav)
        if rate == SR and base.dtype == np.int16 and base.ndim == 1:
            reps = int(np.ceil(seconds * SR / len(base)))
            return np.tile(base, reps)[: int(seconds * SR)]
    t = np.arange(int(seconds * SR)) / SR
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)
    return np.round(np.clip(0.25 * voice, -1, 1) * 32767).astype(np.int16)


def time_ours(model, samples: np.ndarray, sync) -> tuple[float, float]:
    from latentsync_core.audio import model_waveform, whisper_features

    sync()
    start, start_cpu = time.perf_counter(), time.process_time()
    whisper_features(model, model_waveform(samples, SR))
    sync()
    return time.perf_counter() - start, time.process_time() - start_cpu


def medians(runs) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def time_official(args, checkpoint: Path, wavs: dict[float, str]) -> dict[float, tuple[float, float]] | None:
    command = [args.official_python, str(Path(__file__).resolve()), "--official-worker", str(args.official_root),
               str(checkpoint), "1", str(args.threads), *wavs.values()]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    result = next((line for line in done.stdout.splitlines() if line.startswith("RESULT ")), None)
    if result is None:
        print("official run failed:\n" + done.stderr[-3000:], file=sys.stderr)
        return None
    official = json.loads(result[len("RESULT "):])
    return {d: tuple(official[wav][0]) for d, wav in wavs.items()}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--official-worker":
        official_worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="openai-whisper .pt (default: random full-size tiny)")
    parser.add_argument("--durations", default="9.6,30,60,120", help="audio lengths in seconds, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 16))
    parser.add_argument("--official-root", type=Path, help="a LatentSync checkout: time its extraction as baseline")
    parser.add_argument("--official-python", default=sys.executable, help="interpreter with the official requirements")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    os.environ.setdefault("LATENTSYNC_PROGRESS", "0")
    import torch
    from scipy.io import wavfile

    from latentsync_core.audio import encoder_dims, load_whisper
    from latentsync_core.audio.tiny import TINY_DIMS, random_whisper_checkpoint
    from latentsync_core.checkpoints import save_checkpoint_file

    torch.set_num_threads(args.threads)
    durations = [float(d) for d in args.durations.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint
        if checkpoint is None:
            checkpoint = Path(tmp) / "tiny_random.pt"
            save_checkpoint_file(random_whisper_checkpoint(TINY_DIMS, seed=0), checkpoint)
        clips = {d: demo_audio(d) for d in durations}
        wavs = {}
        for d, samples in clips.items():
            wavs[d] = str(Path(tmp) / f"audio_{d:g}s.wav")
            wavfile.write(wavs[d], SR, samples)

        models = {}
        for device, dtype in [("cpu", torch.float32)] + ([("cuda", torch.float16)] if torch.cuda.is_available() else []):
            models[f"ours {device} {str(dtype).split('.')[-1]}"] = load_whisper(checkpoint, device, dtype)
        dims = encoder_dims(next(iter(models.values())))
        syncs = {name: torch.cuda.synchronize if " cuda " in name else (lambda: None) for name in models}
        official_name = f"official {'cuda fp16' if torch.cuda.is_available() else 'cpu fp32'}"
        for name, model in models.items():
            for d in durations:
                time_ours(model, clips[d], syncs[name])  # warm-up
        runs: dict[tuple[str, float], list[tuple[float, float]]] = {}
        # Rounds alternate ours and the official, so load from other processes hits both alike.
        for _ in range(args.repeats):
            for name, model in models.items():
                for d in durations:
                    runs.setdefault((name, d), []).append(time_ours(model, clips[d], syncs[name]))
            if args.official_root is not None:
                official = time_official(args, checkpoint, wavs)
                for d, timing in (official or {}).items():
                    runs.setdefault((official_name, d), []).append(timing)
        rows = [(name, d, *medians(r)) for (name, d), r in runs.items()]

    print(f"\nWhisper features, {dims.n_audio_state}-wide {dims.n_audio_layer}-block encoder"
          f"{'' if args.checkpoint is None else ' from ' + str(args.checkpoint)}, {args.threads} threads, "
          f"median of {args.repeats}\n")
    # Wall time is what a user waits; CPU time (all threads of the process) is the work done, which
    # moves less than wall time when other processes share the machine.
    print(f"| {'run':<20} | audio s | wall s | wall s/audio min | cpu s | cpu s/audio min | speed-up wall | speed-up cpu |")
    print(f"|{'-' * 22}|---------|--------|------------------|-------|-----------------|---------------|--------------|")
    baseline = {(name.split()[1], d): (wall, cpu) for name, d, wall, cpu in rows if name.startswith("official")}
    for name, d, wall, cpu in rows:
        base = None if name.startswith("official") else baseline.get((name.split()[1], d))
        ratio_wall = f"{base[0] / wall:.2f}x" if base else ""
        ratio_cpu = f"{base[1] / cpu:.2f}x" if base else ""
        print(f"| {name:<20} | {d:7.1f} | {wall:6.3f} | {wall / d * 60:16.3f} | {cpu:5.2f} | {cpu / d * 60:15.3f} "
              f"| {ratio_wall:>13} | {ratio_cpu:>12} |")


if __name__ == "__main__":
    main()
