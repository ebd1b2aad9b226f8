"""Overlay images: detections as boxes (optionally labelled) and the predicted (or annotated) sky
region tinted.

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
