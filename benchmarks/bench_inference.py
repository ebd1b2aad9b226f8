"""Inference throughput: PyTorch fp32 / bf16 autocast vs ONNX Runtime, same model, same run.

Images per second (batch 1, ``--threads`` threads, default 2) of the network plus decoding
and NMS (:func:`irdet.models.postprocess.decode_detections`, the same for every backend) on
real DenseSIRST ``test_v2`` images, already read and transformed (image reading is not
timed), at two input sizes:

* ``512``: every image resized to 512×512 (stretched, antialiased; a native-resolution model
  is given the 512² input as is);
* ``original``: the model's own test pipeline (native resolution: the whole frame, padded to
  a multiple of 32; a fixed-size model: its ``data.img_size``).

Rows, each also as a ratio to PyTorch fp32 measured in the same run:

* ``pytorch fp32``;
* ``pytorch bf16 autocast``: ``torch.autocast("cpu", dtype=torch.bfloat16)`` forced, also on
  CPUs without bf16 instructions (``avx512_bf16`` / ``amx_bf16``), where PyTorch emulates bf16
  and it is many times slower (the column says whether the CPU has them);
* ``onnxruntime fp32``: the ``irdet export`` graph (dynamic H/W), ONNX Runtime's graph
  optimisations off (``ORT_DISABLE_ALL``);
* ``onnxruntime optimised``: the same file with ``ORT_ENABLE_ALL`` (fusions, constant folding,
  layout transforms: what ``irdet detect`` uses).

Usage::

    python benchmarks/bench_inference.py [MODEL] [--config CONFIG] [--data ROOT] [--images 8]
        [--repeat 3] [--warmup 1] [--threads 2] [--sizes 512 original] [--skip-bf16] [--out FILE.md]

``MODEL``: a ``.ckpt`` / ``.pt`` (default: the shipped default model); without one and without
a shipped model, ``--config`` (default ``configs/fcos_r18_p2_light_native.yaml``) with random
weights (throughput does not depend on the weights, except that decoding has fewer boxes to
sort). Reported, not asserted; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from irdet.data.datasets.densesirst import DenseSIRST, resolve_data_root
from irdet.data.collate import collate
from irdet.data.transforms import build_test_transforms
from irdet.engine.tasks.detect import test_transforms_from_cfg
from irdet.engine.precision import cpu_has_bf16

ROWS = ("pytorch fp32", "pytorch bf16 autocast", "onnxruntime fp32", "onnxruntime optimised")


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def load_module(model: str | None, config: str):
    """The module to time and a description of where it came from."""
    from irdet.engine import zoo
    from irdet.engine.predict import load_checkpoint

    if model or zoo.weights_path().is_file():
        module = load_checkpoint(model)
        return module, str(model or zoo.weights_path())
    from irdet.config import load_config
    from irdet.engine.module import DetectorModule

    torch.manual_seed(0)
    module = DetectorModule(load_config(config))
    module.eval()
    return module, f"{config} (random weights: no shipped default model)"


def batches(module, root, n: int, size: str) -> list[dict]:
    """``n`` test_v2 images as collated one-image batches for ``size`` (``512`` / ``original``)."""
    tf = build_test_transforms((512, 512)) if size == "512" else test_transforms_from_cfg(module.config)
    dataset = DenseSIRST(root, "test_v2", sky_mask=None, transforms=tf)
    return [collate([dataset[i]]) for i in range(min(n, len(dataset)))]


def throughput(run, data: list[dict], repeat: int, warmup: int) -> float:
    """Images per second of ``run(batch)`` over ``data``, ``repeat`` passes after ``warmup`` passes."""
    for _ in range(warmup):
        for b in data:
            run(b)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for b in data:
            run(b)
        times.append(time.perf_counter() - t0)
    return len(data) / statistics.median(times)


def runners(module, threads: int, skip_bf16: bool) -> dict:
    """Row name → ``run(batch)`` (network + decoding + NMS)."""
    from irdet.deploy.export import build_onnx
    from irdet.deploy.runtime import load_onnx

    model = module.model.eval()

    def pytorch(batch, bf16=False):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model.predict(batch)

    onnx_bytes = build_onnx(module, dynamic=True).SerializeToString()
    plain = load_onnx(onnx_bytes, threads, "disabled").model
    optimised = load_onnx(onnx_bytes, threads, "all").model
    rows = {"pytorch fp32": pytorch}
    if not skip_bf16:
        rows["pytorch bf16 autocast"] = lambda b: pytorch(b, bf16=True)
    rows["onnxruntime fp32"] = plain.predict
    rows["onnxruntime optimised"] = optimised.predict
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", default=None, help=".ckpt / .pt (default: the shipped default model)")
    ap.add_argument("--config", default="configs/fcos_r18_p2_light_native.yaml",
                    help="config timed with random weights when there is no model (default: the default model's)")
    ap.add_argument("--data", default=None, help="DenseSIRST root (default: $IRDET_DATA, then ../shared/...)")
    ap.add_argument("--images", type=int, default=8, help="test_v2 images per pass (default 8)")
    ap.add_argument("--repeat", type=int, default=3, help="timed passes; the median is reported (default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed passes first (default 1)")
    ap.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads (default 2)")
    ap.add_argument("--sizes", nargs="+", choices=["512", "original"], default=["512", "original"])
    ap.add_argument("--skip-bf16", action="store_true", help="leave out the bf16 autocast row (slow without bf16 CPUs)")
    ap.add_argument("--out", default=None, help="also write the table (markdown) and FILE.json")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    module, source = load_module(args.model, args.config)
    root = resolve_data_root(args.data)
    rows = runners(module, args.threads, args.skip_bf16)
    data = {size: batches(module, root, args.images, size) for size in args.sizes}
    result = {row: {} for row in rows}
    for size, bs in data.items():
        for row, run in rows.items():
            result[row][size] = throughput(run, bs, args.repeat, args.warmup)
            print(f"[bench] {row:24s} {size:>8s}: {result[row][size]:.2f} img/s", file=sys.stderr)
    shapes = {size: sorted({tuple(b["images"].shape[-2:]) for b in bs}) for size, bs in data.items()}
    lines = [f"model: {source} ({module.config.get('name', '?')}); {args.images} test_v2 images x {args.repeat} passes "
             f"(median), batch 1, {args.threads} threads; torch {torch.__version__}; CPU {cpu_name()}; "
             f"bf16 instructions: {'yes' if cpu_has_bf16() else 'no (bf16 emulated)'}",
             "input sizes (H, W): " + "; ".join(f"{s}: {', '.join(f'{h}x{w}' for h, w in v[:6])}"
                                                + (" ..." if len(v) > 6 else "") for s, v in shapes.items()),
             "",
             "| backend | " + " | ".join(f"{s} img/s | ×fp32" for s in args.sizes) + " |",
             "|---|" + "---:|---:|" * len(args.sizes)]
    base = result["pytorch fp32"]
    for row in rows:
        cells = " | ".join(f"{result[row][s]:.2f} | {result[row][s] / base[s]:.2f}" for s in args.sizes)
        lines.append(f"| {row} | {cells} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
        Path(args.out).with_suffix(".json").write_text(json.dumps({"source": source, "threads": args.threads,
                                                                   "images": args.images, "img_per_s": result,
                                                                   "input_sizes": shapes}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
