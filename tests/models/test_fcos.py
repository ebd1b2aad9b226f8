"""FCOS point assignment, losses and decoding on hand-made boxes."""

from __future__ import annotations

import pytest
import torch

from irdet.config import load_config
from irdet.errors import ConfigError
from irdet.models import build_detector
from irdet.models.heads.fcos import (FCOSHead, centerness_target, default_regress_ranges, giou_loss_ltrb, iou_loss,
                                    level_points)


def _points(head, size=64):
    return [level_points(size // s, size // s, s) for s in head.strides]


def test_level_points():
    p = level_points(2, 3, 8)
    assert p.tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]


def test_default_regress_ranges():
    assert default_regress_ranges(["P3", "P4", "P5"]) == [(-1, 64), (64, 128), (128, 256)]
    assert default_regress_ranges(["P2", "P3", "P4", "P5"]) == [(-1, 32), (32, 64), (64, 128), (128, 256)]


def test_assignment_single_box():
    head = FCOSHead(strides=(8, 16, 32))
    pts = _points(head)  # 8x8 + 4x4 + 2x2 points over a 64x64 image
    labels, ltrb = head.get_targets(pts, torch.tensor([[0.0, 0.0, 16.0, 16.0]]), torch.tensor([0]))
    p3 = labels[:64].view(8, 8)
    assert p3[:2, :2].eq(0).all() and p3.eq(0).sum() == 4  # points (4,4) (12,4) (4,12) (12,12)
    assert labels[64:].eq(1).all()  # P4 / P5: the box (max distance 12) is outside their ranges
    assert ltrb[0].tolist() == [4, 4, 12, 12]  # point (4, 4)
    assert ltrb[9].tolist() == [12, 12, 4, 4]  # point (12, 12)


def test_assignment_tiny_box_between_points_gets_nothing():
    head = FCOSHead(strides=(8, 16, 32))
    labels, _ = head.get_targets(_points(head), torch.tensor([[5.0, 5.0, 8.0, 8.0]]), torch.tensor([0]))
    assert labels.eq(1).all()  # no stride-8 point (4 + 8k) lies strictly inside: FCOS without centre sampling caps recall
    head.center_sampling = True
    labels, _ = head.get_targets(_points(head), torch.tensor([[5.0, 5.0, 8.0, 8.0]]), torch.tensor([0]))
    assert labels.eq(1).all()  # centre sampling is clipped to the box: still nothing


def test_assignment_smallest_area_wins_and_regress_range():
    head = FCOSHead(strides=(8, 16, 32))
    boxes = torch.tensor([[0.0, 0.0, 40.0, 40.0], [2.0, 2.0, 14.0, 14.0]])
    labels, ltrb = head.get_targets(_points(head), boxes, torch.tensor([0, 0]))
    assert ltrb[0].tolist() == [2, 2, 10, 10]  # point (4,4) belongs to the small box
    big = torch.tensor([[0.0, 0.0, 200.0, 200.0]])
    pts = [level_points(256 // s, 256 // s, s) for s in head.strides]
    labels, _ = head.get_targets(pts, big, torch.tensor([0]))
    n3, n4 = (256 // 8) ** 2, (256 // 16) ** 2
    # P3 points all have a max distance > 64 except none; the box is regressed from P4/P5
    assert labels[:n3].eq(0).sum() == 0
    assert labels[n3 : n3 + n4].eq(0).sum() > 0


def test_center_sampling_restricts_positives():
    head = FCOSHead(strides=(8,), regress_ranges=((-1, 1e8),), center_sampling=True, center_sample_radius=1.5)
    pts = [level_points(8, 8, 8)]
    labels, _ = head.get_targets(pts, torch.tensor([[0.0, 0.0, 64.0, 64.0]]), torch.tensor([0]))
    pos = labels.eq(0).view(8, 8).nonzero().tolist()
    # centre (32, 32) ± 12 px -> points 28 and 36 in x and y
    assert sorted(pos) == [[3, 3], [3, 4], [4, 3], [4, 4]]


def test_centerness_and_iou_loss():
    t = torch.tensor([[2.0, 2.0, 2.0, 2.0], [1.0, 3.0, 3.0, 1.0]])
    assert centerness_target(t).tolist() == pytest.approx([1.0, 1 / 3])
    assert iou_loss(t, t).tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    # pred half the width of the target: IoU = 0.5
    assert iou_loss(torch.tensor([[1.0, 2.0, 1.0, 2.0]]), torch.tensor([[2.0, 2.0, 2.0, 2.0]])).item() == pytest.approx(-torch.log(torch.tensor(0.5)).item())


def test_losses_finite_with_and_without_targets():
    torch.manual_seed(0)
    head = FCOSHead(in_channels=32, feat_channels=32, stacked_convs=1, strides=(8, 16, 32))
    feats = [torch.randn(2, 32, 64 // s, 64 // s) for s in (8, 16, 32)]
    out = head(feats)
    losses = head.loss(out, [torch.tensor([[0.0, 0.0, 16.0, 16.0]]), torch.zeros(0, 4)], [torch.tensor([0]), torch.zeros(0, dtype=torch.long)])
    assert set(losses) == {"loss_cls", "loss_bbox", "loss_centerness"}
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_bbox"] > 0
    total = sum(losses.values())
    total.backward()
    assert head.conv_reg.weight.grad.abs().sum() > 0
    empty = head.loss(head(feats), [torch.zeros(0, 4)] * 2, [torch.zeros(0, dtype=torch.long)] * 2)
    assert empty["loss_bbox"] == 0 and torch.isfinite(empty["loss_cls"])


def test_predict_decodes_and_rescales():
    head = FCOSHead(in_channels=32, feat_channels=32, stacked_convs=1, strides=(8,), regress_ranges=((-1, 64),))
    cls = torch.full((1, 1, 4, 4), -10.0)
    cls[0, 0, 1, 2] = 10.0  # point (20, 12)
    out = {
        "cls_scores": [cls],
        "bbox_preds": [torch.full((1, 4, 4, 4), 2.0)],
        "centernesses": [torch.full((1, 1, 4, 4), 10.0)],
    }
    det = head.predict(out, [(32, 32)])[0]
    assert det["boxes"].tolist() == [[18.0, 10.0, 22.0, 14.0]] and det["scores"][0] > 0.99
    det = head.predict(out, [(32, 32)], orig_sizes=[(64, 128)])[0]  # x * 4, y * 2
    assert det["boxes"].tolist() == [[72.0, 20.0, 88.0, 28.0]]


def test_min_assign_size_enlarges_boxes_and_regresses_the_true_box():
    pts = [level_points(8, 8, 8)]
    box = torch.tensor([[5.0, 5.0, 8.0, 8.0]])  # 3x3 px between the stride-8 points (4, 12)
    plain = FCOSHead(strides=(8,), regress_ranges=((-1, 1e8),))
    ref = FCOSHead(strides=(8,), regress_ranges=((-1, 1e8),))
    assert plain.get_targets(pts, box, torch.tensor([0]))[0].eq(1).all()  # plain FCOS: no positive
    assert torch.equal(plain.get_targets(pts, box, torch.tensor([0]))[1], ref.get_targets(pts, box, torch.tensor([0]))[1])
    head = FCOSHead(strides=(8,), regress_ranges=((-1, 1e8),), min_assign_size=9)
    labels, ltrb, ctr = head.assign(pts, box, torch.tensor([0]))
    pos = labels.eq(0).nonzero().flatten().tolist()
    assert pos == [0]  # point (4, 4): the grid point nearest the box centre (6.5, 6.5)
    assert ltrb[0].tolist() == [-1.0, -1.0, 4.0, 4.0]  # signed distances to the *true* box
    assert abs(float(ctr[0]) - 2 / 7) < 1e-6  # centerness on the 9x9 assignment box [2, 2, 11, 11]
    # large boxes are assigned exactly as FCOS
    big = torch.tensor([[0.0, 0.0, 30.0, 20.0]])
    assert torch.equal(head.get_targets(pts, big, torch.tensor([0]))[0], ref.get_targets(pts, big, torch.tensor([0]))[0])
    # GIoU on signed distances: the best box containing the point (IoU 9/16 with the true box) scores
    # 1 − 9/16, and a prediction disjoint from the box still gets a gradient (−log IoU would give none)
    assert float(giou_loss_ltrb(torch.tensor([[0.0, 0.0, 4.0, 4.0]]), ltrb[:1])) == pytest.approx(1 - 9 / 16)
    pred = torch.tensor([[0.5, 0.5, 0.5, 0.5]], requires_grad=True)  # [-0.5, 0.5]^2: disjoint from [1, 4]^2
    giou_loss_ltrb(pred, ltrb[:1]).sum().backward()
    assert pred.grad.abs().sum() > 0
    out = {"cls_scores": [torch.zeros(1, 1, 8, 8)], "centernesses": [torch.zeros(1, 1, 8, 8)],
           "bbox_preds": [torch.full((1, 4, 8, 8), 4.0)]}
    out["bbox_preds"][0][0, :, 0, 0] = torch.tensor([1e-4, 1e-4, 4.0, 4.0])
    losses = head.loss(out, [box], [torch.tensor([0])])
    assert all(torch.isfinite(v) for v in losses.values()) and float(losses["loss_bbox"]) < 0.8
    with pytest.raises(ConfigError):
        FCOSHead(min_assign_size=-1)


def _owners(head, pts, boxes):
    """(G,) positives of each box, attributed by the signed ltrb target to the true box."""
    labels, ltrb = head.get_targets(pts, boxes, torch.zeros(len(boxes), dtype=torch.long))
    pos = labels.eq(0)
    p = torch.cat(pts)[pos]
    rebuilt = torch.cat([p - ltrb[pos, :2], p + ltrb[pos, 2:]], 1)
    return ((rebuilt[:, None] - boxes[None]).abs().amax(-1) < 1e-4).sum(0)


def test_nearest_assignment_gives_every_box_a_positive_in_a_dense_cluster():
    pts = [level_points(16, 16, 8)]
    # nine 3x3 targets 1-2 px apart inside one 20x20 region: fewer stride-8 points than boxes nearby
    xy = torch.tensor([[40.0 + 4 * i, 40.0 + 5 * j] for i in range(3) for j in range(3)])
    boxes = torch.cat([xy, xy + 3], 1)
    fcos = FCOSHead(strides=(8,), regress_ranges=((-1, 1e8),))
    assert int((_owners(fcos, pts, boxes) > 0).sum()) < len(boxes)
    head = FCOSHead(strides=(8,), regress_ranges=((-1, 1e8),), assigner="nearest", box_param="offset")
    assert (_owners(head, pts, boxes) > 0).all()
    # a lone tiny box between grid points owns the points of its centre square (radius 1 stride)
    box = torch.tensor([[5.0, 5.0, 8.0, 8.0]])
    labels, ltrb, ctr = head.assign(pts, box, torch.tensor([0]))
    pos = labels.eq(0).nonzero().flatten().tolist()
    assert pos == [0, 1, 16, 17]  # points (4|12, 4|12) around the centre (6.5, 6.5)
    assert ltrb[0].tolist() == [-1.0, -1.0, 4.0, 4.0]
    assert (ctr[labels.eq(0)] > 0).all() and float(ctr[0]) == ctr[labels.eq(0)].max()
    # boxes larger than the centre square keep every inside point (FCOS's positives are a subset)
    big = torch.tensor([[0.0, 0.0, 40.0, 30.0]])
    assert (fcos.get_targets(pts, big, torch.tensor([0]))[0].eq(0) <= head.get_targets(pts, big, torch.tensor([0]))[0].eq(0)).all()
    with pytest.raises(ConfigError):
        FCOSHead(assigner="atss")
    with pytest.raises(ConfigError):
        FCOSHead(box_param="xywh")


def test_offset_box_param_is_valid_for_points_outside_the_box():
    head = FCOSHead(in_channels=32, feat_channels=32, stacked_convs=1, strides=(4,), regress_ranges=((-1, 1e8),),
                    assigner="nearest", box_param="offset")
    raw = torch.zeros(1, 4, 2, 2)
    raw[0, 0] = 0.5  # centre one stride/2 = 2 px to the right, size exp(0) * 4 = 4 px
    d = head.decode_distances(raw, 0)
    assert d[0, :, 0, 0].tolist() == [0.0, 2.0, 4.0, 2.0]  # l = 2 - 2, r = 2 + 2: the point is on the left edge
    raw[0, 0] = 1.0
    d = head.decode_distances(raw, 0)
    assert float(d[0, 0, 0, 0]) < 0 and float(d[0, 0, 0, 0] + d[0, 2, 0, 0]) > 0  # point outside, width > 0
    # a box 1 px beside its point is learnable: the GIoU loss of the exact prediction is 0
    target = torch.tensor([[-1.0, -1.0, 4.0, 4.0]])
    assert float(giou_loss_ltrb(target, target)) == pytest.approx(0.0, abs=1e-6)


def test_nearest_assignment_owns_every_real_box_at_strides_2_4_and_8(densesirst):
    from irdet.data.datasets.densesirst import DenseSIRST

    boxes, sizes = DenseSIRST(densesirst, "test_v2", sky_mask=None).ground_truth()
    for stride, name, level in ((2, "p1", "P1"), (4, "p2", "P2"), (8, "p2", "P3")):
        cfg = load_config(f"configs/fcos_r18_{name}_light_native.yaml", [f"model.neck.levels=[{level}]"])
        head = build_detector(cfg["model"]).head
        assert head.strides == [stride]
        owned = total = 0
        for image_id in list(boxes)[:40]:
            b = torch.as_tensor(boxes[image_id], dtype=torch.float32)
            h, w = sizes[image_id]
            pts = [level_points((h + stride - 1) // stride, (w + stride - 1) // stride, stride)]
            owned += int((_owners(head, pts, b) > 0).sum())
            total += len(b)
        assert owned == total, (stride, owned, total)
