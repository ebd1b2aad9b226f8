"""End to end on real DenseSIRST images: train a few iterations, save, resume, evaluate, detect (CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fixtures import link_dataset, read_split
from irdet.cli import main
from irdet.metrics import gt_to_results, save_results
from irdet.data.datasets.densesirst import DenseSIRST

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def small_root(tmp_path_factory, request):
    from conftest import DENSESIRST_ROOT, skip_or_fail_without

    real = skip_or_fail_without(DENSESIRST_ROOT, "DenseSIRST")
    train = read_split(real, "train_v2")[:4]
    val = read_split(real, "val_v2")[:2]
    test = read_split(real, "test_v2")[:3]
    return link_dataset(real, tmp_path_factory.mktemp("ds") / "SIRSTdevkit",
                        {"train_v2": train, "val_v2": val, "test_v2": test})


def _train(root, out, extra=(), resume=False):
    args = ["train", str(CONFIGS / "bafenet_r18_densesirst_cpu.yaml"), "--data", str(root), "--out", str(out),
            *(["--resume"] if resume else []), "--set", "train.max_epochs=1", "train.val_interval=1", "data.num_workers=0", "train.checkpoint_every_n_steps=1",
            "data.train_split=train_v2", "data.val_split=val_v2",  # best.ckpt selected on val_v2 (disjoint from train_v2)
            "model.neck.out_channels=64", "model.head.feat_channels=64", "model.head.stacked_convs=1", *extra]
    assert main(args) == 0


def test_train_resume_evaluate_detect(small_root, tmp_path, capsys):
    run = tmp_path / "run"
    _train(small_root, run, ["train.max_steps=1"])
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and (run / "config.yaml").is_file()
    assert torch.load(ckpt, weights_only=False)["global_step"] == 1

    # a full epoch (4 images, batch 2: 2 steps) with validation, then resume for a second epoch
    run2 = tmp_path / "run2"
    _train(small_root, run2)
    assert torch.load(run2 / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2
    _train(small_root, run2, ["train.max_epochs=2"], resume=True)
    state = torch.load(run2 / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["global_step"] == 4 and state["epoch"] == 1
    assert (run2 / "checkpoints" / "best.ckpt").is_file()

    # evaluate the checkpoint on the 3 test images
    out = tmp_path / "eval"
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run2 / "checkpoints" / "best.ckpt"), "--data", str(small_root),
                 "--split", "test_v2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mAP07" in printed and "mAP12" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("mAP07", "mAP12", "recall", "AP75", "Pd", "Fa"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["num_images"] == 3 and (out / "pr_curve.png").stat().st_size > 0
    preds = json.loads((out / "predictions.json").read_text())
    assert all(set(p) >= {"image_id", "bbox", "score"} for p in preds)

    # ground truth written as predictions scores 1.0 through the CLI
    ds = DenseSIRST(small_root, "test_v2", sky_mask=None)
    boxes, _ = ds.ground_truth()
    gt_file = tmp_path / "gt.json"
    save_results(gt_file, gt_to_results({i: b for i, b in boxes.items()}))
    assert main(["evaluate", "--predictions", str(gt_file), "--data", str(small_root), "--split", "test_v2",
                 "--out", str(tmp_path / "gt_eval")]) == 0
    gt_metrics = json.loads((tmp_path / "gt_eval" / "metrics.json").read_text())
    assert gt_metrics["mAP07"] == gt_metrics["mAP12"] == gt_metrics["recall"] == 1.0

    # detect on a folder of real images of any mode/size
    det = tmp_path / "det"
    assert main(["detect", str(run2 / "checkpoints" / "best.ckpt"), str(small_root / "PNGImages" / f"{ds.ids[0]}.png"),
                 str(small_root / "PNGImages" / f"{ds.ids[1]}.png"), "--out", str(det)]) == 0
    dets = json.loads((det / "detections.json").read_text())
    assert isinstance(dets, list)
    assert sorted(p.stem for p in (det / "overlays").glob("*.png")) == sorted(ds.ids[:2])


def test_cli_bad_inputs_give_one_line_errors(small_root, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"image_id": "x", "bbox": [1, 2, -3, 4], "score": 0.5}]')
    assert main(["evaluate", "--predictions", str(bad), "--data", str(small_root), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("irdet: error:") and "bad.json" in err and "\n" not in err
    unknown = tmp_path / "unknown.json"
    unknown.write_text('[{"image_id": "not-an-image", "bbox": [1, 2, 3, 4], "score": 0.5}]')
    assert main(["evaluate", "--predictions", str(unknown), "--data", str(small_root), "--out", str(tmp_path / "e")]) == 2
    assert "not in split test_v2" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "none.ckpt"), "--data", str(small_root)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"\x00" * 100)
    assert main(["detect", str(corrupt), str(tmp_path), "--out", str(tmp_path / "d")]) == 2
    assert "corrupt.ckpt: not a readable irdet checkpoint" in capsys.readouterr().err
    assert main(["train", str(CONFIGS / "fcos_r18_densesirst_cpu.yaml"), "--set", "train.max_epoch=1"]) == 2
    assert "did you mean 'max_epochs'" in capsys.readouterr().err
    assert main(["train", str(CONFIGS / "fcos_r18_densesirst_cpu.yaml"), "--data", str(small_root), "--out",
                 str(tmp_path / "r"), "--resume"]) == 2
    assert "checkpoint to resume from not found" in capsys.readouterr().err


def test_flops_json(capsys):
    assert main(["flops", str(CONFIGS / "bafenet_r18_densesirst.yaml"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert isinstance(stats["params"], int) and isinstance(stats["macs"], int)
    assert stats["backbone"]["params"] + stats["neck"]["params"] + stats["head"]["params"] == stats["params"]
    assert 40e9 < stats["macs"] < 70e9  # ~52 G counted convolutions at 512x512 (paper: 57.654 G)
