"""The Ultralytics YOLO-txt layout (irdet.data.datasets.yolo_txt) on real DenseSIRST images converted to it:
boxes round-trip, split forms, background images, malformed lines, the sky-mask refusal, and train / evaluate /
detect end to end with the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from irdet.cli import main
from irdet.config import load_config
from irdet.data.datasets import build_dataset, has_sky_masks, resolve_root, split_ids
from irdet.data.datasets.densesirst import DenseSIRST
from irdet.data.datasets.yolo_txt import YoloTxt, label_path, read_yolo_labels
from irdet.data.io import image_size, read_voc_xml
from irdet.engine.selection import check_selection
from irdet.errors import ConfigError, DataError, DataFilesError

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "fcos_r18_p2_light_yolo_txt.yaml"
#: real DenseSIRST images (small ones for the CLI run): 4 train_v2, 2 val_v2, 3 test_v2
SPLITS = {"train": ["Misc_249", "Misc_293", "Misc_76", "Misc_328"], "val": ["Misc_60", "Misc_224"],
          "test": ["Misc_199", "Misc_24", "Misc_278"]}


def to_yolo(real: Path, root: Path, splits: dict[str, list[str]]) -> Path:
    """Write a YOLO-txt dataset of DenseSIRST images: ``images/<split>/<id>.png`` (links to the real
    files) and ``labels/<split>/<id>.txt`` from the xml boxes (``0 cx cy w h``, normalised by the
    image width and height, shortest round-trip float text)."""
    for split, ids in splits.items():
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for image_id in ids:
            src = real / "PNGImages" / f"{image_id}.png"
            os.symlink(src.resolve(), root / "images" / split / f"{image_id}.png")
            h, w = image_size(src)
            boxes, _ = read_voc_xml(real / "SIRST" / "BBox" / f"{image_id}.xml")
            lines = []
            for x1, y1, x2, y2 in boxes.astype(float).tolist():
                lines.append(f"0 {(x1 + x2) / 2 / w!r} {(y1 + y2) / 2 / h!r} {(x2 - x1) / w!r} {(y2 - y1) / h!r}")
            (root / "labels" / split / f"{image_id}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def yolo_root(densesirst, tmp_path) -> Path:
    return to_yolo(densesirst, tmp_path / "yolo", SPLITS)


def _yolo_cfg(*sets: str) -> dict:
    return load_config(CONFIG, list(sets))


def test_real_boxes_round_trip_and_items_match_densesirst(densesirst, tmp_path):
    test = [line.strip() for line in (densesirst / "Splits" / "test_v2.txt").read_text().splitlines() if line.strip()]
    sizes = {i: image_size(densesirst / "PNGImages" / f"{i}.png") for i in test[:60]}
    widest = next(i for i in test[:60] if sizes[i] == (1080, 1918))
    ids = list(dict.fromkeys([widest, "Misc_199", *test[:3]]))  # 1918-px coordinates, a 301-px image, the first ids
    root = to_yolo(densesirst, tmp_path / "yolo", {"test": ids})
    yolo = YoloTxt(root, "test")
    assert yolo.ids == sorted(f"test/{i}" for i in ids)  # ids: path under images/, no suffix; files in sorted order
    ref = DenseSIRST(densesirst, ids, sky_mask=None)
    ref_boxes, ref_sizes = ref.ground_truth()
    boxes, got_sizes = yolo.ground_truth()
    n = 0
    for i in ids:
        assert got_sizes[f"test/{i}"] == ref_sizes[i]
        assert boxes[f"test/{i}"].dtype == np.float32 and boxes[f"test/{i}"].shape == ref_boxes[i].shape
        np.testing.assert_allclose(boxes[f"test/{i}"], ref_boxes[i], rtol=0, atol=1e-6)
        n += len(ref_boxes[i])
    assert n > 20
    assert yolo.find_problems() == [] and not has_sky_masks(_yolo_cfg()) and has_sky_masks({})
    item, ref_item = yolo[yolo.ids.index("test/Misc_199")], ref[ids.index("Misc_199")]
    assert item["image_id"] == "test/Misc_199" and item["orig_size"] == ref_item["orig_size"] == (213, 301)
    assert torch.equal(item["image"], ref_item["image"])
    assert torch.allclose(item["boxes"], ref_item["boxes"], atol=1e-6, rtol=0)
    assert item["boxes"].canvas_size == (213, 301) and torch.equal(item["labels"], torch.zeros(22, dtype=torch.int64))
    assert "sky_mask" not in item and "target_mask" not in item


def test_label_path_is_ultralytics_rule():
    assert label_path("/d/images/train/a.jpg") == Path("/d/labels/train/a.txt")
    assert label_path("/images/d/images/x/b.c.png") == Path("/images/d/labels/x/b.c.txt")  # the last images/ folder
    assert label_path("/d/train/images/a.png") == Path("/d/train/labels/a.txt")  # Roboflow export
    assert label_path("/d/pics/a.png") == Path("/d/pics/a.txt")  # no images/ folder: beside the image


def test_data_yaml_list_files_and_explicit_ids(yolo_root):
    root = yolo_root
    (root / "val.txt").write_text("images/val/Misc_224.png\n\n./images/val/Misc_60.png\n")  # CVAT / Ultralytics lines
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: val.txt\ntest: [images/test, extra]\n"
                                    "names: {0: target}\n")
    extra = root / "extra" / "images"  # a Roboflow-style folder: extra/images + extra/labels
    extra.mkdir(parents=True)
    os.symlink(os.readlink(root / "images" / "train" / "Misc_76.png"), extra / "x.png")
    (root / "extra" / "labels").mkdir()
    (root / "extra" / "labels" / "x.txt").write_text("0 0.5 0.5 0.25 0.5\n")
    assert split_ids(_yolo_cfg(), root, "val") == ["val/Misc_224", "val/Misc_60"]  # list order kept
    test = YoloTxt(root, "test")
    assert test.ids == ["test/Misc_199", "test/Misc_24", "test/Misc_278", "extra/images/x"]
    boxes, sizes = test.ground_truth()
    h, w = sizes["extra/images/x"]
    np.testing.assert_allclose(boxes["extra/images/x"], [[w * 0.375, h * 0.25, w * 0.625, h * 0.75]], rtol=1e-6)
    (root / "small.txt").write_text(f"{root / 'images' / 'test' / 'Misc_24.png'}\n")  # no yaml entry: <split>.txt
    assert split_ids(_yolo_cfg(), root, "small") == ["test/Misc_24"]
    assert YoloTxt(root, ["test/Misc_24", "train/Misc_76"]).ids == ["test/Misc_24", "train/Misc_76"]
    with pytest.raises(DataError, match=r"images/nope: image not found"):
        YoloTxt(root, ["nope"])
    with pytest.raises(DataError, match=r"split 'other' not found: .*\(available: small, test, train, val\)"):
        split_ids(_yolo_cfg(), root, "other")


def test_missing_and_empty_label_files_are_background(yolo_root):
    (yolo_root / "labels" / "test" / "Misc_24.txt").unlink()
    (yolo_root / "labels" / "test" / "Misc_278.txt").write_text("\n  \n")
    ds = YoloTxt(yolo_root, "test")
    assert ds.find_problems() == []
    boxes, _ = ds.ground_truth()
    assert boxes["test/Misc_24"].shape == boxes["test/Misc_278"].shape == (0, 4)
    assert len(boxes["test/Misc_199"]) == 22
    item = ds[ds.ids.index("test/Misc_24")]
    assert item["boxes"].shape == (0, 4) and item["labels"].shape == (0,)


@pytest.mark.parametrize("line,problem", [
    ("0 0.5 0.5 0.1", "line 2: expected 5 fields 'class cx cy w h', got 4"),
    ("0 0.5 0.5 0.1 0.1 0.3", "line 2: expected 5 fields 'class cx cy w h', got 6"),
    ("0 0.5 0.5 0.1 x", "line 2: not numbers"),
    ("0 0.5 nan 0.1 0.1", "line 2: not finite numbers"),
    ("1.5 0.5 0.5 0.1 0.1", "line 2: class '1.5' is not an integer >= 0"),
    ("-1 0.5 0.5 0.1 0.1", "line 2: class '-1' is not an integer >= 0"),
    ("0 1.2 0.5 0.1 0.1", "line 2: cx cy w h must be normalised to [0, 1], got 1.2 0.5 0.1 0.1"),
    ("0 120 80 6 4", "line 2: cx cy w h must be normalised to [0, 1]"),  # pixel numbers, not normalised
    ("0 0.5 0.5 0 0.1", "line 2: box of zero width or height"),
])
def test_malformed_line_names_file_and_line(yolo_root, line, problem):
    label = yolo_root / "labels" / "test" / "Misc_24.txt"
    label.write_text(label.read_text().splitlines()[0] + "\n" + line + "\n")
    with pytest.raises(DataError) as info:
        read_yolo_labels(label, (10, 10))
    assert str(info.value).startswith(f"{label}: {problem}") and "\n" not in str(info.value)
    ds = YoloTxt(yolo_root, "test")
    with pytest.raises(DataError, match="line 2"):
        ds[ds.ids.index("test/Misc_24")]
    with pytest.raises(DataFilesError) as info:  # the up-front check names it among all broken files
        ds.check()
    assert [p.path for p in info.value.problems] == [str(label)]


def test_sky_masks_are_refused_with_the_switch_to_turn_off(yolo_root, tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"no sky masks: set model.head.seg_head=false .* and data.bagcp.enabled=false"):
        YoloTxt(yolo_root, "test", sky_mask="palette")
    with pytest.raises(ConfigError, match=r"no target masks: set data.bagcp.enabled=false"):
        YoloTxt(yolo_root, "test", target_mask="binary")
    bafe = load_config("bafenet_r18_densesirst_cpu", ["data.layout=yolo_txt"])  # seg head and BAG-CP on
    with pytest.raises(ConfigError) as info:
        build_dataset(bafe, yolo_root, "test")
    assert "model.head.seg_head=false" in str(info.value) and "data.bagcp.enabled=false" in str(info.value)
    with pytest.raises(ConfigError) as info:
        resolve_root(_yolo_cfg("data.bagcp.enabled=true"), yolo_root)
    assert "data.bagcp.enabled=false" in str(info.value) and "seg_head" not in str(info.value)
    out = tmp_path / "run"
    assert main(["train", str(CONFIG), "--data", str(yolo_root), "--out", str(out), "--set",
                 "model.head.seg_head=true", "data.num_workers=0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("irdet: error: data.layout yolo_txt has no sky masks: set model.head.seg_head=false")
    assert "\n" not in err and "bagcp" not in err and not out.exists()  # refused before anything is written


def test_roots_and_split_rules(yolo_root, densesirst, tmp_path, monkeypatch):
    monkeypatch.delenv("IRDET_DATA", raising=False)
    cfg = _yolo_cfg()
    assert resolve_root(cfg, yolo_root) == yolo_root
    with pytest.raises(ConfigError, match="needs its dataset root: pass --data ROOT"):
        resolve_root(cfg, None)
    with pytest.raises(ConfigError, match="packaged sample is DenseSIRST-layout"):
        resolve_root(cfg, "sample")
    with pytest.raises(DataError, match="dataset root not found"):
        resolve_root(cfg, tmp_path / "none")
    with pytest.raises(DataError, match=r"not a YOLO-txt root: no images/ folder and no data.yaml"):
        resolve_root(cfg, densesirst)
    with pytest.raises(DataError, match="not a DenseSIRST-layout root"):
        resolve_root({}, yolo_root)  # the default layout stays DenseSIRST
    os.symlink(os.readlink(yolo_root / "images" / "test" / "Misc_24.png"), yolo_root / "images" / "test" / "Misc_24.jpg")
    with pytest.raises(DataError, match=r"Misc_24.png: image id 'test/Misc_24' is also .*Misc_24.jpg: both would read "
                                        r"labels .*labels/test/Misc_24.txt"):
        YoloTxt(yolo_root, "test")
    (yolo_root / "images" / "test" / "Misc_24.jpg").unlink()
    # the split-selection guard compares the layout's ids
    check_selection(_yolo_cfg("data.val_split=val"), yolo_root)
    with pytest.raises(ConfigError, match=r"data.val_split and data.test_split are both 'test' \(3 images\)"):
        check_selection(_yolo_cfg("data.val_split=test"), yolo_root)
    (yolo_root / "leak.txt").write_text("images/val/Misc_60.png\nimages/train/Misc_76.png\n")
    with pytest.raises(ConfigError, match=r"data.val_split 'leak' shares 1 of its 2 images with data.train_split 'train'"):
        check_selection(_yolo_cfg("data.val_split=leak"), yolo_root)


def test_train_evaluate_detect_with_the_cli(yolo_root, tmp_path, capsys):
    run = tmp_path / "run"
    sets = ["train.max_epochs=1", "data.repeat=1", "data.crop=[128,128]", "data.num_workers=0", "train.threads=1",
            "train.precision=32-true", "train.checkpoint_every_n_steps=1", "train.log_every_n_steps=1",
            "model.neck.out_channels=32", "model.head.feat_channels=32", "model.head.stacked_convs=1",
            "data.val_split=val"]  # best.ckpt selected on val (no image shared with train or test)
    assert main(["train", str(CONFIG), "--data", str(yolo_root), "--out", str(run), "--set", *sets]) == 0
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["global_step"] == 2 and (run / "checkpoints" / "best.ckpt").is_file()  # 4 images, batch 2
    assert state["hyper_parameters"]["config"]["data"]["layout"] == "yolo_txt"

    out = tmp_path / "eval"
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--data", str(yolo_root),
                 "--split", "test", "--out", str(out)]) == 0
    assert "mAP07" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_images"] == 3 and 0.0 <= metrics["mAP07"] <= 1.0 and 0.0 <= metrics["Pd"] <= 1.0
    real_gts = DenseSIRST(Path(os.readlink(yolo_root / "images" / "test" / "Misc_24.png")).parents[1], SPLITS["test"],
                          sky_mask=None).ground_truth()[0]
    assert metrics["num_gts"] == sum(len(b) for b in real_gts.values()) == 32  # the test split's xml boxes
    assert "no sky mask for 3 of 3 images" in metrics["fa_background_note"] and "fa_sky_per_image" not in metrics
    preds = json.loads((out / "predictions.json").read_text())
    assert {p["image_id"] for p in preds} <= {f"test/{i}" for i in SPLITS["test"]}

    det = tmp_path / "det"
    assert main(["detect", str(run / "checkpoints" / "last.ckpt"), str(yolo_root / "images" / "test"),
                 "--out", str(det)]) == 0
    assert sorted(p.stem for p in (det / "overlays").glob("*.png")) == sorted(SPLITS["test"])
    dets = json.loads((det / "detections.json").read_text())
    assert isinstance(dets, list) and {d["image_id"] for d in dets} <= set(SPLITS["test"])
