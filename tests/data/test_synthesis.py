"""Dataset synthesis (irdet.data.synthesis.images): DenseSIRST-layout output that loads back.

A small synthetic DenseSIRST-layout source is built in tmp_path for the CI tests; one test
runs on three real DenseSIRST images (linked into tmp_path; skipped without the data,
failing instead under IRDET_REQUIRE_DATA=1).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irdet.data.datasets.densesirst import DenseSIRST
from irdet.data.io import read_image, read_mask, read_voc_xml
from irdet.data.synthesis.densesirst_writer import write_voc_xml
from irdet.data.synthesis.images import print_summary, synthesize
from irdet.data.bagcp import TargetLibrary, build_target_library
from irdet.errors import DataError

DATA = Path("../shared/data/DenseSIRST/SIRSTdevkit")
REAL_IDS = ["Misc_23", "Misc_371", "Misc_40"]  # two grey full-sky images, one RGB image without sky


def _palette(mask01: np.ndarray, path: Path) -> None:
    img = Image.fromarray(mask01.astype(np.uint8), mode="P")
    img.putpalette([0, 0, 0, 0, 128, 0])
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def make_source(root: Path, ids=("img_a", "img_b"), *, masks=True, points=True, size=(64, 80)) -> Path:
    """A tiny DenseSIRST-layout dataset: grey images, top 60 % sky, two targets each."""
    h, w = size
    rng = np.random.default_rng(0)
    for k, image_id in enumerate(ids):
        img = (40 + rng.normal(0, 2, (h, w))).clip(0, 255)
        boxes = np.array([[10 + k, 50, 13 + k, 53], [60, 5 + k, 64, 9 + k]], np.float32)  # pixel-edge
        tmask = np.zeros((h, w), np.uint8)
        for x1, y1, x2, y2 in boxes.astype(int):
            img[y1:y2, x1:x2] += 60
            tmask[y1:y2, x1:x2] = 1
        (root / "PNGImages").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.round().astype(np.uint8), mode="L").save(root / "PNGImages" / f"{image_id}.png")
        write_voc_xml(root / "SIRST" / "BBox" / f"{image_id}.xml", image_id, (h, w), 1, boxes)
        if masks:
            (root / "SIRST" / "BinaryMask").mkdir(parents=True, exist_ok=True)
            Image.fromarray(tmask * 255, mode="L").save(root / "SIRST" / "BinaryMask" / f"{image_id}_pixels0.png")
            _palette(tmask, root / "SIRST" / "PaletteMask" / f"{image_id}.png")
        if points:
            (root / "SIRST" / "Point_label").mkdir(parents=True, exist_ok=True)
            lines = "".join(f"{int(x1 + 1)} {int(y1 + 1)}\n" for x1, y1, _, _ in boxes)
            (root / "SIRST" / "Point_label" / f"{image_id}_pixels0.txt").write_text(lines)
        sky = np.zeros((h, w), np.uint8)
        sky[: int(0.6 * h)] = 1
        _palette(sky, root / "SkySeg" / "PaletteMask" / f"{image_id}.png")
        (root / "SkySeg" / "BinaryMask").mkdir(parents=True, exist_ok=True)
        Image.fromarray(sky * 255, mode="L").save(root / "SkySeg" / "BinaryMask" / f"{image_id}_pixels0.png")
    (root / "Splits").mkdir(parents=True, exist_ok=True)
    (root / "Splits" / "train.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


@pytest.fixture
def library():
    yy, xx = np.mgrid[0:3, 0:3]
    blob = (60 * np.exp(-((yy - 1) ** 2 + (xx - 1) ** 2) / 1.5)).astype(np.float32)
    return TargetLibrary([blob, blob[:2, :], np.array([[50.0]], np.float32), np.full((5, 4), 30, np.float32)])


def check_output(out: Path, src: Path, split: str, summary: dict) -> None:
    """The output loads with the dataset class and agrees with the source and the summary."""
    ds = DenseSIRST(out, split, sky_mask="palette", target_mask="binary", points=True)
    src_ds = DenseSIRST(src, split, sky_mask="palette")
    assert len(ds) == summary["images"] == len(summary["targets_added"])
    assert summary["targets_added_total"] == sum(summary["targets_added"])
    assert summary["targets_added_mean"] == pytest.approx(np.mean(summary["targets_added"]))
    assert (out / "Splits" / "all.txt").read_text() == (out / "Splits" / f"{split}.txt").read_text()
    assert json.loads((out / "synthesis_summary.json").read_text())["targets_added"] == summary["targets_added"]
    for i in range(len(ds)):
        r, s = ds.load_raw(i), src_ds.load_raw(i)
        n0, n_add = summary["targets_original"][i], summary["targets_added"][i]
        assert n0 == len(s["boxes"])
        assert len(r["boxes"]) == len(r["points"]) == n0 + n_add
        np.testing.assert_array_equal(r["boxes"][:n0], s["boxes"])  # VOC round trip is exact
        np.testing.assert_array_equal(r["sky_mask"], s["sky_mask"])
        new_pix = r["target_mask"].astype(bool)
        # pixels change only on target pixels (8-bit sources: exactly)
        changed = (r["image"] != s["image"]).any(axis=2)
        assert not (changed & ~new_pix).any()
        if n_add:
            assert changed.any()
        # pasted boxes: tight around target pixels up to the source's box style, in sky
        ml, mt, mr, mb = summary["box_margin"]
        for x1, y1, x2, y2 in r["boxes"][n0:].astype(int):
            x1, y1, x2, y2 = x1 + ml, y1 + mt, x2 - mr, y2 - mb
            m = new_pix[y1:y2, x1:x2]
            assert m[0].any() and m[-1].any() and m[:, 0].any() and m[:, -1].any()
            assert x2 - x1 <= 5 and y2 - y1 <= 5
            assert s["sky_mask"][y1:y2, x1:x2].all()
        for px, py in r["points"][len(s["boxes"]) :]:
            assert new_pix[int(py), int(px)]
        # palette mask agrees with the binary mask; grey stays grey
        pal = read_mask(out / "SIRST" / "PaletteMask" / f"{ds.ids[i]}.png", palette=True)
        np.testing.assert_array_equal(pal, r["target_mask"])
        with Image.open(src / "PNGImages" / f"{ds.ids[i]}.png") as a, Image.open(ds.image_path(ds.ids[i])) as b:
            assert (b.mode == "L") == (a.mode == "L")
        # SkySeg copied byte for byte
        for sub in ("SkySeg/PaletteMask", "SkySeg/BinaryMask"):
            for f in (src / sub).glob(f"{ds.ids[i]}*"):
                if f.name in (f"{ds.ids[i]}.png", f"{ds.ids[i]}_pixels0.png", f"{ds.ids[i]}.xml"):
                    assert (out / sub / f.name).read_bytes() == f.read_bytes()


def test_synthesize_synthetic_source(tmp_path, library):
    src = make_source(tmp_path / "src")
    out = tmp_path / "out"
    summary = synthesize(src, "train", out, seed=1, library=library, progress=False)
    assert summary["images"] == 2 and summary["targets_added_total"] > 0
    assert summary["box_margin"] == [0, 0, 0, 0]  # the synthetic source's boxes are tight
    assert summary["regions_placed"] + summary["regions_refused"] == summary["regions_requested"]
    check_output(out, src, "train", summary)
    text = print_summary(summary)
    assert str(summary["targets_added_total"]) in text and "refused" in text
    # reproducible: same seed, same bytes
    out2 = tmp_path / "out2"
    synthesize(src, "train", out2, seed=1, library=library, progress=False)
    for f in out.rglob("*"):
        if f.is_file() and f.name != "synthesis_summary.json":  # the summary names its out_dir
            assert (out2 / f.relative_to(out)).read_bytes() == f.read_bytes(), f
    # a different seed gives a different dataset
    s3 = synthesize(src, "train", tmp_path / "out3", seed=2, library=library, progress=False)
    xml = "SIRST/BBox/img_a.xml"
    assert (tmp_path / "out3" / xml).read_bytes() != (out / xml).read_bytes()
    assert s3["targets_added_total"] > 0


def test_synthesize_builds_library_and_handles_missing_annotations(tmp_path):
    src = make_source(tmp_path / "src", masks=False, points=False)
    out = tmp_path / "out"
    summary = synthesize(src, "train", out, seed=0, progress=False, limit=1)  # library from the source boxes
    assert summary["images"] == 1 and summary["library_size"] == 4
    ds = DenseSIRST(out, "train", sky_mask="palette", target_mask="binary", points=True)
    r = ds.load_raw(0)
    assert len(r["boxes"]) == len(r["points"]) == 2 + summary["targets_added"][0]
    for x1, y1, x2, y2 in r["boxes"][:2].astype(int):  # original targets: their boxes as masks
        assert r["target_mask"][y1:y2, x1:x2].all()


def test_synthesize_refuses_bad_output(tmp_path, library):
    src = make_source(tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(DataError, match="not empty"):
        synthesize(src, "train", out, library=library, progress=False)
    synthesize(src, "train", out, library=library, progress=False, overwrite=True)
    with pytest.raises(DataError, match="source"):
        synthesize(src, "train", src / "inside", library=library, progress=False)
    with pytest.raises(DataError, match="split"):
        synthesize(src, "nope", tmp_path / "o2", library=library, progress=False)
    with pytest.raises(DataError):
        synthesize(src, "train", tmp_path / "o3", library=tmp_path / "missing.npz", progress=False)


def test_measured_box_margin_and_bagcp_margin(tmp_path, library):
    from irdet.data.synthesis.images import measure_box_margin

    src = make_source(tmp_path / "src")
    assert measure_box_margin(DenseSIRST(src, "train", target_mask="binary")) == (0, 0, 0, 0)
    out = tmp_path / "out"
    summary = synthesize(src, "train", out, seed=1, library=library, progress=False, box_margin=(1, 1, 0, 0))
    assert summary["box_margin"] == [1, 1, 0, 0]
    ds = DenseSIRST(out, "train", target_mask="binary")
    r = ds.load_raw(0)
    for x1, y1, x2, y2 in r["boxes"][2:].astype(int):
        assert not r["target_mask"][y1, x1:x2].any() and not r["target_mask"][y1:y2, x1].any()
        assert r["target_mask"][y1 + 1 : y2, x1 + 1 : x2].any()


def test_voc_writer_is_inverse_of_reader(tmp_path):
    boxes = np.array([[0, 0, 1, 1], [10, 20, 14, 23], [5, 6, 9, 7]], np.float32)
    p = tmp_path / "a.xml"
    write_voc_xml(p, "a", (30, 40), 1, boxes)
    got, names = read_voc_xml(p, image_size=(30, 40))
    np.testing.assert_array_equal(got, boxes)
    assert names == ["Target"] * 3


def test_synthesize_real_images(tmp_path, require_data):
    root = require_data(DATA, "DenseSIRST").resolve()
    src = tmp_path / "src"
    for image_id in REAL_IDS:  # link (not copy) three real images and their annotations
        for rel in (
            f"PNGImages/{image_id}.png",
            f"SIRST/BBox/{image_id}.xml",
            f"SIRST/BinaryMask/{image_id}_pixels0.png",
            f"SIRST/PaletteMask/{image_id}.png",
            f"SIRST/Point_label/{image_id}_pixels0.txt",
            f"SkySeg/PaletteMask/{image_id}.png",
            f"SkySeg/BinaryMask/{image_id}_pixels0.png",
            f"SkySeg/BinaryMask/{image_id}.xml",
        ):
            if (root / rel).exists():
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                os.symlink(root / rel, src / rel)
    (src / "Splits").mkdir()
    (src / "Splits" / "mini.txt").write_text("\n".join(REAL_IDS) + "\n")
    lib = build_target_library(src, "mini")
    assert len(lib) > 5
    out = tmp_path / "out"
    summary = synthesize(src, "mini", out, seed=0, library=lib, progress=False)
    check_output(out, src, "mini", summary)
    assert summary["images"] == 3
    # DenseSIRST boxes read with the io convention are tight around their masks: the pasted
    # ones follow that style, so the xml treats both alike
    assert summary["box_margin"] == [0, 0, 0, 0]
    # the two full-sky grey images get 1-3 dense areas; the sky-less RGB image none (refused, counted)
    assert summary["targets_added"][0] >= 8 and summary["targets_added"][1] >= 8
    assert summary["targets_added"][2] == 0 and summary["regions_refused"] >= 1
    with Image.open(out / "PNGImages" / "Misc_40.png") as im:
        assert im.mode == "RGB"
    np.testing.assert_array_equal(
        read_image(out / "PNGImages" / "Misc_40.png"), read_image(src / "PNGImages" / "Misc_40.png")
    )
