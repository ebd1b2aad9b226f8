"""benchmarks/ap_by_snr.py: per-SNR-bin AP50 on a hand-made case (targets of other bins are ignored)."""

import pytest

from fixtures import load_benchmark

ap_by_snr = load_benchmark("ap_by_snr")


def _gt():
    images = [{"id": i, "file_name": f"s/{i}.png", "height": 64, "width": 64} for i in (1, 2)]
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 4, 4], "snr": 3.0},     # dim
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [40, 40, 4, 4], "snr": 15.0},    # bright
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [20, 20, 4, 4], "snr": 15.0}]    # bright
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "target"}]}


def test_bins_count_only_their_targets():
    # the dim target and one bright target found; a detection on the other bright target is absent
    res = [{"image_id": 1, "bbox": [10, 10, 4, 4], "score": 0.9, "category_id": 1},
           {"image_id": 1, "bbox": [40, 40, 4, 4], "score": 0.8, "category_id": 1}]
    dim, bright = ap_by_snr.ap_by_snr(_gt(), res, [2, 10, 20])
    assert dim["num_gts"] == 1 and bright["num_gts"] == 2
    # dim bin: its target found first; the detection on the bright target is ignored, not a false positive
    assert dim["AP50"] == pytest.approx(1.0) and dim["recall"] == pytest.approx(1.0)
    assert bright["recall"] == pytest.approx(0.5)
    # the last bin is closed: SNR 20 belongs to it
    gt = _gt()
    gt["annotations"][2]["snr"] = 20.0
    assert ap_by_snr.ap_by_snr(gt, res, [2, 10, 20])[1]["num_gts"] == 2


def test_bad_bins_and_missing_snr():
    with pytest.raises(ValueError, match="increasing"):
        ap_by_snr.ap_by_snr(_gt(), [], [10, 2])
    gt = _gt()
    del gt["annotations"][0]["snr"]
    with pytest.raises(ValueError, match="snr"):
        ap_by_snr.ap_by_snr(gt, [], [2, 20])
