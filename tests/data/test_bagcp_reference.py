"""BAG-CP as the reference code implements it (irdet.data.bagcp.reference), on real DenseSIRST
images and targets: one region per 5 targets, 25 -> 10 px shrinking regions, only targets
>= 10 px resized (to 7x7), rho toward the top-left, min-max Gaussian, additive raw patch.
Skipped without the dataset (failing instead under IRDET_REQUIRE_DATA=1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from irdet.data.bagcp.reference import (
    REFERENCE_CONSTANTS,
    ReferenceBAGCP,
    build_reference_bagcp,
    reference_gaussian,
    reference_size,
    source_scales,
)
from irdet.errors import ConfigError

SIZES_FOUND = {25, 22, 19, 16, 13, 10}


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Library of the first 40 trainval_v2 images, its 512x512 scales, and 6 resized samples."""
    from conftest import DENSESIRST_ROOT, skip_or_fail_without

    from irdet.data.datasets.densesirst import DenseSIRST
    from irdet.data.bagcp import build_target_library

    root = skip_or_fail_without(DENSESIRST_ROOT, "DenseSIRST")
    lib = build_target_library(root, "trainval_v2", max_images=40)
    ds = DenseSIRST(root, "trainval_v2", sky_mask="palette", target_mask="binary", points=True,
                    transforms=v2.Resize((512, 512), antialias=True))
    samples = [ds[i] for i in range(6)]
    return {"root": root, "lib": lib, "scale": source_scales(lib, (512, 512)), "samples": samples}


def _bag(real, **kw):
    return ReferenceBAGCP(real["lib"], source_scale=kw.pop("source_scale", real["scale"]), **kw)


def _runs(bag, samples, seeds=range(6)):
    """(sample, output, last, rng seed) of every call with at least one target drawn."""
    out = []
    for seed in seeds:
        for s in samples:
            o = bag(s, rng=np.random.default_rng(seed))
            if bag.stats["targets_requested"] and bag.last["targets"]:
                out.append((s, o, bag.last, seed))
    return out


def _only_sky_window(sample, side: int):
    """The sample with its sky cut to one side x side all-sky window holding no target pixel."""
    sky = sample["sky_mask"].numpy() == 1
    occ = sample["target_mask"].numpy() > 0
    H, W = sky.shape
    for y in range(0, H - side, 4):
        for x in range(0, W - side, 4):
            if sky[y : y + side, x : x + side].all() and not occ[max(0, y - 2) : y + side + 2, max(0, x - 2) : x + side + 2].any():
                cut = np.zeros_like(sky, dtype=np.uint8)
                cut[y : y + side, x : x + side] = 1
                return {**sample, "sky_mask": tv_tensors.Mask(torch.from_numpy(cut))}, (x, y)
    raise AssertionError("no window")


# ------------------------------------------------------------------ one region per 5 targets, 25 -> 10 px
def test_one_region_per_five_targets_of_25px_in_sky(real):
    bag = _bag(real)
    runs = 0
    for seed in range(4):
        for s in real["samples"]:
            bag.reset_stats()
            out = bag(s, rng=np.random.default_rng(seed))
            k, last = bag.stats["targets_requested"], bag.last
            assert bag.stats["regions_requested"] == math.ceil(k / 5)
            assert bag.stats["targets_pasted"] == len(last["targets"]) and bag.stats["targets_refused"] == k - len(last["targets"])
            sky = s["sky_mask"].numpy() == 1
            per_region: dict[int, int] = {}
            for x1, y1, x2, y2 in last["regions"]:
                assert x2 - x1 == y2 - y1 and x2 - x1 in SIZES_FOUND and sky[y1:y2, x1:x2].all()
            for t in last["targets"]:
                x, y, w, h = t["grid"]
                assert sky[y : y + h, x : x + w].all()
                if t["region"] >= 0:
                    rx1, ry1, rx2, ry2 = last["regions"][t["region"]]
                    # the reference's range: top-left in [y0, y0 + s - h) x [x0, x0 + s - w)
                    assert rx1 <= x and x + w < rx2 and ry1 <= y and y + h < ry2
                    per_region[t["region"]] = per_region.get(t["region"], 0) + 1
            assert all(n <= 5 for n in per_region.values())
            if last["regions"]:
                runs += 1
                assert last["regions"][0][2] - last["regions"][0][0] == 25  # real sky holds 25 px windows
            assert len(out["boxes"]) == len(s["boxes"]) + len(last["targets"]) == len(out["points"])
    assert runs >= 5


def test_regions_shrink_to_the_sky_available_and_stop_at_10px(real):
    bag = _bag(real)
    for side, expect in ((14, 13), (11, 10), (9, None)):
        cut, (wx, wy) = _only_sky_window(real["samples"][0], side)
        seen = False
        for seed in range(30):
            bag.reset_stats()
            bag(cut, rng=np.random.default_rng(seed))
            k = bag.stats["targets_requested"]
            if k == 0:
                continue
            seen = True
            if expect is None:  # no window of 10 px or more: every region refused, targets placed one by one
                assert bag.last["regions"] == [] and bag.stats["regions_refused"] == math.ceil(k / 5)
            else:
                assert [r[2] - r[0] for r in bag.last["regions"]][:1] == [expect]
            for t in bag.last["targets"]:
                x, y, w, h = t["grid"]
                assert wx <= x and x + w <= wx + side and wy <= y and y + h <= wy + side
            if seen and bag.last["targets"]:
                break
        assert seen


