"""Batching of single-frame samples for the DataLoaders (training, validation, test, detection).

:func:`collate` stacks the samples of :mod:`irdet.data.datasets` (after the transforms of
:mod:`irdet.data.transforms`) into one batch dict: images zero-padded at the bottom/right to the
largest, sky masks padded with :data:`~irdet.data.transforms.IGNORE_INDEX`, annotations as
per-image lists. :func:`collate_clips` batches the clips of the sequence datasets the same way
(``video`` (N, T, 3, H, W)). Source: irdet extension.
"""

from __future__ import annotations

import torch

from irdet.data.transforms import IGNORE_INDEX

__all__ = ["collate", "collate_clips"]


def collate(samples: list[dict]) -> dict:
    """Batch samples: images (N, 3, H, W) float32 padded to the largest, plus per-image lists.

    Returns a dict with ``images`` (N, 3, Hmax, Wmax), ``sky_mask`` (N, Hmax, Wmax) uint8
    (255 where padded or missing) when any sample has one, and lists ``boxes`` (each
    (n_i, 4) float32), ``labels``, ``image_id``, ``orig_size``, ``img_size``, and ``path``
    when present.
    """
    hmax = max(s["image"].shape[-2] for s in samples)
    wmax = max(s["image"].shape[-1] for s in samples)
    images = torch.zeros(len(samples), 3, hmax, wmax, dtype=torch.float32)
    for i, s in enumerate(samples):
        h, w = s["image"].shape[-2:]
        images[i, :, :h, :w] = s["image"].as_subclass(torch.Tensor)
    batch = {
        "images": images,
        "image_id": [s["image_id"] for s in samples],
        "orig_size": [tuple(s["orig_size"]) for s in samples],
        "img_size": [tuple(s.get("img_size", s["image"].shape[-2:])) for s in samples],
    }
    if "boxes" in samples[0]:
        batch["boxes"] = [s["boxes"].as_subclass(torch.Tensor).float().reshape(-1, 4) for s in samples]
        batch["labels"] = [s["labels"].as_subclass(torch.Tensor) for s in samples]
    if any("sky_mask" in s for s in samples):
        sky = torch.full((len(samples), hmax, wmax), IGNORE_INDEX, dtype=torch.uint8)
        for i, s in enumerate(samples):
            if "sky_mask" in s:
                m = s["sky_mask"].as_subclass(torch.Tensor)
                sky[i, : m.shape[-2], : m.shape[-1]] = m
        batch["sky_mask"] = sky
    if "path" in samples[0]:
        batch["path"] = [s["path"] for s in samples]
    return batch


def collate_clips(samples: list[dict]) -> dict:
    """Batch clip items of :class:`~irdet.data.datasets.sequences.SequenceDataset` (after clip transforms).

    Returns a dict with ``video`` (N, T, 3, Hmax, Wmax) float32 in [0, 255] (zero-padded at the
    bottom/right to the largest clip), lists ``boxes`` ((G_i, 4) float32 XYXY pixel-edge in
    input pixels), ``labels`` ((G_i,) int64), ``image_id`` (str), ``coco_id`` (int),
    ``frame_ids`` (list of T str), ``orig_size`` ((H, W) of the original frames),
    ``img_size`` ((h, w) after resizing, before padding; the video's size when absent), and
    ``track_ids`` when present.

    Raises:
        ValueError: clips of different T.
    """
    t = samples[0]["video"].shape[0]
    if any(s["video"].shape[0] != t for s in samples):
        raise ValueError(f"clips of different lengths in one batch: {[s['video'].shape[0] for s in samples]}")
    hmax = max(s["video"].shape[-2] for s in samples)
    wmax = max(s["video"].shape[-1] for s in samples)
    video = torch.zeros(len(samples), t, 3, hmax, wmax, dtype=torch.float32)
    for i, s in enumerate(samples):
        v = s["video"].as_subclass(torch.Tensor)
        video[i, :, :, : v.shape[-2], : v.shape[-1]] = v
    batch = {
        "video": video,
        "boxes": [s["boxes"].as_subclass(torch.Tensor).float().reshape(-1, 4) for s in samples],
        "labels": [s["labels"].as_subclass(torch.Tensor).long() for s in samples],
        "image_id": [s["image_id"] for s in samples],
        "coco_id": [int(s["coco_id"]) for s in samples],
        "frame_ids": [list(s["frame_ids"]) for s in samples],
        "orig_size": [tuple(int(v) for v in s["orig_size"]) for s in samples],
        "img_size": [tuple(int(v) for v in s.get("img_size", s["video"].shape[-2:])) for s in samples],
    }
    if all("track_ids" in s for s in samples):
        batch["track_ids"] = [s["track_ids"].as_subclass(torch.Tensor) for s in samples]
    return batch
