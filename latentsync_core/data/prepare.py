"""Dataset preparation: a folder of talking-head videos -> aligned face clips with audio + a manifest.

Per video (each step optional where the official pipeline allows it):
  1. drop broken files (unreadable, no video or no audio track),
  2. resample to 25 fps (nearest frame, like ffmpeg's fps filter) and the audio to 16 kHz mono,
  3. split at scene cuts (scenes.py), then into segments of `segment_seconds`,
  4. align the face of every frame at `resolution` (frames without a face split a segment; pieces shorter
     than `min_frames` are dropped and counted),
  5. with a SyncNet (used by default when its weights are present, as the official recipe filters every
     clip): score sync, drop clips whose sync is unclear or whose |offset| > `max_offset`, and shift the
     audio by the offset so the kept clip is in sync. "Unclear" is judged on StableSyncNet's own scale:
     the official drops clips under confidence 3 of SyncNet v2, whose in-sync clips have a median
     distance over shifts of about 14, so a clip must have confidence >= 3/14 of its median distance
     (`min_sync_ratio`, scale-free, ~0.21); `min_sync_confidence` adds an absolute threshold,
  6. with a quality scorer (e.g. hyperIQA, needs weights): drop clips under `min_quality`.
Clips are written atomically; a source's manifest lines are appended only when the source is finished,
and `prepared_sources.jsonl` records finished sources, so an interrupted run resumes where it stopped.
Memory: one chunk of decoded frames plus the aligned crops of one segment.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .. import host
from ..errors import LatentSyncError, MediaError
from ..atomic import atomic_path
from .manifest import MANIFEST_NAME, VIDEO_EXTENSIONS, ClipRecord, DatasetError, append_lines, find_videos
from .scenes import SceneOptions, detect_scene_cuts, scene_spans

log = logging.getLogger("latentsync")

SOURCES_NAME = "prepared_sources.jsonl"
CLIPS_DIR = "clips"
SAMPLE_RATE = 16000
CHUNK = 16

QualityScorer = Callable[[np.ndarray], float]  # aligned crops uint8 [n, R, R, 3] -> score (hyperIQA: 0..100)


@dataclass
class PrepareOptions:
    """How `prepare_dataset` cuts and filters clips.

    The sync filters run only with a SyncNet, and a clip is kept only when it passes every one that is on:
    ``min_sync_ratio`` (confidence at least this fraction of the median distance; the official threshold on
    StableSyncNet's scale, see the module docstring; 0 or None: off), ``min_sync_confidence`` (an absolute
    confidence floor; 0 or None: off) and ``max_offset`` (largest |audio offset| kept, in frames; at
    ``sync_vshift`` or above: off, as no larger offset is searched). So 0 on one of them turns off that one
    only; to keep every clip, pass no SyncNet (or turn all three off).
    """

    resolution: int = 256
    fps: int = 25
    segment_seconds: float = 5.0
    min_frames: int = 32                 # two 16-frame windows: a target and a separate reference
    detect_scenes: bool = True
    scene: SceneOptions = field(default_factory=SceneOptions)
    detector: str = "auto"               # insightface (official) when installed, else bundled
    min_sync_confidence: float | None = None
    min_sync_ratio: float | None = 3 / 14  # confidence / median distance; the official threshold, scale-free
    max_offset: int = 6                  # the official sync_av.py drops |offset| > 6
    sync_vshift: int = 15
    min_quality: float = 40.0            # hyperIQA threshold of the official pipeline
    max_videos: int | None = None


@dataclass
class PrepareReport:
    output_dir: Path
    manifest: Path
    videos: int = 0
    resumed: int = 0
    broken: int = 0
    clips: int = 0
    frames: int = 0
    dropped_short: int = 0
    dropped_no_face: int = 0
    dropped_sync: int = 0
    dropped_offset: int = 0
    dropped_quality: int = 0
    notes: list[str] = field(default_factory=list)
    hint: str = ""  # what to change when the run kept nothing

    def summary(self) -> str:
        return (f"{self.clips} clips ({self.frames} frames) from {self.videos} videos"
                f" ({self.resumed} already done, {self.broken} broken); dropped: {self.dropped_short} too short, "
                f"{self.dropped_no_face} without a face, {self.dropped_sync} low sync, "
                f"{self.dropped_offset} offset too large, {self.dropped_quality} low quality. Manifest: {self.manifest}"
                + (f". {self.hint}" if self.hint else ""))


# --------------------------------------------------------------------------- frame-rate conversion
def resampled_indices(num_frames: int, src_fps: float, dst_fps: float) -> np.ndarray:
    """Source frame for each output frame at `dst_fps` (nearest in time, as ffmpeg's fps filter picks)."""
    count = max(1, int(round(num_frames * dst_fps / src_fps))) if num_frames else 0
    return np.minimum(np.floor(np.arange(count) * src_fps / dst_fps + 0.5).astype(np.int64), num_frames - 1)


def resampled_chunks(path: Path, src_fps: float, dst_fps: float, num_frames: int,
                     chunk: int = CHUNK) -> Iterator[np.ndarray]:
    """Stream `path` at `dst_fps` in chunks [n, H, W, 3]."""
    from ..media.video import iter_video_frames

    wanted = resampled_indices(num_frames, src_fps, dst_fps)
    position, pending = 0, []
    for index, frame in enumerate(iter_video_frames(path)):
        while position < len(wanted) and wanted[position] == index:
            pending.append(frame)
            position += 1
            if len(pending) == chunk:
                yield np.stack(pending)
                pending = []
        if position >= len(wanted):
            break
    if pending:
        yield np.stack(pending)


# --------------------------------------------------------------------------- segments
def plan_segments(num_frames: int, cuts: list[int], segment_frames: int, min_frames: int) -> list[tuple[int, int]]:
    """Split each scene into `segment_frames` pieces; a short remainder joins the piece before it."""
    segments = []
    for start, stop in scene_spans(num_frames, cuts):
        pieces = [(s, min(s + segment_frames, stop)) for s in range(start, stop, segment_frames)]
        if len(pieces) > 1 and pieces[-1][1] - pieces[-1][0] < min_frames:
            last = pieces.pop()
            pieces[-1] = (pieces[-1][0], last[1])
        segments.extend(pieces)
    return segments


def sync_filter_note(options: PrepareOptions) -> str:
    """One line naming the sync filters that are on, as `_keep_clip` applies them."""
    rules = []
    if options.min_sync_ratio:
        rules.append(f"confidence >= {options.min_sync_ratio:.4g} x median distance (min_sync_ratio)")
    if options.min_sync_confidence:
        rules.append(f"confidence >= {options.min_sync_confidence:g} (min_sync_confidence)")
    if options.max_offset < options.sync_vshift:
        rules.append(f"|offset| <= {options.max_offset} frames (max_offset)")
    if not rules:
        return "sync filter: off (every clip kept); offsets are still corrected"
    return "sync filter: keeps clips with " + " and ".join(rules) + "; offsets are corrected"


def check_sync_options(options: PrepareOptions) -> None:
    for name in ("min_sync_ratio", "min_sync_confidence"):
        value = getattr(options, name)
        if value is not None and not value >= 0:
            raise DatasetError(f"{name} must be >= 0 (0 turns that filter off), got {value}")
    if options.max_offset < 0:
        raise DatasetError(f"max_offset must be >= 0 frames, got {options.max_offset}")


def passes_sync_ratio(confidence: float, min_distance: float, ratio: float | None) -> bool:
    """Confidence (median - min distance over shifts) at least ``ratio`` x the median distance."""
    if ratio is None or ratio <= 0:
        return True
    median = confidence + min_distance
    return median > 0 and confidence >= ratio * median


def face_runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """[(start, stop)] of consecutive True values."""
    runs, start = [], None
    for i, ok in enumerate(list(valid) + [False]):
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            runs.append((start, i))
            start = None
    return runs


def shifted_audio(waveform: np.ndarray, start_frame: int, frames: int, fps: float, delay_frames: int) -> np.ndarray:
    """The audio under frames [start, start + frames), delayed by `delay_frames` (zeros past either end)."""
    per_frame = SAMPLE_RATE / fps
    first = int(round((start_frame - delay_frames) * per_frame))
    count = int(round(frames * per_frame))
    out = np.zeros(count, np.float32)
    lo, hi = max(first, 0), min(first + count, len(waveform))
    if hi > lo:
        out[lo - first:hi - first] = waveform[lo:hi]
    return out


def _clip_name(source: Path, input_dir: Path, index: int) -> str:
    relative = str(source.relative_to(input_dir)) if source.is_relative_to(input_dir) else str(source)
    digest = hashlib.sha1(relative.encode()).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", source.stem)[:40] or "video"
    return f"{stem}_{digest}_{index:03d}.mp4"


# --------------------------------------------------------------------------- one video
class _VideoJob:
    def __init__(self, source: Path, input_dir: Path, output_dir: Path, options: PrepareOptions,
                 syncnet: Any, quality: QualityScorer | None, report: PrepareReport):
        self.source, self.input_dir, self.output_dir = source, input_dir, output_dir
        self.options, self.syncnet, self.quality, self.report = options, syncnet, quality, report
        self.records: list[ClipRecord] = []

    def run(self) -> dict[str, Any]:
        from ..media.audio_file import read_audio
        from ..media.video import probe_video

        opts = self.options
        try:
            info = probe_video(self.source)
            if not info.has_audio:
                raise MediaError(f"{self.source} has no audio track")
            if info.num_frames < 1:
                raise MediaError(f"{self.source} has no frames")
            waveform = read_audio(self.source).to_model_audio(SAMPLE_RATE)
        except LatentSyncError as exc:
            self.report.broken += 1
            log.warning("dataset: skipping broken video %s: %s", self.source, exc)
            return {"status": "broken", "error": str(exc)}
        src_fps = float(info.fps)
        frames = len(resampled_indices(info.num_frames, src_fps, opts.fps))
        cuts = []
        if opts.detect_scenes:
            cuts = detect_scene_cuts(resampled_chunks(self.source, src_fps, opts.fps, info.num_frames), opts.scene)
        segments = plan_segments(frames, cuts, max(1, int(round(opts.segment_seconds * opts.fps))), opts.min_frames)
        self._align_segments(segments, src_fps, info.num_frames, waveform)
        return {"status": "done", "frames": frames, "scene_cuts": cuts, "clips": len(self.records)}

    def _align_segments(self, segments: list[tuple[int, int]], src_fps: float, num_src: int,
                        waveform: np.ndarray) -> None:
        from ..face.align import FaceCropper

        opts = self.options
        cropper = FaceCropper(opts.detector, opts.resolution)
        stream = resampled_chunks(self.source, src_fps, opts.fps, num_src)
        buffer, buffer_start = None, 0
        for start, stop in segments:
            cropper.restart_alignment()  # no smoothing across segment (scene) boundaries
            crops, valid = [], []
            position = start
            while position < stop:
                host.check_interrupt()
                if buffer is None or position >= buffer_start + len(buffer):
                    buffer_start = buffer_start + (len(buffer) if buffer is not None else 0)
                    buffer = next(stream)
                part = buffer[position - buffer_start:min(stop, buffer_start + len(buffer)) - buffer_start]
                part_crops, info, _ = cropper.process(part)
                crops.append(part_crops)
                valid.append(info.valid)
                position += len(part)
            self._finish_segment(start, np.concatenate(crops), np.concatenate(valid), waveform)

    def _finish_segment(self, start: int, crops: np.ndarray, valid: np.ndarray, waveform: np.ndarray) -> None:
        opts, report = self.options, self.report
        runs = face_runs(valid)
        if not runs:
            report.dropped_no_face += 1
            return
        for run_start, run_stop in runs:
            if run_stop - run_start < opts.min_frames:
                report.dropped_short += 1
                continue
            self._keep_clip(start + run_start, crops[run_start:run_stop], waveform)

    def _keep_clip(self, start: int, crops: np.ndarray, waveform: np.ndarray) -> None:
        from ..media.audio_file import AudioClip
        from ..media.writer import write_video

        opts, report = self.options, self.report
        audio = shifted_audio(waveform, start, len(crops), opts.fps, 0)
        confidence = offset = quality = None
        if self.syncnet is not None:
            from ..syncnet.score import score_sync

            score = score_sync(self.syncnet, crops, audio, opts.fps, sample_rate=SAMPLE_RATE, aligned=True,
                               vshift=opts.sync_vshift)
            confidence, offset = round(score.confidence, 4), int(score.offset)
            if opts.min_sync_confidence and confidence < opts.min_sync_confidence:
                report.dropped_sync += 1
                return
            if not passes_sync_ratio(score.confidence, score.min_distance, opts.min_sync_ratio):
                report.dropped_sync += 1
                return
            if abs(offset) > opts.max_offset:
                report.dropped_offset += 1
                return
            if offset:
                audio = shifted_audio(waveform, start, len(crops), opts.fps, offset)
        if self.quality is not None:
            quality = float(self.quality(crops))
            if quality < opts.min_quality:
                report.dropped_quality += 1
                return
        name = _clip_name(self.source, self.input_dir, len(self.records))
        write_video(self.output_dir / CLIPS_DIR / name, crops, opts.fps, audio=AudioClip(audio[None], SAMPLE_RATE))
        self.records.append(ClipRecord(f"{CLIPS_DIR}/{name}", str(self.source), start, float(opts.fps), len(crops),
                                       opts.resolution, confidence, offset, quality))
        report.clips += 1
        report.frames += len(crops)


# --------------------------------------------------------------------------- the whole folder
def _finished_sources(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    done = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            done.add(json.loads(line)["source"])
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line from a crash: that source is simply redone
    return done


def _drop_records_of(manifest: Path, source: str) -> None:
    if not manifest.is_file():
        return
    lines = manifest.read_text(encoding="utf-8").splitlines()
    kept = []
    for line in lines:
        try:
            if json.loads(line).get("source") == source:
                continue
        except ValueError:
            continue  # a torn line
        kept.append(line)
    if len(kept) != len(lines):
        with atomic_path(manifest) as tmp:
            tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def prepare_dataset(input_dir: Path | str, output_dir: Path | str, options: PrepareOptions | None = None, *,
                    syncnet: Any = None, quality: QualityScorer | None = None) -> PrepareReport:
    """Prepare every video under `input_dir` into `output_dir` (clips/ + manifest.jsonl); resumable.

    `syncnet`: a StableSyncNet (load_syncnet) for the sync filter and offset fix, or None to skip that
    step. `quality`: a callable scoring aligned crops, or None to skip the quality filter.
    """
    options = options or PrepareOptions()
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise DatasetError(f"input folder {input_dir} does not exist")
    if output_dir.resolve() == input_dir.resolve() or input_dir.resolve() in output_dir.resolve().parents:
        raise DatasetError(f"the output folder {output_dir} must not be inside the input folder {input_dir}: "
                           "prepared clips would be read back as sources")
    if options.resolution % 64 or options.resolution < 64:
        raise DatasetError(f"resolution must be a multiple of 64 (256 for LatentSync 1.5, 512 for 1.6), "
                           f"got {options.resolution}")
    sources = find_videos(input_dir)
    if options.max_videos is not None:
        sources = sources[:options.max_videos]
    if not sources:
        raise DatasetError(f"no videos found under {input_dir} (looked for {', '.join(VIDEO_EXTENSIONS)})")
    (output_dir / CLIPS_DIR).mkdir(parents=True, exist_ok=True)
    manifest, state = output_dir / MANIFEST_NAME, output_dir / SOURCES_NAME
    report = PrepareReport(output_dir, manifest)
    check_sync_options(options)
    if syncnet is None:
        report.notes.append("sync filter skipped: no SyncNet given (clips keep their original audio offset)")
    else:
        report.notes.append(sync_filter_note(options))
    if quality is None:
        report.notes.append("quality filter skipped: no quality model (hyperIQA weights) given")
    for note in report.notes:
        log.info("dataset: %s", note)
    done = _finished_sources(state)
    with host.Progress(len(sources), "preparing dataset") as progress:
        for source in sources:
            report.videos += 1
            if str(source) in done:
                report.resumed += 1
                progress.update(1)
                continue
            _drop_records_of(manifest, str(source))  # lines of a run that stopped between the two appends
            job = _VideoJob(source, input_dir, output_dir, options, syncnet, quality, report)
            outcome = job.run()
            append_lines(manifest, [r.to_json() for r in job.records])
            append_lines(state, [json.dumps({"source": str(source), **outcome, "options": _options_json(options)})])
            progress.update(1)
    if syncnet is not None and report.clips == 0 and report.dropped_sync + report.dropped_offset:
        # Most often random (fixture) or mismatched SyncNet weights: say which setting keeps the clips.
        report.hint = ("Every clip was dropped by the sync filter: set min_sync_ratio and min_sync_confidence to 0 "
                       "and max_offset to 15, or run without a SyncNet, to keep them")
        log.warning("dataset: %s", report.hint)
    log.info("dataset: %s", report.summary())
    return report



def _options_json(options: PrepareOptions) -> dict[str, Any]:
    data = asdict(options)
    return {k: v for k, v in data.items() if k != "max_videos"}
