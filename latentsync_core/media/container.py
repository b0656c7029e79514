"""Opening media files with PyAV and turning its failures into MediaError messages a user can act on.

PyAV raises `av.FFmpegError` subclasses whose text ("Invalid data found when processing input")
never names the file; every reader here goes through `open_input` / `media_error` instead, so the
message says which file, what we were doing and what to try, with the PyAV error chained as cause.
"""
from __future__ import annotations

import os
from pathlib import Path

import av

from ..errors import MediaError

PathLike = str | os.PathLike


def media_error(path: PathLike, action: str, problem: str, hint: str = "") -> MediaError:
    message = f"cannot {action} '{path}': {problem}"
    if hint:
        message += f" ({hint})"
    return MediaError(message)


def check_input_file(path: PathLike, action: str) -> Path:
    """Fail early with a clear message for the path problems PyAV reports confusingly."""
    if isinstance(path, (bytes, bytearray)) or not isinstance(path, (str, os.PathLike)):
        raise media_error(path, action, f"expected a file path, got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise media_error(path, action, "file not found", "check the path and that the file was not moved")
    if path.is_dir():
        raise media_error(path, action, "it is a directory, not a media file", "pick a file inside it")
    if path.stat().st_size == 0:
        raise media_error(path, action, "the file is empty (0 bytes)", "it was probably not written completely")
    return path


def open_input(path: PathLike, action: str) -> tuple[Path, av.container.InputContainer]:
    path = check_input_file(path, action)
    try:
        return path, av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        raise media_error(
            path, action, f"not a readable media file ({exc.strerror or exc})",
            "the file is corrupt, truncated or in a format FFmpeg does not know",
        ) from exc
