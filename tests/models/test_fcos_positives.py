"""benchmarks/fcos_positives.py: which boxes own an FCOS positive, on hand-placed boxes."""

import torch

from irdet.models.heads.fcos import FCOSHead

from fixtures import load_benchmark

fcos_positives = load_benchmark("fcos_positives")


def _head(strides, ranges, **kw):
    return FCOSHead(in_channels=32, feat_channels=32, stacked_convs=1, strides=strides, regress_ranges=ranges, **kw)


def test_stride_8_misses_a_box_between_grid_points_stride_4_finds_it():
    # stride-8 points sit at 4, 12, 20, ...; stride-4 points at 2, 6, 10, ...
    boxes = torch.tensor([[1.0, 1.0, 7.0, 7.0],      # 6 px box around the stride-8 point (4, 4)
                          [13.0, 13.0, 19.0, 19.0],  # 6 px box between stride-8 points, holds (14, 14), (18, 18)
                          [8.5, 24.5, 9.5, 25.5]])   # 1 px box holding no point of either stride
    per_level, total = fcos_positives.owned_boxes(_head([8], [(-1, 64)]), boxes, (32, 32))
    assert per_level.tolist() == [[1, 0, 0]] and total.tolist() == [1, 0, 0]
    per_level, total = fcos_positives.owned_boxes(_head([4, 8], [(-1, 32), (32, 64)]), boxes, (32, 32))
    assert per_level.tolist() == [[4, 4, 0], [0, 0, 0]] and total.tolist() == [4, 4, 0]
    # centre sampling is clipped to the box: it cannot give a tiny box a point it does not contain
    _, total = fcos_positives.owned_boxes(_head([8], [(-1, 64)], center_sampling=True), boxes, (32, 32))
    assert total.tolist() == [1, 0, 0]


def test_overlapping_boxes_the_smaller_one_wins_the_shared_point():
    boxes = torch.tensor([[0.0, 0.0, 16.0, 16.0], [2.0, 2.0, 6.0, 6.0]])  # the small box holds (4, 4) only
    _, total = fcos_positives.owned_boxes(_head([8], [(-1, 64)]), boxes, (16, 16))
    assert total.tolist() == [3, 1]
