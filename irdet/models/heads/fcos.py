"""FCOS head: towers, point-target assignment, losses and decoding.

Source: Tian et al., "FCOS: Fully Convolutional One-Stage Object Detection" (ICCV 2019), in
the MMDetection form used by the BAFE-Net reference code: 4 stacked 3×3 conv +
GroupNorm(32) + ReLU per tower, shared over levels with a learnable scale per level,
centerness on the classification tower, ``exp`` box regression in pixels
(``norm_on_bbox=False``), regress ranges (−1, 64), (64, 128), (128, 256), centre sampling
off, focal loss (α 0.25, γ 2) + IoU loss (−log IoU, weighted by the centerness target) +
centerness BCE, all weight 1; test: top 1000 per level by class score with score > 0.05,
score × centerness, NMS IoU 0.5 in original-image coordinates, ≤ 100 boxes per image.

Small-target options (irdet extensions, off by default so the paper's FCOS stays the
reference): ``assigner: nearest`` gives every ground-truth box a positive at any stride
(:meth:`FCOSHead.get_targets`), ``min_assign_size`` enlarges boxes for assignment, and
``box_param: offset`` regresses a signed centre offset and a log size, so the predicted box
need not contain its point (a point next to a 3-px box can regress that box exactly).

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
from scipy.optimize import linear_sum_assignment
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from irdet.errors import ConfigError
from irdet.models.configurable import Configurable
from irdet.models.postprocess import decode_detections, level_points

__all__ = ["FCOSHead", "make_tower", "level_points", "iou_loss", "giou_loss_ltrb", "centerness_target",
           "default_regress_ranges", "TEST_DEFAULTS",
           "ASSIGNERS", "BOX_PARAMS"]

#: ``assigner`` choices: ``fcos`` (the paper's host: a point strictly inside the box) and
#: ``nearest`` (irdet extension: every box owns a positive at any stride).
ASSIGNERS = ("fcos", "nearest")
#: ``box_param`` choices: ``exp`` (FCOS: ltrb = exp(s·x) px, the box contains its point) and
#: ``offset`` (irdet extension: signed centre offset in strides + exp log-size in strides).
BOX_PARAMS = ("exp", "offset")
#: Test settings (``model.head.test``): top ``nms_pre`` points per level by class score, score >
#: ``score_thr``, class-wise NMS at IoU ``nms_iou``, at most ``max_per_img`` boxes (the FCOS /
#: BAFE-Net reference test config).
TEST_DEFAULTS = {"nms_pre": 1000, "score_thr": 0.05, "nms_iou": 0.5, "max_per_img": 100}


def default_regress_ranges(levels: Sequence[str]) -> list[tuple[float, float]]:
    """FCOS regress ranges (pixels): level P_k gets (2^(k+2), 2^(k+3)], the finest starts at −1.

    P3–P5 → (−1, 64), (64, 128), (128, 256) (FCOS's ranges of those levels, as in the BAFE-Net
    reference); with P2 → (−1, 32), (32, 64), ... (irdet extension).
    """
    ranges = []
    for i, lv in enumerate(levels):
        k = int(lv[1:])
        ranges.append((-1.0 if i == 0 else float(2 ** (k + 2)), float(2 ** (k + 3))))
    return ranges


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


def giou_loss_ltrb(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-point GIoU loss 1 − GIoU ∈ [0, 2] (Rezatofighi et al. 2019) of (P, 4) ``(l, t, r, b)`` distances.

    Both may be negative on a side (the point lies outside that box) as long as ``l + r > 0`` and
    ``t + b > 0``. Unlike −log IoU it has a gradient when the boxes are disjoint, which happens
    when a positive lies outside its tiny box. Returns (P,).
    """
    p = torch.stack([-pred[:, 0], -pred[:, 1], pred[:, 2], pred[:, 3]], dim=1)
    t = torch.stack([-target[:, 0], -target[:, 1], target[:, 2], target[:, 3]], dim=1)
    return generalized_box_iou_loss(p, t, reduction="none")


