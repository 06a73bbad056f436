"""Mode-coverage metrics for the 2D mixtures (the PacGAN / VEEGAN protocol).

On 2,500 samples: each sample belongs to its nearest mode; it is *high quality* when within 3 standard deviations
of that mode; a mode is *captured* when at least one high-quality sample belongs to it; the *reverse KL* is
``KL(p_gen || uniform)`` of the histogram of high-quality samples over the modes (0 when every mode gets the same
share, ``log K`` when one mode gets everything; infinite when no sample is high quality).
"""

from __future__ import annotations

import math

import torch
from PIL import Image, ImageDraw
from torch import Tensor


def mode_metrics(samples: Tensor, modes: Tensor, std: float) -> dict:
    """``modes`` captured, ``hq`` fraction (0-1) of high-quality samples, ``reverse_kl`` of the mode histogram, and
    ``counts``: the histogram itself (high-quality samples per mode, in the order of ``modes``)."""
    samples, modes = samples.double().cpu(), modes.double().cpu()
    dist = torch.cdist(samples, modes)  # (N, K)
    d_min, nearest = dist.min(1)
    hq = d_min <= 3.0 * std
    k = len(modes)
    counts = torch.bincount(nearest[hq], minlength=k).double()
    if counts.sum() == 0:
        rkl = math.inf
    else:
        p = counts / counts.sum()
        nz = p > 0
        rkl = float((p[nz] * (p[nz] * k).log()).sum())
    return {"modes": int((counts > 0).sum()), "hq": float(hq.double().mean()), "reverse_kl": rkl,
            "num_modes": k, "counts": [int(c) for c in counts]}


def scatter_png(samples: Tensor, modes: Tensor, path, size: int = 512, margin: float = 0.25) -> None:
    """Samples as grey dots and the true modes as red crosses, drawn with PIL (no plotting dependency)."""
    pts = samples.detach().float().cpu()
    m = modes.float().cpu()
    lo, hi = float(m.min()) , float(m.max())
    span = hi - lo
    lo, hi = lo - margin * span - 0.1, hi + margin * span + 0.1

    def to_px(xy):
        return ((xy - lo) / (hi - lo) * (size - 1)).clamp(0, size - 1)

    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    for x, y in to_px(pts).tolist():
        draw.point((x, size - 1 - y), fill=(60, 60, 60))
    for x, y in to_px(m).tolist():
        y = size - 1 - y
        draw.line((x - 6, y - 6, x + 6, y + 6), fill=(220, 0, 0), width=2)
        draw.line((x - 6, y + 6, x + 6, y - 6), fill=(220, 0, 0), width=2)
    img.save(path)
