"""The BAG-CP target-library cache (irdet.data.bagcp.cache): a cached library is reused only
while its split file and the listed images, xmls and masks are unchanged."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from fixtures import make_dataset
from irdet.config import load_config
from irdet.data.bagcp import TargetLibrary, build_bagcp_transform, build_target_library
from irdet.data.bagcp.cache import cached_target_library, library_cache_path, source_fingerprint
from irdet.data.synthesis import library_for


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("IRDET_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    images = {}
    for i in range(4):
        img = (rng.random((40, 48)) * 30 + 60).astype(np.uint8)
        img[10 + i:13 + i, 10:13] = 250  # one bright target per image, at a different row
        images[f"im{i}"] = (img, [[10, 10 + i, 13, 13 + i]])
    root = make_dataset(tmp_path / "ds", images, split="train")
    (root / "Splits" / "train.txt").write_text("im0\nim1\n")
    return root


def _split(root, ids):
    (root / "Splits" / "train.txt").write_text("\n".join(ids) + "\n")


def test_build_edit_split_rebuild(root):
    logs = []
    lib = cached_target_library(root, "train", log=logs.append)
    assert sorted(set(lib.source_ids)) == ["im0", "im1"] and len(logs) == 1 and "building" in logs[0]
    assert library_cache_path(root, "train").is_file()
    again = cached_target_library(root, "train", log=logs.append)
    assert len(logs) == 1 and again.source_ids == lib.source_ids  # unchanged: loaded from the cache
    _split(root, ["im0", "im2", "im3"])  # the split is edited (a re-split)
    lib = cached_target_library(root, "train", log=logs.append)
    assert sorted(set(lib.source_ids)) == ["im0", "im2", "im3"]
    assert len(logs) == 2 and "rebuilding" in logs[1]
    assert TargetLibrary.load(library_cache_path(root, "train")).source_ids == lib.source_ids  # cache overwritten


def test_changed_image_rebuilds(root):
    logs = []
    before = cached_target_library(root, "train", log=logs.append)
    path = root / "PNGImages" / "im1.png"
    arr = np.asarray(Image.open(path)).copy()
    arr[11:14, 10:13] = 180  # im1's target, dimmer
    Image.fromarray(arr).save(path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a distinct mtime even on coarse clocks
    after = cached_target_library(root, "train", log=logs.append)
    assert len(logs) == 2 and "rebuilding" in logs[1]
    assert not np.array_equal(before.patches[1], after.patches[1])  # the patch was cut from the new pixels


def test_fingerprint_reads_stats_only(root):
    fp = source_fingerprint(root, "train")
    assert fp == source_fingerprint(root, "train")
    (root / "SIRST" / "BinaryMask" / "im0_pixels0.png").unlink()
    assert source_fingerprint(root, "train") != fp  # a missing file changes it too (no error here)


def test_old_or_corrupt_cache_is_rebuilt(root):
    cache = library_cache_path(root, "train")
    build_target_library(root, "train").save(cache)  # a cache written before fingerprints existed
    logs = []
    lib = cached_target_library(root, "train", log=logs.append)
    assert len(logs) == 1 and "rebuilding" in logs[0] and lib.meta["source_fingerprint"]
    cache.write_bytes(b"not a zip")
    cached_target_library(root, "train", log=logs.append)
    assert len(logs) == 2 and "unreadable" in logs[1]
    assert cached_target_library(root, "train", log=logs.append) is not None and len(logs) == 2


def test_training_and_sequence_synthesis_share_the_checked_cache(root):
    cfg = load_config(None, ["data.train_split=train"])
    bag = build_bagcp_transform(cfg, root)
    assert sorted(set(bag.library.source_ids)) == ["im0", "im1"]
    _split(root, ["im3"])
    assert sorted(set(build_bagcp_transform(cfg, root).library.source_ids)) == ["im3"]
    _split(root, ["im2"])
    assert sorted(set(library_for(root, "train").source_ids)) == ["im2"]
