"""The batch driver: Ray actors that keep the models loaded, fed one job at a time from the jobs file.

Only job descriptions (paths and options) and manifest fields travel through the driver; each worker
reads its inputs and writes its output itself, so every node needs the inputs, the output folder and
the models folder at the same paths (a shared disk on a multi-node cluster).
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import socket
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import ray
from ray.exceptions import RayActorError, RayTaskError

from .. import host
from ..errors import LatentSyncError
from .jobs import Job, read_jobs
from .manifest import DONE, FAILED, Manifest, remove_partials
from .worker import JobRunner

log = logging.getLogger("latentsync")

LOCAL_OBJECT_STORE_BYTES = 96 * 1024 ** 2  # only small job records travel through Ray's object store
FORWARDED_ENV_PREFIX = "LATENTSYNC_"


@dataclass
class BatchSummary:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    frames: int = 0
    seconds: float = 0.0
    workers: int = 0
    manifest: Path | None = None
    records: list[dict[str, Any]] = field(default_factory=list)  # this run's records, in finishing order


@dataclass
class _Slot:
    number: int
    actor: Any = None
    info: dict[str, Any] | None = None  # pid / host / device once its models are loaded
    job: Job | None = None


def run_batch(jobs_file: Path, out_dir: Path, options: argparse.Namespace, *, address: str | None = None,
              workers: int | None = None, gpus_per_worker: float | None = None,
              cpus_per_worker: float | None = None, max_retries: int = 2,
              on_event: Callable[[dict[str, Any]], None] | None = None) -> BatchSummary:
    """Run every job of `jobs_file` that has no complete output in `out_dir`; see the README's
    "Batch and clusters". `options` holds the batch-wide `run` options (the per-job defaults).

    Uses the Ray instance this process is already connected to, else `address` (or RAY_ADDRESS),
    else starts a local one sized to this machine and stops it at the end.
    `on_event` receives {"event": "started" | "finished" | "worker_lost", ...} dicts as jobs move.
    """
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out_dir).load()
    manifest.compact()  # drop a torn last line before appending to the file
    summary = BatchSummary(manifest=manifest.path)
    emit = on_event or (lambda event: None)
    todo: deque[Job] = deque()
    for job in read_jobs(jobs_file, out_dir, options):
        if job.error is not None:
            _finish(manifest, summary, emit, job, {"job": job.name, "output": job.key, "status": FAILED,
                                                   "error": job.error, "frames": 0, "seconds": 0.0}, attempts=0)
        elif manifest.is_complete(job.output, job.fingerprint):
            summary.skipped += 1
        else:
            remove_partials(job.output)  # left by a run that was killed outright
            todo.append(job)
    total = summary.done + summary.failed + summary.skipped + len(todo)
    if not todo:
        log.info("batch: nothing to do (%d complete, %d invalid)", summary.skipped, summary.failed)
        return summary
    started_ray = False
    scratch = None
    try:
        if not ray.is_initialized():
            connect(address)
            started_ray = True
        models_root = None
        if options.weights == "random-tiny":
            from ..fixtures import write_fixtures

            # In the output folder, which every worker must see anyway; written once, not per worker.
            scratch = Path(tempfile.mkdtemp(prefix=".tiny-models-", dir=out_dir))
            write_fixtures(scratch)
            models_root = str(scratch)
        plan = _plan_workers(workers, gpus_per_worker, cpus_per_worker)
        summary.workers = plan["workers"]
        log.info("batch: %d jobs to run (%d skipped as complete) on %d workers (%s each)", len(todo),
                 summary.skipped, plan["workers"],
                 f"{plan['gpus']} GPU" if plan["gpus"] else f"{plan['cpus']} CPU")
        remote = ray.remote(JobRunner).options(num_cpus=plan["cpus"], num_gpus=plan["gpus"], max_restarts=0,
                                               max_task_retries=0)
        runner_args = (models_root, options.weights == "random-tiny", options.dtype,
                       None if plan["gpus"] else max(1, int(plan["cpus"])))
        _Loop(remote, runner_args, plan["workers"], todo, total, manifest, summary, emit, max_retries).run()
    finally:
        manifest.compact()
        if started_ray:
            ray.shutdown()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return summary


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to `address` (or RAY_ADDRESS), else start a local Ray sized to this machine (`num_cpus`)."""
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIX)}
    # Workers run in other folders (other machines): give them absolute paths and no per-job bars.
    env["LATENTSYNC_MODELS_DIR"] = str(host.models_root())
    env["LATENTSYNC_PROGRESS"] = "0"
    # So workers import this very checkout (a ComfyUI custom-node folder is not an installed package).
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    runtime_env = {"env_vars": env}
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        log.info("batch: connecting to the Ray cluster at %s", address)
        ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING)
        return
    if num_cpus is None:
        num_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    ray.init(num_cpus=num_cpus, include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
             runtime_env=runtime_env, logging_level=logging.WARNING)


