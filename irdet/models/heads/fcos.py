"""FCOS head: towers, point-target assignment, losses and decoding.

Source: Tian et al., "FCOS: Fully Convolutional One-Stage Object Detection" (ICCV 2019), in
the MMDetection form used by the BAFE-Net reference (SPEC §3): 4 stacked 3×3 conv +
GroupNorm(32) + ReLU per tower, shared over levels with a learnable scale per level,
centerness on the classification tower, ``exp`` box regression in pixels
(``norm_on_bbox=False``), regress ranges (−1, 64), (64, 128), (128, 256), centre sampling
off, focal loss (α 0.25, γ 2) + IoU loss (−log IoU, weighted by the centerness target) +
centerness BCE, all weight 1; test: top 1000 per level by class score with score > 0.05,
score × centerness, NMS IoU 0.5 in original-image coordinates, ≤ 100 boxes per image.

Coordinates: boxes are (x1, y1, x2, y2) pixel-edge coordinates of the network input;
the point of feature cell (i, j) at stride s is ``(j·s + s/2, i·s + s/2)``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, sigmoid_focal_loss

__all__ = ["FCOSHead", "make_tower", "level_points", "iou_loss", "centerness_target"]


def make_tower(in_channels: int, channels: int, num_convs: int, gn_groups: int = 32) -> nn.Sequential:
    """``num_convs`` × (3×3 conv, no bias, → GroupNorm(gn_groups) → ReLU), (N, C, H, W) → (N, channels, H, W)."""
    layers: list[nn.Module] = []
    for i in range(num_convs):
        layers += [
            nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1, bias=False),
            nn.GroupNorm(gn_groups, channels),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


def level_points(h: int, w: int, stride: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Points of an (h, w) feature map at ``stride``: (h·w, 2) ``(x, y)`` in input pixels, row-major."""
    xs = torch.arange(w, device=device, dtype=dtype) * stride + stride / 2
    ys = torch.arange(h, device=device, dtype=dtype) * stride + stride / 2
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)


def centerness_target(ltrb: torch.Tensor) -> torch.Tensor:
    """FCOS centerness sqrt(min(l,r)/max(l,r) · min(t,b)/max(t,b)) of (P, 4) distances, in [0, 1]."""
    lr = ltrb[:, [0, 2]]
    tb = ltrb[:, [1, 3]]
    c = (lr.min(-1).values / lr.max(-1).values.clamp(min=1e-6)) * (tb.min(-1).values / tb.max(-1).values.clamp(min=1e-6))
    return c.clamp(min=0).sqrt()


def iou_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-point IoU loss −log(IoU) (UnitBox / MMDetection ``IoULoss`` mode "log").

    Args:
        pred, target: (P, 4) ``(l, t, r, b)`` distances (pixels, ≥ 0) from the same points.

    Returns:
        (P,) losses.
    """
    area_p = (pred[:, 0] + pred[:, 2]) * (pred[:, 1] + pred[:, 3])
    area_t = (target[:, 0] + target[:, 2]) * (target[:, 1] + target[:, 3])
    wi = torch.min(pred[:, 0], target[:, 0]) + torch.min(pred[:, 2], target[:, 2])
    hi = torch.min(pred[:, 1], target[:, 1]) + torch.min(pred[:, 3], target[:, 3])
    inter = wi.clamp(min=0) * hi.clamp(min=0)
    iou = inter / (area_p + area_t - inter).clamp(min=eps)
    return -iou.clamp(min=eps).log()


def _reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over DDP ranks (identity without torch.distributed)."""
    if dist.is_available() and dist.is_initialized():
        x = x.clone()
        dist.all_reduce(x)
        x = x / dist.get_world_size()
    return x


