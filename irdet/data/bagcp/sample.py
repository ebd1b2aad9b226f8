"""What BAG-CP reads from and writes into an irdet sample dict.

Reads: the image size, the sky raster and the pixels a paste must not cover (the sample's
ground-truth boxes and target mask). Writes: a new sample dict with the pasted image and the
pasted targets appended to ``boxes`` (label 0), ``target_mask`` and ``points``, and
``num_gt_boxes``, the number of the sample's own boxes (used by the ``crop_on: gt`` training
crop, an irdet extension).

Conventions: boxes ``(x1, y1, x2, y2)`` in pixel edges (:mod:`irdet.data.io`); a box covers
pixel columns ``floor(x1) .. ceil(x2) − 1`` (rows alike), clipped to the image; points
``(col, row)`` pixel indices.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.ops import box_convert

__all__ = ["image_hw", "sky_raster", "box_cells", "occupancy", "pasted_sample"]


def image_hw(image: torch.Tensor) -> tuple[int, int]:
    """(H, W) of a (C, H, W) image.

    Raises:
        ValueError: the image is not 3-D.
    """
    if image.ndim != 3:
        raise ValueError(f"BAG-CP expects an image (C, H, W), got shape {tuple(image.shape)}")
    return int(image.shape[-2]), int(image.shape[-1])


def sky_raster(sample: dict, H: int, W: int, who: str) -> np.ndarray:
    """(H, W) bool: the pixels where ``sample["sky_mask"] == 1`` (1 sky, 0 non-sky, 255 ignore).

    Raises:
        ValueError: the sample has no ``sky_mask`` (the message starts with ``who``).
    """
    if "sky_mask" not in sample:
        raise ValueError(f"{who} needs sample['sky_mask']")
    return sample["sky_mask"].as_subclass(torch.Tensor).numpy().reshape(H, W) == 1


def box_cells(box: Sequence[float], H: int, W: int) -> tuple[int, int, int, int]:
    """Pixel rows / columns ``[r0, r1) × [c0, c1)`` a pixel-edge box ``(x1, y1, x2, y2)``
    covers, clipped to an (H, W) image (empty, ``r1 <= r0`` or ``c1 <= c0``, when it covers
    no whole cell of the image); 1e-6 px of rounding slack on each edge."""
    x1, y1, x2, y2 = (float(v) for v in box)
    c0, r0 = max(0, math.floor(x1 + 1e-6)), max(0, math.floor(y1 + 1e-6))
    c1, r1 = min(W, math.ceil(x2 - 1e-6)), min(H, math.ceil(y2 - 1e-6))
    return r0, r1, c0, c1


def _to_xyxy(boxes) -> torch.Tensor:
    fmt = getattr(boxes, "format", None)
    t = boxes.as_subclass(torch.Tensor).reshape(-1, 4)
    if fmt is None or fmt == tv_tensors.BoundingBoxFormat.XYXY:
        return t
    return box_convert(t, fmt.name.lower(), "xyxy")


def _from_xyxy(boxes: torch.Tensor, like) -> torch.Tensor:
    fmt = getattr(like, "format", None)
    if fmt is None or fmt == tv_tensors.BoundingBoxFormat.XYXY:
        return boxes
    return box_convert(boxes, "xyxy", fmt.name.lower())


def occupancy(sample: dict, H: int, W: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Pixels a paste must not cover.

    Returns:
        ``(occ, rects)``: ``occ`` (H, W) bool, the sample's target-mask pixels and the pixel
        cells its boxes cover (:func:`box_cells`); ``rects`` those boxes' cells as
        ``(r0, r1, c0, c1)`` (end-exclusive), boxes that cover no whole cell left out.
    """
    if "target_mask" in sample:
        occ = sample["target_mask"].as_subclass(torch.Tensor).numpy().reshape(H, W) > 0
    else:
        occ = np.zeros((H, W), bool)
    rects = []
    if "boxes" in sample and len(sample["boxes"]):
        for box in _to_xyxy(sample["boxes"]).tolist():
            r0, r1, c0, c1 = box_cells(box, H, W)
            if c1 > c0 and r1 > r0:
                occ[r0:r1, c0:c1] = True
                rects.append((r0, r1, c0, c1))
    return occ, rects


def pasted_sample(sample: dict, work: torch.Tensor, footprints: list, boxes: list, points: list, H: int, W: int) -> dict:
    """A new sample dict holding the pasted targets (the input dict and tensors unchanged).

    Args:
        sample: the input sample.
        work: the pasted (C, H, W) image, of the input image's dtype; wrapped like the input.
        footprints: per pasted target ``(y, x, f)``: top-left pixel and (h, w) bool footprint,
            set to 1 in ``target_mask`` when the sample has one.
        boxes: per pasted target ``(x1, y1, x2, y2)`` pixel edges, appended after the
            sample's boxes (in their format; a new XYXY ``BoundingBoxes`` of canvas (H, W)
            when the sample has none), label 0 each.
        points: per pasted target ``(x, y)``, appended when the sample has ``points``.
        H, W: the image size.

    Returns:
        the new dict, with ``num_gt_boxes`` (the sample's own boxes: its ``num_gt_boxes``
        when set, else its box count); other keys pass through.
    """
    out = dict(sample)
    out["num_gt_boxes"] = int(sample.get("num_gt_boxes", len(sample.get("boxes", ()))))
    image = sample["image"]
    out["image"] = tv_tensors.wrap(work, like=image) if isinstance(image, tv_tensors.TVTensor) else work
    if "target_mask" in sample:
        tm_t = sample["target_mask"].as_subclass(torch.Tensor).clone()
        tm = tm_t.numpy().reshape(H, W)
        for y, x, f in footprints:
            tm[y : y + f.shape[0], x : x + f.shape[1]][f] = 1
        out["target_mask"] = tv_tensors.Mask(tm_t) if isinstance(sample["target_mask"], tv_tensors.Mask) else tm_t
    nb = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    if "boxes" in sample:
        old = sample["boxes"]
        nb = _from_xyxy(nb, old).to(old.dtype)
        out["boxes"] = tv_tensors.wrap(torch.cat([old.as_subclass(torch.Tensor), nb]), like=old)
    else:
        out["boxes"] = tv_tensors.BoundingBoxes(nb, format="XYXY", canvas_size=(H, W))
    old_labels = sample.get("labels")
    nl = torch.zeros(len(boxes), dtype=torch.int64)
    out["labels"] = nl if old_labels is None else torch.cat([old_labels.as_subclass(torch.Tensor), nl.to(old_labels.dtype)])
    if "points" in sample:
        oldp = sample["points"]
        npnt = torch.tensor(points, dtype=oldp.dtype).reshape(-1, 2)
        out["points"] = tv_tensors.wrap(torch.cat([oldp.as_subclass(torch.Tensor).reshape(-1, 2), npnt]), like=oldp)
    return out
