"""The dataset manifest: one JSON object per line, one line per prepared clip.

Fields: ``clip`` (path relative to the manifest's folder, or absolute), ``source``, ``start_frame``,
``fps``, ``frames``, ``resolution``, ``sync_confidence``, ``av_offset``, ``quality`` (null when the step
did not run). Training also accepts a plain folder of clips (every video in it, probed for its length).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from ..errors import LatentSyncError

log = logging.getLogger("latentsync")

MANIFEST_NAME = "manifest.jsonl"
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


class DatasetError(LatentSyncError):
    """A dataset folder or manifest is empty, mis-structured, or unreadable."""


@dataclass
class ClipRecord:
    clip: str
    source: str
    start_frame: int
    fps: float
    frames: int
    resolution: int
    sync_confidence: float | None = None
    av_offset: int | None = None
    quality: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def path(self, root: Path) -> Path:
        path = Path(self.clip)
        return path if path.is_absolute() else root / path


def append_lines(path: Path, lines: Iterable[str]) -> None:
    """Append complete lines and flush them to disk (a crash never leaves half a line behind)."""
    text = "".join(line.rstrip("\n") + "\n" for line in lines)
    if not text:
        return
    with open(path, "a", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())


def read_records(path: Path) -> list[ClipRecord]:
    records = []
    fields = set(ClipRecord.__dataclass_fields__)
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line:
                continue
            try:
                data: dict[str, Any] = json.loads(line)
                records.append(ClipRecord(**{k: v for k, v in data.items() if k in fields}))
            except (ValueError, TypeError) as exc:
                raise DatasetError(f"{path} line {number} is not a clip record ({exc}); each line must be a JSON "
                                   f"object with at least clip, source, start_frame, fps, frames, resolution") from exc
    return records


def find_videos(folder: Path) -> list[Path]:
    """Every video file under `folder` (recursive, sorted; hidden and partial files skipped)."""
    return sorted(p for p in Path(folder).rglob("*")
                  if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith("."))


def load_clips(manifest_or_folder: Path | str) -> tuple[Path, list[ClipRecord]]:
    """(root, records) from a manifest file, a folder holding one, or a plain folder of clips."""
    path = Path(manifest_or_folder)
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        path = path / MANIFEST_NAME
    if path.is_file():
        records = read_records(path)
        if not records:
            raise DatasetError(f"{path} lists no clips; run dataset preparation first")
        return path.parent, records
    if not path.is_dir():
        raise DatasetError(f"dataset {path} does not exist; give a {MANIFEST_NAME} or a folder of face clips")
    from ..media.video import probe_video

    videos = find_videos(path)
    if not videos:
        raise DatasetError(f"{path} holds no {MANIFEST_NAME} and no videos ({', '.join(VIDEO_EXTENSIONS)}); "
                           "prepare a dataset with the Prepare LatentSync Dataset node or `prepare` command")
    records = []
    for video in videos:
        info = probe_video(video)
        records.append(ClipRecord(str(video.relative_to(path)), str(video), 0, float(info.fps), info.num_frames,
                                  min(info.width, info.height)))
    return path, records
