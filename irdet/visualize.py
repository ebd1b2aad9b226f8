"""Overlay images: detections as boxes and the predicted (or annotated) sky region tinted.

Built on ``torchvision.utils.draw_bounding_boxes`` / ``draw_segmentation_masks``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

__all__ = ["overlay"]


def overlay(image: np.ndarray | torch.Tensor, boxes=None, sky=None, *, colors="lime", sky_color=(70, 130, 255),
            sky_alpha: float = 0.25, margin: int = 1, width: int = 1, labels=None) -> np.ndarray:
    """Draw boxes and a sky tint on an image.

    Args:
        image: (H, W, 3) array or (3, H, W) tensor, values in [0, 255] (float or uint8).
        boxes: (K, 4) XYXY pixel-edge boxes in the image's pixels (None: none). Each
            rectangle is drawn ``margin`` px *outside* the box so 2–5 px targets stay visible.
        sky: None, a (H, W) bool mask, or a (h, w) float probability map at any resolution
            (bilinearly resized to the image, thresholded at 0.5).
        colors: box colour(s) (name, RGB tuple, or list per box).
        sky_color, sky_alpha: tint of the sky region.
        labels: None or a text per box (e.g. track ids), drawn beside its top-right corner in
            the box's colour (PIL's default font), so that the target itself stays visible.

    Returns:
        (H, W, 3) uint8 array.
    """
    img = torch.as_tensor(np.asarray(image)) if not isinstance(image, torch.Tensor) else image
    if img.ndim == 3 and img.shape[-1] == 3 and img.shape[0] != 3:
        img = img.permute(2, 0, 1)
    img = img.float().clamp(0, 255).round().to(torch.uint8)
    h, w = img.shape[-2:]
    if sky is not None:
        sky_t = torch.as_tensor(np.asarray(sky))
        if sky_t.dtype != torch.bool:
            if sky_t.shape != (h, w):
                sky_t = F.interpolate(sky_t.float()[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
            sky_t = sky_t > 0.5
        img = draw_segmentation_masks(img, sky_t[None], alpha=sky_alpha, colors=[sky_color])
    if boxes is not None and len(boxes):
        b = torch.as_tensor(np.asarray(boxes), dtype=torch.float32).reshape(-1, 4)
        # pixel-edge (x1, y1, x2, y2) → inclusive pixel indices of an outline `margin` px outside
        rect = torch.stack([b[:, 0] - margin, b[:, 1] - margin, b[:, 2] - 1 + margin, b[:, 3] - 1 + margin], 1)
        rect[:, 0::2] = rect[:, 0::2].clamp(0, w - 1)
        rect[:, 1::2] = rect[:, 1::2].clamp(0, h - 1)
        img = draw_bounding_boxes(img, rect.round(), colors=colors, width=width)
        if labels is not None:
            return _draw_labels(img.permute(1, 2, 0).contiguous().numpy(), rect.round().tolist(), labels, colors)
    return img.permute(1, 2, 0).contiguous().numpy()


def _draw_labels(image: np.ndarray, rects, labels, colors) -> np.ndarray:
    """Texts beside the top-right corners of inclusive-pixel rectangles, on an (H, W, 3) uint8 image."""
    from PIL import Image, ImageDraw

    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    cols = colors if isinstance(colors, list) else [colors] * len(rects)
    for (x1, y1, x2, y2), text, col in zip(rects, labels, cols):
        draw.text((x2 + 2, max(0, y1 - 10)), str(text), fill=col)
    return np.asarray(pil).copy()


def augment_grid(cfg: dict, root, n: int = 8, seed: int = 0, as_trained: bool = False, cols: int = 4):
    """A matplotlib figure of ``n`` augmented training samples (``irdet show-augment``).

    Samples go through the config's training pipeline (resize, BAG-CP, flip; the CPU-budget
    crop only with ``as_trained``); boxes are drawn (ground truth green, BAG-CP pasted
    orange) and the sky mask is tinted blue. Returns the ``matplotlib.figure.Figure``.
    """
    from matplotlib.figure import Figure

    torch.manual_seed(seed)
    ds = marked_train_set(cfg, root, crop=as_trained)
    idx = torch.randperm(len(ds))[:n].tolist()
    rows = (len(idx) + cols - 1) // cols
    fig = Figure(figsize=(4 * cols, 4 * rows), dpi=100)
    for k, i in enumerate(idx):
        s = ds[i]
        h, w = s["img_size"]
        labels = s["labels"]
        colors = ["orange" if int(lab) == _PASTED else "lime" for lab in labels]
        sky = s["sky_mask"][:h, :w].as_subclass(torch.Tensor) == 1
        img = overlay(s["image"][:, :h, :w], s["boxes"].as_subclass(torch.Tensor), sky, colors=colors or "lime")
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(img)
        ax.set_title(f"{s['image_id']}  gt {int((labels != _PASTED).sum())} + pasted {int((labels == _PASTED).sum())}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


_PASTED = -1  # temporary label of BAG-CP boxes in augment_grid (only for colouring)


def marked_train_set(cfg: dict, root, crop: bool = True):
    """``cfg``'s training set through its training pipeline (resize, BAG-CP, flip, and the
    CPU-budget crop when ``crop``), with BAG-CP's pasted boxes labelled ``_PASTED`` (-1)
    instead of 0, for display and counting only (``irdet show-augment``,
    ``benchmarks/crop_targets.py``). Returns a :class:`irdet.data.densesirst.DenseSIRST`."""
    from irdet.data.densesirst import DenseSIRST
    from irdet.data.transforms import build_train_transforms
    from irdet.engine.datamodule import build_bagcp_transform

    d = cfg["data"]
    bagcp = build_bagcp_transform(cfg, root)
    tf = build_train_transforms(d["img_size"], keep_ratio=d["keep_ratio"], flip_prob=d["flip_prob"],
                                bagcp=_MarkPasted(bagcp) if bagcp is not None else None,
                                crop=d["crop"] if crop else None, crop_p_target=d["crop_p_target"],
                                crop_on=d["crop_on"], pad_divisor=d["pad_divisor"])
    return DenseSIRST(root, d["train_split"], sky_mask=d["sky_mask"], transforms=tf)


class _MarkPasted:
    """Wrap BAG-CP so that the boxes it appends carry the label ``_PASTED`` (display only)."""

    def __init__(self, bagcp):
        self.bagcp = bagcp

    def __call__(self, sample: dict) -> dict:
        out = self.bagcp(sample)
        labels = out["labels"].clone()
        labels[out.get("num_gt_boxes", len(labels)):] = _PASTED
        out["labels"] = labels
        return out
