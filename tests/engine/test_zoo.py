"""Packaged weights (irdet.engine.zoo), ``irdet package`` and the default model of detect / evaluate / flops."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from irdet.cli import main
from irdet.engine import zoo
from irdet.engine.evaluate import evaluate_checkpoint
from irdet.engine.package import package
from irdet.engine.precision import resolve_precision
from irdet.engine.predict import inference_precision, load_checkpoint
from irdet.errors import DataError

from fixtures import make_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

SAMPLE = zoo.WEIGHTS_DIR.parent / "sample" / "SIRSTdevkit"


def _predict(module, x):
    dets, _ = module.model.predict({"images": x, "img_size": [(64, 64)], "orig_size": [(64, 64)]})
    return dets[0]


def test_weights_round_trip_is_float16_and_predicts_like_the_checkpoint(tmp_path):
    ckpt = make_checkpoint(tmp_path / "run" / "last.ckpt", ["model.head.test.score_thr=0.0"])
    module = load_checkpoint(ckpt)
    out = zoo.write_weights(module, tmp_path / "w" / "tiny.pt", {"mAP07": 0.5}, source="last.ckpt")
    stored = torch.load(out, weights_only=True)
    assert stored["format"] == zoo.FORMAT and stored["metrics"] == {"mAP07": 0.5}
    assert all(v.dtype == torch.float16 for v in stored["state_dict"].values() if v.is_floating_point())
    assert json.loads((tmp_path / "w" / "tiny.metrics.json").read_text()) == {"mAP07": 0.5}
    assert (tmp_path / "w" / "tiny.yaml").is_file()
    loaded = load_checkpoint(out)  # a .pt path goes through the weights loader
    assert loaded.packaged_metrics == {"mAP07": 0.5}
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 255
    a, b = _predict(module, x), _predict(loaded, x)
    assert torch.allclose(a["scores"][:10], b["scores"][:10], atol=2e-3)
    # metrics computed with numpy (np.float64 / np.int64 scalars, as evaluate returns them) are stored as plain
    # numbers, so the file still loads with weights_only=True
    out2 = zoo.write_weights(module, tmp_path / "w" / "np.pt", {"mAP07": np.float64(0.25), "num_gts": np.int64(3)})
    stored2 = torch.load(out2, weights_only=True)
    assert stored2["metrics"] == {"mAP07": 0.25, "num_gts": 3} and type(stored2["metrics"]["mAP07"]) is float
    assert load_checkpoint(out2).packaged_metrics["num_gts"] == 3
    with pytest.raises(DataError, match="exceeds"):
        zoo.write_weights(module, tmp_path / "big.pt", max_bytes=1000)
    assert not (tmp_path / "big.pt").exists()
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(DataError, match="bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")


def test_a_packaged_file_runs_in_the_precision_its_metrics_were_scored_in():
    """bf16 scores differ from fp32 by ~1e-3 (docs/fast_detector.md), so a weights file must default to the
    precision of its stored metrics to reproduce them; a training checkpoint keeps its train.precision."""
    cfg = {"train": {"precision": "bf16-mixed"}}
    ckpt = SimpleNamespace(config=cfg)
    assert inference_precision(ckpt) == "bf16-mixed"
    assert inference_precision(SimpleNamespace(config=cfg, packaged_metrics={"mAP07": 0.5})) == "32-true"
    scored_bf16 = SimpleNamespace(config=cfg, packaged_metrics={"mAP07": 0.5, "eval_precision": "bf16-mixed"})
    assert inference_precision(scored_bf16) == "bf16-mixed"
    assert inference_precision(SimpleNamespace(config=cfg, packaged_metrics={})) == "bf16-mixed"  # never scored
    assert inference_precision(scored_bf16, "32-true") == "32-true"  # an explicit request wins


def test_default_model_detect_evaluate_flops(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "weights")
    # no shipped model: one clear line, exit 2
    assert main(["detect", str(SAMPLE / "PNGImages"), "--out", str(tmp_path / "none")]) == 2
    assert "no shipped default model" in capsys.readouterr().err
    ckpt = make_checkpoint(tmp_path / "run" / "last.ckpt")
    out, metrics = package(ckpt, zoo.weights_path(), data="sample", split="test_v2", num_workers=0)
    assert metrics["split"] == "test_v2" and 0 <= metrics["mAP07"] <= 1
    assert metrics["eval_precision"] == resolve_precision(load_checkpoint(ckpt).config["train"]["precision"], "auto")
    assert zoo.read_weights(out)["metrics"] == metrics
    # evaluate without a checkpoint reproduces the stored metrics of the packaged file
    again = evaluate_checkpoint(None, "sample", "test_v2", tmp_path / "eval", num_workers=0)
    for key in ("mAP07", "mAP12", "recall", "AP75"):
        assert abs(again[key] - metrics[key]) <= 1e-3
    # detect without a checkpoint: overlays and detections.json from the default model
    assert main(["detect", str(SAMPLE / "PNGImages"), "--out", str(tmp_path / "det"), "--workers", "0"]) == 0
    n = len(list((SAMPLE / "PNGImages").glob("*.png")))
    assert len(list((tmp_path / "det" / "overlays").glob("*.png"))) == n
    assert isinstance(json.loads((tmp_path / "det" / "detections.json").read_text()), list)
    # ... and the explicit form: a first argument ending in .pt is the model
    assert main(["detect", str(out), str(SAMPLE / "PNGImages"), "--out", str(tmp_path / "det2"), "--workers", "0"]) == 0
    capsys.readouterr()
    assert main(["flops", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["img_size"] == [64, 64] and stats["params"] == sum(p.numel() for p in load_checkpoint(out).model.parameters())


def test_backbone_builds_only_what_the_neck_reads():
    from irdet.config import load_config
    from irdet.models import build_detector

    fast = build_detector(load_config("configs/fcos_r18_p2_light_native.yaml")["model"])
    assert len(fast.backbone.layers) == 4 and fast.neck.levels == ("P2",) and fast.head.strides == [4]
    c2 = build_detector(load_config("configs/fcos_r18_p2_light_native.yaml", ["model.neck.in_levels=[C2]"])["model"])
    assert len(c2.backbone.layers) == 1  # stem + layer1 only: no unused ResNet stages in params or MACs
    assert sum(p.numel() for p in c2.parameters()) < 0.2 * sum(p.numel() for p in fast.parameters())
    # no 3x3 output conv on levels that are only on the top-down path
    assert sum(isinstance(b, torch.nn.Identity) for b in fast.neck.fpn.layer_blocks) == 3
    x = torch.zeros(1, 3, 64, 96)
    out, _ = fast(x)
    assert [tuple(t.shape) for t in out["cls_scores"]] == [(1, 1, 16, 24)]
