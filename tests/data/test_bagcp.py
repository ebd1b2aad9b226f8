"""BAG-CP (irdet.data.bagcp) and the target library (irdet.data.bagcp.library, .extract).

Synthetic fixtures (small arrays) for geometry, photometry (Eq. 1–3), switches, annotations,
degenerate cases and seeding; one test on real DenseSIRST images (skipped without the data,
failing instead under IRDET_REQUIRE_DATA=1).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from irdet.data.bagcp import (STAT_KEYS, BAGCP, TargetLibrary, build_bagcp, build_target_library, extract_targets,
                               fit_size, gaussian_weights, gaussian_weights_batch)
from irdet.errors import ConfigError, DataError

DATA = Path("../shared/data/DenseSIRST/SIRSTdevkit")


# ---------------------------------------------------------------------- fixtures
def _blob(h, w, peak, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    g = np.exp(-((yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2) / (0.5 * max(h, w)))
    return (peak * g + rng.uniform(0, 2, (h, w))).astype(np.float32)


@pytest.fixture(scope="module")
def library():
    """Entries: 3x3, 5x5, 4x2, 1x1, a 9x7 (shrunk at paste time) and a dark 2x2 target."""
    apps = [_blob(3, 3, 40, 1), _blob(5, 5, 60, 2), _blob(4, 2, 30, 3), np.array([[25.0]], np.float32),
            _blob(9, 7, 80, 4), -_blob(2, 2, 20, 5)]
    masks = [np.ones(a.shape, bool) for a in apps]
    masks[1][0, 0] = masks[1][0, 4] = masks[1][4, 0] = masks[1][4, 4] = False  # round 5x5 footprint
    apps = [a * m for a, m in zip(apps, masks)]
    return TargetLibrary(apps, masks)


def make_sample(h=128, w=128, sky="top", seed=0, boxes=((10, 100, 14, 104), (60, 20, 63, 23)), value=60.0):
    """Textured image, sky mask (top half, all, none), gt boxes with target mask and points."""
    rng = np.random.default_rng(seed)
    img = (value + rng.normal(0, 3, (h, w))).clip(0, 255).astype(np.float32)
    img = np.repeat(img[None], 3, 0)
    skym = np.zeros((h, w), np.uint8)
    if sky == "top":
        skym[: h // 2] = 1
    elif sky == "all":
        skym[:] = 1
    tmask = np.zeros((h, w), np.uint8)
    pts = []
    for x1, y1, x2, y2 in boxes:
        tmask[y1:y2, x1:x2] = 1
        img[:, y1:y2, x1:x2] += 50
        pts.append(((x1 + x2) // 2, (y1 + y2) // 2))
    bx = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return {
        "image_id": "synthetic",
        "image": tv_tensors.Image(torch.from_numpy(img)),
        "boxes": tv_tensors.BoundingBoxes(bx, format="XYXY", canvas_size=(h, w)),
        "labels": torch.zeros(len(bx), dtype=torch.int64),
        "sky_mask": tv_tensors.Mask(torch.from_numpy(skym)),
        "target_mask": tv_tensors.Mask(torch.from_numpy(tmask)),
        "points": tv_tensors.KeyPoints(torch.tensor(pts, dtype=torch.float32).reshape(-1, 2), canvas_size=(h, w)),
    }


def gap(a, b) -> float:
    """Clearance in pixels between two pixel-edge boxes (negative or 0 when they touch/overlap)."""
    return max(b[0] - a[2], a[0] - b[2], b[1] - a[3], a[1] - b[3])


def grid_box(t):
    x, y, w, h = t["grid"]
    return (x, y, x + w, y + h)


def ref_gaussian(h, w, rx, ry, sx, sy, theta_deg):
    """Eqs. 2-3 written independently: pixel centres on the box grid normalised to [-1, 1],
    centre offset rho*w px (= 2*rho normalised), rotation about the offset centre, then the
    peak normalised to 1 over the box pixels."""
    G = np.zeros((h, w))
    t = math.radians(theta_deg)
    for i in range(h):
        for j in range(w):
            u = -1.0 + (j + 0.5) * 2.0 / w
            v = -1.0 + (i + 0.5) * 2.0 / h
            ddx, ddy = u - 2 * rx, v - 2 * ry
            xp = math.cos(t) * ddx - math.sin(t) * ddy
            yp = math.sin(t) * ddx + math.cos(t) * ddy
            G[i, j] = math.exp(-(xp**2) / (2 * sx**2) - yp**2 / (2 * sy**2))
    return G / G.max()


# ---------------------------------------------------------------------- geometry
def test_cluster_geometry_in_sky(library):
    sample = make_sample(sky="top")
    sky = sample["sky_mask"].numpy() == 1
    gt = sample["boxes"].tolist()
    n_total = 0
    for seed in range(12):
        bag = BAGCP(library, seed=seed)
        out = bag(sample)
        st = bag.stats
        assert 1 <= st["regions_requested"] <= 3
        assert st["regions_placed"] + st["regions_refused"] == st["regions_requested"]
        assert st["targets_pasted"] + st["targets_refused"] == st["targets_requested"]
        assert 8 * st["regions_requested"] <= st["targets_requested"] <= 12 * st["regions_requested"]
        targets, regions = bag.last["targets"], bag.last["regions"]
        assert len(targets) == st["targets_pasted"] == len(out["boxes"]) - len(gt)
        assert len(regions) == st["regions_placed"]
        for r, (x0, y0, x1, y1) in enumerate(regions):
            assert (x1 - x0, y1 - y0) == (20, 20)
            assert sky[y0:y1, x0:x1].all()
            mine = [t for t in targets if t["region"] == r]
            assert len(mine) <= 12
            xs = [grid_box(t) for t in mine]
            assert all(x0 <= b[0] and b[2] <= x1 and y0 <= b[1] and b[3] <= y1 for b in xs)
        for i, t in enumerate(targets):
            gb, ab = grid_box(t), t["box"]
            assert 1 <= ab[2] - ab[0] <= 5 and 1 <= ab[3] - ab[1] <= 5
            assert gb[0] <= ab[0] and ab[2] <= gb[2] and gb[1] <= ab[1] and ab[3] <= gb[3]
            assert sky[gb[1] : gb[3], gb[0] : gb[2]].all()
            for other in targets[:i]:
                assert gap(gb, grid_box(other)) >= 1
            for g in gt:
                assert gap(gb, g) >= 1
        # appended annotations
        nb = out["boxes"][len(gt) :].tolist()
        assert nb == [list(map(float, t["box"])) for t in targets]
        assert out["labels"].dtype == torch.int64 and (out["labels"][len(gt) :] == 0).all()
        n_total += len(targets)
    assert n_total > 12 * 8 * 0.8


def test_tight_spacing_neighbours(library):
    sample = make_sample(sky="all", boxes=())
    near, total = 0, 0
    for seed in range(6):
        bag = BAGCP(library, seed=seed, targets_per_region=(8, 8))
        bag(sample)
        targets = bag.last["targets"]
        for t in targets:
            same = [grid_box(o) for o in targets if o is not t and o["region"] == t["region"]]
            if same:
                total += 1
                near += min(gap(grid_box(t), b) for b in same) <= 2
    assert near >= 0.9 * total


# ---------------------------------------------------------------------- photometry
def test_pixels_change_only_on_pasted_targets_and_eq1_holds(library):
    sample = make_sample(sky="all", seed=3)
    bag = BAGCP(library, seed=7)
    out = bag(sample)
    before, after = sample["image"].numpy().astype(np.float64), out["image"].numpy().astype(np.float64)
    assert out["image"].dtype == torch.float32 and np.isfinite(after).all()
    changed = (after != before).any(axis=0)
    new_pixels = np.zeros(changed.shape, bool)
    for t in bag.last["targets"]:
        x, y, w, h = t["grid"]
        b, f = library.resized(t["index"], 5)
        new_pixels[y : y + h, x : x + w] |= f
        # Eq. 1 for every target, G recomputed independently from the recorded draws
        assert 0.5 <= t["lam"] <= 1.0 and 0.3 <= t["sigma_x"] <= 0.6 and 0.3 <= t["sigma_y"] <= 0.6
        assert abs(t["rho_x"]) <= 0.2 and abs(t["rho_y"]) <= 0.2 and -90 <= t["theta"] <= 90
        G = ref_gaussian(h, w, t["rho_x"], t["rho_y"], t["sigma_x"], t["sigma_y"], t["theta"])
        expected = np.clip(before[:, y : y + h, x : x + w] + b * t["lam"] * G, 0, 255)
        got = after[:, y : y + h, x : x + w]
        np.testing.assert_allclose(got[:, f], expected[:, f], atol=1e-3)
        np.testing.assert_array_equal(got[:, ~f], before[:, y : y + h, x : x + w][:, ~f])
    assert not (changed & ~new_pixels).any()
    # the three channels receive the same change
    d = after - before
    np.testing.assert_allclose(d[0], d[1], atol=1e-4)
    np.testing.assert_allclose(d[0], d[2], atol=1e-4)
    # input untouched
    assert sample["image"].numpy().astype(np.float64).tolist() == before.tolist()


def test_hard_paste_without_gaussian(library):
    sample = make_sample(sky="all", seed=4)
    bag = BAGCP(library, seed=1, gaussian=False)
    out = bag(sample)
    before, after = sample["image"].numpy(), out["image"].numpy()
    assert bag.last["targets"]
    for t in bag.last["targets"]:
        x, y, w, h = t["grid"]
        b, f = library.resized(t["index"], 5)
        assert t["lam"] == 1.0
        exp = np.clip(before[:, y : y + h, x : x + w] + b, 0, 255)
        np.testing.assert_allclose(after[:, y : y + h, x : x + w][:, f], exp[:, f], atol=1e-4)


def test_clipping_to_value_range(library):
    sample = make_sample(sky="all", seed=0, value=250.0, boxes=())
    out = BAGCP(library, seed=2, gaussian=False)(sample)
    img = out["image"].numpy()
    assert img.max() <= 255.0 and img.min() >= 0.0


def test_gaussian_weights_properties():
    g = gaussian_weights(5, 5, 0.0, 0.0, 0.45, 0.45, 0.0)
    assert g.shape == (5, 5) and g.max() == pytest.approx(1.0) and g[2, 2] == pytest.approx(1.0)
    np.testing.assert_allclose(g, g.T, atol=1e-6)  # isotropic & centred -> symmetric
    # offset centre moves the peak, rotation by 90 deg swaps the axes
    assert np.unravel_index(np.argmax(gaussian_weights(5, 5, 0.2, 0.0, 0.3, 0.3, 0.0)), (5, 5)) == (2, 3)
    a = gaussian_weights(5, 5, 0, 0, 0.3, 0.6, 90.0)
    np.testing.assert_allclose(a, gaussian_weights(5, 5, 0, 0, 0.6, 0.3, 0.0), atol=1e-5)
    rng = np.random.default_rng(0)
    for _ in range(20):
        h, w = rng.integers(1, 6, 2)
        p = (*rng.uniform(-0.2, 0.2, 2), *rng.uniform(0.3, 0.6, 2), rng.uniform(-90, 90))
        np.testing.assert_allclose(gaussian_weights(h, w, *p), ref_gaussian(h, w, *p), atol=1e-6)
        batch = gaussian_weights_batch([h], [w], [p[0]], [p[1]], [p[2]], [p[3]], [p[4]], size=5)
        np.testing.assert_allclose(batch[0, :h, :w], ref_gaussian(h, w, *p), atol=1e-6)
        assert (batch[0, h:, :] == 0).all() and (batch[0, :, w:] == 0).all()
    # unnormalised Eq. 2: peak 1 at the continuous centre only
    assert gaussian_weights(2, 2, 0, 0, 0.45, 0.45, 0, peak_norm=False).max() < 0.5


# ---------------------------------------------------------------------- switches
def test_copy_paste_off_is_identity(library):
    sample = make_sample()
    bag = BAGCP(library, copy_paste=False)
    assert bag(sample) is sample
    assert bag.stats["samples_skipped"] == 1
    assert BAGCP(None, copy_paste=False)(sample) is sample
    bag = BAGCP(library, prob=0.0, seed=0)
    assert bag(sample) is sample


def test_background_aware_off_places_outside_sky(library):
    sample = make_sample(sky="top", boxes=())
    sky = sample["sky_mask"].numpy() == 1
    for cluster in (True, False):
        outside_off, outside_on = 0, 0
        for seed in range(10):
            off = BAGCP(library, seed=seed, cluster=cluster, background_aware=False)
            off(sample)
            outside_off += sum(not sky[b[1] : b[3], b[0] : b[2]].all() for b in map(grid_box, off.last["targets"]))
            on = BAGCP(library, seed=seed, cluster=cluster)
            on(sample)
            outside_on += sum(not sky[b[1] : b[3], b[0] : b[2]].all() for b in map(grid_box, on.last["targets"]))
        assert outside_off > 0
        assert outside_on == 0
    # without background awareness, no sky mask is needed
    s2 = {k: v for k, v in sample.items() if k != "sky_mask"}
    assert len(BAGCP(library, seed=0, background_aware=False)(s2)["boxes"]) > 0
    with pytest.raises(ValueError, match="sky_mask"):
        BAGCP(library, seed=0)(s2)


def test_cluster_off_spreads_targets(library):
    sample = make_sample(sky="all", boxes=())
    spreads = []
    for seed in range(5):
        bag = BAGCP(library, seed=seed, cluster=False)
        bag(sample)
        assert bag.stats["regions_requested"] == 0
        boxes = np.array([t["box"] for t in bag.last["targets"]])
        assert 8 <= len(boxes) <= 36 and all(t["region"] == -1 for t in bag.last["targets"])
        spreads.append(max(boxes[:, 2].max() - boxes[:, 0].min(), boxes[:, 3].max() - boxes[:, 1].min()))
        gb = [grid_box(t) for t in bag.last["targets"]]
        assert all(gap(a, b) >= 1 for i, a in enumerate(gb) for b in gb[:i])
    assert max(spreads) > 20 and np.mean(spreads) > 40


# ---------------------------------------------------------------------- annotations
def test_annotations_consistent(library):
    sample = make_sample(sky="all", seed=5)
    n0 = len(sample["boxes"])
    bag = BAGCP(library, seed=11)
    out = bag(sample)
    for key in ("image", "boxes", "sky_mask", "target_mask", "points"):
        assert type(out[key]) is type(sample[key])
    assert out["boxes"].canvas_size == sample["boxes"].canvas_size
    assert out["points"].canvas_size == sample["points"].canvas_size
    assert out["boxes"].format == tv_tensors.BoundingBoxFormat.XYXY
    assert torch.equal(out["sky_mask"], sample["sky_mask"])
    assert out["image_id"] == "synthetic"
    assert out["num_gt_boxes"] == n0 and torch.equal(out["boxes"][:n0], sample["boxes"])
    tm0, tm1 = sample["target_mask"].numpy(), out["target_mask"].numpy()
    assert out["target_mask"].dtype == torch.uint8 and set(np.unique(tm1)) <= {0, 1}
    assert (tm1 >= tm0).all()
    added = (tm1 > 0) & (tm0 == 0)
    boxes = out["boxes"][n0:].numpy().astype(int)
    points = out["points"][n0:].numpy()
    assert len(boxes) == len(points) == len(bag.last["targets"]) == len(out["labels"]) - n0
    union = np.zeros_like(added)
    for (x1, y1, x2, y2), (px, py) in zip(boxes, points):
        assert x2 > x1 and y2 > y1
        m = added[y1:y2, x1:x2]
        # box tight around the pasted pixels
        assert m[0].any() and m[-1].any() and m[:, 0].any() and m[:, -1].any()
        # point: the (col, row) index of a pasted pixel inside the box
        assert px % 1 == 0 and py % 1 == 0
        assert x1 <= px < x2 and y1 <= py < y2 and added[int(py), int(px)]
        union[y1:y2, x1:x2] |= m
    assert (union == added).all()
    # original annotations kept in front
    assert torch.equal(out["boxes"][:n0], sample["boxes"])
    assert torch.equal(out["points"][:n0], sample["points"])


def test_box_margin_matches_dataset_style(library):
    sample = make_sample(sky="all", seed=5)
    tight = BAGCP(library, seed=11)(sample)
    wide_bag = BAGCP(library, seed=11, box_margin=(1, 1, 0, 0))
    wide = wide_bag(sample)
    n0 = len(sample["boxes"])
    d = wide["boxes"][n0:] - tight["boxes"][n0:]
    assert (d == torch.tensor([-1.0, -1.0, 0.0, 0.0])).all()
    assert torch.equal(wide["image"], tight["image"]) and torch.equal(wide["target_mask"], tight["target_mask"])
    with pytest.raises(ValueError, match="box_margin"):
        BAGCP(library, box_margin=(1, 1))


def test_in_torchvision_pipeline(library):
    bag = BAGCP(library, seed=0)
    pipe = v2.Compose([v2.Resize((96, 96), antialias=True), bag, v2.RandomHorizontalFlip(p=1.0)])
    sample = make_sample(sky="all")
    out = pipe(sample)
    n = len(out["boxes"])
    assert n > len(sample["boxes"]) and len(out["points"]) == n and len(out["labels"]) == n
    assert out["image"].shape == (3, 96, 96)
    # the flip moved the pasted boxes with the pixels: every new box covers target-mask pixels
    tm = out["target_mask"].numpy()
    for x1, y1, x2, y2 in out["boxes"][len(sample["boxes"]) :].numpy().astype(int):
        assert tm[y1:y2, x1:x2].any()


def test_uint8_image_and_no_optional_keys(library):
    s = make_sample(sky="all")
    s = {"image": tv_tensors.Image(s["image"].round().to(torch.uint8)), "sky_mask": s["sky_mask"]}
    out = BAGCP(library, seed=0)(s)
    assert out["image"].dtype == torch.uint8
    assert isinstance(out["boxes"], tv_tensors.BoundingBoxes) and out["boxes"].canvas_size == (128, 128)
    assert len(out["labels"]) == len(out["boxes"]) > 0
    assert "points" not in out and "target_mask" not in out


# ---------------------------------------------------------------------- degenerate cases
def test_no_sky_refused_and_counted(library):
    sample = make_sample(sky="none")
    bag = BAGCP(library, seed=0)
    for _ in range(3):
        out = bag(sample)
        assert out is sample
    st = bag.stats
    assert st["regions_requested"] >= 3 and st["regions_refused"] == st["regions_requested"]
    assert st["regions_placed"] == 0 and st["targets_pasted"] == 0
    assert st["targets_refused"] == st["targets_requested"] > 0
    bag2 = BAGCP(library, seed=0, cluster=False)
    bag2(sample)
    assert bag2.stats["targets_refused"] == bag2.stats["targets_requested"] > 0
    assert set(bag.stats) == set(STAT_KEYS)


def test_image_smaller_than_region(library):
    sample = make_sample(h=12, w=30, sky="all", boxes=())
    bag = BAGCP(library, seed=0)
    out = bag(sample)
    assert out is sample and bag.stats["regions_refused"] == bag.stats["regions_requested"] > 0
    # partly-sky window allowed when region_sky_fraction < 1; targets stay in sky
    s = make_sample(h=40, w=40, sky="top", boxes=())
    sky = s["sky_mask"].numpy() == 1
    bag = BAGCP(library, seed=0, region_sky_fraction=0.5)
    bag(s)
    assert all(sky[b[1] : b[3], b[0] : b[2]].all() for b in map(grid_box, bag.last["targets"]))


def test_one_pixel_target_tiny_sigma_no_nan():
    lib = TargetLibrary([np.array([[30.0]], np.float32)])
    sample = make_sample(sky="all", boxes=())
    bag = BAGCP(lib, seed=0, sigma=(1e-12, 1e-12), rho=(0.2, 0.2))
    out = bag(sample)
    img = out["image"].numpy()
    assert np.isfinite(img).all()
    b = out["boxes"].numpy()
    assert len(b) > 0 and ((b[:, 2] - b[:, 0]) == 1).all() and ((b[:, 3] - b[:, 1]) == 1).all()
    # peak-normalised G of a 1x1 box is 1: the pixel gains exactly lambda * 30
    for t in bag.last["targets"]:
        x, y, _, _ = t["grid"]
        assert img[0, y, x] - sample["image"].numpy()[0, y, x] == pytest.approx(30 * t["lam"], abs=1e-3)
    assert np.isfinite(gaussian_weights(1, 1, 0.2, -0.2, 0.0, 0.0, 45.0)).all()
    assert np.isfinite(gaussian_weights(3, 5, 0.2, 0.2, 1e-30, 1e-30, 10.0, peak_norm=False)).all()


def test_bad_parameters():
    lib = TargetLibrary([np.ones((2, 2), np.float32)])
    with pytest.raises(ValueError):
        BAGCP(lib, regions=(3, 1))
    with pytest.raises(ValueError):
        BAGCP(lib, lam=0.5)
    with pytest.raises(ValueError):
        BAGCP(lib, prob=2.0)
    with pytest.raises(ValueError):
        BAGCP(None)


# ---------------------------------------------------------------------- seeding
def test_same_seed_same_output(library):
    sample = make_sample(sky="top")
    a, b = BAGCP(library, seed=42)(sample), BAGCP(library, seed=42)(sample)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["boxes"], b["boxes"])
    c = BAGCP(library, seed=43)(sample)
    assert not torch.equal(a["boxes"], c["boxes"])
    # explicit generator
    bag = BAGCP(library)
    d = bag(sample, rng=np.random.default_rng(5))
    e = bag(sample, rng=np.random.default_rng(5))
    assert torch.equal(d["boxes"], e["boxes"])
    # a second call continues the stream
    bag = BAGCP(library, seed=42)
    bag(sample)
    assert not torch.equal(bag(sample)["boxes"], a["boxes"])


def test_seed_none_follows_torch_seed(library):
    sample = make_sample(sky="top")
    torch.manual_seed(1)
    a = BAGCP(library)(sample)
    torch.manual_seed(1)
    b = BAGCP(library)(sample)
    torch.manual_seed(2)
    c = BAGCP(library)(sample)
    assert torch.equal(a["boxes"], b["boxes"]) and not torch.equal(a["boxes"], c["boxes"])


class _Repeat(torch.utils.data.Dataset):
    def __init__(self, sample, transform, n=4):
        self.sample, self.transform, self.n = sample, transform, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        out = self.transform(self.sample)
        return out["boxes"].as_subclass(torch.Tensor)


def test_dataloader_workers_draw_distinct_streams(library):
    sample = make_sample(sky="all", boxes=())
    ds = _Repeat(sample, BAGCP(library, seed=3), n=2)

    def run():
        dl = torch.utils.data.DataLoader(
            ds, batch_size=None, num_workers=2, generator=torch.Generator().manual_seed(0),
            multiprocessing_context="fork",
        )
        return list(dl)

    first = run()
    assert not torch.equal(first[0], first[1])  # item 0 from worker 0, item 1 from worker 1
    again = run()
    assert all(torch.equal(x, y) for x, y in zip(first, again))  # seeded loader: reproducible


# ---------------------------------------------------------------------- factory
def test_build_bagcp(library, tmp_path):
    assert build_bagcp({"enabled": False}, library) is None
    assert build_bagcp({"enabled": True, "copy_paste": False}, library) is None
    assert build_bagcp(None, library) is None
    bag = build_bagcp({"enabled": True, "cluster": False, "regions": [2, 2], "seed": 1, "library": None}, library)
    assert isinstance(bag, BAGCP) and not bag.cluster and bag.regions == (2, 2) and bag.background_aware
    path = library.save(tmp_path / "lib.npz")
    bag = build_bagcp({"library": str(path), "gap": [1, 1]})
    assert len(bag.library) == len(library) and bag.gap == (1, 1)
    with pytest.raises(ConfigError, match="unknown"):
        build_bagcp({"enabled": True, "regoins": [1, 3]}, library)
    with pytest.raises(ConfigError, match="library"):
        build_bagcp({"enabled": True, "library": None})
    with pytest.raises(ConfigError):
        build_bagcp({"lam": [1.0, 0.5]}, library)
    with pytest.raises(DataError):
        build_bagcp({"library": str(tmp_path / "missing.npz")})


# ---------------------------------------------------------------------- library
def test_library_roundtrip_and_errors(library, tmp_path):
    p = library.save(tmp_path / "sub" / "lib.npz")
    assert not [f for f in p.parent.iterdir() if f.name != "lib.npz"]  # no temp file left
    lib2 = TargetLibrary.load(p)
    assert len(lib2) == len(library)
    for a, b in zip(library.appearance, lib2.appearance):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(library.masks, lib2.masks):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(DataError, match="missing.npz"):
        TargetLibrary.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        TargetLibrary.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(DataError, match="other.npz"):
        TargetLibrary.load(other)


def test_library_resize_fits_and_keeps_aspect(library):
    assert fit_size(9, 7, 5) == (5, 4) and fit_size(3, 2, 5) == (3, 2) and fit_size(1, 30, 5) == (1, 5)
    b, f = library.resized(4, 5)  # the 9x7 entry
    assert b.shape == f.shape == (5, 4) and f.any() and np.isfinite(b).all()
    assert (b[~f] == 0).all()
    assert b.max() > 0.5 * library.appearance[4].max()  # shrinking does not dim the target much
    b1, f1 = library.resized(3, 5)
    assert b1.shape == (1, 1) and f1.all()


def test_extract_targets_background_subtraction():
    img = np.full((40, 40), 100.0, np.float32)
    mask = np.zeros((40, 40), np.uint8)
    img[10:13, 20:23] += np.array([[5, 20, 5], [20, 50, 20], [5, 20, 5]], np.float32)
    mask[10:13, 20:23] = 1
    img[0, 39] = 180.0  # 1-px target in the corner (border box)
    mask[0, 39] = 1
    boxes = np.array([[19, 9, 23, 13], [39, 0, 40, 1], [5, 5, 8, 8]], np.float32)  # io boxes are 1 px larger top-left
    counts = {}
    ents = extract_targets(img, boxes, mask, counts=counts)
    assert counts["mask_fallback"] == 1 and counts["dropped_low_contrast"] == 1  # the empty box: flat patch
    assert len(ents) == 2
    a = ents[0]
    assert a["box"] == (20, 10, 23, 13)  # cropped to the mask
    np.testing.assert_allclose(a["appearance"], [[5, 20, 5], [20, 50, 20], [5, 20, 5]])
    assert a["background"] == 100.0
    c = ents[1]
    assert c["appearance"].shape == (1, 1) and c["appearance"][0, 0] == 80.0


def test_real_data_library_and_bagcp(require_data):
    root = require_data(DATA, "DenseSIRST")
    from irdet.data.datasets.densesirst import DenseSIRST

    lib = build_target_library(root, "trainval_v2", max_images=3)
    assert len(lib) > 10 and lib.meta["images"] == 3 and lib.meta["entries"] == len(lib)
    assert max(a.shape[0] for a in lib.appearance) >= 1 and all(np.isfinite(a).all() for a in lib.appearance)
    ds = DenseSIRST(root, "trainval_v2", sky_mask="palette", target_mask="binary", points=True,
                    transforms=v2.Resize((512, 512), antialias=True))
    bag = BAGCP(lib, seed=0)
    for i in range(3):
        s = ds[i]
        out = bag(s)
        sky = s["sky_mask"].numpy() == 1
        for t in bag.last["targets"]:
            x1, y1, x2, y2 = grid_box(t)
            assert sky[y1:y2, x1:x2].all()
        assert len(out["boxes"]) == len(s["boxes"]) + len(bag.last["targets"]) == len(out["points"])


def test_show_augment_grid_marks_pasted_targets_in_training_crops():
    """``irdet show-augment --as-trained`` on the shipped sample: pasted boxes are told apart
    from the image's own (BAG-CP's ``num_gt_boxes``) after the crop, for both crop_on modes."""
    from irdet.config import load_config
    from irdet.data.datasets.densesirst import resolve_data_root
    from irdet.visualize import augment_grid

    for mode in ("all", "gt"):
        cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "fcos_r18_densesirst_cpu.yaml", [f"data.crop_on={mode}"])
        fig = augment_grid(cfg, resolve_data_root("sample"), n=2, seed=0, as_trained=True)
        titles = [ax.get_title() for ax in fig.axes]
        assert len(titles) == 2 and all(" + pasted " in t for t in titles)
        assert sum(int(t.split("pasted ")[1]) for t in titles) > 0
