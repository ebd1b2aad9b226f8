"""BAG-CP's outputs on real DenseSIRST images, fixed seeds, against digests recorded from the
code before BAG-CP became the ``irdet.data.bagcp`` package (one module per concept).

Each case runs a transform over three native-resolution ``trainval_v2`` images (two calls per
image, so the seeded stream carries across calls) and hashes, per call, the output image
(float32 bytes), boxes, labels, target mask, points, ``num_gt_boxes``, :attr:`BAGCP.last` (every
random draw: library index, position, gap, λ, ρ, σ, θ) and :attr:`BAGCP.stats`. The target
library (cut from the first eight ``trainval_v2`` images) is hashed too. A digest that changes
means BAG-CP no longer draws the same numbers in the same order or no longer pastes the same
values: behaviour changed. Skipped without the dataset (failing under ``IRDET_REQUIRE_DATA=1``).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from irdet.data.bagcp import build_bagcp, build_target_library

IMAGES = 3
CALLS_PER_IMAGE = 2

#: (config of ``data.bagcp``, uint8 input image, explicit ``rng=`` seed or None, side of the one
#: all-sky window the sky mask is cut to or None) per case; the cut sky drives the exhaustive
#: searches, refused regions and the reference's shrinking windows
CASES = {
    "paper_default": ({"seed": 0}, False, None, None),
    "paper_no_cluster": ({"seed": 1, "cluster": False}, False, None, None),
    "paper_no_gaussian": ({"seed": 2, "gaussian": False}, False, None, None),
    "paper_anywhere": ({"seed": 3, "background_aware": False, "cluster": False}, False, None, None),
    "paper_loose_partial_sky": ({"seed": 4, "tight_spacing": False, "region_sky_fraction": 0.8,
                                 "gaussian_peak_norm": False, "box_margin": [1, 0, 1, 2]}, False, None, None),
    "paper_uint8_prob": ({"seed": 5, "prob": 0.7, "regions": [2, 3]}, True, None, None),
    "paper_rng": ({}, False, 11, None),
    "paper_sparse_sky": ({"seed": 7}, False, None, 44),
    "paper_sparse_sky_no_cluster": ({"seed": 8, "cluster": False}, False, None, 16),
    "reference_default": ({"variant": "reference", "seed": 0}, False, None, None),
    "reference_uint8": ({"variant": "reference", "seed": 6, "prob": 0.8}, True, None, None),
    "reference_rng": ({"variant": "reference"}, False, 12, None),
    "reference_sparse_sky": ({"variant": "reference", "seed": 9}, False, None, 20),
}

#: digests written by the code before the restructuring (sha256, first 20 hex digits)
RECORDED = {
    "library": "aad8f47ee1efe6dc0e70",
    "paper_default": [
        "0dd6881f7d6610241dd1", "5ca42213bc141f001db3", "5fa22904c350345d052c",
        "bbba1d0f1440fd1999e3", "dae833a5d107be5e3330", "6ffc6c3cd4daa476eda3",
    ],
    "paper_no_cluster": [
        "5f6cbbcb65290b702d4b", "b9ebc7d0d7157bd9ddcc", "6cc7860abcb512e8726e",
        "202e1708e07d4201da79", "b5b614212f8ca3495015", "a78bff62c7327c197003",
    ],
    "paper_no_gaussian": [
        "037353a4b6bb1dec9d08", "73bc4bf86e157225c351", "303a06d9e61b8aa2b41c",
        "e14e205004bbae67e5ee", "fa1d4ae2fb58f6a7f743", "4710c33b85c6a66cfdfc",
    ],
    "paper_anywhere": [
        "9dfe98e27f37f4e45cad", "4f812a60904e39923df0", "948580f9eac984d6f87a",
        "b83a703cb9369540847b", "5c2334925b8b896d0916", "35310fa9c94e25099184",
    ],
    "paper_loose_partial_sky": [
        "184ef8a37efd33d95447", "b6d50b388c8e7d211215", "5c535c3b0e3e6d6a844b",
        "e3666db5916e6b029c24", "2c4d868618daa2dacf33", "f3173c0635f704bfd461",
    ],
    "paper_uint8_prob": [
        "5dde083ee33b7a8cb73f", "8efc6d9599e8d635711d", "9f49b599abea5bfa137a",
        "ec6393bdc5349e2e88eb", "2af14cd5f0b04dd7e3c7", "4ca11e9943433cb9981b",
    ],
    "paper_rng": [
        "68263a59cc9f57e46a74", "d087feb856f55810024d", "9e6c680afe913a7721af",
        "8bfd8555eda1e26f57c5", "4faf0bd61dd2d24d8764", "c93432b1fd52f223a593",
    ],
    "paper_sparse_sky": [
        "a08aa85211991545b82d", "fe2cb509841d2d353d53", "9efa2ed3bf6fddfd79bf",
        "c34ce9b688b668d080f6", "f88206f5477c799fbffe", "aa0029bcaae561772b1f",
    ],
    "paper_sparse_sky_no_cluster": [
        "ce1f67c4d01536127451", "57d599283ce55f721bee", "fecb9cb886e2b679dc28",
        "51547d3502c54299548b", "6444ee6f649dc43849fd", "e2b76ab9cef227bdf8c4",
    ],
    "reference_default": [
        "715809113e8af21660a5", "ea1201637b27b23e1e8a", "7f5daa9c38dbc445decf",
        "1c6a4a292fba2ab4c0c2", "376c2d91a0ec7fefe9af", "c66a5004faf1c690a4f9",
    ],
    "reference_uint8": [
        "2166ed61cb71a7afcdb8", "3ba264abc647eb18e688", "d8de382f8462a608f655",
        "abc838f2550df2c90132", "6a6069b59173c8b65e15", "50ae7417c41d6ffa4684",
    ],
    "reference_rng": [
        "edbb082154488b86a6b4", "95daa3602746462dc64e", "dc4188596c5208da4048",
        "332b614e047100b12548", "9ab96508512bd249955e", "7d5036a43277f7354433",
    ],
    "reference_sparse_sky": [
        "8be9ca7ca2837fdc44a6", "5aca6e9698e1fb9a7610", "dff14e6bdb85aff5886a",
        "1a225bd571a6e49bae02", "a639fcb2bdc966be5d36", "427057ad2b2dbaa9ae04",
    ],
}


def _update(h, value) -> None:
    if isinstance(value, torch.Tensor):
        t = value.as_subclass(torch.Tensor).detach().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    elif isinstance(value, np.ndarray):
        h.update(f"{value.dtype}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    else:
        h.update(repr(value).encode())


def _sample_digest(out: dict, bag) -> str:
    h = hashlib.sha256()
    for key in ("image", "boxes", "labels", "target_mask", "points", "num_gt_boxes", "sky_mask"):
        h.update(key.encode())
        _update(h, out.get(key))
    _update(h, bag.last)
    _update(h, sorted(bag.stats.items()))
    return h.hexdigest()[:20]


def _library_digest(lib) -> str:
    h = hashlib.sha256()
    for arrays in (lib.appearance, lib.masks, lib.patches):
        for a in arrays:
            _update(h, a)
    for v in (lib.background, lib.source_boxes, lib.source_ids):
        _update(h, v)
    return h.hexdigest()[:20]


@pytest.fixture(scope="module")
def real():
    from conftest import DENSESIRST_ROOT, skip_or_fail_without

    from irdet.data.datasets.densesirst import DenseSIRST

    root = skip_or_fail_without(DENSESIRST_ROOT, "DenseSIRST")
    lib = build_target_library(root, "trainval_v2", max_images=8)
    ds = DenseSIRST(root, "trainval_v2", sky_mask="palette", target_mask="binary", points=True)
    return lib, [ds[i] for i in range(IMAGES)]


def _cut_sky(sample: dict, side: int) -> dict:
    """The sample with its sky cut to the first ``side`` x ``side`` all-sky window (row-major
    on an 8-px grid)."""
    sky = sample["sky_mask"].as_subclass(torch.Tensor).numpy() == 1
    H, W = sky.shape
    for y in range(0, H - side + 1, 8):
        for x in range(0, W - side + 1, 8):
            if sky[y : y + side, x : x + side].all():
                cut = np.zeros((H, W), np.uint8)
                cut[y : y + side, x : x + side] = 1
                return {**sample, "sky_mask": type(sample["sky_mask"])(torch.from_numpy(cut))}
    raise AssertionError(f"{sample['image_id']}: no all-sky {side} x {side} window")


def _run_case(name: str, lib, samples) -> list[str]:
    cfg, as_uint8, rng_seed, sky_window = CASES[name]
    bag = build_bagcp(cfg, lib)
    rng = None if rng_seed is None else np.random.default_rng(rng_seed)
    digests = []
    for s in samples:
        if as_uint8:
            s = {**s, "image": type(s["image"])(s["image"].round().to(torch.uint8))}
        if sky_window is not None:
            s = _cut_sky(s, sky_window)
        for _ in range(CALLS_PER_IMAGE):
            digests.append(_sample_digest(bag(s, rng=rng), bag))
    return digests


def record() -> dict:
    """The digests of the code at hand: ``{"library": ..., case: [per call]}``."""
    from conftest import DENSESIRST_ROOT

    from irdet.data.datasets.densesirst import DenseSIRST

    lib = build_target_library(DENSESIRST_ROOT, "trainval_v2", max_images=8)
    ds = DenseSIRST(DENSESIRST_ROOT, "trainval_v2", sky_mask="palette", target_mask="binary", points=True)
    samples = [ds[i] for i in range(IMAGES)]
    return {"library": _library_digest(lib), **{name: _run_case(name, lib, samples) for name in CASES}}


def test_library_as_recorded(real):
    lib, _ = real
    assert _library_digest(lib) == RECORDED["library"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_bagcp_output_as_recorded(real, name):
    lib, samples = real
    assert _run_case(name, lib, samples) == RECORDED[name]


def test_recorded_cases_paste_targets(real):
    """The recorded cases are not vacuous: every variant pastes targets on these images."""
    lib, samples = real
    for variant in ("paper", "reference"):
        bag = build_bagcp({"variant": variant, "seed": 0}, lib)
        pasted = 0
        for s in samples:
            out = bag(s)
            pasted += len(bag.last["targets"])
            assert len(out["boxes"]) == len(s["boxes"]) + len(bag.last["targets"])
        assert pasted > 0
