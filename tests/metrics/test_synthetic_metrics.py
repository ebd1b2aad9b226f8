"""irdet.metrics.synthetic: false alarms on static distractors and AP50 per SNR bin, on hand-made
annotations, and their hook in the moving-target evaluation of a results file."""

from __future__ import annotations

import json

import pytest

from irdet.metrics.coco import coco_evaluate
from irdet.metrics.synthetic import (ap50_by_snr, distractor_ap50_cost, distractor_false_alarms, format_synthetic_table,
                                     synthetic_metrics)


def _gt(with_distractors: bool = True) -> dict:
    images = [{"id": i, "file_name": f"seq0000/{i - 1}.png", "height": 64, "width": 64} for i in (1, 2, 3)]
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [10.0 + i, 10.0, 4.0, 4.0], "snr": s}
            for i, s in ((1, 1.5), (2, 3.0), (3, 12.0))]
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "target"}]}
    if with_distractors:  # one static distractor in frames 1 and 2, none in frame 3
        gt["distractors"] = [{"id": k, "image_id": k, "bbox": [40.0, 40.0, 3.0, 3.0], "distractor_id": 1, "snr": 5.0,
                              "on_sky": False} for k in (1, 2)]
    return gt


def _det(image_id, bbox, score=0.9):
    return {"image_id": image_id, "bbox": bbox, "score": score, "category_id": 1}


def test_distractor_false_alarms():
    gt = _gt()
    targets = [_det(a["image_id"], a["bbox"]) for a in gt["annotations"]]
    assert distractor_false_alarms(gt, targets)["distractor_fa_per_frame"] == 0.0
    on_d = [_det(1, [40.5, 40.0, 3.0, 3.0]), _det(1, [41.0, 41.0, 3.0, 3.0]),  # two hits in frame 1
            _det(2, [40.0, 40.0, 3.0, 3.0], score=0.3),  # below the score threshold
            _det(2, [50.0, 50.0, 3.0, 3.0])]  # a false alarm elsewhere: not a distractor hit
    m = distractor_false_alarms(gt, targets + on_d, score_thr=0.5)
    assert m["distractor_false_alarms"] == 2 and m["distractor_frames"] == 2 and m["distractor_boxes"] == 2
    assert m["distractor_fa_per_frame"] == pytest.approx(1.0) and m["distractor_hit_rate"] == pytest.approx(0.5)
    m = distractor_false_alarms(gt, targets + on_d, score_thr=0.2)
    assert m["distractor_false_alarms"] == 3 and m["distractor_hit_rate"] == pytest.approx(1.0)
    # a detection that also hits a target (same centroid rule) is a target hit, not a distractor false alarm
    near = _gt()
    near["annotations"][0]["bbox"] = [41.0, 40.0, 3.0, 3.0]
    assert distractor_false_alarms(near, [_det(1, [40.5, 40.0, 3.0, 3.0])])["distractor_false_alarms"] == 0
    assert distractor_false_alarms(_gt(False), targets) is None


def test_distractor_ap50_cost_is_threshold_free():
    gt = _gt()
    targets = [_det(a["image_id"], a["bbox"], score=0.4) for a in gt["annotations"]]
    assert distractor_ap50_cost(gt, targets) == {"AP50_distractors_ignored": pytest.approx(1.0),
                                                 "distractor_AP50_cost": pytest.approx(0.0)}
    # a distractor ranked above every target, at a score under any Pd threshold: AP50 drops, the cost shows it
    ranked_first = targets + [_det(1, [40.5, 40.0, 3.0, 3.0], score=0.45)]
    m = distractor_ap50_cost(gt, ranked_first)
    assert m["AP50_distractors_ignored"] == pytest.approx(1.0) and m["distractor_AP50_cost"] > 0.1
    # the caller's plain AP50 (already evaluated) gives the same numbers without a second evaluation
    assert distractor_ap50_cost(gt, ranked_first, ap50=coco_evaluate(gt, ranked_first)["AP50"]) == m
    assert distractor_false_alarms(gt, ranked_first, score_thr=0.5)["distractor_false_alarms"] == 0
    # a false alarm away from every distractor costs the same in both, so it is no distractor cost
    elsewhere = targets + [_det(1, [50.0, 50.0, 3.0, 3.0], score=0.45)]
    m = distractor_ap50_cost(gt, elsewhere)
    assert m["AP50_distractors_ignored"] < 1.0 and m["distractor_AP50_cost"] == pytest.approx(0.0)
    assert distractor_ap50_cost(_gt(False), targets) is None
    assert gt["annotations"][-1]["id"] == 3  # the caller's annotations are not changed


def test_ap50_by_snr_and_table():
    gt = _gt()
    res = [_det(1, [11.0, 10.0, 4.0, 4.0]), _det(3, [13.0, 10.0, 4.0, 4.0])]  # dim (1.5) and bright (12) found
    rows = ap50_by_snr(gt, res)
    assert [r["num_gts"] for r in rows] == [1, 1, 0, 1]
    assert rows[0]["AP50"] == pytest.approx(1.0) and rows[1]["recall"] == 0.0 and rows[2]["AP50"] is None
    m = synthetic_metrics(gt, res)
    assert [b["snr_max"] for b in m["AP50_snr"]] == [2.0, 5.0, 10.0, None] and m["distractor_fa_per_frame"] == 0.0
    text = format_synthetic_table(m)
    assert "AP50 SNR [0, 2)  1.000" in text and "[10, inf)" in text and "distractor_fa_per_frame" in text
    assert m["AP50_snr_0_2"] == pytest.approx(1.0) and m["AP50_snr_5_10"] is None and "AP50_snr_10_inf" in m
    assert m["distractor_AP50_cost"] == pytest.approx(0.0) and "distractor_AP50_cost" in text
    json.dumps(m, allow_nan=False)  # JSON-safe (no infinity)
    plain = _gt(False)
    for a in plain["annotations"]:
        del a["snr"]
    assert synthetic_metrics(plain, res) == {} and format_synthetic_table({}) == ""
    with pytest.raises(ValueError, match="increasing"):
        ap50_by_snr(gt, res, [5, 2])


def test_evaluate_results_file_reports_them(tmp_path, capsys):
    from irdet.cli import main

    gt = _gt()
    (tmp_path / "ann.json").write_text(json.dumps(gt))
    res = [_det(f"seq0000/{a['image_id'] - 1}", a["bbox"]) for a in gt["annotations"]] + [_det(1, [40.0, 40.0, 3.0, 3.0])]
    (tmp_path / "res.json").write_text(json.dumps(res))
    assert main(["evaluate", "--predictions", str(tmp_path / "res.json"), "--ann", str(tmp_path / "ann.json"),
                 "--out", str(tmp_path / "ev")]) == 0
    printed = capsys.readouterr().out
    assert "distractor_fa_per_frame  0.500" in printed and "AP50 SNR [0, 2)" in printed
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["distractor_false_alarms"] == 1 and len(metrics["AP50_snr"]) == 4 and metrics["AP50"] < 1.0
