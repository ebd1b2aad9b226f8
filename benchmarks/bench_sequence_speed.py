"""CPU cost of multi-frame (sequence) configs relative to the first one, measured in the same run.

For every config: parameters, multiply-adds of one clip (1, T, 3, H, W) at the benchmark's
frame size (``--img-size``, default 256×256, the synthetic frames;
:func:`irdet.models.complexity.complexity`, one multiply-add = one FLOP), the median training step (forward
+ losses + backward + DAdaptAdam on real training clips of the config's own pipeline: its
crops and ``train.batch_size``; the first step is warm-up) and the median streaming inference
time per frame (what ``irdet detect`` pays on a video: one new frame through backbone + neck,
then fusion of the cached T maps and the head, no decoding). ``--bf16`` also times the step
under bf16 autocast where the CPU has the instructions (n/a elsewhere). Reported, not asserted.
Usage::

    python benchmarks/bench_sequence_speed.py --data runs/synthetic_sequences_snr2_20 \\
        configs/sequences/yolobp_r18_t5_synthetic.yaml configs/sequences/yolofpn_r18_p2_light_t5_synthetic.yaml
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench_speed import time_steps
from irdet.config import load_config
from irdet.engine.optim import build_optimizer
from irdet.engine.precision import cpu_has_bf16
from irdet.engine.tasks import task_of
from irdet.models.complexity import complexity


def train_batches(cfg: dict, data: str | None, n: int) -> tuple[dict, list[dict]]:
    """The config resolved for ``data`` and ``n`` training batches of its own pipeline."""
    task = task_of(cfg)
    root = task.resolve_root(cfg, data)
    cfg = task.training_config(cfg, root)
    ds = task.open_split(cfg, root, cfg["data"]["train_split"], train=True)
    bs = int(cfg["train"]["batch_size"])
    return cfg, [task.collate([ds[(k * bs + i) % len(ds)] for i in range(bs)]) for k in range(n)]


def stream_frame_s(model, t: int, hw: tuple[int, int], repeats: int) -> float:
    """Median seconds per frame of streaming inference: one frame's maps, then fusion + head on T cached maps."""
    model.eval()
    frame = torch.rand(1, 3, *hw) * 255
    with torch.no_grad():
        cached = model.frame_features(frame)[0]
        times = []
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            feat = model.frame_features(frame)[0]
            model.head_from_features(torch.stack([cached] * (t - 1) + [feat], dim=1))
            if i:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="+", help="sequence configs; the first is the baseline of the ratios")
    ap.add_argument("--data", default=None, help="sequence dataset root (default: each config's data.root)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the sequence configs train with 1)")
    ap.add_argument("--img-size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    ap.add_argument("--bf16", action="store_true", help="also time training under bf16 autocast (CPUs with bf16 only)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bf16 = args.bf16 and cpu_has_bf16()
    rows = {}
    for name in args.configs:
        cfg, batches = train_batches(load_config(name), args.data, 4)
        torch.manual_seed(0)
        model = task_of(cfg).build_model(cfg["model"])
        opt = build_optimizer(model)
        t = int(model.num_frames)
        cost = complexity(model, args.img_size, frames=t)
        rows[name] = {
            "params": cost["params"], "macs": cost["macs"],
            "step": time_steps(model, opt, batches, args.steps),
            "step_bf16": time_steps(model, opt, batches, args.steps, bf16=True) if bf16 else None,
            "frame": stream_frame_s(model, t, args.img_size, args.steps), "batch": len(batches[0]["boxes"]),
            "crop": tuple(batches[0]["video"].shape[-2:]), "t": t,
        }
    base = rows[args.configs[0]]
    print(f"threads={args.threads} steps={args.steps} clip MACs and streaming inference at {args.img_size[0]}x{args.img_size[1]}")
    print("| config | T | params (M) | GMACs / clip | batch × crop | train s/step | × base | bf16 s/step | "
          "stream s/frame | frames/s | × base |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        b16 = f"{r['step_bf16']:.3f}" if r["step_bf16"] is not None else "n/a"
        print(f"| {name} | {r['t']} | {r['params'] / 1e6:.2f} | {r['macs'] / 1e9:.2f} | {r['batch']} × {r['crop'][0]}² | "
              f"{r['step']:.3f} | {r['step'] / base['step']:.2f} | {b16} | {r['frame']:.4f} | {1 / r['frame']:.1f} | "
              f"{r['frame'] / base['frame']:.2f} |")
    if args.bf16 and not bf16:
        print("bf16: n/a, this CPU has no bf16 instructions (avx512_bf16 / amx_bf16)")


if __name__ == "__main__":
    main()
