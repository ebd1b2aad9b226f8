"""Share of ground-truth boxes that get at least one FCOS positive, per config (the recall cap: without centre sampling only ~35% of DenseSIRST boxes hold a stride-8 point).

irdet diagnostic for the BP-FPN comparison (docs/bpfpn.md): an FCOS-style head can only learn,
and at test time only find, a box that owns at least one feature-map location. For each config,
the boxes of ``--split`` are resized to the config's ``data.img_size`` (512×512, no aspect
ratio kept, as in evaluation) and assigned by the config's own head (:meth:`FCOSHead.get_targets`:
strides and regress ranges of its levels, centre sampling if switched on; weights are random,
the assignment does not depend on them). Printed per config: the share of boxes owning ≥ 1
positive location, per stride and over all levels, and the mean positives per owned box.
Counts, not timings; nothing is asserted. Example::

    python benchmarks/fcos_positives.py --split trainval_v2 \\
        configs/bpfpn/fcos_fpn.yaml configs/bpfpn/fcos_gils_dgr_cs.yaml configs/bpfpn/fcos_gils_dgr_p2.yaml

A config with ``data.img_size: null`` (native resolution) is counted on the original boxes.
``--set`` overrides apply to every config, e.g. ``--set model.neck.levels=[P3]`` counts the
fast detector's assignment at stride 8.
"""

from __future__ import annotations

import argparse

import torch

from irdet.config import load_config
from irdet.data.datasets.densesirst import DenseSIRST, resolve_data_root
from irdet.models import build_detector
from irdet.models.heads.fcos import level_points


def owned_boxes(head, boxes: torch.Tensor, img_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Positives of each box under ``head``'s assignment at input size ``img_size`` (H, W).

    Args:
        head: an :class:`~irdet.models.heads.fcos.FCOSHead` (or subclass).
        boxes: (G, 4) XYXY pixel-edge boxes in input pixels.

    Returns:
        ``(per_level, total)``: (L, G) positives of each box on each level, and (G,) over all
        levels. A positive is attributed to the box whose edges its ltrb target reproduces
        (to 1e-3 px); identical duplicate boxes share their positives.
    """
    h, w = img_size
    points = [level_points((h + s - 1) // s, (w + s - 1) // s, s) for s in head.strides]
    labels, ltrb = head.get_targets(points, boxes, torch.zeros(len(boxes), dtype=torch.long))
    pts = torch.cat(points)
    pos = labels != head.num_classes
    rebuilt = torch.cat([pts - ltrb[:, :2], pts + ltrb[:, 2:]], 1)[pos]  # (P+, 4) box of each positive
    hit = ((rebuilt[:, None] - boxes[None]).abs().amax(-1) < 1e-3).float()  # (P+, G)
    level = torch.cat([torch.full((len(p),), i) for i, p in enumerate(points)])[pos]
    per_level = torch.stack([hit[level == i].sum(0) for i in range(len(points))])
    return per_level, hit.sum(0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("configs", nargs="+", help="detector configs (single-frame FCOS / BAFE-Net)")
    parser.add_argument("--split", default="trainval_v2")
    parser.add_argument("--data", default=None, help="SIRSTdevkit root (default: the config's / ../shared)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides applied to every config")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    gt = {}
    print("| config | split | boxes | owned, per stride | owned, any level | positives per owned box |")
    print("|---|---|---|---|---|---|")
    for path in args.configs:
        cfg = load_config([path], args.overrides)
        root = resolve_data_root(args.data or cfg["data"]["root"])
        if root not in gt:
            gt[root] = DenseSIRST(root, args.split, sky_mask=None).ground_truth()
        boxes, sizes = gt[root]
        head = build_detector(cfg["model"]).head
        per_level = []
        total = []
        for image_id, b in boxes.items():
            oh, ow = sizes[image_id]
            h, w = cfg["data"]["img_size"] or (oh, ow)  # null: native resolution
            scaled = torch.as_tensor(b, dtype=torch.float32) * torch.tensor([w / ow, h / oh, w / ow, h / oh])
            lv, tot = owned_boxes(head, scaled, (h, w))
            per_level.append(lv)
            total.append(tot)
        lv = torch.cat(per_level, 1)
        tot = torch.cat(total)
        n = len(tot)
        strides = ", ".join(f"{s}: {(lv[i] > 0).float().mean():.3f}" for i, s in enumerate(head.strides))
        owned = tot > 0
        name = path + "".join(f" {o}" for o in args.overrides)
        print(f"| {name} | {args.split} | {n} | {strides} | {owned.float().mean():.3f} | "
              f"{tot[owned].mean():.2f} |")


if __name__ == "__main__":
    main()
