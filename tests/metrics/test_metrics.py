"""Tests of irdet.metrics (VOC AP, Pd/Fa, results files, report). Fast, no dataset needed
except the last test, which skips without DenseSIRST (fails under IRDET_REQUIRE_DATA=1)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from irdet.data.io import read_voc_xml
from irdet.errors import DataError
from irdet.metrics import (
    box_iou,
    dets_to_results,
    eval_voc,
    evaluate,
    format_table,
    gt_to_results,
    load_results,
    match_detections,
    pd_fa,
    plot_pr_curve,
    results_to_dets,
    save_results,
    voc_ap,
    write_report,
)

# --------------------------------------------------------------------------- IoU / boxes


def test_iou_plus_one_hand_cases():
    # (1,1,2,2) and (2,2,3,3) are 2x2 = 4 px each, overlap the single pixel (2,2): 1 / (4+4-1)
    assert box_iou([[1, 1, 2, 2]], [[2, 2, 3, 3]])[0, 0] == pytest.approx(1 / 7)
    # identical 1-pixel box: area 1, IoU 1
    assert box_iou([[5, 5, 5, 5]], [[5, 5, 5, 5]])[0, 0] == pytest.approx(1.0)
    # continuous convention: (1,1,2,2) is 1x1 and only touches (2,2,3,3) -> 0; 1-px box has area 0
    assert box_iou([[1, 1, 2, 2]], [[2, 2, 3, 3]], plus_one=False)[0, 0] == 0.0
    assert box_iou([[5, 5, 5, 5]], [[5, 5, 5, 5]], plus_one=False)[0, 0] == 0.0
    # disjoint boxes and shapes
    iou = box_iou([[1, 1, 2, 2], [10, 10, 12, 12]], [[4, 4, 5, 5], [1, 1, 2, 2], [11, 11, 12, 12]])
    assert iou.shape == (2, 3)
    assert iou[0, 0] == 0.0 and iou[0, 1] == 1.0
    assert iou[1, 2] == pytest.approx(4 / 9)
    assert box_iou(np.zeros((0, 4)), [[1, 1, 2, 2]]).shape == (0, 1)
    with pytest.raises(ValueError):
        box_iou([[1, 2, 3]], [[1, 1, 2, 2]])


# --------------------------------------------------------------------------- AP


def test_voc_ap_11points_vs_area_hand_computed():
    # Sequence TP, FP, TP, FP with 3 targets (one never found):
    #   recall    = 1/3, 1/3, 2/3, 2/3
    #   precision = 1,   1/2, 2/3, 1/2
    # area: mrec = [0, 1/3, 1/3, 2/3, 2/3, 1], mpre = [0, 1, 1/2, 2/3, 1/2, 0]
    #   envelope from the right -> [1, 1, 2/3, 2/3, 1/2, 0]
    #   recall changes at 0->1/3 (x mpre=1), 1/3->2/3 (x 2/3), 2/3->1 (x 0)
    #   AP = 1/3 * 1 + 1/3 * 2/3 + 1/3 * 0 = 5/9 = 0.5556
    # 11 points: t = 0, .1, .2, .3 -> max prec with rec >= t = 1           (4 x 1)
    #            t = .4, .5, .6    -> points with rec 2/3: max(2/3, 1/2)  (3 x 2/3)
    #            t = .7 ... 1.0    -> no point, 0                          (4 x 0)
    #   AP = (4 + 2) / 11 = 6/11 = 0.5455
    rec = np.array([1, 1, 2, 2]) / 3
    prec = np.array([1, 1 / 2, 2 / 3, 1 / 2])
    assert voc_ap(rec, prec, "area") == pytest.approx(5 / 9)
    assert voc_ap(rec, prec, "11points") == pytest.approx(6 / 11)
    assert voc_ap([], [], "area") == 0.0 and voc_ap([], [], "11points") == 0.0
    with pytest.raises(ValueError):
        voc_ap(rec, prec, "101points")

    # the same sequence produced by eval_voc (one image, 3 targets, 4 detections)
    gts = {"a": np.array([[1, 1, 4, 4], [11, 11, 14, 14], [21, 21, 24, 24]], dtype=float)}
    boxes = np.array([[1, 1, 4, 4], [40, 40, 44, 44], [11, 11, 14, 14], [50, 50, 54, 54]], dtype=float)
    res = eval_voc(gts, {"a": (boxes, np.array([0.9, 0.8, 0.7, 0.6]))})
    assert res["ap12"] == pytest.approx(5 / 9)
    assert res["ap07"] == pytest.approx(6 / 11)
    assert res["recall"] == pytest.approx(2 / 3) and res["precision"] == pytest.approx(1 / 2)
    np.testing.assert_allclose(res["recalls"], rec)
    np.testing.assert_allclose(res["precisions"], prec)
    assert (res["num_gts"], res["num_dets"], res["num_tp"]) == (3, 4, 2)


def test_duplicate_detection_is_false_positive():
    gt = np.array([[10, 10, 20, 20]], dtype=float)
    boxes = np.array([[11, 10, 20, 20], [10, 10, 20, 20]], dtype=float)  # both IoU >= 0.5
    tp, fp = match_detections(boxes, [0.2, 0.9], gt)  # input order; the 0.9 one wins
    assert tp.tolist() == [False, True] and fp.tolist() == [True, False]
    res = eval_voc({"a": gt}, {"a": (boxes, np.array([0.2, 0.9]))})
    assert res["recall"] == 1.0 and res["precision"] == 0.5
    assert res["ap12"] == pytest.approx(1.0) and res["ap07"] == pytest.approx(1.0)
    # the duplicate does not fall back to another (covered-or-not) target with lower IoU
    gt2 = np.array([[10, 10, 20, 20], [12, 10, 22, 20]], dtype=float)
    tp, fp = match_detections([[10, 10, 20, 20], [10, 10, 20, 20]], [0.9, 0.8], gt2)
    assert tp.tolist() == [True, False]
    # no ground truth: all false positives
    tp, fp = match_detections(boxes, [0.5, 0.5], np.zeros((0, 4)))
    assert fp.all() and not tp.any()


def test_missed_target_lowers_recall_and_images_without_detections_count():
    gts = {"a": np.array([[1, 1, 5, 5]], float), "b": np.array([[1, 1, 5, 5]], float)}
    dets = {"a": (np.array([[1, 1, 5, 5]], float), np.array([0.9]))}  # "b" has none
    res = eval_voc(gts, dets)
    assert res["recall"] == 0.5 and res["precision"] == 1.0
    assert res["ap12"] == pytest.approx(0.5)
    assert res["ap07"] == pytest.approx(6 / 11)  # t = 0 .. 0.5 reach precision 1
    m = evaluate(gts, dets, {"a": (10, 10), "b": (10, 10)})
    assert m["num_images"] == 2 and m["images_without_detections"] == 1
    assert m["Pd"] == 0.5 and m["Fa"] == 0.0


def test_no_detections_and_unknown_image_ids():
    gts = {"a": np.array([[1, 1, 5, 5]], float)}
    res = eval_voc(gts, {})
    assert res["ap07"] == res["ap12"] == res["recall"] == res["precision"] == 0.0
    assert res["num_dets"] == 0 and res["recalls"].shape == (0,)
    res = eval_voc(gts, {"a": (np.zeros((0, 4)), np.zeros(0))})
    assert res["ap12"] == 0.0
    with pytest.raises(ValueError, match="ghost"):
        eval_voc(gts, {"ghost": (np.array([[1, 1, 5, 5]], float), np.array([0.9]))})
    with pytest.raises(ValueError, match="ghost"):
        evaluate(gts, {"ghost": (np.array([[1, 1, 5, 5]], float), np.array([0.9]))}, {"a": (9, 9)})
    with pytest.raises(ValueError, match="entries"):
        eval_voc(gts, {"a": (np.array([[1, 1, 5, 5]], float), np.array([0.9, 0.8]))})


def _mmdet_reference(gts, dets, iou_thr):
    """Literal port of MMDetection tpfp_default + eval_map (single class, legacy coords)."""
    tps, fps, scores, num_gts = [], [], [], 0
    for k, gt in gts.items():
        num_gts += len(gt)
        b, s = dets.get(k, (np.zeros((0, 4)), np.zeros(0)))
        tp, fp = np.zeros(len(b)), np.zeros(len(b))
        if len(gt) == 0:
            fp[:] = 1
        elif len(b):
            ious = box_iou(b, gt)
            imax, iarg = ious.max(1), ious.argmax(1)
            covered = np.zeros(len(gt), bool)
            for i in np.argsort(-s):
                if imax[i] >= iou_thr:
                    if not covered[iarg[i]]:
                        covered[iarg[i]] = True
                        tp[i] = 1
                    else:
                        fp[i] = 1
                else:
                    fp[i] = 1
        tps.append(tp), fps.append(fp), scores.append(s)
    s = np.concatenate(scores)
    order = np.argsort(-s)
    tp, fp = np.cumsum(np.concatenate(tps)[order]), np.cumsum(np.concatenate(fps)[order])
    eps = np.finfo(np.float32).eps
    rec, prec = tp / np.maximum(num_gts, eps), tp / np.maximum(tp + fp, eps)
    return voc_ap(rec, prec, "11points"), voc_ap(rec, prec, "area"), rec[-1]


def test_matches_mmdetection_reference_on_random_data():
    rng = np.random.default_rng(0)
    for trial in range(5):
        gts, dets = {}, {}
        for i in range(6):
            n = int(rng.integers(0, 5))
            xy = rng.integers(1, 60, size=(n, 2)).astype(float)
            gts[f"im{i}"] = np.concatenate([xy, xy + rng.integers(0, 6, size=(n, 2))], axis=1)
            m = int(rng.integers(0, 7))
            src = gts[f"im{i}"][rng.integers(0, n, size=m)] if n else rng.uniform(1, 60, size=(m, 4))
            boxes = src + rng.normal(0, 1.0, size=(m, 4))
            boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
            dets[f"im{i}"] = (boxes, rng.uniform(0, 1, size=m))  # distinct scores: no ties
        for thr in (0.5, 0.75):
            ref = _mmdet_reference(gts, dets, thr)
            res = eval_voc(gts, dets, iou_thr=thr)
            assert (res["ap07"], res["ap12"], res["recall"]) == pytest.approx(ref), (trial, thr)


# --------------------------------------------------------------------------- Pd / Fa


def test_pd_fa_hand_case():
    # 20 x 20 image = 400 px; targets A at centroid (5, 5), B at (15, 15)
    gts = {"a": np.array([[5, 5, 5, 5], [15, 15, 15, 15]], float)}
    boxes = np.array(
        [
            [7.9, 5, 7.9, 5],  # centroid 2.9 px from A -> matches A
            [17.1, 14, 19.1, 16],  # centroid (18.1, 15), 3.1 px from B -> false alarm, 3x3 = 9 px
            [4, 4, 6, 6],  # score below threshold: ignored
        ]
    )
    res = pd_fa(gts, {"a": (boxes, np.array([0.9, 0.8, 0.3]))}, {"a": (20, 20)})
    assert res["Pd"] == 0.5
    assert res["Fa"] == pytest.approx(9 / 400)
    assert res["num_false_alarms"] == 1 and res["fa_per_image"] == 1.0
    assert res["num_kept_dets"] == 2
    # exactly dist_thr is not a match (strict <, as the IRSTD reference code)
    res = pd_fa(gts, {"a": (np.array([[8, 5, 8, 5]], float), np.array([0.9]))}, {"a": (20, 20)})
    assert res["Pd"] == 0.0 and res["num_false_alarms"] == 1
    # a lower score_thr keeps the third box, which matches A (0 px)
    res = pd_fa(gts, {"a": (boxes[2:], np.array([0.3]))}, {"a": (20, 20)}, score_thr=0.2)
    assert res["Pd"] == 0.5 and res["num_false_alarms"] == 0


def test_pd_fa_one_detection_cannot_match_two_targets():
    # targets at (5, 5) and (7, 5); a detection at (6, 5) is 1 px from both
    gts = {"a": np.array([[5, 5, 5, 5], [7, 5, 7, 5]], float), "b": np.zeros((0, 4))}
    one = (np.array([[6, 5, 6, 5]], float), np.array([0.9]))
    sizes = {"a": (10, 10), "b": (10, 10)}
    res = pd_fa(gts, {"a": one}, sizes)
    assert res["Pd"] == 0.5 and res["Fa"] == 0.0 and res["fa_per_image"] == 0.0
    # a second detection at the same place takes the other (nearest unmatched) target
    two = (np.array([[6, 5, 6, 5], [6, 5, 6, 5]], float), np.array([0.9, 0.8]))
    res = pd_fa(gts, {"a": two}, sizes)
    assert res["Pd"] == 1.0 and res["num_false_alarms"] == 0
    # the nearest target is preferred: detection at (5.5, 5) takes (5, 5); the next one at
    # (5, 5) is 2 px from (7, 5) and takes it
    near = (np.array([[5.5, 5, 5.5, 5], [5, 5, 5, 5]], float), np.array([0.9, 0.8]))
    res = pd_fa(gts, {"a": near}, sizes)
    assert res["Pd"] == 1.0
    # a detection on an image without targets: 2 x 3 = 6 px over 200 px, 0.5 per image
    res = pd_fa(gts, {"b": (np.array([[1, 1, 2, 3]], float), np.array([1.0]))}, sizes)
    assert res["Fa"] == pytest.approx(6 / 200) and res["fa_per_image"] == 0.5
    with pytest.raises(ValueError, match="size"):
        pd_fa(gts, {}, {"a": (10, 10)})


# --------------------------------------------------------------------------- results files


def _gts():
    # dense targets (touching / overlapping) in one image, an image without targets
    return {
        "img-1": np.array([[5, 5, 5, 5], [6, 5, 7, 6], [30, 40, 33, 42], [31, 41, 34, 44]], float),
        "img_2": np.array([[100, 80, 104, 81]], float),
        "empty": np.zeros((0, 4)),
    }


_SIZES = {"img-1": (64, 64), "img_2": (128, 160), "empty": (32, 32)}


def test_gt_as_predictions_is_perfect(tmp_path):
    gts = _gts()
    path = tmp_path / "gt.json"
    save_results(path, gt_to_results(gts))
    m = evaluate(gts, load_results(path), _SIZES)
    assert m["mAP07"] == pytest.approx(1.0) and m["mAP12"] == pytest.approx(1.0)
    assert m["AP75"] == pytest.approx(1.0)
    assert m["recall"] == 1.0 and m["precision"] == 1.0
    assert m["Pd"] == 1.0 and m["Fa"] == 0.0 and m["fa_per_image"] == 0.0
    assert (m["num_images"], m["num_gts"], m["num_dets"], m["images_without_detections"]) == (3, 5, 5, 1)
    assert list(m)[:6] == ["mAP07", "mAP12", "recall", "AP75", "Pd", "Fa"]
    json.dumps(m)  # JSON-ready


def test_results_round_trip(tmp_path):
    dets = {
        "img-1": (np.array([[5.5, 5.25, 9.75, 12.0], [5, 5, 5, 5]]), np.array([0.75, 0.125])),
        "img_2": (np.array([[1, 2, 3, 4]], float), np.array([1.0])),
    }
    res = dets_to_results(dets)
    assert res[0] == {"image_id": "img-1", "bbox": [5.5, 5.25, 4.25, 6.75], "score": 0.75, "category_id": 1}
    assert res[1]["bbox"] == [5.0, 5.0, 0.0, 0.0]  # 1-pixel box: w = h = 0
    path = tmp_path / "sub" / "dets.json"
    save_results(path, dets)  # a dets dict is converted too
    back = load_results(path)
    assert list(back) == ["img-1", "img_2"]
    for k in dets:
        np.testing.assert_array_equal(back[k][0], dets[k][0])
        np.testing.assert_array_equal(back[k][1], dets[k][1])
    assert results_to_dets([]) == {}
    # category_id is optional, extra keys are ignored
    d = results_to_dets([{"image_id": "x", "bbox": [1, 2, 0, 3], "score": 0, "area": 4}])
    np.testing.assert_array_equal(d["x"][0], [[1, 2, 1, 5]])


_BAD = {
    "invalid_json": '[{"image_id": "a", ',
    "not_list": '{"image_id": "a", "bbox": [1, 1, 1, 1], "score": 0.5}',
    "not_object": '[{"image_id": "a", "bbox": [1, 1, 1, 1], "score": 0.5}, 3]',
    "missing_key": '[{"image_id": "a", "bbox": [1, 1, 1, 1], "score": 0.5}, {"image_id": "a", "score": 0.5}]',
    "non_numeric": '[{"image_id": "a", "bbox": [1, 1, 1, 1], "score": "0.5"}]',
    "bool_number": '[{"image_id": "a", "bbox": [1, true, 1, 1], "score": 0.5}]',
    "nan": '[{"image_id": "a", "bbox": [1, 1, NaN, 1], "score": 0.5}]',
    "infinite_score": '[{"image_id": "a", "bbox": [1, 1, 1, 1], "score": Infinity}]',
    "bbox_3": '[{"image_id": "a", "bbox": [1, 1, 1], "score": 0.5}]',
    "bbox_not_list": '[{"image_id": "a", "bbox": "1 1 1 1", "score": 0.5}]',
    "negative_w": '[{"image_id": "a", "bbox": [1, 1, 1, 1], "score": 0.5}, {"image_id": "a", "bbox": [5, 5, -1, 2], "score": 0.5}]',
    "negative_h": '[{"image_id": "a", "bbox": [5, 5, 1, -0.5], "score": 0.5}]',
    "score_high": '[{"image_id": "a", "bbox": [1, 1, 1, 1], "score": 1.5}]',
    "score_negative": '[{"image_id": "a", "bbox": [1, 1, 1, 1], "score": -0.1}]',
    "int_image_id": '[{"image_id": 7, "bbox": [1, 1, 1, 1], "score": 0.5}]',
    "category": '[{"image_id": "a", "bbox": [1, 1, 1, 1], "score": 0.5, "category_id": 2}]',
}
_ENTRY = {"not_object": 1, "missing_key": 1, "negative_w": 1, "nan": 0, "score_high": 0, "int_image_id": 0}


@pytest.mark.parametrize("case", sorted(_BAD))
def test_bad_results_raise_data_error(tmp_path, case):
    path = tmp_path / f"bad_{case}.json"
    path.write_text(_BAD[case])
    with pytest.raises(DataError) as info:
        load_results(path)
    msg = str(info.value)
    assert f"bad_{case}.json" in msg and "\n" not in msg
    if case in _ENTRY:
        assert f"entry {_ENTRY[case]}" in msg


def test_missing_results_file(tmp_path):
    with pytest.raises(DataError, match="nope.json: file not found"):
        load_results(tmp_path / "nope.json")


# --------------------------------------------------------------------------- report


def test_report_table_and_plot(tmp_path):
    gts = _gts()
    dets = {
        "img-1": (np.array([[5, 5, 5, 5], [30, 40, 33, 42], [50, 50, 55, 55]], float), np.array([0.9, 0.6, 0.7])),
        "empty": (np.array([[1, 1, 3, 3]], float), np.array([0.4])),
    }
    m = evaluate(gts, dets, _SIZES)
    assert m["num_dets"] == 4 and m["images_without_detections"] == 1
    assert len(m["pr"]["recall"]) == len(m["pr"]["precision"]) == 4
    assert m["pr"]["score"] == [0.9, 0.7, 0.6, 0.4]
    assert m["Pd"] == pytest.approx(2 / 5) and m["fa_per_image"] == pytest.approx(1 / 3)
    assert m["Fa"] == pytest.approx(36 / (64 * 64 + 128 * 160 + 32 * 32))
    table = format_table(m)
    assert "mAP07" in table and "AP75" in table and "e-" in table.split("Fa")[1].splitlines()[0]
    assert f"{m['mAP12']:.3f}" in table
    json_path, png_path = write_report(tmp_path / "rep", m)
    assert json.loads(json_path.read_text())["mAP12"] == m["mAP12"]
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    p = plot_pr_curve(m["pr"], tmp_path / "only_pr.png", title="t")
    assert p.stat().st_size > 0
    empty = evaluate(gts, {}, _SIZES)
    assert plot_pr_curve(empty, tmp_path / "empty.png").exists()
    assert not any(math.isnan(v) for v in empty.values() if isinstance(v, float))


# --------------------------------------------------------------------------- real data


def test_real_densesirst_gt_scores_one(tmp_path, require_data, densesirst):
    from PIL import Image

    root = densesirst
    split = require_data(root / "Splits" / "test_v2.txt", "DenseSIRST test_v2 split")
    ids = [line.strip() for line in split.read_text().splitlines() if line.strip()][:5]
    gts, sizes = {}, {}
    for image_id in ids:
        edges, _ = read_voc_xml(root / "SIRST" / "BBox" / f"{image_id}.xml")
        gts[image_id] = edges
        with Image.open(root / "PNGImages" / f"{image_id}.png") as im:
            sizes[image_id] = (im.height, im.width)
    assert sum(len(b) for b in gts.values()) > 0
    path = tmp_path / "gt_results.json"
    save_results(path, gt_to_results(gts))
    m = evaluate(gts, load_results(path), sizes)
    for key in ("mAP07", "mAP12", "AP75", "recall", "Pd"):
        assert m[key] == pytest.approx(1.0), key
    assert m["Fa"] == 0.0
    # the xml's own integers survive the pixel-edge round trip
    first = json.loads(path.read_text())[0]
    assert all(float(v).is_integer() for v in first["bbox"])


# --------------------------------------------------------------------------- false alarms by background


def test_fa_by_background_centre_pixel_rule():
    """The centre pixel decides: sky is only column 1 of a 4x4 image."""
    from irdet.metrics.background import fa_by_background

    sky = np.zeros((4, 4), bool)
    sky[:, 1] = True
    gts = {"a": np.zeros((0, 4))}
    # centres (1.0, 1.0) -> column 1 (sky); (0.5, 0.5) -> column 0 (non-sky); (3.5, 3.5) -> column 3
    dets = {"a": (np.array([[0, 0, 2, 2], [0, 0, 1, 1], [3, 3, 4, 4]], float), np.array([0.9, 0.9, 0.9]))}
    m = fa_by_background(gts, dets, {"a": (4, 4)}, {"a": sky})
    assert (m["num_false_alarms_sky"], m["num_false_alarms_nonsky"]) == (1, 2)
    assert (m["sky_pixels"], m["nonsky_pixels"]) == (4, 12)
    assert m["fa_sky_per_mpix"] == pytest.approx(1 / 4e-6) and m["fa_nonsky_per_mpix"] == pytest.approx(2 / 12e-6)
    # below the score threshold nothing counts; an all-sky image has no non-sky rate
    assert fa_by_background(gts, dets, {"a": (4, 4)}, {"a": sky}, score_thr=0.95)["num_false_alarms_sky"] == 0
    assert fa_by_background(gts, dets, {"a": (4, 4)}, {"a": np.ones((4, 4), bool)})["fa_nonsky_per_mpix"] is None
    with pytest.raises(ValueError, match="sky mask of 'a' is 3x4"):
        fa_by_background(gts, dets, {"a": (4, 4)}, {"a": np.ones((4, 3), bool)})
    note = fa_by_background(gts, dets, {"a": (4, 4)}, {})
    assert list(note) == ["fa_background_note"] and "1 of 1 images" in note["fa_background_note"]


def _sky_and_ground_pixels(sky: np.ndarray, boxes: np.ndarray, margin: int = 12):
    """A sky pixel and a non-sky pixel (None where the image has none), each at least ``margin``
    px from every box and 3 px inside its kind of background."""
    from scipy.ndimage import binary_erosion

    free = np.ones(sky.shape, bool)
    for x1, y1, x2, y2 in boxes.astype(int):
        free[max(0, y1 - margin): y2 + margin, max(0, x1 - margin): x2 + margin] = False
    picks = []
    for region in (sky, ~sky):
        ys, xs = np.nonzero(binary_erosion(region, iterations=3) & free)
        picks.append((int(xs[len(xs) // 2]), int(ys[len(ys) // 2])) if len(ys) else None)
    return picks


#: test_v2 images with 7%, 47% and 100% sky
_MIXED_SKY = ["Misc_24", "S2_20", "S20210713_S3_3"]


def test_fa_split_by_background_on_real_images(densesirst, tmp_path, capsys):
    """Ground truth of three real test_v2 images as predictions (Pd 1, no false alarm) plus false
    boxes placed on known sky and non-sky pixels of their SkySeg masks: ``irdet evaluate``
    prints the split and stores it in metrics.json; Pd and the old keys are unchanged."""
    from fixtures import link_dataset

    from irdet.cli import main
    from irdet.data.datasets.densesirst import DenseSIRST
    from irdet.data.io import read_mask

    small_root = link_dataset(densesirst, tmp_path / "ds", {"test_v2": _MIXED_SKY})
    ds = DenseSIRST(small_root, "test_v2", sky_mask=None)
    gts, sizes = ds.ground_truth()
    dets, n_sky, n_ground, sky_px, pixels = {}, 0, 0, 0, 0
    for k, image_id in enumerate(ds.ids):
        sky = read_mask(small_root / "SkySeg" / "PaletteMask" / f"{image_id}.png", palette=True) == 1
        sky_px += int(sky.sum())
        pixels += sky.size
        (sx, sy), ground = _sky_and_ground_pixels(sky, gts[image_id])
        assert sky[sy, sx]
        false = [[sx - 1, sy - 1, sx + 2, sy + 2]]
        n_sky += 1
        if ground is not None:  # k + 1 false alarms on non-sky
            gx, gy = ground
            assert not sky[gy, gx]
            false += [[gx - 1, gy - 1, gx + 2, gy + 2]] * (k + 1)
            n_ground += k + 1
        boxes = np.concatenate([gts[image_id], np.array(false, float)])
        dets[image_id] = (boxes, np.full(len(boxes), 0.9))
    preds = tmp_path / "preds.json"
    save_results(preds, dets_to_results(dets))
    out = tmp_path / "eval"
    assert main(["evaluate", "--predictions", str(preds), "--data", str(small_root), "--split", "test_v2",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    n = len(ds.ids)
    assert m["Pd"] == 1.0 and m["num_images"] == n
    assert (m["num_false_alarms_sky"], m["num_false_alarms_nonsky"]) == (n_sky, n_ground)
    assert m["fa_sky_per_image"] + m["fa_nonsky_per_image"] == pytest.approx(m["fa_per_image"])
    assert m["fa_per_image"] == pytest.approx((n_sky + n_ground) / n)
    assert (m["sky_pixels"], m["nonsky_pixels"]) == (sky_px, pixels - sky_px)
    assert m["fa_sky_per_mpix"] == pytest.approx(n_sky / (sky_px / 1e6))
    assert m["fa_nonsky_per_mpix"] == pytest.approx(n_ground / ((pixels - sky_px) / 1e6))
    assert "false alarms on non-sky per image" in printed and "false alarms per megapixel of sky" in printed
    assert f"{m['fa_nonsky_per_mpix']:.3f}" in printed
    # the same predictions scored without the split keep every other value
    plain = evaluate(gts, load_results(preds), sizes)
    assert {k: v for k, v in m.items() if k in plain} == json.loads(json.dumps(plain))


def test_fa_split_without_sky_masks_says_so(small_root, tmp_path, capsys):
    """A root without SkySeg/: evaluate still scores, prints and stores a note instead of the split."""
    import os

    from irdet.cli import main
    from irdet.data.datasets.densesirst import DenseSIRST

    root = tmp_path / "nosky"
    root.mkdir()
    for sub in ("PNGImages", "SIRST", "Splits"):
        os.symlink(small_root.resolve() / sub, root / sub)
    gts, _ = DenseSIRST(root, "test_v2", sky_mask=None).ground_truth()
    preds = tmp_path / "gt.json"
    save_results(preds, gt_to_results(gts))
    assert main(["evaluate", "--predictions", str(preds), "--data", str(root), "--split", "test_v2",
                 "--out", str(tmp_path / "e")]) == 0
    printed = capsys.readouterr().out
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert m["mAP07"] == 1.0 and "fa_sky_per_image" not in m
    assert m["fa_background_note"].startswith(f"no sky mask for {len(gts)} of {len(gts)} images")
    assert "false alarms not split by background" in printed
