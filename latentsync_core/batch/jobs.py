"""The jobs file (JSON lines or CSV) -> jobs whose options went through the `run` command's own parser.

Each job names `video`, `audio`, optionally `out` (relative to the batch output folder, or absolute)
and `id` (a label for the manifest), plus any `run` option by its flag name (`steps`, `loop-mode` or
`loop_mode`, ...). Options the job leaves out take the batch command line's value. Relative input
paths are resolved against the jobs file's folder, so the same file works from any working directory
and on every node of a cluster.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LatentSyncError

# Chosen once per worker (models are loaded once), so a job cannot change them.
WORKER_KEYS = {"weights": "--weights", "no_download": "--no-download", "dtype": "--dtype"}
FILE_KEYS = ("video", "audio", "out", "id")
JSON_SUFFIXES, CSV_SUFFIXES = (".jsonl", ".ndjson", ".json"), (".csv",)


class JobSpecError(LatentSyncError):
    """One line of the jobs file cannot become a job (that job fails; the others run)."""


@dataclass
class Job:
    index: int  # 1-based line (JSON lines) or row (CSV, header excluded) of the jobs file
    name: str  # `id`, else `out` as written, else the output file name
    output: Path | None
    video: str = ""
    audio: str = ""
    options: dict[str, Any] = field(default_factory=dict)  # the `run` options namespace, as a dict
    error: str | None = None  # set when the line is not a valid job
    fingerprint: str = ""

    @property
    def key(self) -> str:
        """What the manifest and the resume logic know this job by: its output file."""
        return str(self.output) if self.output is not None else f"line {self.index}"

    def payload(self) -> dict[str, Any]:
        """What a worker needs (plain types: it travels through Ray)."""
        return {"name": self.name, "video": self.video, "audio": self.audio, "output": str(self.output),
                "options": dict(self.options)}


class _JobParser(argparse.ArgumentParser):
    """The `run` option definitions, raising instead of printing usage and exiting."""

    def error(self, message: str):
        raise JobSpecError(message)


def job_parser() -> argparse.ArgumentParser:
    from ..cli import add_run_arguments

    parser = _JobParser(prog="job", add_help=False)
    add_run_arguments(parser, inputs=False)
    return parser


def read_jobs(jobs_file: Path, out_dir: Path, defaults: argparse.Namespace) -> list[Job]:
    """Every job of `jobs_file`; invalid lines come back as jobs with `error` set (they fail alone)."""
    jobs_file = Path(jobs_file)
    if not jobs_file.is_file():
        raise LatentSyncError(f"jobs file '{jobs_file}' not found: give a JSON-lines (.jsonl) or CSV (.csv) file "
                              "with one job per line")
    suffix = jobs_file.suffix.lower()
    if suffix in JSON_SUFFIXES:
        rows = _json_rows(jobs_file)
    elif suffix in CSV_SUFFIXES:
        rows = _csv_rows(jobs_file)
    else:
        raise LatentSyncError(f"jobs file '{jobs_file}': unknown format '{suffix}' (use .jsonl for JSON lines "
                              "or .csv with a header row)")
    parser = job_parser()
    base = {dest: getattr(defaults, dest) for dest in vars(parser.parse_args([])) if hasattr(defaults, dest)}
    jobs, seen = [], {}
    for index, row in rows:
        job = _make_job(index, row, jobs_file, Path(out_dir), parser, base)
        if job.error is None and job.key in seen:
            job.error = f"its output {job.output} is also the output of line {seen[job.key]}: give each job its own `out`"
        elif job.error is None:
            seen[job.key] = index
        if job.error is not None:
            job.error = f"{jobs_file} line {index}: {job.error}"
        jobs.append(job)
    if not jobs:
        raise LatentSyncError(f"jobs file '{jobs_file}' has no jobs")
    return jobs


def _json_rows(path: Path) -> list[tuple[int, Any]]:
    rows = []
    for index, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((index, json.loads(line)))
        except json.JSONDecodeError as exc:
            rows.append((index, f"not valid JSON ({exc.msg} at column {exc.colno})"))
    return rows


def _csv_rows(path: Path) -> list[tuple[int, Any]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = []
        for row in reader:
            if None in row:
                rows.append((reader.line_num, "more cells than the header has columns"))
                continue
            # CSV has no types: empty cells are "not given", true/false are switches.
            rows.append((reader.line_num, {k.strip(): _csv_value(v) for k, v in row.items()
                                           if k and v is not None and v.strip() != ""}))
    return rows


def _csv_value(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "yes"):
        return True
    if lowered in ("false", "no"):
        return False
    return text.strip()


def _make_job(index: int, row: Any, jobs_file: Path, out_dir: Path, parser: argparse.ArgumentParser,
              base: dict[str, Any]) -> Job:
    if isinstance(row, str):
        return Job(index, f"line {index}", None, error=row)
    if not isinstance(row, dict):
        return Job(index, f"line {index}", None, error="a job must be a JSON object like "
                   '{"video": "a.mp4", "audio": "a.wav", "out": "a_synced.mp4"}')
    row = {str(k).strip().replace("-", "_"): v for k, v in row.items()}
    missing = [k for k in ("video", "audio") if not row.get(k)]
    video, audio = str(row.get("video", "")), str(row.get("audio", ""))
    out = row.get("out") or f"{Path(video).stem}_{Path(audio).stem}.mp4"
    output = (out_dir / str(out)).resolve()
    name = str(row.get("id") or row.get("out") or output.name)
    job = Job(index, name, output)
    if missing:
        job.error = f"missing {' and '.join(repr(k) for k in missing)} (each job needs a video and an audio file)"
        return job
    fixed = sorted(k for k in row if k in WORKER_KEYS)
    if fixed:
        job.error = (f"{', '.join(fixed)} cannot change per job (every worker loads one set of models): set "
                     f"{', '.join(WORKER_KEYS[k] for k in fixed)} on the batch command line")
        return job
    argv = []
    for key, value in row.items():
        if key in FILE_KEYS or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    try:
        options = parser.parse_args(argv, namespace=argparse.Namespace(**base))
    except JobSpecError as exc:
        job.error = f"{exc} (job keys are video, audio, out, id and the `run` options)"
        return job
    job.video, job.audio = (str((jobs_file.parent / p).resolve()) for p in (video, audio))
    job.options = vars(options)
    job.fingerprint = fingerprint(job)
    return job


def fingerprint(job: Job) -> str:
    """What decides the output: inputs (path, size, mtime) and options. A changed job is re-done on resume."""
    def stat(path: str):
        try:
            st = Path(path).stat()
            return [st.st_size, st.st_mtime_ns]
        except OSError:
            return None  # not visible from the driver (e.g. only on the cluster's shared disk): path only

    options = {k: v for k, v in job.options.items() if k != "no_download"}
    blob = json.dumps({"video": job.video, "audio": job.audio, "stat": [stat(job.video), stat(job.audio)],
                       "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
