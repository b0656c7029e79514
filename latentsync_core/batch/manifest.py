"""DIR/manifest.jsonl: one JSON line per finished job, and the rule for "this output is complete".

Records are appended with a single write and an fsync, so a crash leaves at most one torn last line,
which `load` ignores; `compact` rewrites the file (temp name, then rename) with the latest record of
each job, and runs before a batch appends anything, so a torn line is never glued to a new record.
"""
from __future__ import annotations

import glob
import json
import logging
import os
from pathlib import Path
from typing import Any

from ..atomic import atomic_path

log = logging.getLogger("latentsync")

MANIFEST_NAME = "manifest.jsonl"
DONE, FAILED = "done", "failed"


class Manifest:
    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / MANIFEST_NAME
        self.records: dict[str, dict[str, Any]] = {}  # output path -> latest record

    def load(self) -> "Manifest":
        self.records = {}
        if self.path.is_file():
            for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    self.records[record["output"]] = record
                except (json.JSONDecodeError, KeyError, TypeError):
                    log.warning("%s line %d is not a complete record (an interrupted write?): ignored", self.path,
                                number)
        return self

    def compact(self) -> None:
        if not self.path.exists() and not self.records:
            return
        with atomic_path(self.path) as tmp:
            with open(tmp, "w", encoding="utf-8") as handle:
                for record in self.records.values():
                    handle.write(json.dumps(record, sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())

    def append(self, record: dict[str, Any]) -> None:
        self.records[record["output"]] = record
        line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def is_complete(self, output: Path, fingerprint: str) -> bool:
        """The manifest says done for this very job (same inputs and options), and the file is there and
        holds as many frames as were written. Temp files (`.name.partial-*`) are never looked at."""
        record = self.records.get(str(output))
        if not record or record.get("status") != DONE or record.get("fingerprint") != fingerprint:
            return False
        from ..media.video import probe_video

        try:
            return probe_video(output).num_frames == record.get("frames")
        except Exception as exc:  # unreadable, truncated, deleted: not complete, so it is re-done
            log.info("%s: recorded as done but %s: re-doing it", output, exc)
            return False


def partial_files(output: Path) -> list[Path]:
    """Temp files a killed writer left next to `output` (the names atomic.temp_sibling makes)."""
    output = Path(output)
    if not output.parent.is_dir():
        return []
    pattern = glob.escape(f".{output.stem}.partial-") + "*" + glob.escape(output.suffix)
    return sorted(output.parent.glob(pattern))


def remove_partials(output: Path) -> list[Path]:
    removed = []
    for path in partial_files(output):
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed
