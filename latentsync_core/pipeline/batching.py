"""How many 16-frame windows go through the U-Net at once, and recognising running out of memory."""
from __future__ import annotations

import torch

MAX_AUTO_BATCH = 8
# Peak activation bytes of one window (CFG-doubled) per latent cell, per byte of the dtype: measured
# order of magnitude for the official U-Net with DeepCache off; the OOM fallback covers a wrong guess.
BYTES_PER_CELL_PER_DTYPE_BYTE = 2 * 16 * 320 * 24


def auto_batch(device: torch.device, resolution: int, dtype: torch.dtype, reserve_fraction: float = 0.25) -> int:
    """Windows per U-Net call that fit the device's free memory (1 on CPU: a batch buys nothing there)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return 1
    free, _total = torch.cuda.mem_get_info(device)
    cells = (resolution // 8) ** 2
    per_window = cells * BYTES_PER_CELL_PER_DTYPE_BYTE * torch.empty((), dtype=dtype).element_size()
    return int(max(1, min(MAX_AUTO_BATCH, (free * (1 - reserve_fraction)) // per_window)))


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
