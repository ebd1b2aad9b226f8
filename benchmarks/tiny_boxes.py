"""Boxes the training pipeline keeps, with ``data.tiny_boxes`` ``keep`` against ``drop``.

irdet diagnostic for :class:`irdet.data.transforms.KeepTinyBoxes`: every image of ``--split``
goes through the real training pipeline (:func:`irdet.data.transforms.build_train_transforms`,
resize to ``--size``, no flip, no crop, no BAG-CP) as a zero image of its own size with its
xml boxes, once per mode. Printed: the boxes in, the boxes that are under 1 px wide or high
(or under 1 px² in area) after the resize, and the boxes out of each mode. Counts, not timings;
nothing is asserted. Example::

    python benchmarks/tiny_boxes.py --split trainval_v2 --size 512 512
"""

from __future__ import annotations

import argparse

import torch
from torchvision import tv_tensors

from irdet.data.datasets.densesirst import DenseSIRST, resolve_data_root
from irdet.data.transforms import build_train_transforms


def count(root, split: str, size: tuple[int, int]) -> dict:
    """Box counts of ``split`` through the training pipeline at ``size`` (H, W), per mode.

    Returns:
        ``{"boxes": in, "tiny": under 1 px after the resize, "keep": out with keep, "drop":
        out with drop, "images": n}``.
    """
    ds = DenseSIRST(root, split, sky_mask=None)
    gts, sizes = ds.ground_truth()
    pipes = {m: build_train_transforms(size, flip_prob=0.0, tiny_boxes=m) for m in ("keep", "drop")}
    res = {"boxes": 0, "tiny": 0, "keep": 0, "drop": 0, "images": len(gts)}
    for image_id, boxes in gts.items():
        h, w = sizes[image_id]
        b = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        res["boxes"] += len(b)
        sx, sy = size[1] / w, size[0] / h
        bw, bh = (b[:, 2] - b[:, 0]) * sx, (b[:, 3] - b[:, 1]) * sy
        res["tiny"] += int(((bw < 1) | (bh < 1) | (bw * bh < 1)).sum())
        for mode, pipe in pipes.items():
            sample = {
                "image": tv_tensors.Image(torch.zeros(3, h, w, dtype=torch.uint8)),
                "boxes": tv_tensors.BoundingBoxes(b, format="XYXY", canvas_size=(h, w)),
                "labels": torch.zeros(len(b), dtype=torch.int64),
            }
            res[mode] += len(pipe(sample)["boxes"])
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None, help="DenseSIRST root (default: $IRDET_DATA or ../shared/...)")
    p.add_argument("--split", default="trainval_v2")
    p.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    args = p.parse_args(argv)
    r = count(resolve_data_root(args.data), args.split, tuple(args.size))
    print(f"{args.split} at {args.size[0]}x{args.size[1]}: {r['images']} images, {r['boxes']} boxes; "
          f"{r['tiny']} under 1 px after the resize")
    print(f"  tiny_boxes=keep: {r['keep']} boxes out ({r['boxes'] - r['keep']} dropped)")
    print(f"  tiny_boxes=drop: {r['drop']} boxes out ({r['boxes'] - r['drop']} dropped)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
