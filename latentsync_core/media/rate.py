"""One rule for frame rates: the video's exact rate as a Fraction, whatever form it arrives in.

Files report exact rates (24000/1001). Sockets and widgets carry floats (23.976023976...), from which
`limit_denominator(1001)` recovers the NTSC fractions exactly (and leaves 25, 50, 23.976 typed by hand,
... as they are), so a float and the Fraction it came from pick the same Whisper positions.
"""
from __future__ import annotations

import math
from fractions import Fraction

from ..errors import InputMismatchError

MAX_DENOMINATOR = 1001  # NTSC rates are n * 1000 / 1001


def exact_fps(value) -> Fraction:
    """A positive frame rate as an exact Fraction (a Fraction is returned unchanged)."""
    if isinstance(value, Fraction):
        fps = value
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InputMismatchError(f"fps must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise InputMismatchError(f"fps must be a finite number, got {value!r}")
        fps = Fraction(number).limit_denominator(MAX_DENOMINATOR)
    if fps <= 0:
        raise InputMismatchError(f"fps must be positive, got {value!r}")
    return fps
