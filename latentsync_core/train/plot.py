"""Loss curves as an image (PIL only: the pack does not depend on matplotlib)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {"loss": (20, 20, 20), "recon": (31, 119, 180), "sync": (214, 39, 40), "lpips": (44, 160, 44),
           "trepa": (148, 103, 189)}
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 28, 36


def plot_losses(history: Sequence[dict], width: int = 640, height: int = 360) -> np.ndarray:
    """uint8 [height, width, 3]: each loss term against the step, log-scaled y, one colour per term."""
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    x0, x1, y0, y1 = MARGIN_LEFT, width - MARGIN_RIGHT, MARGIN_TOP, height - MARGIN_BOTTOM
    draw.rectangle([x0, y0, x1, y1], outline=(160, 160, 160))
    terms = [t for t in COLOURS if any(t in h and h[t] is not None and math.isfinite(h[t]) and h[t] > 0
                                       for h in history)]
    if not history or not terms:
        draw.text((x0 + 8, y0 + 8), "no finite losses to plot", fill=(0, 0, 0))
        return np.array(image)
    steps = [h["step"] for h in history]
    values = [h[t] for h in history for t in terms if h.get(t) is not None and math.isfinite(h[t]) and h[t] > 0]
    lo, hi = math.log10(min(values)), math.log10(max(values))
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    s_lo, s_hi = min(steps), max(steps) if max(steps) > min(steps) else min(steps) + 1

    def to_xy(step: float, value: float) -> tuple[float, float]:
        return (x0 + (step - s_lo) / (s_hi - s_lo) * (x1 - x0),
                y1 - (math.log10(value) - lo) / (hi - lo) * (y1 - y0))

    for exponent in range(math.floor(lo), math.ceil(hi) + 1):
        if lo <= exponent <= hi:
            _, y = to_xy(s_lo, 10.0 ** exponent)
            draw.line([x0, y, x1, y], fill=(225, 225, 225))
            draw.text((4, y - 6), f"1e{exponent}", fill=(90, 90, 90))
    draw.text((x0, y1 + 8), str(s_lo), fill=(90, 90, 90))
    draw.text((x1 - 40, y1 + 8), str(s_hi), fill=(90, 90, 90))
    draw.text(((x0 + x1) // 2 - 12, y1 + 18), "step", fill=(90, 90, 90))
    for i, term in enumerate(terms):
        points = [to_xy(h["step"], h[term]) for h in history
                  if h.get(term) is not None and math.isfinite(h[term]) and h[term] > 0]
        if len(points) > 1:
            draw.line(points, fill=COLOURS[term], width=2)
        elif points:
            x, y = points[0]
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=COLOURS[term])
        draw.text((x0 + 8 + 70 * i, 8), term, fill=COLOURS[term])
    return np.array(image)  # writable: callers hand it to torch
