"""DenseSIRST loading: real files, image modes, and every bad-file case's documented error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from fixtures import make_dataset, write_xml
from irdet.data.datasets.densesirst import DenseSIRST, read_split, resolve_data_root, sample_root
from irdet.data.datasets.inputs import ImageFolder
from irdet.data.io import read_image, read_mask, read_points, read_voc_xml
from irdet.errors import DataError


# ----------------------------------------------------------------------------- real files
def test_real_splits_and_counts(densesirst):
    trainval = read_split(densesirst, "trainval_v2")
    test = read_split(densesirst, "test_v2")
    assert len(trainval) == 768 and len(test) == 256  # the official split sizes (the files lack a final newline)
    assert not set(trainval) & set(test)


def test_real_item_parsing(densesirst):
    ds = DenseSIRST(densesirst, "test_v2", sky_mask="palette", target_mask="binary", points=True)
    image_id = "20210725-S1-561"
    item = ds[ds.ids.index(image_id)]
    assert isinstance(item["image"], tv_tensors.Image) and item["image"].shape == (3, 1080, 1918)
    assert item["image"].dtype == torch.float32 and 0 <= item["image"].min() and item["image"].max() <= 255
    boxes = item["boxes"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.shape == (19, 4)
    # first object of the xml: 825 288 829 291, read as pixel edges
    assert boxes[0].tolist() == [825.0, 288.0, 829.0, 291.0]
    assert item["labels"].tolist() == [0] * 19
    assert set(item["sky_mask"].unique().tolist()) <= {0, 1}
    assert item["points"].shape == (19, 2)
    # every point lies inside some box, and the target mask is 1 inside the boxes
    pts = item["points"] + 0.5  # pixel index -> pixel-edge coordinates
    inside = (pts[:, None, 0] >= boxes[None, :, 0]) & (pts[:, None, 0] <= boxes[None, :, 2]) & \
             (pts[:, None, 1] >= boxes[None, :, 1]) & (pts[:, None, 1] <= boxes[None, :, 3])
    assert inside.any(1).all()
    tm = item["target_mask"]
    for x1, y1, x2, y2 in boxes.int().tolist():
        assert tm[y1:y2, x1:x2].sum() > 0
    # the binary sky mask is the same annotation as the palette one
    sky_bin = DenseSIRST(densesirst, [image_id], sky_mask="binary")[0]["sky_mask"]
    assert torch.equal(sky_bin, item["sky_mask"])


def test_real_rgb_and_rgba_images_load(densesirst):
    modes = {}
    for image_id in ("Misc_53",):
        arr = read_image(densesirst / "PNGImages" / f"{image_id}.png")
        modes[image_id] = arr.shape
    assert modes["Misc_53"][2] == 3
    ids = read_split(densesirst, "trainval_v2") + read_split(densesirst, "test_v2")
    rgba = [i for i in ids if Image.open(densesirst / "PNGImages" / f"{i}.png").mode == "RGBA"]
    assert len(rgba) == 1
    assert read_image(densesirst / "PNGImages" / f"{rgba[0]}.png").shape[2] == 3


def test_ground_truth_matches_items(densesirst):
    ds = DenseSIRST(densesirst, read_split(densesirst, "test_v2")[:3], sky_mask=None)
    boxes, sizes = ds.ground_truth()
    for i, image_id in enumerate(ds.ids):
        item = ds[i]
        assert sizes[image_id] == tuple(item["image"].shape[-2:])
        assert np.array_equal(boxes[image_id], item["boxes"].numpy())


def test_packaged_sample_loads():
    root = resolve_data_root("sample")
    assert root == sample_root()
    ds = DenseSIRST(root, "test_v2", sky_mask="palette", target_mask="binary", points=True)
    assert len(ds) == 6
    for item in ds:
        assert item["boxes"].shape[0] == item["points"].shape[0] > 0
    assert sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) <= 2 * 1024 * 1024


# ----------------------------------------------------------------------------- image modes
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "I;16", "LA", "P"])
def test_image_modes_load(tmp_path, mode):
    rng = np.random.default_rng(0)
    if mode == "I;16":
        arr = (rng.integers(1000, 5000, (20, 30))).astype(np.uint16)
        img = Image.fromarray(arr)
    elif mode in ("RGB", "RGBA"):
        img = Image.fromarray(rng.integers(0, 255, (20, 30, len(mode))).astype(np.uint8), mode=mode)
    else:
        img = Image.fromarray(rng.integers(0, 255, (20, 30)).astype(np.uint8), mode="L").convert(mode)
    path = tmp_path / f"im_{mode.replace(';', '')}.png"
    img.save(path)
    out = read_image(path)
    assert out.shape == (20, 30, 3) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    if mode == "I;16":  # stretched from the image's own range, not divided by 257
        assert out.min() == 0 and out.max() == pytest.approx(255)
    if mode == "L":
        assert np.array_equal(out[..., 0], np.asarray(img, np.float32)) and np.array_equal(out[..., 0], out[..., 2])


# ----------------------------------------------------------------------------- bad files
def _one_image(tmp_path, boxes=((10, 10, 12, 12),)):
    return make_dataset(tmp_path / "ds", {"a": (np.full((32, 48), 40, np.uint8), list(boxes))})


def test_missing_image_names_file(tmp_path):
    root = _one_image(tmp_path)
    (root / "PNGImages" / "a.png").unlink()
    with pytest.raises(DataError, match=r"PNGImages/a\.png: file not found"):
        DenseSIRST(root, "test_v2")[0]


def test_corrupt_image_names_file(tmp_path):
    root = _one_image(tmp_path)
    path = root / "PNGImages" / "a.png"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match=r"a\.png: cannot read image"):
        DenseSIRST(root, "test_v2")[0]
    path.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"a\.png: cannot read image"):
        DenseSIRST(root, "test_v2")[0]


def test_missing_and_malformed_xml(tmp_path):
    root = _one_image(tmp_path)
    xml = root / "SIRST" / "BBox" / "a.xml"
    xml.write_text("<annotation><object>")
    with pytest.raises(DataError, match=r"a\.xml: malformed xml"):
        DenseSIRST(root, "test_v2")[0]
    xml.write_text("<annotation><object><name>Target</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>3</xmax></bndbox></object></annotation>")
    with pytest.raises(DataError, match=r"a\.xml: object 0 has no bndbox/ymax"):
        DenseSIRST(root, "test_v2")[0]
    xml.write_text("<annotation><object><bndbox><xmin>a</xmin><ymin>1</ymin><xmax>3</xmax><ymax>3</ymax></bndbox></object></annotation>")
    with pytest.raises(DataError, match="not a number"):
        DenseSIRST(root, "test_v2")[0]
    xml.unlink()
    with pytest.raises(DataError, match=r"a\.xml: file not found"):
        DenseSIRST(root, "test_v2")[0]


@pytest.mark.parametrize("bad", [(20, 10, 15, 12), (10, 10, 10, 12), (10, 12, 11, 12)])
def test_degenerate_box_is_reported(tmp_path, bad):
    root = _one_image(tmp_path, boxes=((10, 10, 12, 12), bad))
    with pytest.raises(DataError, match=r"a\.xml: object 1 is a degenerate box"):
        DenseSIRST(root, "test_v2")[0]


def test_one_pixel_box_is_legal(tmp_path):
    root = _one_image(tmp_path, boxes=((10, 10, 11, 11),))
    item = DenseSIRST(root, "test_v2")[0]
    assert item["boxes"].tolist() == [[10.0, 10.0, 11.0, 11.0]]


def test_box_outside_image_is_reported(tmp_path):
    root = _one_image(tmp_path, boxes=((40, 10, 60, 12),))
    with pytest.raises(DataError, match="outside the 48x32 image"):
        DenseSIRST(root, "test_v2")[0]


def test_missing_and_bad_masks(tmp_path):
    root = _one_image(tmp_path)
    (root / "SkySeg" / "PaletteMask" / "a.png").unlink()
    with pytest.raises(DataError, match=r"SkySeg/PaletteMask/a\.png: file not found"):
        DenseSIRST(root, "test_v2", sky_mask="palette")[0]
    Image.fromarray(np.zeros((10, 10), np.uint8), mode="P").save(root / "SkySeg" / "PaletteMask" / "a.png")
    with pytest.raises(DataError, match=r"a\.png: mask size 10x10 differs from image size 48x32"):
        DenseSIRST(root, "test_v2", sky_mask="palette")[0]
    (root / "SIRST" / "BinaryMask" / "a_pixels0.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"a_pixels0\.png: cannot read image"):
        DenseSIRST(root, "test_v2", sky_mask=None, target_mask="binary")[0]
    bad = Image.fromarray(np.tile(np.arange(4, dtype=np.uint8), (32, 12)), mode="P")
    bad.putpalette(list(range(12)))
    bad.save(root / "SIRST" / "PaletteMask" / "a.png")
    with pytest.raises(DataError, match="index values"):
        read_mask(root / "SIRST" / "PaletteMask" / "a.png", palette=True)


def test_bad_points_and_split(tmp_path):
    root = _one_image(tmp_path)
    (root / "SIRST" / "Point_label" / "a_pixels0.txt").write_text("3 4\nfoo bar\n")
    with pytest.raises(DataError, match=r"a_pixels0\.txt: line 2"):
        DenseSIRST(root, "test_v2", points=True)[0]
    with pytest.raises(DataError, match=r"Splits/nope\.txt: split not found \(available: test_v2\)"):
        DenseSIRST(root, "nope")
    (root / "Splits" / "empty.txt").write_text("\n")
    with pytest.raises(DataError, match="split is empty"):
        DenseSIRST(root, "empty")


def test_points_and_xml_conventions(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("10 20\n\n3 4\n")
    assert read_points(path).tolist() == [[10.0, 20.0], [3.0, 4.0]]
    write_xml(tmp_path / "b.xml", [(1, 2, 3, 5)])
    boxes, names = read_voc_xml(tmp_path / "b.xml")
    assert boxes.tolist() == [[1.0, 2.0, 3.0, 5.0]] and names == ["Target"]


def test_data_root_errors(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="dataset root not found"):
        resolve_data_root(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no PNGImages"):
        resolve_data_root(tmp_path / "empty")
    root = _one_image(tmp_path)
    monkeypatch.setenv("IRDET_DATA", str(root))
    assert resolve_data_root(None) == root


def test_layout_registry_answers_for_densesirst(monkeypatch):
    from irdet.data.datasets import DATASETS, build_dataset, dataset_class, has_sky_masks, resolve_root, split_ids
    from irdet.data.datasets.base import SingleFrameDataset
    from irdet.errors import ConfigError

    assert set(DATASETS) == {"densesirst", "yolo_txt"}
    assert all(issubclass(cls, SingleFrameDataset) and cls.name == name for name, cls in DATASETS.items())
    cfg = {"data": {"layout": "densesirst"}}
    assert dataset_class({}) is dataset_class(cfg) is DenseSIRST and has_sky_masks(cfg)
    assert resolve_root(cfg, "sample") == sample_root()
    assert split_ids(cfg, sample_root(), "test_v2") == read_split(sample_root(), "test_v2")
    ds = build_dataset(cfg, sample_root(), "test_v2", sky_mask="binary")
    assert isinstance(ds, DenseSIRST) and ds[0]["sky_mask"].shape == ds[0]["image"].shape[-2:]
    with pytest.raises(ConfigError, match=r"data.layout must be one of \['densesirst', 'yolo_txt'\], got 'voc'"):
        build_dataset({"data": {"layout": "voc"}}, sample_root(), "test_v2")


def test_image_folder(tmp_path):
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 9), np.uint8)).save(tmp_path / "imgs" / "x.png")
    Image.fromarray(np.zeros((8, 9, 3), np.uint8)).save(tmp_path / "imgs" / "sub" / "y.jpg")
    ds = ImageFolder(tmp_path / "imgs")
    assert [i for i, _ in ds.items] == ["sub/y", "x"]
    assert ds[0]["image"].shape == (3, 8, 9)
    with pytest.raises(DataError, match="file or folder not found"):
        ImageFolder(tmp_path / "missing")
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match="folder has no images"):
        ImageFolder(tmp_path / "none")