class FCOSHead(nn.Module):
    """FCOS head shared over pyramid levels.

    Args:
        in_channels: channels of each pyramid level (256).
        num_classes: foreground classes (1: "Target").
        strides: stride of each level in pixels, finest first, e.g. (8, 16, 32).
        regress_ranges: per level (lo, hi) of the largest regression distance in pixels.
        stacked_convs: convs per tower (4); feat_channels: tower width (256).
        center_sampling: assign only points within ``center_sample_radius``·stride of a box
            centre (FCOS v2; off in the paper, an irdet switch for small targets).
        focal_alpha, focal_gamma: focal loss parameters (0.25, 2).
        test: dict with ``nms_pre`` (1000), ``score_thr`` (0.05), ``nms_iou`` (0.5),
            ``max_per_img`` (100).

    ``forward(feats)`` takes a list of (N, in_channels, H_l, W_l) and returns a dict of
    per-level lists: ``cls_scores`` (N, num_classes, H_l, W_l) logits, ``bbox_preds``
    (N, 4, H_l, W_l) ltrb distances in pixels (> 0), ``centernesses`` (N, 1, H_l, W_l)
    logits.
    """

    def __init__(
        self,
        in_channels: int = 256,
        num_classes: int = 1,
        strides: Sequence[int] = (8, 16, 32),
        regress_ranges: Sequence[Sequence[float]] = ((-1, 64), (64, 128), (128, 256)),
        stacked_convs: int = 4,
        feat_channels: int = 256,
        center_sampling: bool = False,
        center_sample_radius: float = 1.5,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        prior_prob: float = 0.01,
        test: dict | None = None,
    ):
        super().__init__()
        if len(strides) != len(regress_ranges):
            raise ValueError(f"{len(strides)} strides but {len(regress_ranges)} regress ranges")
        self.num_classes = num_classes
        self.strides = list(strides)
        self.regress_ranges = [tuple(float(v) for v in r) for r in regress_ranges]
        self.center_sampling = center_sampling
        self.center_sample_radius = center_sample_radius
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.test_cfg = {"nms_pre": 1000, "score_thr": 0.05, "nms_iou": 0.5, "max_per_img": 100, **(test or {})}
        self.cls_tower = make_tower(in_channels, feat_channels, stacked_convs)
        self.reg_tower = make_tower(in_channels, feat_channels, stacked_convs)
        self.conv_cls = nn.Conv2d(feat_channels, num_classes, 3, padding=1)
        self.conv_reg = nn.Conv2d(feat_channels, 4, 3, padding=1)
        self.conv_centerness = nn.Conv2d(feat_channels, 1, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(len(self.strides)))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.constant_(self.conv_cls.bias, -math.log((1 - prior_prob) / prior_prob))

    # ------------------------------------------------------------------ forward
    def cls_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Classification-branch features of one level (N, C, H, W) and extra outputs."""
        return self.cls_tower(x), {}

    def forward(self, feats: list[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        out: dict[str, list[torch.Tensor]] = {"cls_scores": [], "bbox_preds": [], "centernesses": []}
        for level, x in enumerate(feats):
            cls_feat, extra = self.cls_features(x)
            reg_feat = self.reg_tower(x)
            out["cls_scores"].append(self.conv_cls(cls_feat))
            out["centernesses"].append(self.conv_centerness(cls_feat))
            # exp() of the scaled log-distance, as MMDetection with norm_on_bbox=False; the
            # clamp only guards fp overflow (exp(12) px is far beyond any image).
            reg = (self.conv_reg(reg_feat) * self.scales[level]).float().clamp(max=12.0)
            out["bbox_preds"].append(reg.exp())
            for key, value in extra.items():
                out.setdefault(key, []).append(value)
        return out

    # ------------------------------------------------------------------ targets
    def points(self, out: dict) -> list[torch.Tensor]:
        """Per-level (H_l·W_l, 2) points of the feature maps in ``out``."""
        ref = out["cls_scores"]
        return [level_points(t.shape[-2], t.shape[-1], s, t.device) for t, s in zip(ref, self.strides)]

    def get_targets(self, points: list[torch.Tensor], boxes: torch.Tensor, labels: torch.Tensor):
        """FCOS assignment for one image.

        Args:
            points: per-level (P_l, 2) points in input pixels.
            boxes: (G, 4) ground-truth XYXY pixel-edge boxes in input pixels.
            labels: (G,) class indices in [0, num_classes).

        Returns:
            ``(labels, ltrb)``: (P,) assigned class (``num_classes`` = background) and (P, 4)
            distances to the assigned box, over all levels concatenated. A point is a
            positive of the smallest-area box that contains it (strictly), whose largest
            distance lies in the level's regress range (and, with centre sampling, that
            lies within radius·stride of the box centre, clipped to the box).
        """
        pts = torch.cat(points)
        num_points = pts.shape[0]
        bg = torch.full((num_points,), self.num_classes, dtype=torch.long, device=pts.device)
        if boxes.numel() == 0:
            return bg, pts.new_zeros(num_points, 4)
        ranges = torch.cat([pts.new_tensor(r).expand(len(p), 2) for r, p in zip(self.regress_ranges, points)])
        x = pts[:, 0:1]
        y = pts[:, 1:2]
        b = boxes[None]  # (1, G, 4)
        ltrb = torch.stack([x - b[..., 0], y - b[..., 1], b[..., 2] - x, b[..., 3] - y], dim=-1)  # (P, G, 4)
        if self.center_sampling:
            strides = torch.cat([pts.new_full((len(p),), s) for s, p in zip(self.strides, points)])[:, None]
            radius = strides * self.center_sample_radius
            cx = (b[..., 0] + b[..., 2]) / 2
            cy = (b[..., 1] + b[..., 3]) / 2
            x1 = torch.maximum(cx - radius, b[..., 0])
            y1 = torch.maximum(cy - radius, b[..., 1])
            x2 = torch.minimum(cx + radius, b[..., 2])
            y2 = torch.minimum(cy + radius, b[..., 3])
            inside = torch.stack([x - x1, y - y1, x2 - x, y2 - y], -1).min(-1).values > 0
        else:
            inside = ltrb.min(-1).values > 0
        max_dist = ltrb.max(-1).values
        in_range = (max_dist >= ranges[:, 0:1]) & (max_dist <= ranges[:, 1:2])
        areas = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[None].expand(num_points, -1).clone()
        areas[~(inside & in_range)] = float("inf")
        min_area, idx = areas.min(dim=1)
        assigned = labels[idx].clone()
        assigned[torch.isinf(min_area)] = self.num_classes
        return assigned, ltrb[torch.arange(num_points, device=pts.device), idx]

    # ------------------------------------------------------------------ losses
    @staticmethod
    def _flatten(maps: list[torch.Tensor]) -> torch.Tensor:
        """Per-level (N, C, H, W) → (N, sum H·W, C), levels concatenated in order."""
        return torch.cat([m.flatten(2).transpose(1, 2) for m in maps], dim=1)

    def assign(self, points: list[torch.Tensor], boxes: torch.Tensor, labels: torch.Tensor):
        """Training targets of one image: ``(labels (P,), ltrb (P, 4), centerness target (P,))``.

        FCOS: :meth:`get_targets` and the centerness of the ltrb distances (meaningless on
        background points, which carry label ``num_classes``). Subclasses change the assignment here.
        """
        assigned, ltrb = self.get_targets(points, boxes, labels)
        return assigned, ltrb, centerness_target(ltrb.clamp(min=0))

    def box_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-positive box loss (P,) of (P, 4) ltrb predictions vs targets: −log IoU (FCOS)."""
        return iou_loss(pred, target)

    def loss(self, out: dict, boxes: list[torch.Tensor], labels: list[torch.Tensor], **_) -> dict[str, torch.Tensor]:
        """FCOS losses for a batch.

        Args:
            out: :meth:`forward` output.
            boxes: per image (G_i, 4) XYXY pixel-edge boxes in input pixels.
            labels: per image (G_i,) int64 labels.

        Returns:
            ``{"loss_cls", "loss_bbox", "loss_centerness"}`` scalar tensors: focal loss over all
            points / #positives, :meth:`box_loss` weighted by the centerness target / its sum,
            centerness BCE / #positives (#positives averaged over DDP ranks, as MMDetection).
        """
        points = self.points(out)
        device = points[0].device
        targets = [self.assign(points, b.to(device), l.to(device)) for b, l in zip(boxes, labels)]
        flat_labels, flat_ltrb, flat_ctr = (torch.cat([t[k] for t in targets]) for k in range(3))
        cls = self._flatten(out["cls_scores"]).reshape(-1, self.num_classes)
        reg = self._flatten(out["bbox_preds"]).reshape(-1, 4)
        ctr = self._flatten(out["centernesses"]).reshape(-1)
        pos = flat_labels < self.num_classes
        num_pos = max(float(_reduce_mean(pos.sum().float())), 1.0)
        onehot = F.one_hot(flat_labels, self.num_classes + 1)[:, : self.num_classes].to(cls.dtype)
        loss_cls = sigmoid_focal_loss(cls.float(), onehot.float(), self.focal_alpha, self.focal_gamma, "sum") / num_pos
        if pos.any():
            ctr_t = flat_ctr[pos]
            denorm = max(float(_reduce_mean(ctr_t.sum().detach())), 1e-6)
            loss_bbox = (self.box_loss(reg[pos].float(), flat_ltrb[pos]) * ctr_t).sum() / denorm
            loss_ctr = F.binary_cross_entropy_with_logits(ctr[pos].float(), ctr_t, reduction="sum") / num_pos
        else:
            loss_bbox = reg.sum() * 0
            loss_ctr = ctr.sum() * 0
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox, "loss_centerness": loss_ctr}

    # ------------------------------------------------------------------ decoding
    @torch.no_grad()
    def predict(self, out: dict, img_sizes: Sequence[Sequence[int]], orig_sizes: Sequence[Sequence[int]] | None = None):
        """Decode detections.

        Args:
            out: :meth:`forward` output for N images.
            img_sizes: per image (h, w) of the resized, unpadded input (boxes are clipped to it).
            orig_sizes: per image (H, W) of the original image; when given, boxes are
                rescaled to it *before* NMS (as MMDetection does).

        Returns:
            list of N dicts with ``boxes`` (K, 4) XYXY pixel-edge (original-image pixels when
            ``orig_sizes`` is given), ``scores`` (K,) in [0, 1] (class × centerness), ``labels``
            (K,) int64; K ≤ ``max_per_img``, sorted by score.
        """
        cfg = self.test_cfg
        points = self.points(out)
        results = []
        for i in range(out["cls_scores"][0].shape[0]):
            all_boxes, all_scores, all_labels = [], [], []
            for lvl, pts in enumerate(points):
                scores = out["cls_scores"][lvl][i].flatten(1).t().sigmoid()  # (P, C)
                ctr = out["centernesses"][lvl][i].flatten().sigmoid()
                reg = out["bbox_preds"][lvl][i].flatten(1).t()
                keep = scores > cfg["score_thr"]
                sc = scores[keep]
                pidx, lab = keep.nonzero(as_tuple=True)
                if sc.numel() > cfg["nms_pre"]:
                    sc, top = sc.topk(cfg["nms_pre"])
                    pidx, lab = pidx[top], lab[top]
                p, d = pts[pidx], reg[pidx]
                bx = torch.stack([p[:, 0] - d[:, 0], p[:, 1] - d[:, 1], p[:, 0] + d[:, 2], p[:, 1] + d[:, 3]], -1)
                all_boxes.append(bx)
                all_scores.append(sc * ctr[pidx])
                all_labels.append(lab)
            boxes = torch.cat(all_boxes)
            scores = torch.cat(all_scores)
            labels = torch.cat(all_labels)
            h, w = img_sizes[i]
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
            if orig_sizes is not None:
                oh, ow = orig_sizes[i]
                boxes = boxes * boxes.new_tensor([ow / w, oh / h, ow / w, oh / h])
            valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
            keep = batched_nms(boxes, scores, labels, cfg["nms_iou"])[: cfg["max_per_img"]]
            results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        return results