def test_region_search_and_reset_sequence():
    """Sizes tried: 25, 22, ..., 7 (7 never counts), then reset to 25; a found size is kept."""
    c = REFERENCE_CONSTANTS
    sizes = [c["region_size"] - c["region_shrink"] * i for i in range(c["region_sizes_tried"])]
    assert sizes == [25, 22, 19, 16, 13, 10, 7]
    assert {s for s in sizes if s >= c["region_min_found"]} == SIZES_FOUND


# ------------------------------------------------------------------ sizes: only >= 10 px resized, to 7x7
def test_only_targets_of_10px_or_more_are_resized_to_7x7(real):
    bag = _bag(real)
    lib, scale = real["lib"], real["scale"]
    kinds = {"resized": 0, "kept_5_to_9": 0}
    for i in range(len(lib)):
        h, w = lib.patches[i].shape
        nh, nw = (max(1, math.floor(n * f + 0.5)) for n, f in ((h, scale[i, 0]), (w, scale[i, 1])))  # half up
        shape = bag.patch(i).shape
        if max(nh, nw) >= 10:
            assert shape == (7, 7)
            kinds["resized"] += 1
        else:
            assert shape == (nh, nw)
            kinds["kept_5_to_9"] += max(nh, nw) >= 6
    assert kinds["resized"] > 0 and kinds["kept_5_to_9"] > 0  # both cases occur on real targets
    assert reference_size(12, 3) == (7, 7) and reference_size(9, 9) == (9, 9) and reference_size(1, 1, (0.3, 0.3)) == (1, 1)


