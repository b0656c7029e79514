"""What one batch worker does: load the models once, then lip-sync job after job exactly as `run` does.

Plain Python (the driver wraps it as a Ray actor), so a job's frames are read and written where it
runs, never sent back to the driver: a job returns only its manifest fields.
"""
from __future__ import annotations

import argparse
import logging
import os
import socket
import time
import traceback
from typing import Any

from ..errors import LatentSyncError
from .manifest import DONE, FAILED

log = logging.getLogger("latentsync")


class JobRunner:
    def __init__(self, models_root: str | None, tiny: bool, dtype: str = "auto", threads: int | None = None):
        self.models_root, self.tiny, self.dtype, self.threads = models_root, tiny, dtype, threads
        self.models = None

    def load(self) -> dict[str, Any]:
        """Load the models (once per worker); returns who this worker is, for logs and events."""
        import torch

        from ..pipeline.cli import TINY_RESOLUTION
        from ..pipeline.models import load_models

        if self.threads:
            torch.set_num_threads(self.threads)  # CPU slots: one share of the cores each, not all of them
        self.models = load_models(self.models_root, dtype=self.dtype,
                                  resolution=TINY_RESOLUTION if self.tiny else None)
        return self.identity()

    def identity(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(),
                "device": str(self.models.device) if self.models is not None else None}

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        """Lip-sync one job; a bad job returns status failed with the message the CLI would print."""
        from ..pipeline.cli import options_from_args
        from ..pipeline.run import lipsync

        started = time.perf_counter()
        record = {"job": job["name"], "output": job["output"], "worker": f"{socket.gethostname()}:{os.getpid()}"}
        try:
            args = argparse.Namespace(**job["options"])
            models = self.models
            options = options_from_args(args, args.resolution or models.resolution)
            result = lipsync(job["video"], job["audio"], job["output"], unet=models.unet, vae=models.vae,
                             whisper=models.whisper, detector=args.detector, options=options)
        except LatentSyncError as exc:
            return {**record, "status": FAILED, "error": str(exc), "frames": 0,
                    "seconds": round(time.perf_counter() - started, 3)}
        except Exception as exc:  # a bug or a runtime failure (e.g. out of GPU memory): this job fails, the worker lives
            log.error("job %s failed:\n%s", job["name"], traceback.format_exc())
            return {**record, "status": FAILED, "error": f"{type(exc).__name__}: {exc}", "frames": 0,
                    "seconds": round(time.perf_counter() - started, 3)}
        return {**record, "status": DONE, "error": None, "frames": int(result.frames),
                "fps": str(result.fps), "seconds": round(time.perf_counter() - started, 3)}
