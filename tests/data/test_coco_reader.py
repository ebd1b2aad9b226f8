"""The one COCO reader (irdet.data.coco.load_coco) behind the sequence clips and their evaluation.

Hand-made annotation files in tmp_path (the rules are about the JSON, not the pixels): the
clips (:class:`irdet.data.datasets.sequences.SequenceDataset`) and the evaluation
(:func:`irdet.metrics.coco.coco_evaluate`) refuse a broken file with the same one-line error
naming the file; the three switches are where they differ; defaults are filled in without
touching the input.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irdet.data.coco import finite_number, load_coco
from irdet.data.datasets.sequences import SequenceDataset
from irdet.errors import DataError
from irdet.metrics.coco import coco_evaluate

H, W = 12, 16


def _coco() -> dict:
    images = [{"id": k + 1, "file_name": f"seq/{k}.png", "height": H, "width": W} for k in range(3)]
    anns = [{"id": k + 1, "image_id": k + 1, "bbox": [2.0 + k, 3.0, 4.0, 2.0], "category_id": 1, "track_id": 7}
            for k in range(3)]
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "target"}]}


def _write(root: Path, data: dict) -> Path:
    for k in range(3):
        (root / "images" / "seq").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((H, W), 10 * k, np.uint8)).save(root / "images" / "seq" / f"{k}.png")
    ann = root / "annotations" / "train.json"
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text(json.dumps(data))
    return ann


def _set(path, value):
    def apply(d):
        *keys, last = path
        for k in keys:
            d = d[k]
        d[last] = value
    return apply


@pytest.mark.parametrize("breaker, message", [
    (lambda d: d.pop("images"), "not a COCO annotation file (no 'images' list)"),
    (_set(["annotations"], {"a": 1}), "'annotations' must be a list, got dict"),
    (_set(["images", 1, "id"], "2"), "images[1]: id must be an integer, got '2'"),
    (_set(["images", 2, "id"], 1), "duplicate image id 1 ('seq/0.png' and 'seq/2.png')"),
    (_set(["categories"], [{"id": 1}, {"id": 1}]), "duplicate category ids [1, 1]"),
    (_set(["annotations", 1, "image_id"], 99), "annotation 2 refers to unknown image id 99"),
    (lambda d: d["annotations"][0].pop("bbox"), "annotation 1 has no 'bbox'"),
    (_set(["annotations", 0, "bbox"], [1, 2, 3]), "annotation 1 (seq/0.png): bbox must be [x, y, w, h], got [1, 2, 3]"),
    (_set(["annotations", 2, "bbox", 1], float("nan")), "annotation 3 (seq/2.png): bbox[1] is not a finite number (nan)"),
    (_set(["annotations", 0, "bbox", 3], -1.0), "annotation 1 (seq/0.png): bbox has negative width or height"),
    (_set(["annotations", 0, "category_id"], 5), "annotation 1 (seq/0.png): unknown category_id 5"),
    (_set(["annotations", 1, "track_id"], "a"), "annotation 2 (seq/1.png): track_id must be an integer, got 'a'"),
], ids=["no-images", "annotations-not-list", "id-type", "duplicate-id", "duplicate-category", "unknown-image",
        "no-bbox", "bbox-length", "bbox-nan", "negative-bbox", "unknown-category", "track-id-type"])
def test_clips_and_evaluation_refuse_a_broken_file_alike(tmp_path, breaker, message):
    data = _coco()
    breaker(data)
    ann = _write(tmp_path, data)
    errors = []
    for read in (lambda: SequenceDataset(tmp_path, ann, "images", frames=2), lambda: coco_evaluate(ann, [])):
        with pytest.raises(DataError) as info:
            read()
        errors.append(info.value)
    assert str(errors[0]) == str(errors[1])  # one reader, one message
    assert errors[0].path == str(ann) and message in errors[0].problem


def test_switches_separate_clips_from_evaluation(tmp_path):
    # no declared frame size: the clips read it from the files, evaluation needs it declared
    data = _coco()
    for im in data["images"]:
        del im["height"], im["width"]
    ann = _write(tmp_path, data)
    ds = SequenceDataset(tmp_path, ann, "images", frames=2)
    assert ds.ground_truth()[1]["seq/1"] == (H, W) and ds.coco_dict["images"][1]["height"] == H
    with pytest.raises(DataError, match=r"train\.json: image 1 \(seq/0\.png\): 'height' must be a positive integer"):
        coco_evaluate(ann, [])
    assert coco_evaluate(ds.coco_dict, [])["num_gts"] == 3  # the clips' dict carries the sizes it read
    # a zero-width box: a degenerate training box, a box evaluation can hold
    data = _coco()
    data["annotations"][0]["bbox"] = [2.0, 3.0, 0.0, 2.0]
    ann = _write(tmp_path, data)
    with pytest.raises(DataError, match="degenerate bbox"):
        SequenceDataset(tmp_path, ann, "images", frames=2)
    assert load_coco(ann)["annotations"][0]["area"] == 0.0
    # no file name: a clip has no frame to read, evaluation names the image by its id
    data = _coco()
    del data["images"][0]["file_name"]
    ann = _write(tmp_path, data)
    with pytest.raises(DataError, match=r"images\[0\] \(id 1\) has no 'file_name'"):
        SequenceDataset(tmp_path, ann, "images", frames=2)
    assert load_coco(ann)["images"][0]["file_name"] == "1"


def test_defaults_are_filled_in_a_copy():
    data = _coco()
    data["categories"] = [{"id": 3, "name": "drone"}, {"id": 1, "name": "bird"}]
    for a in data["annotations"]:
        del a["category_id"]
    data["annotations"][1]["id"] = "x"
    del data["annotations"][2]["id"]
    original = copy.deepcopy(data)
    gt = load_coco(data)
    assert data == original  # the input is never modified
    assert [a["id"] for a in gt["annotations"]] == [1, 2, 3]  # next free integers after the largest id
    assert {a["category_id"] for a in gt["annotations"]} == {3}  # the first declared category
    assert all(a["iscrowd"] == 0 and a["area"] == 8.0 for a in gt["annotations"])
    # perfect detections without category_id score 1 against that single-category ground truth
    one = {**_coco(), "categories": [{"id": 3, "name": "drone"}]}
    for a in one["annotations"]:
        del a["category_id"]
    results = [{"image_id": a["image_id"], "bbox": a["bbox"], "score": 0.9} for a in one["annotations"]]
    assert coco_evaluate(one, results)["AP50"] == pytest.approx(1.0)
    # no categories at all: derived from the annotations
    derived = load_coco({"images": original["images"], "annotations": [dict(a, category_id=2) for a in _coco()["annotations"]]})
    assert derived["categories"] == [{"id": 2, "name": "2"}]
    assert load_coco({"images": []})["categories"] == [{"id": 1, "name": "1"}]


def test_finite_number():
    assert finite_number(3, "f.json", "x") == 3.0
    for bad in (True, "1", None, float("inf")):
        with pytest.raises(DataError, match=r"f\.json: x is not a finite number"):
            finite_number(bad, "f.json", "x")
