"""Every kind of model irdet builds gives the outputs recorded before the models were rebuilt
from registries: same parameters drawn in the same order, same wiring, same head settings.

For each config of :data:`CASES`: ``torch.manual_seed(0)``, build the model from the config's
``model`` section, then on a fixed (2, 3, 64, 64) input in [0, 255] (a (2, 5, 3, 64, 64) clip
for the sequence detector) record

* the eval-mode forward outputs (every head output of every level, and the neck's losses),
* the training-mode losses of one fixed batch (two boxes per image, a sky mask for BAFE-Net),
  which also cover the assignment settings (regress ranges, assigner, box parameterisation),
* the settings the builder hands the parts (strides, regress ranges, test settings, backbone
  levels, DGR options, exchange options, frames).

Each tensor is compared by its mean, its standard deviation and 16 values at fixed positions
(relative tolerance 1e-4, absolute 1e-5: the fp32 convolution kernels differ between CPUs, and an
AVX-512 machine gave outputs up to 2e-6 away from the AVX2 machine's record).
``tests/recorded/model_outputs.json`` was written by
``python tests/models/test_model_outputs.py --record`` with the code before the restructuring.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from irdet.config import config_task, load_config
from irdet.models import build_detector, build_sequence_detector

REPO = Path(__file__).resolve().parents[2]
RECORD = REPO / "tests" / "recorded" / "model_outputs.json"
#: name → config: FCOS, BAFE-Net, BAFE-Net + reference blocks and scorer, BP-FPN (GILS + DGR), the fast P2
#: detector, BAFE-Net without adapter / exchange, spatial and combined exchanges, random and fixed
#: selection, and a T = 5 BP-FPN sequence detector.
CASES = {
    "fcos": "configs/fcos_r18_densesirst.yaml",
    "bafenet": "configs/bafenet_r18_densesirst.yaml",
    "bafenet_refhead": "configs/bafenet_r18_refhead_densesirst.yaml",
    "bafenet_bpfpn": "configs/bafenet_r18_bpfpn_densesirst.yaml",
    "fcos_bpfpn_p2": "configs/bpfpn/fcos_gils_dgr_p2.yaml",
    "fast_p2": "configs/fcos_r18_p2_light_native.yaml",
    "no_adapter": "configs/ablations/table4_c.yaml",
    "no_exchange": "configs/ablations/table4_b.yaml",
    "spatial": "configs/ablations/table6_b.yaml",
    "spatial_channel": "configs/ablations/table6_d.yaml",
    "random_selection": "configs/ablations/table7_a.yaml",
    "fixed_selection": "configs/ablations/table7_b.yaml",
    "sequence_t5_bpfpn": "configs/sequences/yolobp_r18_t5_synthetic.yaml",
}
SIZE = 64


def _batch(sequence: bool) -> dict:
    g = torch.Generator().manual_seed(1234)
    shape = (2, 5, 3, SIZE, SIZE) if sequence else (2, 3, SIZE, SIZE)
    images = torch.rand(shape, generator=g) * 255
    boxes = [torch.tensor([[10.0, 12.0, 14.0, 15.0], [40.0, 30.0, 43.0, 36.0]]),
             torch.tensor([[5.0, 50.0, 8.0, 52.0], [20.0, 20.0, 29.0, 31.0]])]
    labels = [torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long)]
    sky = (torch.rand(2, SIZE, SIZE, generator=g) * 3).long().clamp(max=2).to(torch.uint8)
    sky[sky == 2] = 255
    batch = {"boxes": boxes, "labels": labels}
    batch.update({"video": images} if sequence else {"images": images, "sky_mask": sky})
    return batch


def _summary(t: torch.Tensor) -> dict:
    t = t.detach().double().flatten()
    pos = torch.linspace(0, t.numel() - 1, 16).round().long()
    return {"mean": t.mean().item(), "std": t.std().item() if t.numel() > 1 else 0.0, "values": t[pos].tolist()}


def _settings(model) -> dict:
    head, neck = model.head, model.neck
    out = {"strides": list(head.strides), "regress_ranges": [list(r) for r in head.regress_ranges],
           "test_cfg": head.test_cfg, "assigner": head.assigner, "assign_radius": head.assign_radius,
           "min_assign_size": head.min_assign_size, "box_param": head.box_param,
           "center_sampling": head.center_sampling, "center_sample_radius": head.center_sample_radius,
           "focal": [head.focal_alpha, head.focal_gamma], "num_classes": head.num_classes,
           "head_type": type(head).__name__, "neck_type": type(neck).__name__, "neck_levels": list(neck.levels),
           "neck_strides": list(neck.strides), "backbone_levels": list(model.backbone.out_levels),
           "frozen_stages": model.backbone.frozen_stages,
           "pixel_mean": model.pixel_mean.flatten().tolist(), "pixel_std": model.pixel_std.flatten().tolist()}
    if hasattr(neck, "dgr"):
        out.update(dgr=neck.dgr, shortcut=neck.shortcut)
    if hasattr(head, "seg_loss_weight"):
        out.update(seg_loss_weight=head.seg_loss_weight, reference_blocks=head.reference_blocks)
        if head.exchange is not None:
            out["exchange"] = [[type(s).__name__, s.ratio, s.selection, s.scorer, s.use_adapter, getattr(s, "k", None)]
                               for s in head.exchange.steps]
    if hasattr(model, "num_frames"):
        out.update(num_frames=model.num_frames, level=model.level, fusion=type(model.fusion).__name__)
    return out


def _measure(rel: str) -> dict:
    cfg = load_config(REPO / rel)
    sequence = config_task(cfg) == "sequence"
    torch.manual_seed(0)
    model = (build_sequence_detector if sequence else build_detector)(cfg["model"])
    batch = _batch(sequence)
    x = batch["video"] if sequence else batch["images"]
    result: dict = {"settings": _settings(model), "eval": {}, "train": {}}
    model.eval()
    with torch.no_grad():
        out, neck_losses = model(x)
    for key, maps in sorted(out.items()):
        for i, m in enumerate(maps):
            result["eval"][f"{key}.{i}"] = _summary(m)
    for key, value in sorted(neck_losses.items()):
        result["eval"][key] = _summary(value)
    model.train()
    torch.manual_seed(5)  # random selection draws from the global generator in training
    for key, value in sorted(model.loss(batch).items()):
        result["train"][key] = _summary(value)
    return result


def _json(obj):
    return json.loads(json.dumps(obj))


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", sorted(CASES))
def test_model_outputs_unchanged(name):
    expected = json.loads(RECORD.read_text())[name]
    got = _json(_measure(CASES[name]))
    assert got["settings"] == expected["settings"]
    for part in ("eval", "train"):
        assert sorted(got[part]) == sorted(expected[part]), (name, part)
        for key, rec in expected[part].items():
            now = got[part][key]
            for stat in ("mean", "std", "values"):
                torch.testing.assert_close(torch.tensor(now[stat], dtype=torch.float64),
                                           torch.tensor(rec[stat], dtype=torch.float64), rtol=1e-4, atol=1e-5,
                                           msg=lambda m, k=key, s=stat: f"{name} {part} {k} {s}: {m}")


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    torch.set_num_threads(1)
    RECORD.write_text(json.dumps({name: _json(_measure(rel)) for name, rel in sorted(CASES.items())}, indent=1) + "\n")
    print(f"wrote {RECORD}")
