"""`python -m latentsync_core batch --jobs JOBS --out DIR ...`: the parser (the `run` options are the
per-job defaults) and the handler, which imports Ray only when a batch actually runs."""
from __future__ import annotations

import argparse
import sys

from ..errors import LatentSyncError

EXIT_OK, EXIT_JOBS_FAILED = 0, 1
INSTALL_HINT = "pip install -r requirements-batch.txt   (or: pip install 'latentsync-nodes[batch]')"


def add_subcommand(sub) -> argparse.ArgumentParser:
    from ..cli import add_run_arguments

    p = sub.add_parser("batch", help="lip-sync many jobs on Ray (a local instance, or any Ray cluster)",
                       description="Run every job of a JSON-lines or CSV jobs file on Ray workers that keep the "
                                   "models loaded. Re-running skips jobs whose outputs are complete. The `run` "
                                   "options below are defaults that each job can override.")
    p.add_argument("--jobs", required=True, help="jobs file: .jsonl (one JSON object per line) or .csv (header row)")
    p.add_argument("--out", required=True, help="output folder (relative `out` paths of jobs land here, with "
                                                "manifest.jsonl)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to use: 'auto' (the one `ray start` runs here), 'ray://host:10001', or an "
                        "ip:port; default: RAY_ADDRESS, else a local Ray instance sized to this machine")
    p.add_argument("--workers", type=int, default=None,
                   help="number of workers (default: one per GPU, else one per 2 CPUs)")
    p.add_argument("--gpus-per-worker", type=float, default=None,
                   help="GPUs each worker holds (default: 1 when the cluster has GPUs, else 0 = CPU workers)")
    p.add_argument("--cpus-per-worker", type=float, default=None,
                   help="CPUs each worker holds (default: 1 with GPUs, else the CPUs shared evenly)")
    p.add_argument("--max-retries", type=int, default=2,
                   help="times a job is retried after its worker process died (killed, OOM, node lost)")
    add_run_arguments(p, inputs=False)
    p.set_defaults(handler=cmd_batch)
    return p


def cmd_batch(args) -> int:
    from pathlib import Path

    from ..cli import ensure_weights

    try:
        from .driver import run_batch
    except ImportError as exc:
        raise LatentSyncError(f"the batch command needs Ray, which is not installed ({exc}): {INSTALL_HINT}") from exc
    if args.workers is not None and args.workers < 1:
        raise LatentSyncError(f"--workers {args.workers}: give at least 1")
    if args.max_retries < 0:
        raise LatentSyncError(f"--max-retries {args.max_retries}: give 0 or more")
    if not (args.address or _ray_address_env()):
        ensure_weights(args)  # local: fetch missing official weights as `run` does; a cluster's workers check theirs
    summary = run_batch(Path(args.jobs), Path(args.out), args, address=args.address, workers=args.workers,
                        gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker,
                        max_retries=args.max_retries)
    print(f"batch: {summary.done} done, {summary.failed} failed, {summary.skipped} skipped as complete"
          f"{f', {summary.retried} retried after a worker died' if summary.retried else ''}; "
          f"manifest: {summary.manifest}")
    for record in summary.records:
        if record["status"] != "done":
            print(f"failed: {record['job']}: {record['error']}", file=sys.stderr)
    return EXIT_OK if summary.failed == 0 else EXIT_JOBS_FAILED


def _ray_address_env() -> str | None:
    import os

    return os.environ.get("RAY_ADDRESS") or None
