"""FCOS point assignment, losses and decoding on hand-made boxes."""

from __future__ import annotations

import pytest
import torch

from irdet.models.detector import default_regress_ranges
from irdet.models.heads.fcos import FCOSHead, centerness_target, iou_loss, level_points


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
    assert labels.eq(1).all()  # no stride-8 point (4 + 8k) lies strictly inside: the recall cap of SPEC §3
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
