"""Write-then-rename, so an interrupted or failed write never leaves a partial file at the target."""
from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator


def temp_sibling(target: Path | str) -> Path:
    """A unique name next to `target` (same folder, so the final rename stays on one filesystem).

    The suffix is kept so that format-sniffing writers (PyAV, torch.save) see the right extension.
    """
    target = Path(target)
    return target.with_name(f".{target.stem}.partial-{uuid.uuid4().hex[:8]}{target.suffix}")


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `target`, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
