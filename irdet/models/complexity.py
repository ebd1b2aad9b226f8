"""Parameter and multiply-add counts of a detector (``irdet flops``).

MACs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matrix
products, ...; element-wise ops, norms and activations are not counted) and reported as
multiply-adds, one multiply-add = one "FLOP" (the paper's / MMDetection's convention,
Table II). Input: one image of ``img_size`` (default 512×512).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["complexity"]

#: Table II, BAFE-Net-R18 (MMDetection counter, 512×512).
PAPER_BAFENET_R18 = {"params": 22.31e6, "macs": 57.654e9}


def complexity(model: nn.Module, img_size: Sequence[int] | None = None, parts: Sequence[str] = ("backbone", "neck", "head"),
               frames: int | None = None) -> dict:
    """Parameters and MACs of ``model`` on a (1, 3, H, W) input, split by top-level part.

    Args:
        model: a detector whose ``forward`` takes (N, 3, H, W) images (e.g. :class:`Detector`),
            or with ``frames`` a clip (N, T, 3, H, W) (:class:`SequenceDetector`).
        img_size: (H, W) in pixels; None (the default, and a native-resolution config's
            ``data.img_size: null``) counts at 512×512, the size the paper reports MACs at.
        parts: attribute names of the sub-modules to report separately.
        frames: T, frames of the one clip counted (None: a single image).

    Returns:
        ``{"params": int, "macs": int, "img_size": [H, W], "<part>": {"params": int,
        "macs": int}, ...}`` (all counts are plain ints).
    """
    was_training = model.training
    model.eval()
    img_size = (512, 512) if img_size is None else img_size
    x = torch.zeros(1, *(() if frames is None else (int(frames),)), 3, int(img_size[0]), int(img_size[1]))
    with FlopCounterMode(display=False, depth=None) as counter, torch.no_grad():
        model(x)
    model.train(was_training)
    counts = counter.get_flop_counts()
    root = type(model).__name__
    out: dict = {
        "params": int(sum(p.numel() for p in model.parameters())),
        "macs": int(counter.get_total_flops() // 2),
        "img_size": [int(img_size[0]), int(img_size[1])],
    }
    for part in parts:
        sub = getattr(model, part, None)
        if sub is None:
            continue
        flops = sum(counts.get(f"{root}.{part}", {}).values())
        out[part] = {"params": int(sum(p.numel() for p in sub.parameters())), "macs": int(flops // 2)}
    return out
