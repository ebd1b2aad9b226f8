"""Model registries and the config schema the parts declare (irdet.models.registry, irdet.models.build):
the declared defaults are the constructors', config validation and the run key read the
declarations, the backbone builds the levels the neck declares, and a new neck is one class plus
one registry entry."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from irdet.config import DEFAULTS, load_config, merge
from irdet.engine.ablate import config_key
from irdet.errors import ConfigError
from irdet.models import FUSIONS, HEADS, NECKS, build_detector, neck_inputs, unused_head_keys
from irdet.models.build import build_fusion
from irdet.models.configurable import Configurable
from irdet.models.heads.bafe import EXCHANGE_CONFIG
from irdet.models.necks.fpn import FPN
from irdet.models.registry import model_defaults, section_keys, temporal_defaults

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FCOS = CONFIGS / "fcos_r18_densesirst.yaml"
BAFE = CONFIGS / "bafenet_r18_densesirst.yaml"

#: small parts: the tests build many models
SMALL = {"neck": {"out_channels": 32}, "head": {"feat_channels": 32, "stacked_convs": 1, "adapter_hidden": 8}}


def _settings(model) -> dict:
    head = model.head
    keys = ("strides", "regress_ranges", "test_cfg", "assigner", "assign_radius", "min_assign_size", "box_param",
            "center_sampling", "center_sample_radius", "focal_alpha", "focal_gamma", "num_classes",
            "seg_loss_weight", "reference_blocks")
    return {"head": {k: getattr(head, k, None) for k in keys}, "neck": repr(model.neck),
            "backbone": (model.backbone.out_levels, model.backbone.frozen_stages, repr(model.backbone)),
            "norm": (model.pixel_mean.tolist(), model.pixel_std.tolist())}


def _same_model(a, b) -> None:
    assert _settings(a) == _settings(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("head", [{"seg_head": False, "exchange": False}, {"seg_head": True}])
@pytest.mark.parametrize("neck", [{"type": "fpn"}, {"type": "bpfpn"}])
def test_declared_defaults_are_the_constructors(head, neck):
    """A model built from the declared defaults (DEFAULTS, and BP-FPN's OPTIONAL_CONFIG) equals one
    built from sections that name nothing but the part: same settings, same initial weights."""
    small = merge(SMALL, {"neck": neck, "head": head})
    full = merge(DEFAULTS["model"], small)
    if neck["type"] == "bpfpn":
        full["neck"] = {**NECKS["bpfpn"].OPTIONAL_CONFIG, **full["neck"]}
    bare = {"backbone": {}, **small}
    torch.manual_seed(0)
    a = build_detector(full)
    torch.manual_seed(0)
    b = build_detector(bare)
    _same_model(a, b)


def test_fusion_defaults_are_the_constructors():
    for kind in FUSIONS:
        torch.manual_seed(0)
        a = build_fusion({**temporal_defaults(), "type": kind}, 16)
        torch.manual_seed(0)
        b = build_fusion({"type": kind}, 16)
        assert repr(a) == repr(b)
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_defaults_come_from_the_parts():
    assert DEFAULTS["model"] == model_defaults()
    assert DEFAULTS["model"]["head"]["test"] == HEADS["fcos"].CONFIG["test"]
    assert set(DEFAULTS["model"]["head"]) == {"seg_head", *HEADS["bafe"].config_keys()}
    assert DEFAULTS["model"]["neck"] == {"type": "fpn", **FPN.CONFIG}
    assert model_defaults()["head"]["test"] is not HEADS["fcos"].CONFIG["test"]  # a copy: merging cannot alter a part


def test_unused_head_keys():
    """The run key ignores the BAFE-Net keys of an FCOS head and the exchange keys of BAFE-Net without exchange."""
    head = DEFAULTS["model"]["head"]
    assert unused_head_keys({**head, "seg_head": False}) == set(HEADS["bafe"].CONFIG)
    assert unused_head_keys({**head, "exchange": False}) == set(EXCHANGE_CONFIG)
    assert unused_head_keys(head) == set()
    fcos = load_config(FCOS)
    assert config_key(fcos) == config_key(load_config(FCOS, ["model.head.adapter_hidden=8", "model.head.scorer=scale"]))
    bafe = load_config(BAFE)
    assert config_key(bafe) != config_key(load_config(BAFE, ["model.head.adapter_hidden=8"]))


@pytest.mark.parametrize("neck,levels", [
    ({"type": "fpn"}, ["C3", "C4", "C5"]),
    ({"type": "fpn", "levels": ["P2"], "in_levels": ["C2", "C3", "C4", "C5"]}, ["C2", "C3", "C4", "C5"]),
    ({"type": "fpn", "levels": ["P1"], "in_levels": ["C1", "C2", "C3", "C4", "C5"]}, ["C1", "C2", "C3", "C4", "C5"]),
    ({"type": "bpfpn"}, ["C2", "C3", "C4", "C5"]),
    ({"type": "bpfpn", "shortcut": "none"}, ["C3", "C4", "C5"]),
    ({"type": "bpfpn", "levels": ["P3", "P4"], "in_levels": ["C3", "C4", "C5"]}, ["C2", "C3", "C4", "C5"]),
])
def test_backbone_builds_the_levels_the_neck_declares(neck, levels):
    assert neck_inputs(neck) == levels
    model = build_detector(merge(DEFAULTS["model"], merge(SMALL, {"neck": neck, "head": {"seg_head": False, "exchange": False}})))
    assert list(model.backbone.out_levels) == levels


def test_c1_is_the_stems_stride_2_output_and_unknown_levels_are_refused():
    from irdet.models.backbones import ResNetBackbone

    net = ResNetBackbone(depth=18, out_levels=("C1", "C2"))
    assert net.strides["C1"] == 2 and net.out_channels["C1"] == 64
    out = net(torch.zeros(1, 3, 64, 48))
    assert out["C1"].shape == (1, 64, 32, 24) and out["C2"].shape == (1, 64, 16, 12)
    # the same weights give the same C2 whether or not C1 is also returned
    plain = ResNetBackbone(depth=18, out_levels=("C2",))
    plain.load_state_dict(net.state_dict())
    x = torch.randn(1, 3, 64, 48)
    net.eval(), plain.eval()
    assert torch.equal(net(x)["C2"], plain(x)["C2"])
    with pytest.raises(ConfigError, match=r"^backbone out_levels must be among C1..C5, got \['C0'\]$"):
        ResNetBackbone(depth=18, out_levels=("C0",))


def test_section_keys_follow_the_named_part():
    with pytest.raises(ConfigError, match=r"^unknown config key 'model.neck.shortcut'$"):
        load_config(FCOS, ["model.neck.shortcut=gils"])  # an FPN has no shortcut
    cfg = load_config(FCOS, ["model.neck.type=bpfpn", "model.neck.shortcut=vanilla"])
    assert cfg["model"]["neck"]["shortcut"] == "vanilla"
    with pytest.raises(ConfigError, match=r"^unknown config key 'model.neck.dgr.wieght' \(did you mean 'weight'\?\)$"):
        load_config(CONFIGS / "bafenet_r18_bpfpn_densesirst.yaml", ["model.neck.dgr.wieght=1"])
    with pytest.raises(ConfigError, match=r"^model.neck.type must be one of \['fpn', 'bpfpn'\], got 'pan'$"):
        load_config(FCOS, ["model.neck.type=pan"])
    assert load_config(FCOS, ["model.backbone.type=resnet"])["model"]["backbone"]["type"] == "resnet"
    with pytest.raises(ConfigError, match=r"^model.backbone.type must be one of \['resnet'\], got 'vgg'$"):
        load_config(FCOS, ["model.backbone.type=vgg"])
    assert section_keys(("data",), {}) is None


class _SumNeck(nn.Module, Configurable):
    """A test neck: one output level, the sum of 1×1 projections of the backbone levels it names."""

    CONFIG = {"out_channels": 256, "levels": ["P3", "P4", "P5"]}
    OPTIONAL_CONFIG = {"inputs": ["C3", "C4"]}

    @classmethod
    def input_levels(cls, cfg):
        return set(cfg.get("inputs", cls.OPTIONAL_CONFIG["inputs"]))

    def __init__(self, in_channels, out_channels=256, levels=("P3",), inputs=("C3", "C4")):
        super().__init__()
        self.levels, self.out_channels, self.inputs = ("P3",), out_channels, tuple(inputs)
        self.strides = [8]
        self.proj = nn.ModuleList(nn.Conv2d(in_channels[c], out_channels, 1) for c in self.inputs)

    def forward(self, feats):
        size = feats["C3"].shape[-2:]
        out = sum(nn.functional.interpolate(p(feats[c]), size=size) for p, c in zip(self.proj, self.inputs))
        return [out], {}


def test_a_new_neck_is_one_class_and_one_registry_entry(monkeypatch):
    monkeypatch.setitem(NECKS, "sum", _SumNeck)
    sets = ["model.neck.type=sum", "model.neck.inputs=[C3, C5]", "model.neck.out_channels=32",
            "model.head.seg_head=false", "model.head.exchange=false", "model.head.feat_channels=32",
            "model.head.stacked_convs=1", "model.head.regress_ranges=[[-1, 100000]]"]
    cfg = load_config(FCOS, sets)
    with pytest.raises(ConfigError, match="unknown config key 'model.neck.shortcut'"):
        load_config(FCOS, [*sets, "model.neck.shortcut=gils"])
    model = build_detector(cfg["model"])
    assert isinstance(model.neck, _SumNeck) and list(model.backbone.out_levels) == ["C3", "C5"]
    out, _ = model.eval()(torch.rand(1, 3, 64, 64) * 255)
    assert out["cls_scores"][0].shape == (1, 1, 8, 8)
    assert len(config_key(cfg)) == 10
