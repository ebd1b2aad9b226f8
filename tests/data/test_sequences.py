"""Sequence dataset (irdet.data.datasets.sequences, .sequence_layouts): clip assembly, public layouts, bad
inputs, clip transforms (irdet.data.transforms.clip_transforms).

Fixtures are tiny frame folders + COCO JSON written in tmp_path in the SSTNet/Tridos public
layout (DAUB: ``images/train/data5/<n>.bmp`` listed with the ``images/`` prefix; IRDST:
``real/`` sub-root, ``file_name`` relative to ``images/``). Frame ``n`` has grey level
``10·n`` and one bright 2×2 target at column ``n``, so order and alignment can be read off
the pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from irdet.data.collate import collate_clips
from irdet.data.datasets.sequences import SequenceDataset, clip_indices, parse_frame_name
from irdet.data.transforms import clip_transforms
from irdet.errors import DataError

H, W = 16, 24


def _frame(n: int) -> np.ndarray:
    a = np.full((H, W), 10 * n, np.uint8)
    a[4:6, n : n + 2] = 250
    return a


def make_public(root: Path, *, style: str = "daub", seqs=(("data5", 12),), ext=".bmp", shuffle=True,
                track_ids=False, empty=()) -> Path:
    """Write a tiny dataset in the public layout; returns the annotation file.

    style "daub": ``root/images/train/<seq>/<n>.bmp``, file_name with the ``images/train/`` prefix,
    ``root/annotations/instances_train2017.json``; style "irdst": ``root/real/images/<seq>/<n>.bmp``,
    file_name ``<seq>/<n>.bmp``, ``root/real/annotations/instances_test2017.json``.
    """
    base = root if style == "daub" else root / "real"
    images, anns = [], []
    for seq, n_frames in seqs:
        for n in range(n_frames):
            rel = f"images/train/{seq}/{n}{ext}" if style == "daub" else f"{seq}/{n}{ext}"
            path = base / (rel if style == "daub" else f"images/{rel}")
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_frame(n)).save(path)
            iid = len(images) + 1
            images.append({"id": iid, "file_name": rel, "height": H, "width": W})
            if (seq, n) in empty:
                continue
            a = {"id": len(anns) + 1, "image_id": iid, "bbox": [float(n), 4.0, 2.0, 2.0], "area": 4.0,
                 "iscrowd": 0, "category_id": 1}
            if track_ids:
                a["track_id"] = 7
            anns.append(a)
    if shuffle:
        images = images[::-1]
    ann = base / "annotations" / ("instances_train2017.json" if style == "daub" else "instances_test2017.json")
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text(json.dumps({"images": images, "annotations": anns,
                               "categories": [{"id": 1, "name": "target", "supercategory": "none"}]}))
    return ann


def _levels(item) -> list[int]:
    return [int(round(float(v))) for v in item["video"][:, 0, 0, 0]]


def test_helpers():
    assert parse_frame_name("images/test/data6/12.bmp") == ("images/test/data6", 12, ".bmp")
    assert parse_frame_name("7.png") == ("", 7, ".png")
    assert parse_frame_name("a\\b\\0012.png") == ("a/b", 12, ".png")
    with pytest.raises(ValueError):
        parse_frame_name("seq/frame_a.png")
    assert clip_indices(0, 3) == [0, 0, 0]
    assert clip_indices(1, 4) == [0, 0, 0, 1]
    assert clip_indices(7, 3) == [5, 6, 7]


def test_clip_order_clamping_and_current_boxes(tmp_path):
    make_public(tmp_path, seqs=(("data5", 12), ("data2", 3)), track_ids=True)
    ds = SequenceDataset.from_layout(tmp_path, "train", "daub", frames=5)
    assert len(ds) == 15
    # sequences: numeric frame order (10 after 9), not lexical
    assert ds.sequences["images/train/data5"][9:] == [f"images/train/data5/{n}" for n in (9, 10, 11)]
    assert ds.categories == [{"id": 1, "name": "target", "supercategory": "none"}]
    k = ds.index_of("images/train/data5/10")
    item = ds[k]
    assert isinstance(item["video"], tv_tensors.Video)
    assert item["video"].shape == (5, 3, H, W) and item["video"].dtype == torch.float32
    assert _levels(item) == [60, 70, 80, 90, 100]  # oldest -> current
    assert item["frame_ids"] == [f"images/train/data5/{n}" for n in (6, 7, 8, 9, 10)]
    assert item["image_id"] == "images/train/data5/10" and item["orig_size"] == (H, W)
    assert isinstance(item["boxes"], tv_tensors.BoundingBoxes) and tuple(item["boxes"].canvas_size) == (H, W)
    assert item["boxes"].tolist() == [[10.0, 4.0, 12.0, 6.0]]  # COCO [x, y, w, h] -> pixel-edge XYXY
    assert item["labels"].tolist() == [0] and item["labels"].dtype == torch.int64
    assert item["track_ids"].tolist() == [7]
    # the current frame's box covers its bright pixels
    cur = item["video"][-1, 0].numpy()
    ys, xs = np.nonzero(cur > 200)
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (10, 12, 4, 6)
    # coco id of the current frame
    assert ds.coco.imgs[item["coco_id"]]["file_name"] == "images/train/data5/10.bmp"
    # clamping at the start of a sequence, and sequences do not mix
    first = ds[ds.index_of("images/train/data2/1")]
    assert first["frame_ids"] == ["images/train/data2/0"] * 4 + ["images/train/data2/1"]
    assert _levels(first) == [0, 0, 0, 0, 10]
    assert first["boxes"].tolist() == [[1.0, 4.0, 3.0, 6.0]]
    # T = 1 is single-frame
    one = SequenceDataset.from_layout(tmp_path, "train", "daub", frames=1)[k]
    assert one["video"].shape[0] == 1 and one["frame_ids"] == ["images/train/data5/10"]


def test_irdst_layout_split_files_and_ground_truth(tmp_path):
    make_public(tmp_path, style="irdst", seqs=(("1", 4), ("3", 11)), empty={("3", 2)})
    ds = SequenceDataset.from_layout(tmp_path, "val", "irdst", frames=3)  # val -> instances_test2017, real/ sub-root
    assert ds.image_dir == tmp_path / "real" / "images" and len(ds) == 15
    item = ds[ds.index_of("3/10")]
    assert item["frame_ids"] == ["3/8", "3/9", "3/10"] and "track_ids" not in item
    empty = ds[ds.index_of("3/2")]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)
    boxes, sizes = ds.ground_truth()
    assert len(boxes) == 15 and boxes["3/2"].shape == (0, 4) and sizes["1/0"] == (H, W)
    assert boxes["3/4"].tolist() == [[4.0, 4.0, 6.0, 6.0]]
    assert len(SequenceDataset.from_layout(tmp_path, "val", "irdst", skip_empty=True)) == 14
    # split list in the SSTNet txt style (absolute paths + boxes), plus a sequence name and a COCO id
    split = tmp_path / "coco_val_IRDST.txt"
    split.write_text("/home/public/IRDST/real/images/3/5.bmp 5,4,7,6,0\n\n# comment\n1\n3/7\n")
    sub = SequenceDataset(tmp_path / "real", "annotations/instances_test2017.json", split_file=split, frames=3)
    assert sub.image_ids == ["1/0", "1/1", "1/2", "1/3", "3/5", "3/7"]
    assert sub[4]["frame_ids"] == ["3/3", "3/4", "3/5"]  # context frames come from the whole sequence
    assert sorted(img["file_name"] for img in sub.coco.dataset["images"]) == sorted(f"{i}.bmp" for i in sub.image_ids)
    bad = tmp_path / "bad_split.txt"
    bad.write_text("9/9\n")
    with pytest.raises(DataError, match="bad_split.txt"):
        SequenceDataset(tmp_path / "real", "annotations/instances_test2017.json", split_file=bad)


def test_context_numbers_reads_unlisted_frames(tmp_path):
    make_public(tmp_path, seqs=(("data5", 8),))
    ann = tmp_path / "annotations" / "instances_train2017.json"
    d = json.loads(ann.read_text())
    keep = {img["id"] for img in d["images"] if img["file_name"].endswith(("/2.bmp", "/6.bmp"))}
    d["images"] = [i for i in d["images"] if i["id"] in keep]
    d["annotations"] = [a for a in d["annotations"] if a["image_id"] in keep]
    ann.write_text(json.dumps(d))
    listed = SequenceDataset(tmp_path, ann, frames=3)
    assert listed[1]["frame_ids"] == ["images/train/data5/2"] * 2 + ["images/train/data5/6"]
    numbers = SequenceDataset(tmp_path, ann, frames=3, context="numbers")
    assert numbers[1]["frame_ids"] == [f"images/train/data5/{n}" for n in (4, 5, 6)]
    assert _levels(numbers[1]) == [40, 50, 60] and _levels(numbers[0]) == [0, 10, 20]


def test_categories_mapped_in_sorted_id_order(tmp_path):
    ann = make_public(tmp_path, seqs=(("data5", 3),))
    d = json.loads(ann.read_text())
    d["categories"] = [{"id": 9, "name": "plane"}, {"id": 4, "name": "bird"}]
    for a, cat in zip(d["annotations"], (9, 4, 9)):
        a["category_id"] = cat
    ann.write_text(json.dumps(d))
    ds = SequenceDataset(tmp_path, ann, frames=2)
    assert [c["name"] for c in ds.categories] == ["bird", "plane"] and ds.num_classes == 2
    assert [ds[i]["labels"].tolist() for i in range(3)] == [[1], [0], [1]]


def _corrupt(root, ann):
    (root / "images/train/data5/3.bmp").write_bytes(b"BM not really a bitmap")


def _missing(root, ann):
    (root / "images/train/data5/3.bmp").unlink()


def _malformed(root, ann):
    ann.write_text('{"images": [')


def _degenerate(root, ann):
    d = json.loads(ann.read_text())
    d["annotations"][3]["bbox"] = [3.0, 4.0, 0.0, 2.0]
    ann.write_text(json.dumps(d))


def _unknown_image(root, ann):
    d = json.loads(ann.read_text())
    d["annotations"].append({"id": 99, "image_id": 12345, "bbox": [1, 1, 2, 2], "category_id": 1})
    ann.write_text(json.dumps(d))


def _size_mismatch(root, ann):
    Image.fromarray(np.zeros((H + 2, W), np.uint8)).save(root / "images/train/data5/3.bmp")


def _declared_size_mismatch(root, ann):
    d = json.loads(ann.read_text())
    next(i for i in d["images"] if i["file_name"].endswith("/3.bmp"))["height"] = H + 2
    ann.write_text(json.dumps(d))


@pytest.mark.parametrize(
    "breaker, named",
    [
        (_missing, "images/train/data5/3.bmp"),
        (_corrupt, "images/train/data5/3.bmp"),
        (_size_mismatch, "images/train/data5/3.bmp"),
        (_declared_size_mismatch, "images/train/data5/3.bmp"),
        (_malformed, "instances_train2017.json"),
        (_degenerate, "instances_train2017.json"),
        (_unknown_image, "instances_train2017.json"),
    ],
    ids=["missing-frame", "corrupt-frame", "frame-size", "declared-size", "malformed-json", "degenerate-bbox",
         "unknown-image-id"],
)
def test_bad_inputs_raise_data_error_naming_the_file(tmp_path, breaker, named):
    ann = make_public(tmp_path, seqs=(("data5", 6),), shuffle=False)
    breaker(tmp_path, ann)
    with pytest.raises(DataError) as info:
        ds = SequenceDataset(tmp_path, ann, frames=3)
        for i in range(len(ds)):  # errors found when a frame is read surface here
            ds[i]
    assert named in str(info.value) and str(info.value.path).endswith(named)
    if breaker is _degenerate:
        assert "degenerate" in str(info.value)
    if breaker is _unknown_image:
        assert "12345" in str(info.value)


def test_missing_annotation_file_and_layout(tmp_path):
    with pytest.raises(DataError, match="nope.json"):
        SequenceDataset(tmp_path, "nope.json")
    tmp_path.joinpath("DAUB").mkdir()
    with pytest.raises(DataError, match="instances_train2017.json"):
        SequenceDataset.from_layout(tmp_path / "DAUB", "train", "daub")


def test_flipped_clip_keeps_boxes_aligned(tmp_path):
    make_public(tmp_path, seqs=(("data5", 9),), track_ids=True)
    tf = clip_transforms((2 * H, 2 * W), train=True, flip_prob=1.0)  # 32 x 48, padded to 32 x 64
    ds = SequenceDataset.from_layout(tmp_path, "train", "daub", frames=4, transforms=tf)
    item = ds[ds.index_of("images/train/data5/7")]
    vid = item["video"]
    assert isinstance(vid, tv_tensors.Video) and vid.shape == (4, 3, 32, 64)
    assert item["img_size"] == (32, 48) and item["pad_size"] == (32, 64)
    # frame t (n = 4 + t) shows its target at original columns n..n+2, i.e. 2n..2n+4 resized, then flipped
    for t in range(4):
        n = 4 + t
        ys, xs = np.nonzero(vid[t, 0, :, :48].numpy() > 150)
        assert (xs.min(), xs.max() + 1) == (48 - 2 * (n + 2), 48 - 2 * n), t
        assert (ys.min(), ys.max() + 1) == (8, 12)
        assert not (vid[t, :, :, 48:] != 0).any()  # padding
    assert item["boxes"].tolist() == [[48 - 18.0, 8.0, 48 - 14.0, 12.0]]  # current frame n = 7, flipped
    assert item["track_ids"].tolist() == [7] and item["labels"].tolist() == [0]
    # a box pushed out of the image is dropped with its label and track id
    ds2 = SequenceDataset.from_layout(tmp_path, "train", "daub", frames=2)
    raw = ds2[ds2.index_of("images/train/data5/7")]
    raw["boxes"] = tv_tensors.wrap(raw["boxes"] + torch.tensor([100.0, 0, 100.0, 0]), like=raw["boxes"])
    out = clip_transforms(None, train=True, flip_prob=0.0)(raw)
    assert out["boxes"].shape == (0, 4) and out["labels"].shape == (0,) and out["track_ids"].shape == (0,)
    # test pipeline: resize + pad only; collate
    test_tf = clip_transforms((32, 48), train=False)
    batch = collate_clips([test_tf(ds2[0]), test_tf(ds2[5])])
    assert batch["video"].shape == (2, 2, 3, 32, 64) and len(batch["boxes"]) == 2
    assert batch["img_size"] == [(32, 48), (32, 48)] and batch["track_ids"][1].tolist() == [7]
    assert batch["boxes"][1].tolist() == [[10.0, 8.0, 14.0, 12.0]]


def test_cropped_clip_uses_one_window_for_all_frames(tmp_path):
    make_public(tmp_path, seqs=(("data5", 12),))
    tf = clip_transforms(None, train=True, flip_prob=0.0, pad_divisor=8, crop=(8, 16), crop_p_target=1.0)
    ds = SequenceDataset.from_layout(tmp_path, "train", "daub", frames=3, transforms=tf)
    torch.manual_seed(0)
    for _ in range(5):
        item = ds[ds.index_of("images/train/data5/7")]
        vid = item["video"]
        assert vid.shape == (3, 3, 8, 16) and item["img_size"] == (8, 16)
        (x1, y1, x2, y2), = item["boxes"].tolist()  # the current target (cols 7..9, rows 4..6) is inside the crop
        left, top = int(7 - x1), int(4 - y1)
        assert 0 <= left <= W - 16 and 0 <= top <= H - 8 and (x2 - x1, y2 - y1) == (2, 2)
        for t, n in enumerate((5, 6, 7)):  # every frame: the same window of its own content
            expect = torch.from_numpy(_frame(n)[top : top + 8, left : left + 16]).float()
            assert torch.equal(vid[t, 0].float(), expect), t
