"""Augmented training samples for display: ``irdet show-augment``'s grid and the marked training set.

:func:`marked_train_set` runs a config's training pipeline with BAG-CP's pasted boxes labelled
apart (``benchmarks/crop_targets.py`` counts them); :func:`augment_grid` draws its samples.
Source: irdet extension.
"""

from __future__ import annotations

import torch

from irdet.visualize.overlay import overlay

__all__ = ["augment_grid", "marked_train_set"]

#: temporary label of BAG-CP boxes in :func:`marked_train_set` (display and counting only)
_PASTED = -1


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


def marked_train_set(cfg: dict, root, crop: bool = True):
    """``cfg``'s training set through its training pipeline (resize, BAG-CP, flip, and the
    CPU-budget crop when ``crop``), with BAG-CP's pasted boxes labelled ``_PASTED`` (-1)
    instead of 0, for display and counting only (``irdet show-augment``,
    ``benchmarks/crop_targets.py``). Returns the dataset of the config's layout
    (:func:`irdet.data.datasets.build_dataset`)."""
    from irdet.data.datasets import build_dataset
    from irdet.data.transforms import build_train_transforms
    from irdet.data.bagcp import build_bagcp_transform

    d = cfg["data"]
    bagcp = build_bagcp_transform(cfg, root)
    tf = build_train_transforms(d["img_size"], keep_ratio=d["keep_ratio"], flip_prob=d["flip_prob"],
                                bagcp=_MarkPasted(bagcp) if bagcp is not None else None,
                                crop=d["crop"] if crop else None, crop_p_target=d["crop_p_target"],
                                crop_on=d["crop_on"], pad_divisor=d["pad_divisor"])
    return build_dataset(cfg, root, d["train_split"], sky_mask=d["sky_mask"], transforms=tf)


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
