"""Exceptions raised by latentsync_core.

Every error a user can trigger with bad input is a LatentSyncError subclass whose message names
the offending file or value and says how to fix it, so node UIs and the CLI can show it verbatim.
"""
from __future__ import annotations

from pathlib import Path


class LatentSyncError(Exception):
    """Base class of every error raised on purpose by this package."""


class MediaError(LatentSyncError):
    """A video or audio file cannot be read or written as asked."""


class AudioError(LatentSyncError):
    """Audio samples cannot be turned into model features (empty, non-finite, too short...)."""


class CheckpointError(LatentSyncError):
    """A checkpoint file exists but is not what the loader expects."""


class ModelMissingError(LatentSyncError):
    """One or more model files are absent; the message lists each path and how to get it."""

    def __init__(self, missing: list["MissingModel"]):
        self.missing = list(missing)
        lines = ["models missing:"]
        for item in self.missing:
            lines.append(f"  - {item.description}: expected at {item.expected_path}")
            if item.download_command:
                lines.append(f"      get it with: {item.download_command}")
        super().__init__("\n".join(lines))


class MissingModel:
    def __init__(self, description: str, expected_path: Path | str, download_command: str = ""):
        self.description = description
        self.expected_path = Path(expected_path)
        self.download_command = download_command

    def __repr__(self) -> str:
        return f"MissingModel({self.description!r}, {str(self.expected_path)!r})"


class FaceError(LatentSyncError):
    """Face detection or alignment cannot proceed (no face anywhere, detector missing...)."""


class InputMismatchError(LatentSyncError):
    """Two inputs that must agree (fps, frame count, resolution) do not."""


class ProcessingInterrupted(LatentSyncError):
    """The user asked to stop (ComfyUI's Stop button, Ctrl-C in the CLI)."""