def _reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over DDP ranks (identity without torch.distributed)."""
    if dist.is_available() and dist.is_initialized():
        x = x.clone()
        dist.all_reduce(x)
        x = x / dist.get_world_size()
    return x


class FCOSHead(nn.Module, Configurable):
    """FCOS head shared over pyramid levels (``model.head.seg_head: false``, registered as ``fcos``).

    Args (those of :attr:`CONFIG` are the keys of ``model.head``; ``regress_ranges: null`` there
    means :func:`default_regress_ranges` of the neck's levels):
        in_channels: channels of each pyramid level (256).
        num_classes: foreground classes (1: "Target").
        strides: stride of each level in pixels, finest first, e.g. (8, 16, 32).
        regress_ranges: per level (lo, hi) of the largest regression distance in pixels.
        stacked_convs: convs per tower (4); feat_channels: tower width (256).
        center_sampling: assign only points within ``center_sample_radius``·stride of a box
            centre (FCOS v2; off in the paper). The region is clipped to the box (MMDetection), so a
            tiny box gains no point it does not contain: not a small-target fix (use ``assigner``).
        focal_alpha, focal_gamma: focal loss parameters (0.25, 2).
        assigner: ``"fcos"`` (the paper) or ``"nearest"`` (irdet extension, see
            :meth:`get_targets`): positives are the points inside the box or within
            ``assign_radius``·stride of its centre, and every box owns at least one.
        assign_radius: half-side of the square centre region of ``nearest``, in strides (1.0).
        min_assign_size: enlarge every box about its centre to at least this side (pixels)
            before assignment (0 = off; the moving-target configs use 9 at stride 8).
        box_param: ``"exp"`` (FCOS) or ``"offset"`` (irdet extension; see :meth:`forward`).
        test: dict with ``nms_pre`` (1000), ``score_thr`` (0.05), ``nms_iou`` (0.5),
            ``max_per_img`` (100).

    ``forward(feats)`` takes a list of (N, in_channels, H_l, W_l) and returns a dict of
    per-level lists: ``cls_scores`` (N, num_classes, H_l, W_l) logits, ``bbox_preds``
    (N, 4, H_l, W_l) float32 ltrb distances in pixels from each point to the box sides (> 0
    with ``exp``; signed with ``offset``, l + r > 0 and t + b > 0), ``centernesses``
    (N, 1, H_l, W_l) logits.

    The box loss is −log IoU (FCOS) when every positive lies inside its box (``fcos``
    assigner, no enlargement), else the GIoU loss (:func:`giou_loss_ltrb`).

    Raises:
        ConfigError: unknown ``assigner`` / ``box_param``, negative ``min_assign_size``,
            ``assign_radius`` ≤ 0.
    """

    CONFIG = {"num_classes": 1, "stacked_convs": 4, "feat_channels": 256, "regress_ranges": None,
              "center_sampling": False, "center_sample_radius": 1.5, "focal_alpha": 0.25, "focal_gamma": 2.0,
              "assigner": "fcos", "assign_radius": 1.0, "min_assign_size": 0, "box_param": "exp",
              "test": TEST_DEFAULTS}

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
        assigner: str = "fcos",
        assign_radius: float = 1.0,
        min_assign_size: float = 0.0,
        box_param: str = "exp",
        test: dict | None = None,
    ):
        super().__init__()
        if len(strides) != len(regress_ranges):
            raise ValueError(f"{len(strides)} strides but {len(regress_ranges)} regress ranges")
        if assigner not in ASSIGNERS:
            raise ConfigError(f"model.head.assigner must be one of {list(ASSIGNERS)}, got {assigner!r}")
        if box_param not in BOX_PARAMS:
            raise ConfigError(f"model.head.box_param must be one of {list(BOX_PARAMS)}, got {box_param!r}")
        if not isinstance(min_assign_size, (int, float)) or isinstance(min_assign_size, bool) or min_assign_size < 0:
            raise ConfigError(f"model.head.min_assign_size must be a number >= 0 (px), got {min_assign_size!r}")
        if not isinstance(assign_radius, (int, float)) or isinstance(assign_radius, bool) or assign_radius <= 0:
            raise ConfigError(f"model.head.assign_radius must be a number > 0 (strides), got {assign_radius!r}")
        self.assigner = assigner
        self.assign_radius = float(assign_radius)
        self.min_assign_size = float(min_assign_size)
        self.box_param = box_param
        self.num_classes = num_classes
        self.strides = list(strides)
        self.regress_ranges = [tuple(float(v) for v in r) for r in regress_ranges]
        self.center_sampling = center_sampling
        self.center_sample_radius = center_sample_radius
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.test_cfg = {**TEST_DEFAULTS, **(test or {})}
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
            # float32 outputs under autocast: losses, assignment and decoding stay fp32
            out["cls_scores"].append(self.conv_cls(cls_feat).float())
            out["centernesses"].append(self.conv_centerness(cls_feat).float())
            out["bbox_preds"].append(self.decode_distances(self.conv_reg(reg_feat), level))
            for key, value in extra.items():
                out.setdefault(key, []).append(value)
        return out

    def decode_distances(self, raw: torch.Tensor, level: int) -> torch.Tensor:
        """Regression output (N, 4, H, W) of ``level`` → float32 ltrb distances in pixels.

        ``exp`` (FCOS, MMDetection ``norm_on_bbox=False``): ``ltrb = exp(scale·raw)``, always
        > 0. ``offset`` (irdet extension): ``raw = (ox, oy, sw, sh)``, box centre = point +
        (ox, oy)·stride, size (w, h) = exp(scale·(sw, sh))·stride, so ``l = w/2 − ox·stride``,
        ``r = w/2 + ox·stride`` (likewise t, b); at initialisation (raw ≈ 0) every point
        predicts a stride × stride box on itself. The clamp only guards fp overflow.
        """
        raw = raw.float()
        if self.box_param == "exp":
            return (raw * self.scales[level]).clamp(max=12.0).exp()
        stride = float(self.strides[level])
        off = raw[:, :2] * stride
        half = (raw[:, 2:] * self.scales[level]).clamp(max=12.0).exp() * (stride / 2)
        return torch.cat([half - off, half + off], dim=1)

    # ------------------------------------------------------------------ targets
    def points(self, out: dict) -> list[torch.Tensor]:
        """Per-level (H_l·W_l, 2) points of the feature maps in ``out``."""
        ref = out["cls_scores"]
        return [level_points(t.shape[-2], t.shape[-1], s, t.device) for t, s in zip(ref, self.strides)]

    def get_targets(self, points: list[torch.Tensor], boxes: torch.Tensor, labels: torch.Tensor):
        """Label assignment for one image.

        Args:
            points: per-level (P_l, 2) points in input pixels.
            boxes: (G, 4) ground-truth XYXY pixel-edge boxes in input pixels.
            labels: (G,) class indices in [0, num_classes).

        Returns:
            ``(labels, ltrb)``: (P,) assigned class (``num_classes`` = background) and (P, 4)
            distances from each point to the sides of its assigned (true) box, over all levels
            concatenated; negative on a side where the point lies outside the box.

        ``fcos`` (the paper): a point is a positive of the smallest-area box that contains it
        strictly, whose largest distance lies in the level's regress range (with centre
        sampling: within radius·stride of the box centre, clipped to the box). At stride s a
        w × w box (w < s) contains a grid point with probability (w/s)² only.

        ``nearest`` (irdet extension, in the spirit of the centre priors of ATSS / RFLA for
        tiny objects): a point is a candidate of a box when it lies inside the box or within
        ``assign_radius``·stride of its centre (a square region, not clipped to the box), and
        the box's largest distance from it lies in the level's regress range; a point claimed
        by several boxes goes to the box with the nearest centre. Then every box is
        guaranteed one positive: a minimum-cost one-to-one matching (Hungarian algorithm,
        ``scipy.optimize.linear_sum_assignment``) between the boxes and their nearest
        in-range points, by centre distance, overrides the above for the matched points, so
        clustered targets 1–2 px apart still own distinct points.

        ``min_assign_size`` > 0 first enlarges every box about its centre to that side for the
        tests above (the regression target stays the true box).
        """
        assigned, _, ltrb, _ = self._assign(points, boxes, labels)
        return assigned, ltrb

    def assignment_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """(G, 4) XYXY boxes enlarged about their centres to at least ``min_assign_size`` per side."""
        if self.min_assign_size <= 0 or boxes.numel() == 0:
            return boxes
        c = (boxes[:, :2] + boxes[:, 2:]) / 2
        half = (boxes[:, 2:] - boxes[:, :2]).clamp(min=self.min_assign_size) / 2
        return torch.cat([c - half, c + half], dim=1)

    def _assign(self, points: list[torch.Tensor], boxes: torch.Tensor, labels: torch.Tensor):
        """``(labels (P,), box index (P,), ltrb to the true box (P, 4), ltrb to the assignment region (P, 4))``."""
        pts = torch.cat(points)
        num_points = pts.shape[0]
        bg = torch.full((num_points,), self.num_classes, dtype=torch.long, device=pts.device)
        if boxes.numel() == 0:
            zeros = pts.new_zeros(num_points, 4)
            return bg, torch.zeros_like(bg), zeros, zeros
        ranges = torch.cat([pts.new_tensor(r).expand(len(p), 2) for r, p in zip(self.regress_ranges, points)])
        strides = torch.cat([pts.new_full((len(p),), float(s)) for s, p in zip(self.strides, points)])[:, None]
        x = pts[:, 0:1]
        y = pts[:, 1:2]
        b = boxes[None]  # (1, G, 4)
        ltrb = torch.stack([x - b[..., 0], y - b[..., 1], b[..., 2] - x, b[..., 3] - y], dim=-1)  # (P, G, 4)
        a = self.assignment_boxes(boxes)[None]
        if self.assigner == "nearest":  # the box ∪ the centre square of half-side radius·stride
            cx, cy = (a[..., 0] + a[..., 2]) / 2, (a[..., 1] + a[..., 3]) / 2
            r = strides * self.assign_radius
            a = torch.stack([torch.minimum(a[..., 0], cx - r), torch.minimum(a[..., 1], cy - r),
                             torch.maximum(a[..., 2], cx + r), torch.maximum(a[..., 3], cy + r)], -1)  # (P, G, 4)
        ltrb_a = torch.stack([x - a[..., 0], y - a[..., 1], a[..., 2] - x, a[..., 3] - y], dim=-1)
        if self.center_sampling and self.assigner == "fcos":
            radius = strides * self.center_sample_radius
            cx = (a[..., 0] + a[..., 2]) / 2
            cy = (a[..., 1] + a[..., 3]) / 2
            x1 = torch.maximum(cx - radius, a[..., 0])
            y1 = torch.maximum(cy - radius, a[..., 1])
            x2 = torch.minimum(cx + radius, a[..., 2])
            y2 = torch.minimum(cy + radius, a[..., 3])
            inside = torch.stack([x - x1, y - y1, x2 - x, y2 - y], -1).min(-1).values > 0
        else:
            inside = ltrb_a.min(-1).values > 0
        max_dist = ltrb_a.max(-1).values
        in_range = (max_dist >= ranges[:, 0:1]) & (max_dist <= ranges[:, 1:2])
        if self.assigner == "fcos":
            area = (a[0, :, 2] - a[0, :, 0]) * (a[0, :, 3] - a[0, :, 1])  # of the assignment boxes
            cost = area[None].expand(num_points, -1)
        else:
            centre = (boxes[:, :2] + boxes[:, 2:]) / 2
            cost = torch.cdist(pts, centre)  # (P, G) px
        min_cost, idx = cost.masked_fill(~(inside & in_range), float("inf")).min(dim=1)
        assigned = labels[idx].clone()
        assigned[torch.isinf(min_cost)] = self.num_classes
        if self.assigner == "nearest":
            matched_points, matched_boxes = self._match(cost, in_range)
            idx[matched_points] = matched_boxes
            assigned[matched_points] = labels[matched_boxes]
        rows = torch.arange(num_points, device=pts.device)
        return assigned, idx, ltrb[rows, idx], ltrb_a[rows, idx]

    @staticmethod
    def _match(dist: torch.Tensor, in_range: torch.Tensor, k: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
        """One point per box: min-cost one-to-one matching of (P, G) centre distances (px).

        Candidates of a box are its ``max(k, G)`` nearest points among those whose level's
        regress range admits it (all points when none does); returns (G,) point indices and
        (G,) box indices.
        """
        num_points, num_boxes = dist.shape
        d = dist.masked_fill(~in_range, float("inf"))
        d = torch.where(torch.isinf(d).all(0, keepdim=True), dist, d)  # a box no level admits: any level
        kk = min(num_points, max(k, num_boxes))
        cand = d.topk(kk, dim=0, largest=False).indices.unique()  # the union of the nearest points
        sub = d[cand].t().double()  # (G, U)
        sub = torch.where(torch.isinf(sub), torch.full_like(sub, 1e9), sub)
        rows, cols = linear_sum_assignment(sub.cpu().numpy())
        return cand[torch.as_tensor(cols, device=cand.device)], torch.as_tensor(rows, device=dist.device)

    # ------------------------------------------------------------------ losses
    @staticmethod
    def _flatten(maps: list[torch.Tensor]) -> torch.Tensor:
        """Per-level (N, C, H, W) → (N, sum H·W, C), levels concatenated in order."""
        return torch.cat([m.flatten(2).transpose(1, 2) for m in maps], dim=1)

    def assign(self, points: list[torch.Tensor], boxes: torch.Tensor, labels: torch.Tensor):
        """Training targets of one image: ``(labels (P,), ltrb (P, 4), centerness target (P,))``.

        :meth:`get_targets`, and the FCOS centerness of the distances to the assignment region
        (the box, enlarged by ``min_assign_size`` and, for ``nearest``, by the centre square), in
        [0, 1]; for ``nearest`` positives it is floored at 0.1 so that a matched point outside
        that region still gets a box-loss weight. Meaningless on background points (label
        ``num_classes``).
        """
        assigned, _, ltrb, ltrb_a = self._assign(points, boxes, labels)
        ctr = centerness_target(ltrb_a.clamp(min=0))
        if self.assigner == "nearest":
            ctr = ctr.clamp(min=0.1)
        return assigned, ltrb, ctr

    @property
    def off_point_targets(self) -> bool:
        """True when a positive may lie outside its box (then the box loss is GIoU)."""
        return self.assigner == "nearest" or self.min_assign_size > 0

    def box_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-positive box loss (P,) of (P, 4) ltrb predictions vs targets: −log IoU (FCOS), or
        GIoU (:func:`giou_loss_ltrb`) when positives may lie outside their box."""
        return giou_loss_ltrb(pred, target) if self.off_point_targets else iou_loss(pred, target)

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
        """Decode detections: :func:`irdet.models.postprocess.decode_detections` with this head's
        ``strides`` and ``test_cfg`` (the same function decodes the ONNX Runtime outputs).

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

        return decode_detections(out, self.strides, self.test_cfg, img_sizes, orig_sizes)
