"""CPU time per training step and per inference, BAFE-Net-R18 relative to FCOS-R18 (same run).

Also prints parameters and multiply-adds against the paper's Table II (22.31 M / 57.654 G).
Reported, not asserted. Usage::

    python benchmarks/bench_speed.py [--data ROOT] [--steps 5] [--threads 2] [--crop 256]

A training step = forward + losses + backward + DAdaptAdam step on a batch of 2 real
DenseSIRST ``trainval_v2`` samples through the training pipeline (512×512, or ``--crop``
crops as in the ``_cpu`` configs); inference = one 512×512 image through ``Detector.predict``.
Extra configs (e.g. ``configs/bafenet_r18_bpfpn_densesirst.yaml``) can be added with ``--config``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from irdet.config import load_config
from irdet.data.densesirst import DenseSIRST, resolve_data_root
from irdet.data.transforms import build_test_transforms, build_train_transforms, collate
from irdet.engine.optim import build_optimizer
from irdet.models.complexity import PAPER_BAFENET_R18, complexity
from irdet.models.detector import build_detector


def time_model(cfg: dict, train_batches: list[dict], test_batch: dict, steps: int) -> dict:
    torch.manual_seed(0)
    model = build_detector(cfg["model"])
    opt = build_optimizer(model)
    model.train()
    times = []
    for i in range(steps + 1):  # first step is warm-up
        batch = train_batches[i % len(train_batches)]
        t0 = time.perf_counter()
        loss = model.loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    model.eval()
    inf = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        model.predict(test_batch)
        if i:
            inf.append(time.perf_counter() - t0)
    stats = complexity(model, cfg["data"]["img_size"])
    return {"train_step_s": statistics.median(times), "infer_s": statistics.median(inf), **stats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--crop", type=int, default=0, help="train on CROPxCROP crops (0 = full 512x512)")
    ap.add_argument("--config", nargs="*", default=[], help="extra configs to time against the FCOS baseline")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = resolve_data_root(args.data)
    crop = (args.crop, args.crop) if args.crop else None
    train_set = DenseSIRST(root, "trainval_v2", sky_mask="palette", transforms=build_train_transforms(crop=crop))
    train_batches = [collate([train_set[2 * i], train_set[2 * i + 1]]) for i in range(4)]
    test_set = DenseSIRST(root, "test_v2", sky_mask=None, transforms=build_test_transforms())
    test_batch = collate([test_set[0]])
    names = ["configs/fcos_r18_densesirst.yaml", "configs/bafenet_r18_densesirst.yaml", *args.config]
    results = {n: time_model(load_config(n), train_batches, test_batch, args.steps) for n in names}
    base = results[names[0]]
    print(f"threads={args.threads} steps={args.steps} train input={'%dx%d crops' % crop if crop else '512x512'} batch=2")
    print(f"{'config':45s} {'step s':>8s} {'x FCOS':>7s} {'infer s':>8s} {'x FCOS':>7s} {'params M':>9s} {'GMACs':>8s}")
    for n, r in results.items():
        print(f"{n:45s} {r['train_step_s']:8.3f} {r['train_step_s'] / base['train_step_s']:7.2f} {r['infer_s']:8.3f} "
              f"{r['infer_s'] / base['infer_s']:7.2f} {r['params'] / 1e6:9.2f} {r['macs'] / 1e9:8.2f}")
    print(f"{'paper BAFE-Net-R18 (Table II)':45s} {'':8s} {'':7s} {'':8s} {'':7s} {PAPER_BAFENET_R18['params'] / 1e6:9.2f} "
          f"{PAPER_BAFENET_R18['macs'] / 1e9:8.2f}")


if __name__ == "__main__":
    main()
