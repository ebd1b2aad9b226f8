"""Train / test pipelines for single-frame detection, built on ``torchvision.transforms.v2``.

Samples are dicts of tv_tensors (:func:`irdet.data.datasets.base.to_sample`); every
geometric step moves image, boxes, masks and points together.

Train (BAFE-Net paper §V-A): resize to 512×512 (stretch, as the reference config) → BAG-CP (optional,
:mod:`irdet.data.bagcp`) → horizontal flip p 0.5 → optional target-aware crop (CPU budget
configs, irdet extension) → clamp boxes to the image, grow boxes under 1 px to 1 px
(:class:`KeepTinyBoxes`) and drop only the boxes that left the image → pad bottom/right to
a multiple of 32 (image 0, sky mask 255 = ignore, target mask 0).
Test: resize (+ pad, a no-op at 512×512); the detector maps predictions back to the
original image (:meth:`irdet.models.heads.fcos.FCOSHead.predict`). Batching:
:func:`irdet.data.collate.collate`.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2

__all__ = [
    "PadToMultiple",
    "TargetAwareCrop",
    "KeepTinyBoxes",
    "TINY_BOX_CHOICES",
    "build_train_transforms",
    "build_test_transforms",
    "IGNORE_INDEX",
]

#: Fill value of padded sky-mask pixels: ignored by the segmentation loss.
IGNORE_INDEX = 255

#: ``data.tiny_boxes``: ``keep`` (boxes under 1 px grown to 1 px, :class:`KeepTinyBoxes`) or
#: ``drop`` (irdet before: ``SanitizeBoundingBoxes(min_size=1)`` removed them).
TINY_BOX_CHOICES = ("keep", "drop")


class PadToMultiple:
    """Pad image (or clip) and masks on the bottom/right so H and W are multiples of ``divisor``.

    Image pixels (``image`` (3, H, W), or every frame of ``video`` (T, 3, H, W)) are filled
    with 0, ``sky_mask`` with 255 (ignore), other masks with 0.
    Boxes and points are unchanged (padding at bottom/right does not move coordinates).
    Records ``sample["pad_size"] = (H_pad, W_pad)`` and ``sample["img_size"] = (H, W)`` (size
    before padding, after resizing).
    """

    def __init__(self, divisor: int = 32):
        self.divisor = int(divisor)

    def __call__(self, sample: dict) -> dict:
        key = "video" if "video" in sample else "image"
        img = sample[key]
        h, w = img.shape[-2:]
        ph = int(math.ceil(h / self.divisor) * self.divisor) - h
        pw = int(math.ceil(w / self.divisor) * self.divisor) - w
        sample["img_size"] = (h, w)
        sample["pad_size"] = (h + ph, w + pw)
        if ph == 0 and pw == 0:
            return sample
        sample[key] = tv_tensors.wrap(F.pad(img, (0, pw, 0, ph), value=0.0), like=img)
        for key, fill in (("sky_mask", IGNORE_INDEX), ("target_mask", 0)):
            if key in sample:
                m = sample[key]
                sample[key] = tv_tensors.wrap(F.pad(m, (0, pw, 0, ph), value=fill), like=m)
        for key in ("boxes", "points"):
            if key in sample:
                sample[key] = tv_tensors.wrap(sample[key], like=sample[key], canvas_size=(h + ph, w + pw))
        return sample


class TargetAwareCrop:
    """Random ``size`` crop that contains a ground-truth target with probability ``p_target``.

    irdet extension for the CPU-budget configs: training on 256×256 crops of the 512×512
    resized image keeps the targets' scale while costing a quarter of a full step. With
    probability ``p_target`` (and if the image has boxes) the crop window is placed so that
    the centre of a randomly chosen box lies inside it at a uniform random offset;
    otherwise the window is uniform over the image. Boxes cut by the window are clipped
    by the ``ClampBoundingBoxes`` that follows, and those with no part left in the window are
    dropped by its ``SanitizeBoundingBoxes`` (see :class:`KeepTinyBoxes`).
    Works on image samples (``image``) and clip samples (``video``, (T, C, H, W): every frame
    gets the same window).

    ``centre_on`` chooses the boxes a target-centred window may centre on: ``"all"`` (every
    box, BAG-CP's pasted ones included: the behaviour of the measured CPU-budget runs) or
    ``"gt"`` (only the sample's own annotations, i.e. its first ``sample["num_gt_boxes"]``
    boxes as recorded by BAG-CP; an image without any centres a uniform window).

    Args:
        size: (h, w) crop size in pixels; images smaller than that are not cropped there.
        p_target: probability of a target-centred crop, in [0, 1].
        centre_on: ``"all"`` or ``"gt"``.

    Raises:
        ValueError: unknown ``centre_on``.
    """

    def __init__(self, size: Sequence[int], p_target: float = 0.9, centre_on: str = "all"):
        if centre_on not in ("all", "gt"):
            raise ValueError(f"crop centre_on (config data.crop_on) must be 'all' or 'gt', got {centre_on!r}")
        self.size = (int(size[0]), int(size[1]))
        self.p_target = float(p_target)
        self.centre_on = centre_on

    def __call__(self, sample: dict) -> dict:
        h, w = sample["image" if "image" in sample else "video"].shape[-2:]
        ch, cw = min(self.size[0], h), min(self.size[1], w)
        boxes = sample.get("boxes")
        n = 0 if boxes is None else len(boxes)
        if self.centre_on == "gt":
            n = min(n, int(sample.get("num_gt_boxes", n)))
        if n and torch.rand(()) < self.p_target:
            b = boxes[torch.randint(n, ())]
            cx, cy = float(b[0] + b[2]) / 2, float(b[1] + b[3]) / 2
            lo_x, hi_x = max(0, math.ceil(cx - cw + 1)), min(w - cw, math.floor(cx - 1))
            lo_y, hi_y = max(0, math.ceil(cy - ch + 1)), min(h - ch, math.floor(cy - 1))
            lo_x, hi_x = min(lo_x, w - cw), max(hi_x, 0)
            lo_y, hi_y = min(lo_y, h - ch), max(hi_y, 0)
            left = int(torch.randint(min(lo_x, hi_x), max(lo_x, hi_x) + 1, ()))
            top = int(torch.randint(min(lo_y, hi_y), max(lo_y, hi_y) + 1, ()))
        else:
            left = int(torch.randint(0, w - cw + 1, ()))
            top = int(torch.randint(0, h - ch + 1, ()))
        out = dict(sample)
        for key, value in sample.items():
            if isinstance(value, (tv_tensors.Image, tv_tensors.Video, tv_tensors.Mask, tv_tensors.BoundingBoxes,
                                  tv_tensors.KeyPoints)):
                out[key] = v2.functional.crop(value, top, left, ch, cw)
        return out


class KeepTinyBoxes:
    """Grow every box side shorter than 1 px to the 1-px pixel cell holding the box centre.

    After the 512×512 resize 121 of the 10,201 ``trainval_v2`` boxes are under 1 px wide or
    high (a 2-px target of a 1918×1080 image becomes 0.53 px wide); torchvision's
    ``SanitizeBoundingBoxes(min_size=1)`` would drop them, so their targets became background
    in training while staying in the test ground truth. The reference (MMDetection, dataset
    ``filter_cfg bbox_min_size=0``) keeps them; irdet keeps them too, at a valid size: a side
    ``x2 − x1 < 1`` becomes ``[floor(c), floor(c) + 1)`` with ``c = (x1 + x2) / 2`` its centre
    (clipped to the image: column ``0 .. W − 1``), rows alike; longer sides are unchanged.
    So the box covers the pixel its target's centre falls in, widths and heights are exactly
    1.0 (integer edges) and the ``SanitizeBoundingBoxes`` that follows never drops it.

    Boxes with no extent left (``x2 − x1 <= 1e-3`` px or ``y2 − y1 <= 1e-3`` px after
    ``ClampBoundingBoxes``: a box the crop window cut away, lying on the window's border) are
    left as they are, so the sanitizer still drops them: a box is dropped only when no part of
    it lies in the image.

    Input / output: the sample dict; ``boxes`` ``tv_tensors.BoundingBoxes`` (N, 4) in any
    format, pixel-edge coordinates, clamped to ``canvas_size`` (H, W) beforehand. Other keys
    pass through; a sample without ``boxes`` is returned unchanged.

    Source: reference code (boxes kept whatever their size); the 1-px cell is irdet's choice
    of a valid size.
    """

    #: extent in pixels at or below which a clamped box counts as cut away
    EMPTY_EXTENT = 1e-3

    def __call__(self, sample: dict) -> dict:
        boxes = sample.get("boxes")
        if boxes is None or len(boxes) == 0:
            return sample
        fmt = boxes.format
        xyxy = v2.functional.convert_bounding_box_format(boxes, new_format=tv_tensors.BoundingBoxFormat.XYXY)
        t = xyxy.as_subclass(torch.Tensor).clone()
        h, w = boxes.canvas_size
        changed = False
        for lo, hi, size in ((0, 2, w), (1, 3, h)):
            ext = t[:, hi] - t[:, lo]
            tiny = (ext < 1.0) & (ext > self.EMPTY_EXTENT)
            if tiny.any():
                cell = torch.floor((t[tiny, lo] + t[tiny, hi]) / 2).clamp_(0, size - 1)
                t[tiny, lo], t[tiny, hi] = cell, cell + 1
                changed = True
        if not changed:
            return sample
        out = tv_tensors.wrap(t, like=xyxy)
        if fmt != tv_tensors.BoundingBoxFormat.XYXY:
            out = v2.functional.convert_bounding_box_format(out, new_format=fmt)
        return {**sample, "boxes": out}


class _IfPresent:
    """Apply ``transform`` only when ``key`` is in the sample (v2 sanitizers demand their type)."""

    def __init__(self, key: str, transform: Callable[[dict], dict]):
        self.key, self.transform = key, transform

    def __call__(self, sample: dict) -> dict:
        return self.transform(sample) if self.key in sample else sample


def _resize(img_size: Sequence[int] | None, keep_ratio: bool):
    if img_size is None:  # native resolution (irdet extension): pixels are never resampled
        return v2.Identity()
    if keep_ratio:  # long edge = max(img_size), aspect kept (the paper's text)
        return v2.Resize(size=None, max_size=int(max(img_size)), antialias=True)
    return v2.Resize(size=(int(img_size[0]), int(img_size[1])), antialias=True)


def build_train_transforms(
    img_size: Sequence[int] | None = (512, 512),
    *,
    keep_ratio: bool = False,
    flip_prob: float = 0.5,
    bagcp: Callable[[dict], dict] | None = None,
    crop: Sequence[int] | None = None,
    crop_p_target: float = 0.9,
    crop_on: str = "all",
    pad_divisor: int = 32,
    tiny_boxes: str = "keep",
) -> v2.Compose:
    """Training pipeline (BAFE-Net paper §V-A; crop is an irdet extension for CPU budgets).

    Args:
        img_size: (H, W) resize target in pixels (stretching, the reference config), or None
            for native resolution (no resize; irdet extension: targets keep their size in
            pixels, and boxes need no rescaling).
        keep_ratio: resize the long edge to ``max(img_size)`` keeping the aspect ratio instead.
        flip_prob: probability of a horizontal flip.
        bagcp: optional BAG-CP transform applied in the resized space.
        crop: optional (h, w) target-aware random crop, see :class:`TargetAwareCrop`.
        crop_p_target: probability of a target-centred crop.
        crop_on: boxes a crop may centre on, ``"all"`` or ``"gt"`` (see :class:`TargetAwareCrop`).
        pad_divisor: pad H, W up to a multiple of this.
        tiny_boxes: ``"keep"`` (default, as the reference): boxes under 1 px after the resize
            (or cut by the crop) are grown to 1 px (:class:`KeepTinyBoxes`), only boxes with no
            part left in the image are dropped; ``"drop"``: every box under 1 px wide or high,
            or under 1 px² in area, is dropped (irdet before, ``SanitizeBoundingBoxes(min_size=1)``).

    Raises:
        ValueError: unknown ``tiny_boxes``.
    """
    if tiny_boxes not in TINY_BOX_CHOICES:
        raise ValueError(f"tiny_boxes (config data.tiny_boxes) must be one of {TINY_BOX_CHOICES}, got {tiny_boxes!r}")
    steps: list = [_resize(img_size, keep_ratio)]
    if bagcp is not None:
        steps.append(bagcp)
    steps.append(v2.RandomHorizontalFlip(p=flip_prob))
    if crop:
        steps.append(TargetAwareCrop(crop, crop_p_target, crop_on))
    steps.append(v2.ClampBoundingBoxes())
    if tiny_boxes == "keep":
        steps.append(KeepTinyBoxes())
    steps += [v2.SanitizeBoundingBoxes(min_size=1),
              _IfPresent("points", v2.SanitizeKeyPoints())]
    steps.append(PadToMultiple(pad_divisor))
    return v2.Compose(steps)


def build_test_transforms(
    img_size: Sequence[int] | None = (512, 512), *, keep_ratio: bool = False, pad_divisor: int = 32
) -> v2.Compose:
    """Test pipeline: resize (as in training; ``img_size`` None = native resolution, no
    resize, the whole frame in one pass) then pad to a multiple of ``pad_divisor``."""
    return v2.Compose([_resize(img_size, keep_ratio), PadToMultiple(pad_divisor)])


# ---------------------------------------------------------------------- clips (moving-target sequences)
def _labels_and_tracks(sample: dict):
    return (sample["labels"], sample["track_ids"]) if "track_ids" in sample else sample["labels"]


def clip_transforms(
    img_size: Sequence[int] | None = (512, 512),
    train: bool = False,
    flip_prob: float = 0.5,
    *,
    pad_divisor: int = 32,
    crop: Sequence[int] | None = None,
    crop_p_target: float = 0.9,
) -> v2.Compose:
    """torchvision.transforms.v2 pipeline for clip items of
    :class:`irdet.data.datasets.sequences.SequenceDataset` (every frame transformed identically).

    Train: resize every frame to ``img_size`` (stretch; None = keep) → horizontal flip of all
    frames and the boxes together with probability ``flip_prob`` (one draw per clip) →
    optional target-aware crop of all frames (``crop``, irdet extension for CPU budgets,
    :class:`TargetAwareCrop`) → clamp boxes to the image and drop those left under 1 px
    (labels and track ids with them) → pad H, W to a multiple of ``pad_divisor``. Test:
    resize → pad (never cropped).

    Args:
        img_size: (H, W) in pixels, or None for no resize.
        train: training pipeline (flip + box sanitising) or test pipeline.
        flip_prob: probability of the horizontal flip (train only).
        pad_divisor: pad H, W up to a multiple of this (bottom/right, zeros).
        crop: (h, w) in pixels of the training crop, or None; ``crop_p_target`` the
            probability that it is centred near a target.
    """
    steps: list = []
    if img_size is not None:
        steps.append(v2.Resize(size=(int(img_size[0]), int(img_size[1])), antialias=True))
    if train:
        steps += [
            v2.RandomHorizontalFlip(p=flip_prob),
            *([TargetAwareCrop(crop, crop_p_target)] if crop else []),
            v2.ClampBoundingBoxes(),
            v2.SanitizeBoundingBoxes(min_size=1, labels_getter=_labels_and_tracks),
        ]
    steps.append(PadToMultiple(pad_divisor))
    return v2.Compose(steps)
