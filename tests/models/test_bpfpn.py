"""BP-FPN neck (irdet's reading of the BP-FPN abstract and figure captions): GILS gradient isolation, DGR direction, shapes,
eval behaviour, overhead, detector integration, configs and option errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from irdet.cli import main as cli_main
from irdet.config import load_config
from irdet.errors import ConfigError
from irdet.models import build_detector
from irdet.models.necks import BPFPN, FPN
from irdet.models.necks.bpfpn import dgr_loss

REPO = Path(__file__).resolve().parents[2]
TINY = {"C2": 8, "C3": 16, "C4": 32, "C5": 64}  # tiny channels, strides 4/8/16/32
OUT = 16


pytestmark = pytest.mark.usefixtures("one_thread")


def _feats(size: int = 64, n: int = 2, requires_grad: bool = False, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {c: torch.randn(n, ch, size // 2 ** int(c[1]), size // 2 ** int(c[1]), generator=g).requires_grad_(requires_grad)
            for c, ch in TINY.items()}


def _neck(seed: int = 0, **kw) -> BPFPN:
    torch.manual_seed(seed)
    return BPFPN(TINY, OUT, **kw)


def _backprop_outputs(outs: list[torch.Tensor], seed: int = 1) -> None:
    """Backprop a fixed random linear function of the outputs (upstream gradients independent of the weights)."""
    g = torch.Generator().manual_seed(seed)
    sum((o * torch.randn(o.shape, generator=g)).sum() for o in outs).backward()


def _grad_is_zero(t: torch.Tensor) -> bool:
    return t.grad is None or bool(t.grad.eq(0).all())


# --- shapes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("shortcut", ["none", "vanilla", "gils"])
@pytest.mark.parametrize("downsampler", ["conv", "s2d"])
@pytest.mark.parametrize("levels,strides", [(("P3", "P4", "P5"), [8, 16, 32]), (("P2", "P3", "P4", "P5"), [4, 8, 16, 32])])
def test_output_shapes(shortcut, downsampler, levels, strides):
    neck = _neck(levels=levels, shortcut=shortcut, downsampler=downsampler, dgr={"enabled": True})
    assert neck.levels == levels and neck.strides == strides and neck.out_channels == OUT
    outs, losses = neck(_feats(64))
    assert [tuple(o.shape) for o in outs] == [(2, OUT, 64 // s, 64 // s) for s in strides]
    assert set(losses) == {"loss_dgr"} and torch.isfinite(losses["loss_dgr"])


def test_non_square_and_odd_sizes():
    neck = _neck(downsampler="s2d")
    feats = {"C2": torch.randn(1, 8, 25, 13), "C3": torch.randn(1, 16, 13, 7), "C4": torch.randn(1, 32, 7, 4),
             "C5": torch.randn(1, 64, 4, 2)}
    outs, _ = neck(feats)
    assert [tuple(o.shape[-2:]) for o in outs] == [(13, 7), (7, 4), (4, 2)]


# --- GILS / vanilla shortcut ----------------------------------------------------------------

def test_shortcut_none_is_the_vanilla_fpn():
    torch.manual_seed(0)
    fpn = FPN(TINY, OUT)
    neck = _neck(shortcut="none")
    neck.fpn.load_state_dict(fpn.state_dict())
    feats = _feats()
    for a, b in zip(fpn(feats)[0], neck(feats)[0]):
        assert torch.equal(a, b)
    assert sum(p.numel() for p in neck.parameters()) == sum(p.numel() for p in fpn.parameters())


@pytest.mark.parametrize("downsampler", ["conv", "s2d"])
def test_gils_isolates_c2_and_trains_the_downsampler(downsampler):
    neck = _neck(shortcut="gils", downsampler=downsampler)
    feats = _feats(requires_grad=True)
    outs, _ = neck(feats)
    _backprop_outputs(outs)
    assert _grad_is_zero(feats["C2"])  # P3-P5 outputs: C2 only enters through the isolated shortcut
    assert not _grad_is_zero(feats["C3"])
    for name, p in neck.shortcut_branch.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("downsampler", ["conv", "s2d"])
def test_vanilla_shortcut_passes_gradient_to_c2(downsampler):
    grads = {}
    for shortcut in ("vanilla", "gils"):
        neck = _neck(shortcut=shortcut, downsampler=downsampler)
        feats = _feats(requires_grad=True)
        outs, _ = neck(feats)
        _backprop_outputs(outs)
        grads[shortcut] = (feats["C2"].grad, [p.grad.clone() for p in neck.shortcut_branch.parameters()])
    assert grads["vanilla"][0] is not None and grads["vanilla"][0].abs().sum() > 0
    assert grads["gils"][0] is None
    for a, b in zip(grads["vanilla"][1], grads["gils"][1]):  # D itself learns the same either way
        assert torch.allclose(a, b)


def test_gils_with_p2_output_still_targets_p3_and_adds_no_gradient_to_c2():
    levels = ("P2", "P3", "P4", "P5")
    torch.manual_seed(0)
    plain = BPFPN(TINY, OUT, levels=levels, shortcut="none")
    gils = BPFPN(TINY, OUT, levels=levels, shortcut="gils")
    gils.fpn.load_state_dict(plain.fpn.state_dict())
    f_plain, f_gils = _feats(requires_grad=True), _feats(requires_grad=True)
    o_plain, _ = plain(f_plain)
    o_gils, _ = gils(f_gils)
    assert torch.equal(o_plain[0], o_gils[0])  # P2 untouched
    assert not torch.equal(o_plain[1], o_gils[1])  # the shortcut lands on P3
    assert all(torch.equal(a, b) for a, b in zip(o_plain[2:], o_gils[2:]))
    _backprop_outputs(o_plain)
    _backprop_outputs(o_gils)
    # C2 gets gradient through the FPN's own P2 lateral path, identical with and without GILS
    assert f_plain["C2"].grad.abs().sum() > 0
    assert torch.equal(f_plain["C2"].grad, f_gils["C2"].grad)


def test_shortcut_starts_small_but_nonzero():
    neck = _neck(shortcut="gils", shortcut_init=0.1)
    feats = _feats()
    s = neck.shortcut_branch(feats["C2"])
    assert s.shape == (2, OUT, 8, 8)
    assert 0.05 < s.std().item() < 0.15
    plain = neck.fpn.pyramid(feats)[0]
    assert not torch.equal(neck(feats)[0][0], plain)


# --- DGR ------------------------------------------------------------------------------------

def _leaf_pyramid(seed: int = 0, sizes=(8, 4, 2)):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, OUT, s, s, generator=g).requires_grad_(True) for s in sizes]


@pytest.mark.parametrize("distance", ["cosine", "l2"])
def test_dgr_top_down_grad_only_on_finer_level(distance):
    p3, p4 = _leaf_pyramid(sizes=(8, 4))
    dgr_loss([p3, p4], "top_down", distance).backward()
    assert p3.grad is not None and p3.grad.abs().sum() > 0
    assert p4.grad is None


@pytest.mark.parametrize("distance", ["cosine", "l2"])
def test_dgr_bottom_up_grad_only_on_coarser_level(distance):
    p3, p4 = _leaf_pyramid(sizes=(8, 4))
    dgr_loss([p3, p4], "bottom_up", distance).backward()
    assert p3.grad is None
    assert p4.grad is not None and p4.grad.abs().sum() > 0


def test_dgr_three_levels_grad_sides():
    pyr = _leaf_pyramid()
    dgr_loss(pyr, "top_down").backward()
    assert [p.grad is not None for p in pyr] == [True, True, False]  # P5 is only ever a target
    pyr = _leaf_pyramid()
    dgr_loss(pyr, "bottom_up").backward()
    assert [p.grad is not None for p in pyr] == [False, True, True]  # P3 is only ever a target


def test_dgr_definitions():
    coarse = torch.randn(2, OUT, 4, 4)
    fine = torch.nn.functional.interpolate(coarse, scale_factor=2, mode="nearest")
    assert dgr_loss([fine, coarse], "top_down", "cosine").item() == pytest.approx(0.0, abs=1e-6)
    assert dgr_loss([fine, coarse], "bottom_up", "cosine").item() == pytest.approx(0.0, abs=1e-6)
    assert dgr_loss([fine, -coarse], "top_down", "cosine").item() == pytest.approx(2.0, abs=1e-6)
    a, b = _leaf_pyramid(sizes=(8, 4))
    cos = dgr_loss([a, b], "bottom_up", "cosine").item()
    l2 = dgr_loss([a, b], "bottom_up", "l2").item()
    assert l2 == pytest.approx(2 * cos / OUT, rel=1e-4)  # MSE of unit vectors = 2(1 - cos) / C
    # mean over pairs
    pyr = _leaf_pyramid()
    both = dgr_loss(pyr, "top_down").item()
    single = [dgr_loss(pyr[i:i + 2], "top_down").item() for i in range(2)]
    assert both == pytest.approx(sum(single) / 2, rel=1e-6)


@pytest.mark.parametrize("direction", ["top_down", "bottom_up"])
def test_dgr_in_neck_reaches_only_the_designated_side(direction):
    neck = _neck(shortcut="gils", dgr={"enabled": True, "weight": 1.0, "direction": direction})
    neck.train()
    _, losses = neck(_feats())
    losses["loss_dgr"].backward()
    out_convs = [blk[0].weight for blk in neck.fpn.fpn.layer_blocks]  # 3x3 output conv of P3, P4, P5
    d_grad = [p.grad for p in neck.shortcut_branch.parameters()]
    if direction == "top_down":  # P3, P4 trained; the coarsest output conv (P5) is only a target
        assert out_convs[0].grad.abs().sum() > 0 and out_convs[1].grad.abs().sum() > 0
        assert out_convs[2].grad is None
        assert all(g is not None and g.abs().sum() > 0 for g in d_grad)  # D feeds P3, the trained side
    else:  # P4, P5 trained; P3 (and GILS's D, which only feeds P3) is only a target
        assert out_convs[0].grad is None
        assert out_convs[1].grad.abs().sum() > 0 and out_convs[2].grad.abs().sum() > 0
        assert all(g is None for g in d_grad)


def test_in_levels_builds_only_the_used_outputs():
    full = _neck(dgr={"enabled": True, "direction": "top_down"})
    used = _neck(levels=("P3", "P4"), in_levels=("C3", "C4", "C5"), dgr={"enabled": True, "direction": "top_down"})
    assert isinstance(used.fpn.fpn.layer_blocks[2], torch.nn.Identity)
    assert sum(p.numel() for p in full.parameters()) - sum(p.numel() for p in used.parameters()) == OUT * OUT * 9 + OUT
    used.load_state_dict({k: v for k, v in full.state_dict().items() if "layer_blocks.2" not in k})
    feats = _feats()
    (o_full, l_full), (o_used, l_used) = full.train()(feats), used.train()(feats)
    assert len(o_used) == 2 and torch.equal(o_used[0], o_full[0]) and torch.equal(o_used[1], o_full[1])
    # one pair (P3, P4) left: the mean over pairs changes, P3 still gets the same kind of term
    assert l_used["loss_dgr"].item() == pytest.approx(0.5 * dgr_loss(o_full[:2], "top_down").item(), rel=1e-6)
    assert used.dgr_trained_levels == ["P3"] and full.dgr_trained_levels == ["P3", "P4"]
    assert _neck(dgr={"enabled": True}).dgr_trained_levels == ["P4", "P5"] and _neck().dgr_trained_levels == []


def test_dgr_weight_and_levels_subset():
    feats = _feats()
    full = _neck(levels=("P2", "P3", "P4", "P5"), dgr={"enabled": True, "weight": 1.0})
    half = _neck(levels=("P2", "P3", "P4", "P5"), dgr={"enabled": True, "weight": 0.5, "levels": ["P3", "P4"]})
    half.load_state_dict(full.state_dict())
    outs, l_full = full(feats)
    _, l_half = half(feats)
    assert l_full["loss_dgr"].item() == pytest.approx(dgr_loss(outs, "bottom_up").item(), rel=1e-6)
    assert l_half["loss_dgr"].item() == pytest.approx(0.5 * dgr_loss(outs[1:3], "bottom_up").item(), rel=1e-6)


def test_loss_dgr_only_in_training_mode():
    neck = _neck(dgr={"enabled": True})
    neck.eval()
    outs, losses = neck(_feats())
    assert losses == {} and len(outs) == 3
    neck.train()
    assert "loss_dgr" in neck(_feats())[1]
    assert _neck(dgr={"enabled": False}).train()(_feats())[1] == {}
    assert _neck(dgr=None).train()(_feats())[1] == {}


# --- overhead and detector integration ------------------------------------------------------

def _model_cfg(neck: dict, seg_head: bool = False, tiny: bool = False) -> dict:
    """R18 detector config with ``neck``; ``tiny``: 32-channel neck and head, one tower conv (fast smoke tests)."""
    sets = [f"model.neck={json.dumps(neck)}", f"model.head.seg_head={str(seg_head).lower()}",
            f"model.head.exchange={str(seg_head).lower()}"]
    if tiny:
        sets += ["model.neck.out_channels=32", "model.head.feat_channels=32", "model.head.stacked_convs=1"]
    return load_config(None, sets)["model"]


def test_parameter_overhead_gils_dgr_vs_fpn():
    fpn = build_detector(_model_cfg({"type": "fpn"}))
    bp = build_detector(_model_cfg({"type": "bpfpn", "shortcut": "gils", "dgr": {"enabled": True}}))
    n_fpn = sum(p.numel() for p in fpn.parameters())
    n_bp = sum(p.numel() for p in bp.parameters())
    neck_fpn = sum(p.numel() for p in fpn.neck.parameters())
    extra = n_bp - n_fpn
    print(f"\nGILS(conv)+DGR over FPN (FCOS-R18): +{extra} params = {100 * extra / n_fpn:.2f}% of the detector "
          f"({n_fpn / 1e6:.2f} M), {100 * extra / neck_fpn:.1f}% of the FPN neck ({neck_fpn / 1e6:.2f} M)")
    assert extra == 64 * 256 * 9 + 2 * 256  # 3x3 stride-2 conv C2(64) -> 256, no bias, + GroupNorm affine
    assert extra / n_fpn < 0.01  # DGR adds no parameters
    s2d = build_detector(_model_cfg({"type": "bpfpn", "downsampler": "s2d"}))
    assert sum(p.numel() for p in s2d.parameters()) - n_fpn == 4 * 64 * 256 + 2 * 256


@pytest.mark.parametrize("seg_head", [False, True])
def test_detector_loss_smoke(seg_head):
    torch.manual_seed(0)
    model = build_detector(_model_cfg({"type": "bpfpn", "shortcut": "gils", "dgr": {"enabled": True, "weight": 0.5}}, seg_head, tiny=True))
    assert "C2" in model.backbone.out_levels
    model.train()
    batch = {"images": torch.rand(2, 3, 64, 64) * 255, "boxes": [torch.tensor([[10.0, 12.0, 14.0, 16.0]]), torch.zeros(0, 4)],
             "labels": [torch.tensor([0]), torch.zeros(0, dtype=torch.long)],
             "sky_mask": torch.ones(2, 64, 64, dtype=torch.uint8)}
    losses = model.loss(batch)
    assert "loss_dgr" in losses and torch.isfinite(losses["loss_dgr"]) and losses["loss_dgr"] > 0
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    assert model.neck.shortcut_branch.conv.weight.grad is not None
    model.eval()
    with torch.no_grad():
        _, neck_losses = model(batch["images"])
    assert neck_losses == {}


def test_backbone_levels_follow_the_shortcut():
    assert "C2" not in build_detector(_model_cfg({"type": "bpfpn", "shortcut": "none"})).backbone.out_levels
    assert "C2" in build_detector(_model_cfg({"type": "bpfpn", "shortcut": "vanilla"})).backbone.out_levels


# --- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,match", [
    ({"shotcut": "gils"}, "unknown model.neck keys"),
    ({"shortcut": "dense"}, "shortcut"),
    ({"downsampler": "pool"}, "downsampler"),
    ({"levels": ["P4", "P5"]}, "P3"),  # the shortcut targets P3
    ({"levels": ["P5", "P3"]}, "finest first"),
    ({"levels": ["P3", "P6"]}, "levels"),
    ({"levels": "P3"}, "levels"),
    ({"out_channels": 0}, "out_channels"),
    ({"shortcut_init": 0}, "shortcut_init"),
    ({"dgr": {"enabled": True, "wieght": 1}}, "unknown model.neck.dgr keys"),
    ({"dgr": {"enabled": True, "direction": "sideways"}}, "direction"),
    ({"dgr": {"enabled": True, "distance": "kl"}}, "distance"),
    ({"dgr": {"enabled": True, "weight": -1}}, "weight"),
    ({"dgr": {"enabled": "yes"}}, "enabled"),
    ({"dgr": {"enabled": True, "levels": ["P2", "P3"]}}, "output levels"),
    ({"dgr": {"enabled": True, "levels": ["P3"]}}, "at least two"),
    ({"dgr": "on"}, "mapping"),
])
def test_bad_options_raise_config_error(kw, match):
    with pytest.raises(ConfigError, match=match):
        BPFPN(TINY, **{"out_channels": OUT, **kw})


def test_missing_c2_and_bad_keys_through_build_detector():
    with pytest.raises(ConfigError, match="C2"):
        BPFPN({k: v for k, v in TINY.items() if k != "C2"}, OUT, shortcut="gils")
    with pytest.raises(ConfigError, match=r"^unknown config key 'model.neck.dgr_weight'$"):  # the config checks BP-FPN's keys
        _model_cfg({"type": "bpfpn", "dgr_weight": 1.0})
    model_cfg = _model_cfg({"type": "bpfpn"})
    model_cfg["neck"]["dgr_weight"] = 1.0
    with pytest.raises(ConfigError, match=r"^unknown model.neck keys for bpfpn: \['dgr_weight'\]"):  # so does the builder
        build_detector(model_cfg)


# --- configs --------------------------------------------------------------------------------

VARIANTS = ["fpn", "vanilla_shortcut", "gils", "dgr", "gils_dgr", "gils_dgr_p2", "gils_dgr_cs"]
EXPECT = {  # variant -> (neck type, shortcut, dgr enabled, levels, centre sampling)
    "fpn": ("fpn", None, False, ["P3", "P4", "P5"], False),
    "vanilla_shortcut": ("bpfpn", "vanilla", False, ["P3", "P4", "P5"], False),
    "gils": ("bpfpn", "gils", False, ["P3", "P4", "P5"], False),
    "dgr": ("bpfpn", "none", True, ["P3", "P4", "P5"], False),
    "gils_dgr": ("bpfpn", "gils", True, ["P3", "P4", "P5"], False),
    "gils_dgr_p2": ("bpfpn", "gils", True, ["P2", "P3", "P4", "P5"], False),
    "gils_dgr_cs": ("bpfpn", "gils", True, ["P3", "P4", "P5"], True),
}


@pytest.mark.parametrize("host", ["fcos", "bafenet"])
def test_comparison_configs_load_and_build(host):
    cpu = load_config(REPO / f"configs/{host}_r18_densesirst_cpu.yaml")
    for variant in VARIANTS:
        cfg = load_config(REPO / f"configs/bpfpn/{host}_{variant}.yaml")
        kind, shortcut, dgr, levels, cs = EXPECT[variant]
        assert cfg["name"] == f"{host}_{variant}"
        assert cfg["train"] == cpu["train"] and cfg["data"] == cpu["data"]  # same CPU budget as the host's _cpu run
        assert cfg["model"]["head"]["seg_head"] == (host == "bafenet")
        model = build_detector(cfg["model"])
        assert model.neck.levels == tuple(levels) and model.head.center_sampling == cs
        if kind == "fpn":
            assert type(model.neck) is FPN
        else:
            assert isinstance(model.neck, BPFPN) and model.neck.shortcut == shortcut and model.neck.dgr["enabled"] == dgr


@pytest.mark.parametrize("name", ["fcos_r18_bpfpn_densesirst", "bafenet_r18_bpfpn_densesirst",
                                  "fcos_r18_bpfpn_densesirst_cpu", "bafenet_r18_bpfpn_densesirst_cpu"])
def test_main_bpfpn_configs(name):
    cfg = load_config(REPO / f"configs/{name}.yaml")
    base = load_config(REPO / f"configs/{name.replace('_bpfpn', '')}.yaml")
    assert cfg["train"] == base["train"] and cfg["data"] == base["data"]
    assert {k: v for k, v in cfg["model"].items() if k != "neck"} == {k: v for k, v in base["model"].items() if k != "neck"}
    neck = build_detector(cfg["model"]).neck
    assert isinstance(neck, BPFPN) and neck.shortcut == "gils" and neck.dgr["enabled"]


def test_flops_cli_json(capsys):
    assert cli_main(["flops", str(REPO / "configs/bpfpn/fcos_gils_dgr.yaml"), "--json", "--img-size", "64", "64"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["params"] > 0 and stats["macs"] > 0 and stats["neck"]["params"] > 0
