"""Tiled inference (irdet.models.tiling, Detector.predict(tile=...), eval.tile, irdet detect/evaluate --tile)
on a real DenseSIRST frame at native resolution with tiny random-init FCOS / BAFE-Net models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fixtures import TINY_FCOS, make_checkpoint
from irdet.cli import main
from irdet.config import load_config
from irdet.data.datasets.densesirst import DenseSIRST
from irdet.data.collate import collate
from irdet.engine.ablate import config_key
from irdet.engine.tasks.detect import test_transforms_from_cfg as transforms_of
from irdet.engine.module import DetectorModule
from irdet.errors import ConfigError
from irdet.models.tiling import check_tile_options, network_stride, tile_layout, tile_options, tiled_forward

pytestmark = pytest.mark.usefixtures("one_thread")

#: a 640x512 test_v2 frame with 6 targets
IMAGE_ID = "S2_20"
NATIVE = ["data.img_size=null"]
#: a fully local FCOS (irdet extension test model): stem + layer1 (C2) -> FPN P2 (stride 4) -> head with no
#: tower convs, hence no GroupNorm (whose map-wide statistics would make every output depend on the whole tile)
LOCAL = ["model.neck.levels=[P2]", "model.neck.in_levels=[C2]", "model.head.stacked_convs=0",
         "model.head.regress_ranges=[[-1,100000]]"]
#: receptive field of LOCAL, in input pixels: conv1 7x7/2 (7) -> maxpool 3x3/2 (+4 = 11) -> layer1, four 3x3
#: convs at stride 4 (+32 = 43) -> FPN 3x3 output conv (+8 = 51) -> head 3x3 conv (+8 = 59): a cell's outputs
#: depend on the pixels within 29.5 px of its point, so a point more than 30 px from a tile's inner border
#: sees exactly the pixels the whole frame shows it (measured: differences reach 30 px from a cut, not 32)
LOCAL_MARGIN = 30


def _module(overrides, bias_cls: bool = True) -> DetectorModule:
    """A tiny random-init model in eval mode; ``bias_cls`` zeroes the classification bias so that
    scores spread around 0.25 (the 0.01 prior would leave no box above ``score_thr`` 0.05)."""
    torch.manual_seed(0)
    module = DetectorModule(load_config("fcos_r18_densesirst_cpu", [*TINY_FCOS, *NATIVE, *overrides])).eval()
    if bias_cls:
        with torch.no_grad():
            module.model.head.conv_cls.bias.zero_()
    return module


def _batch(densesirst, cfg: dict) -> dict:
    ds = DenseSIRST(densesirst, "test_v2", sky_mask=None, transforms=transforms_of(cfg))
    return collate([ds[ds.ids.index(IMAGE_ID)]])


def _tiled(module: DetectorModule, tile, overlap=32) -> DetectorModule:
    module.config = {**module.config, "eval": {**module.config["eval"], "tile": list(tile), "tile_overlap": overlap}}
    return module


def test_layout_cores_partition_the_input():
    (th, tw), (hp, wp), tiles = tile_layout(1000, 1280, (256, 256), 32, align=32, cut_align=4)
    assert (th, tw) == (256, 256) and (hp, wp) == (1024, 1280)  # 1000 padded to a multiple of 32
    cover = np.zeros((hp, wp), int)
    for t in tiles:
        assert t.y0 % 32 == 0 and t.x0 % 32 == 0 and t.y0 + th <= hp and t.x0 + tw <= wp
        assert t.y0 <= t.y_lo <= t.y_hi <= t.y0 + th and t.x0 <= t.x_lo <= t.x_hi <= t.x0 + tw
        assert all(v % 4 == 0 for v in (t.y_lo, t.y_hi, t.x_lo, t.x_hi))
        cover[t.y_lo:t.y_hi, t.x_lo:t.x_hi] += 1
    assert (cover == 1).all()
    # step 256 - 32 = 224 along x: starts 0, 224, ..., 896, then the last tile ends at the edge
    assert sorted({t.x0 for t in tiles}) == [0, 224, 448, 672, 896, 1024]
    # the overlap is at least the request: 40 px -> step rounded down to 192
    assert sorted({t.x0 for t in tile_layout(512, 640, (256, 256), 40, 32)[2]}) == [0, 192, 384]
    # a tile at least the input's side: one tile, the unpadded input itself
    assert tile_layout(500, 620, (512, 1024), 32, 32)[:2] == ((500, 620), (500, 620))


def test_bad_tile_options_are_config_errors():
    model = _module([], bias_cls=False).model
    assert network_stride(model) == 32  # C3..C5 backbone
    with pytest.raises(ConfigError, match=r"eval.tile \(--tile\) = \[300, 256\]: tile sides must be positive multiples "
                                          r"of the model's stride 32 \(e.g. \[288, 256\]\)"):
        check_tile_options(model, (300, 256))
    with pytest.raises(ConfigError, match=r"eval.tile_overlap \(--tile-overlap\) = 256: expected an integer in \[0, 256\)"):
        check_tile_options(model, (256, 512), 256)
    with pytest.raises(ConfigError, match=r"config key 'eval.tile' = \[256\]: expected null or \[h, w\] with positive "
                                          r"integers"):
        load_config("fcos_r18_p2_light_native", ["eval.tile=[256]"])
    assert tile_options(load_config("fcos_r18_p2_light_native")) == {}  # default: untiled
    assert tile_options({"eval": {"tile": [256, 256]}}) == {"tile": (256, 256), "tile_overlap": 32, "tile_batch": 4}


def test_new_eval_keys_keep_ablation_keys():
    cfg = load_config("fcos_r18_densesirst_cpu")
    old = {**cfg, "eval": {k: v for k, v in cfg["eval"].items() if not k.startswith("tile")}}
    assert config_key(cfg) == config_key(old)  # finished ablation runs stay valid
    assert config_key(load_config("fcos_r18_densesirst_cpu", ["eval.tile=[256,256]"])) != config_key(cfg)


@pytest.mark.parametrize("head", ["fcos", "bafenet"])
def test_one_tile_equals_untiled(densesirst, head):
    """A tile covering the frame: the same network input, the same decoding -> identical output,
    for FCOS (GroupNorm towers) and BAFE-Net (its stitched sky map too)."""
    overrides = ["model.head.seg_head=false"] if head == "fcos" else ["model.head.seg_head=true"]
    module = _module(overrides)
    batch = _batch(densesirst, module.config)
    assert batch["images"].shape[-2:] == (512, 640)
    plain = module._predict(batch)[0]
    assert len(plain["boxes"]) > 10  # the comparison is not between empty sets
    for tile in ([512, 640], [1024, 1024]):
        tiled = _tiled(module, tile)._predict(batch)[0]
        assert np.array_equal(tiled["boxes"], plain["boxes"]) and np.array_equal(tiled["scores"], plain["scores"])
        if head == "bafenet":
            assert np.array_equal(tiled["sky_prob"], plain["sky_prob"])
    if head == "bafenet":  # several tiles: the sky map is stitched to the untiled shape
        assert _tiled(module, [256, 256])._predict(batch)[0]["sky_prob"].shape == plain["sky_prob"].shape


def test_overlapping_tiles_match_untiled_where_the_network_sees_the_same_pixels(densesirst):
    """Several tiles of a local network (LOCAL): with overlap 64 every cell is taken from a tile
    where it lies >= 32 px > LOCAL_MARGIN from the inner borders, so the stitched head outputs,
    hence the detections, equal the untiled ones exactly; without overlap only cells within
    LOCAL_MARGIN of a cut differ."""
    module = _module(["model.head.seg_head=false", *LOCAL])
    model = module.model
    assert network_stride(model) == 4
    batch = _batch(densesirst, module.config)
    with torch.no_grad():
        whole, _ = model(batch["images"])
        plain = module._predict(batch)[0]
        stitched = tiled_forward(model, batch["images"], (192, 192), 64, tile_batch=3)
    assert len(tile_layout(512, 640, (192, 192), 64, 4)[2]) == 4 * 5
    for key in whole:
        assert torch.equal(stitched[key][0], whole[key][0]), key
    tiled = _tiled(module, [192, 192], 64)._predict(batch)[0]
    assert len(plain["boxes"]) > 10
    assert np.array_equal(tiled["boxes"], plain["boxes"]) and np.array_equal(tiled["scores"], plain["scores"])

    with torch.no_grad():
        cut = tiled_forward(model, batch["images"], (128, 128), 0)  # cuts at x, y = 128, 256, ...
    diff = sum((cut[k][0] - whole[k][0]).abs().amax(1)[0] for k in whole).numpy()
    points = np.arange(max(diff.shape)) * 4 + 2  # cell centres, input pixels
    dy = np.abs(points[: diff.shape[0], None] - np.array([128, 256, 384])).min(1)
    dx = np.abs(points[: diff.shape[1], None] - np.array([128, 256, 384, 512])).min(1)
    dist = np.minimum(dy[:, None], dx[None, :])
    assert (diff[dist > LOCAL_MARGIN] == 0).all()  # far from the cuts: the same pixels, the same outputs
    assert (diff[dist <= 6] > 0).mean() > 0.5  # at the cuts the zero padding of the tile shows


def test_detect_and_evaluate_cli_tile(densesirst, tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "native.ckpt", NATIVE)
    image = densesirst / "PNGImages" / f"{IMAGE_ID}.png"
    out = tmp_path / "det"
    assert main(["detect", str(ckpt), str(image), "--out", str(out), "--tile", "256", "256", "--tile-overlap", "64",
                 "--workers", "0"]) == 0
    assert (out / "overlays" / f"{IMAGE_ID}.png").is_file()
    assert isinstance(json.loads((out / "detections.json").read_text()), list)
    assert [im["image_id"] for im in json.loads((out / "summary.json").read_text())["images"]] == [IMAGE_ID]
    capsys.readouterr()
    assert main(["detect", str(ckpt), str(image), "--out", str(tmp_path / "bad"), "--tile", "250", "256"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "irdet: error: eval.tile (--tile) = [250, 256]: tile sides must be positive multiples of the model's stride 32 "
        "(e.g. [224, 256])"]
    assert main(["detect", str(ckpt), str(image), "--out", str(tmp_path / "bad"), "--tile-overlap", "64"]) == 2
    assert "--tile-overlap needs --tile H W" in capsys.readouterr().err
    assert main(["evaluate", "--predictions", str(out / "detections.json"), "--tile", "256", "256"]) == 2
    assert "--tile / --tile-overlap go with a checkpoint" in capsys.readouterr().err


def test_sequence_checkpoints_refuse_tiles():
    from types import SimpleNamespace

    from irdet.engine.predict import set_tiling

    module = SimpleNamespace(config={"task": "sequence", "eval": {"tile": None, "tile_overlap": 32}}, model=None)
    set_tiling(module)  # no tiling asked: nothing to check
    with pytest.raises(ConfigError, match="tiled inference .* is for single-frame checkpoints, not task: sequence ones"):
        set_tiling(module, (256, 256))