def _plan_workers(workers: int | None, gpus_per_worker: float | None, cpus_per_worker: float | None
                  ) -> dict[str, Any]:
    resources = ray.cluster_resources()
    gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 1))
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if gpus >= 1 else 0.0
    if gpus_per_worker > 0:
        if gpus < gpus_per_worker:
            raise LatentSyncError(f"--gpus-per-worker {gpus_per_worker:g} but the Ray cluster has {gpus:g} GPUs: "
                                  "use --gpus-per-worker 0 to run on CPUs")
        count = workers or max(1, int(gpus // gpus_per_worker))
        return {"workers": count, "gpus": gpus_per_worker, "cpus": cpus_per_worker or 1}
    largest_node = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=cpus)
    count = workers or max(1, int(cpus // 2))
    per_worker = cpus_per_worker or max(1, min(int(cpus // count), int(largest_node)))
    if count * per_worker > cpus:
        log.warning("batch: %d workers x %g CPUs is more than the cluster's %g CPUs: some workers will wait",
                    count, per_worker, cpus)
    return {"workers": count, "gpus": 0, "cpus": per_worker}


def _finish(manifest: Manifest, summary: BatchSummary, emit, job: Job, record: dict[str, Any], attempts: int
            ) -> None:
    record = {**record, "video": job.video or None, "audio": job.audio or None, "fingerprint": job.fingerprint,
              "attempts": attempts, "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    manifest.append(record)
    summary.records.append(record)
    if record["status"] == DONE:
        summary.done += 1
        summary.frames += int(record.get("frames") or 0)
    else:
        summary.failed += 1
    emit({"event": "finished", "job": job.name, "record": record})


class _Loop:
    """One job in flight per worker; a worker that dies is replaced and its job goes back in the queue."""

    def __init__(self, remote, runner_args, count, todo, total, manifest, summary, emit, max_retries):
        self.remote, self.runner_args, self.todo = remote, runner_args, todo
        self.manifest, self.summary, self.emit, self.max_retries = manifest, summary, emit, max_retries
        self.slots = [_Slot(i) for i in range(count)]
        self.loading: dict[Any, _Slot] = {}  # load() ref -> slot
        self.running: dict[Any, _Slot] = {}  # run() ref -> slot
        self.attempts: dict[str, int] = {}
        self.load_failures = 0
        self.started = time.perf_counter()
        self.bar = _progress(total, summary.skipped)

    def run(self) -> None:
        try:
            for slot in self.slots:
                self._start_worker(slot)
            while self.todo or self.running:
                if not self.loading and not any(s.info for s in self.slots):
                    raise LatentSyncError("no batch worker could start (see the errors above)")
                ready, _ = ray.wait(list(self.loading) + list(self.running), num_returns=1, timeout=0.5)
                for ref in ready:
                    if ref in self.loading:
                        self._loaded(ref, self.loading.pop(ref))
                    else:
                        self._job_returned(ref, self.running.pop(ref))
                self._dispatch()
                self._show()
        except BaseException:  # Ctrl-C, or a fatal error: stop the workers, then drop their partial outputs
            self._stop_all()
            raise
        finally:
            self.bar.close()
        self._stop_all()

    # ------------------------------------------------------------------ workers
    def _start_worker(self, slot: _Slot) -> None:
        slot.actor, slot.info, slot.job = self.remote.remote(*self.runner_args), None, None
        self.loading[slot.actor.load.remote()] = slot

    def _loaded(self, ref, slot: _Slot) -> None:
        try:
            slot.info = ray.get(ref)
        except RayTaskError as exc:  # the models could not be loaded: every job would fail the same way
            raise _cause(exc) from None
        except RayActorError as exc:
            self.load_failures += 1
            if self.load_failures > self.max_retries + len(self.slots):
                raise LatentSyncError(f"batch workers keep dying while loading the models: {_first_line(exc)}")
            log.warning("batch: worker %d died while loading the models; starting another", slot.number)
            self._start_worker(slot)

    def _dispatch(self) -> None:
        for slot in self.slots:
            if slot.info is not None and slot.job is None and self.todo:
                job = self.todo.popleft()
                attempt = self.attempts.get(job.key, 0) + 1
                self.attempts[job.key] = attempt
                slot.job = job
                self.running[slot.actor.run.remote(job.payload())] = slot
                self.emit({"event": "started", "job": job.name, "output": str(job.output), "attempt": attempt,
                           "worker": dict(slot.info)})

    def _job_returned(self, ref, slot: _Slot) -> None:
        job, slot.job = slot.job, None
        attempts = self.attempts[job.key]
        try:
            record = ray.get(ref)
        except RayActorError as exc:
            remove_partials(job.output)  # the dead writer could not clean up after itself
            reason = _first_line(exc)
            self.emit({"event": "worker_lost", "job": job.name, "attempt": attempts, "reason": reason})
            self._replace(slot)
            if attempts <= self.max_retries:
                log.warning("batch: the worker running %s died (attempt %d of %d); retrying it on another worker",
                            job.name, attempts, self.max_retries + 1)
                self.summary.retried += 1
                self.todo.appendleft(job)
                return
            record = {"job": job.name, "output": str(job.output), "status": FAILED, "frames": 0, "seconds": 0.0,
                      "error": f"the worker process died {attempts} times running this job (killed, out of memory "
                               f"or node lost); last: {reason}"}
        except RayTaskError as exc:  # JobRunner.run returns failures; reaching here is a bug in it
            remove_partials(job.output)
            record = {"job": job.name, "output": str(job.output), "status": FAILED, "frames": 0, "seconds": 0.0,
                      "error": str(_cause(exc))}
        _finish(self.manifest, self.summary, self.emit, job, record, attempts)

    def _replace(self, slot: _Slot) -> None:
        with contextlib.suppress(Exception):
            ray.kill(slot.actor, no_restart=True)
        self._start_worker(slot)

    def _stop_all(self) -> None:
        """Kill the workers, wait for the local ones to be gone, then remove what they were writing."""
        for slot in self.slots:
            if slot.actor is not None:
                with contextlib.suppress(Exception):
                    ray.kill(slot.actor, no_restart=True)
        here = socket.gethostname()
        deadline = time.monotonic() + 10
        for slot in self.slots:
            pid = (slot.info or {}).get("pid")
            while pid and (slot.info or {}).get("host") == here and _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        for slot in self.slots:
            if slot.job is not None:
                remove_partials(slot.job.output)
                slot.job = None
            slot.actor = None

    # ------------------------------------------------------------------ progress
    def _show(self) -> None:
        s = self.summary
        finished = s.done + s.failed + s.skipped
        self.bar.update(finished - self.bar.n)
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix_str(f"done {s.done}, failed {s.failed}, running {len(self.running)}, "
                                 f"{s.frames / elapsed:.1f} fps", refresh=False)


def _progress(total: int, initial: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="job", desc="batch", dynamic_ncols=True,
                disable=os.environ.get("LATENTSYNC_PROGRESS", "1") == "0")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cause(exc: RayTaskError) -> BaseException:
    """The exception the worker raised (LatentSyncError keeps its message), not Ray's wrapper."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else LatentSyncError(_first_line(exc))


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."