def test_source_scales_map_each_source_image_to_512(real):
    from irdet.data.io import image_size

    lib, scale = real["lib"], real["scale"]
    for i in (0, len(lib) // 2, len(lib) - 1):
        h, w = image_size(real["root"] / "PNGImages" / f"{lib.source_ids[i]}.png")
        assert scale[i, 0] * h == pytest.approx(512) and scale[i, 1] * w == pytest.approx(512)
    assert (source_scales(lib, None) == 1).all()
    keep = source_scales(lib, (512, 512), keep_ratio=True)
    assert (keep[:, 0] == keep[:, 1]).all()


# ------------------------------------------------------------------ Gaussian: top-left offset, min-max
def test_gaussian_peaks_top_left_and_is_min_max_normalised():
    g0 = reference_gaussian(9, 9, 0.45, 0.45, 0.0, 0.0, 0.0)
    assert np.unravel_index(np.argmax(g0), g0.shape) == (4, 4)
    g = reference_gaussian(9, 9, 0.45, 0.45, 0.2, 0.2, 0.0)
    r, c = np.unravel_index(np.argmax(g), g.shape)
    assert r < 4 and c < 4  # up and left of the centre
    for h, w in ((9, 9), (3, 2), (1, 4), (5, 1)):
        g = reference_gaussian(h, w, 0.3, 0.6, 0.1, 0.05, 37.0)
        assert g.min() == pytest.approx(0.0) and g.max() == pytest.approx(1.0)
    one = reference_gaussian(1, 1, 0.3, 0.3, 0.1, 0.1, 10.0)
    assert one.shape == (1, 1) and one[0, 0] == 1.0  # the reference's 0/0 = NaN, guarded
    # the grid is linspace(-1, 1): with rho = 0, theta = 0 the end pixels of a row are equal
    e = reference_gaussian(1, 5, 0.5, 0.5, 0.0, 0.0, 0.0)
    assert e[0, 0] == pytest.approx(0.0) and e[0, -1] == pytest.approx(0.0) and e[0, 2] == 1.0


def test_drawn_parameters_have_the_reference_ranges(real):
    for _, _, last, _ in _runs(_bag(real), real["samples"][:3], range(3)):
        for t in last["targets"]:
            assert 0.0 <= t["rho_x"] <= 0.2 and 0.0 <= t["rho_y"] <= 0.2  # always toward the top-left
            assert 0.5 <= t["lam"] <= 1.0 and 0.3 <= t["sigma_x"] <= 0.6 and 0.3 <= t["sigma_y"] <= 0.6
            assert float(t["theta"]).is_integer() and -90 <= t["theta"] < 90


# ------------------------------------------------------------------ blend: additive raw patch
def test_additive_raw_patch_on_real_images(real):
    """At native scale the pasted value is exactly T_back + lambda * G * P with P the library's raw
    patch (the source's sky level included), clipped at 255; nothing else changes."""
    bag = _bag(real, source_scale=None)
    lib = real["lib"]
    checked = 0
    for s, out, last, _ in _runs(bag, real["samples"][:4], range(2)):
        before, after = s["image"].numpy(), out["image"].numpy()
        changed = np.zeros(before.shape[1:], bool)
        for t in last["targets"]:
            x, y, w, h = t["grid"]
            raw = lib.patches[t["index"]]
            if max(raw.shape) >= 10:
                assert (h, w) == (7, 7)
                continue
            assert (h, w) == raw.shape
            G = reference_gaussian(h, w, t["sigma_x"], t["sigma_y"], t["rho_x"], t["rho_y"], t["theta"])
            want = np.clip(before[:, y : y + h, x : x + w] + raw * t["lam"] * G, 0, 255)
            np.testing.assert_allclose(after[:, y : y + h, x : x + w], want, rtol=0, atol=1e-4)
            changed[y : y + h, x : x + w] = True
            checked += 1
            assert t["box"] == (x, y, x + w, y + h)
        for t in last["targets"]:
            x, y, w, h = t["grid"]
            changed[y : y + h, x : x + w] = True
        np.testing.assert_array_equal(after[:, ~changed], before[:, ~changed])
    assert checked >= 10
    # the raw patch is the target's contrast (what the paper variant adds) plus its source's background
    # level b: the reference adds the source's sky too, tens of grey levels on real targets
    idx = [t["index"] for _, _, last, _ in _runs(bag, real["samples"][:2], range(1)) for t in last["targets"]]
    for i in idx:
        m = lib.masks[i]
        np.testing.assert_allclose(lib.patches[i][m], lib.appearance[i][m] + lib.background[i], atol=1e-3)
    assert np.mean([lib.background[i] for i in idx]) > 10


def test_clearance_annotations_and_seeds(real):
    bag = _bag(real)
    for s, out, last, seed in _runs(bag, real["samples"][:3], range(2)):
        gt = s["target_mask"].numpy() > 0
        rects = [t["grid"] for t in last["targets"]]
        for i, (x, y, w, h) in enumerate(rects):
            assert not gt[max(0, y - 1) : y + h + 1, max(0, x - 1) : x + w + 1].any()
            for (x2, y2, w2, h2) in rects[:i]:
                assert max(x2 - (x + w), x - (x2 + w2), y2 - (y + h), y - (y2 + h2)) >= 1  # 1 px clearance
        tm = out["target_mask"].numpy()
        for x, y, w, h in rects:
            assert tm[y : y + h, x : x + w].all()
        assert out["num_gt_boxes"] == len(s["boxes"])
        assert out["labels"].tolist()[len(s["boxes"]):] == [0] * len(rects)
        again = bag(s, rng=np.random.default_rng(seed))
        assert torch.equal(again["image"], out["image"]) and torch.equal(again["boxes"], out["boxes"])


# ------------------------------------------------------------------ config
def test_build_from_config_and_errors(real, tmp_path):
    from irdet.data.bagcp import build_bagcp

    bag = build_bagcp({"enabled": True, "variant": "reference", "seed": 3}, real["lib"], img_size=[512, 512])
    assert isinstance(bag, ReferenceBAGCP) and bag.seed == 3
    np.testing.assert_allclose(bag.source_scale, real["scale"])
    assert type(build_bagcp({"enabled": True}, real["lib"])).__name__ == "BAGCP"
    with pytest.raises(ConfigError, match="variant must be one of"):
        build_bagcp({"variant": "official"}, real["lib"])
    with pytest.raises(ConfigError, match="row f only"):
        build_bagcp({"variant": "reference", "cluster": False}, real["lib"])
    with pytest.raises(ConfigError, match=r"remove \['region_size'\]"):
        build_bagcp({"variant": "reference", "region_size": 20}, real["lib"])
    from irdet.data.bagcp import TargetLibrary

    bare = TargetLibrary([a.copy() for a in real["lib"].appearance[:3]])
    with pytest.raises(ConfigError, match="no source images"):
        build_reference_bagcp({}, TargetLibrary(bare.appearance, patches=bare.appearance), img_size=(512, 512))
    with pytest.raises(ConfigError, match="raw patches"):
        build_reference_bagcp({}, bare)


def test_training_pipeline_with_the_reference_variant(small_root):
    """data.bagcp.variant: reference through the data module's BAG-CP builder and the training transforms."""
    from irdet.config import load_config
    from irdet.data.datasets.densesirst import DenseSIRST
    from irdet.data.transforms import build_train_transforms
    from irdet.data.bagcp import build_bagcp_transform

    cfg = load_config("configs/ablations/table3_f_reference.yaml", [f"data.root={small_root}"])
    bag = build_bagcp_transform(cfg, small_root)
    assert isinstance(bag, ReferenceBAGCP)
    tf = build_train_transforms((512, 512), bagcp=bag, crop=(256, 256))
    ds = DenseSIRST(small_root, "trainval_v2", sky_mask="palette", transforms=tf)
    torch.manual_seed(0)
    for i in range(3):
        s = ds[i]
        assert s["image"].shape == (3, 256, 256) and len(s["boxes"]) == len(s["labels"])
    assert bag.stats["samples"] == 3
