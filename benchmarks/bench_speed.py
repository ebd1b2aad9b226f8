"""CPU time per training step and per inference, BAFE-Net-R18 relative to FCOS-R18 (same run).

Also prints parameters and multiply-adds against the paper's Table II (22.31 M / 57.654 G).
Reported, not asserted. Usage::

    python benchmarks/bench_speed.py [--data ROOT] [--steps 5] [--threads 2] [--crop 256]

A training step = forward + losses + backward + DAdaptAdam step on a batch of 2 real
DenseSIRST ``trainval_v2`` samples through the training pipeline (512×512, or ``--crop``
crops as in the ``_cpu`` configs); inference = one 512×512 image through ``Detector.predict``.
Extra configs (e.g. ``configs/bafenet_r18_bpfpn_densesirst.yaml``) can be added with ``--config``.
A native-resolution config (``data.img_size: null``) is timed on the same 512×512 inputs.
``--bf16`` also times the training step under ``torch.autocast("cpu", dtype=torch.bfloat16)``
where the CPU has bf16 instructions (:func:`irdet.engine.precision.cpu_has_bf16`); elsewhere
that column says n/a (emulated bf16 is many times slower, not a measurement of the model).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from irdet.config import load_config
from irdet.data.datasets.densesirst import DenseSIRST, resolve_data_root
from irdet.data.collate import collate
from irdet.data.transforms import build_test_transforms, build_train_transforms
from irdet.engine.optim import build_optimizer
from irdet.engine.precision import cpu_has_bf16
from irdet.models import build_detector
from irdet.models.complexity import PAPER_BAFENET_R18, complexity


def time_steps(model, opt, train_batches: list[dict], steps: int, bf16: bool = False) -> float:
    """Median seconds of a training step (the first one is warm-up)."""
    model.train()
    times = []
    for i in range(steps + 1):
        batch = train_batches[i % len(train_batches)]
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_model(cfg: dict, train_batches: list[dict], test_batch: dict, steps: int, bf16: bool = False) -> dict:
    torch.manual_seed(0)
    model = build_detector(cfg["model"])
    opt = build_optimizer(model)
    step_s = time_steps(model, opt, train_batches, steps)
    step_bf16 = time_steps(model, opt, train_batches, steps, bf16=True) if bf16 else None
    model.eval()
    inf = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        model.predict(test_batch)
        if i:
            inf.append(time.perf_counter() - t0)
    stats = complexity(model, (512, 512))
    return {"train_step_s": step_s, "train_step_bf16_s": step_bf16, "infer_s": statistics.median(inf), **stats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--crop", type=int, default=0, help="train on CROPxCROP crops (0 = full 512x512)")
    ap.add_argument("--config", nargs="*", default=[], help="extra configs to time against the FCOS baseline")
    ap.add_argument("--bf16", action="store_true", help="also time training under bf16 autocast (CPUs with bf16 only)")
    args = ap.parse_args()
    bf16 = args.bf16 and cpu_has_bf16()
    torch.set_num_threads(args.threads)
    root = resolve_data_root(args.data)
    crop = (args.crop, args.crop) if args.crop else None
    train_set = DenseSIRST(root, "trainval_v2", sky_mask="palette", transforms=build_train_transforms(crop=crop))
    train_batches = [collate([train_set[2 * i], train_set[2 * i + 1]]) for i in range(4)]
    test_set = DenseSIRST(root, "test_v2", sky_mask=None, transforms=build_test_transforms())
    test_batch = collate([test_set[0]])
    names = ["configs/fcos_r18_densesirst.yaml", "configs/bafenet_r18_densesirst.yaml", *args.config]
    results = {n: time_model(load_config(n), train_batches, test_batch, args.steps, bf16) for n in names}
    base = results[names[0]]
    print(f"threads={args.threads} steps={args.steps} train input={'%dx%d crops' % crop if crop else '512x512'} batch=2")
    print(f"{'config':45s} {'step s':>8s} {'x FCOS':>7s} {'bf16 s':>7s} {'infer s':>8s} {'img/s':>6s} {'x FCOS':>7s} "
          f"{'params M':>9s} {'GMACs':>8s}")
    for n, r in results.items():
        b16 = f"{r['train_step_bf16_s']:7.3f}" if r["train_step_bf16_s"] is not None else f"{'n/a':>7s}"
        print(f"{n:45s} {r['train_step_s']:8.3f} {r['train_step_s'] / base['train_step_s']:7.2f} {b16} {r['infer_s']:8.3f} "
              f"{1 / r['infer_s']:6.2f} {r['infer_s'] / base['infer_s']:7.2f} {r['params'] / 1e6:9.2f} {r['macs'] / 1e9:8.2f}")
    if args.bf16 and not bf16:
        print("bf16: n/a, this CPU has no bf16 instructions (avx512_bf16 / amx_bf16)")
    print(f"{'paper BAFE-Net-R18 (Table II)':45s} {'':8s} {'':7s} {'':8s} {'':7s} {PAPER_BAFENET_R18['params'] / 1e6:9.2f} "
          f"{PAPER_BAFENET_R18['macs'] / 1e9:8.2f}")


if __name__ == "__main__":
    main()
