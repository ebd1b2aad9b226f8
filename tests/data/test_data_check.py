"""The up-front data check (DenseSIRST.find_problems / check, DenseSIRSTDataModule.check_files):
every broken file of the splits a run needs is named in one error, before the first step."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pytest
from PIL import Image

from fixtures import make_dataset
from irdet.config import load_config
from irdet.data.datasets.densesirst import DenseSIRST, sample_root
from irdet.engine.datamodule import DataModule as DenseSIRSTDataModule
from irdet.errors import DataError, DataFilesError


def _images(n: int = 4, size=(48, 64)) -> dict:
    rng = np.random.default_rng(0)
    return {f"im{i}": ((rng.random(size) * 200).astype(np.uint8), [[10, 10, 14, 13], [30, 20, 33, 24]]) for i in range(n)}


@pytest.fixture
def root(tmp_path):
    root = make_dataset(tmp_path / "ds", _images(), split="train")
    (root / "Splits" / "val.txt").write_text("im2\nim3\n")
    return root


def _break(root) -> list[str]:
    """Three broken files: a truncated image (train), a malformed xml (val), a sky mask of the wrong size (train)."""
    img = root / "PNGImages" / "im1.png"
    img.write_bytes(img.read_bytes()[:200])
    xml = root / "SIRST" / "BBox" / "im3.xml"
    xml.write_text("<annotation><object>")
    sky = root / "SkySeg" / "PaletteMask" / "im0.png"
    Image.fromarray(np.zeros((10, 10), np.uint8), mode="P").save(sky)
    return [str(img), str(xml), str(sky)]


def test_good_dataset_has_no_problems(root):
    ds = DenseSIRST(root, "train", sky_mask="palette", target_mask="binary", points=True)
    assert ds.find_problems() == []
    ds.check()
    DenseSIRST(sample_root(), "sample", sky_mask="binary", target_mask="palette", points=True).check()


def test_two_broken_files_named_in_one_error(root):
    img, xml, _ = _break(root)
    with pytest.raises(DataFilesError) as info:
        DenseSIRST(root, ["im1", "im3", "im2"], sky_mask=None).check()
    exc = info.value
    assert isinstance(exc, DataError)
    lines = str(exc).splitlines()
    assert lines[0] == f"{root}: 2 broken data files (fix them or drop their ids from the split):"
    assert lines[1].startswith(f"  {img}: cannot read image") and lines[2].startswith(f"  {xml}: malformed xml")
    assert [p.path for p in exc.problems] == [img, xml]
    again = pickle.loads(pickle.dumps(exc))  # survives a DataLoader worker / multiprocessing trip
    assert str(again) == str(exc) and len(again.problems) == 2


def test_missing_files_and_bad_boxes_are_found(root):
    (root / "SIRST" / "BinaryMask" / "im0_pixels0.png").unlink()
    (root / "SIRST" / "BBox" / "im2.xml").write_text(
        "<annotation><object><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>5</xmax><ymax>9</ymax></bndbox></object></annotation>")
    problems = DenseSIRST(root, "train", sky_mask=None, target_mask="binary").find_problems()
    assert [(p.path.rsplit("/", 1)[-1], p.problem.split(" (")[0]) for p in problems] == [
        ("im0_pixels0.png", "file not found"), ("im2.xml", "object 0 is a degenerate box")]


def test_datamodule_setup_reports_train_and_val_together_before_building(root, tmp_path, monkeypatch):
    monkeypatch.setenv("IRDET_CACHE", str(tmp_path / "cache"))
    expected = _break(root)
    cfg = load_config(None, ["data.train_split=train", "data.val_split=val", "data.num_workers=0"])
    dm = DenseSIRSTDataModule(cfg, root)
    with pytest.raises(DataFilesError) as info:
        dm.setup("fit")
    assert str(info.value).splitlines()[0].endswith(": 3 broken data files (fix them or drop their ids from the split):")
    assert sorted(p.path for p in info.value.problems) == sorted(expected)
    assert dm.train_set is None and not (tmp_path / "cache").exists()  # nothing built: no BAG-CP library either


def test_datamodule_setup_passes_on_good_data(root, tmp_path, monkeypatch):
    monkeypatch.setenv("IRDET_CACHE", str(tmp_path / "cache"))
    cfg = load_config(None, ["data.train_split=train", "data.val_split=val", "data.num_workers=0"])
    dm = DenseSIRSTDataModule(cfg, root)
    dm.setup("fit")
    assert len(dm.train_set) == 4 * cfg["data"]["repeat"] and len(dm.val_set) == 2


def test_real_trainval_check_is_fast(densesirst):
    cfg = load_config("configs/bafenet_r18_densesirst_cpu.yaml", ["data.val_split=val_v2"])
    start = time.perf_counter()
    DenseSIRSTDataModule(cfg, densesirst).check_files("fit")  # images, xmls, sky + target masks; val xmls
    elapsed = time.perf_counter() - start
    print(f"\ncheck_files('fit') on trainval_v2 + val_v2: {elapsed:.2f} s")
    assert elapsed < 60
