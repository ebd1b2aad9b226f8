"""Throughput of BAG-CP (irdet.data.bagcp) on one CPU thread, at the training resolution.

Usage::

    python benchmarks/bench_bagcp.py [--data ROOT] [--split trainval_v2] [--n 200]
                                     [--images 8] [--library FILE] [--lib-images 64]

Builds a target library from the first ``--lib-images`` images of the split (or loads
``--library``), reads ``--images`` real images resized to 512×512 (the training pipeline's
Resize), then times ``--n`` calls of each Table III configuration, the identity
(``copy_paste=False``) baseline included, and row (f) as the reference code implements it
(:class:`irdet.data.bagcp.reference.ReferenceBAGCP`), with ``torch.set_num_threads(1)``. Prints samples/s
against the 200 samples/s goal; reported, not asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from torchvision.transforms import v2  # noqa: E402

from irdet.data.bagcp import BAGCP, TargetLibrary, build_target_library  # noqa: E402
from irdet.data.bagcp.reference import ReferenceBAGCP, source_scales  # noqa: E402
from irdet.data.datasets.densesirst import DenseSIRST, resolve_data_root  # noqa: E402

GOAL = 200.0

#: Table III rows: (name, switches)
CONFIGS = [
    ("(a) identity (copy_paste off)", dict(copy_paste=False)),
    ("(b) copy-paste", dict(cluster=False, gaussian=False, background_aware=False)),
    ("(c) +cluster", dict(cluster=True, gaussian=False, background_aware=False)),
    ("(d) +gaussian", dict(cluster=False, gaussian=True, background_aware=False)),
    ("(e) cluster+gaussian", dict(cluster=True, gaussian=True, background_aware=False)),
    ("(f) BAG-CP (all four)", dict(cluster=True, gaussian=True, background_aware=True)),
    ("(f) reference code's BAG-CP", dict(variant="reference")),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="DenseSIRST root (default: $IRDET_DATA or ../shared/...)")
    ap.add_argument("--split", default="trainval_v2")
    ap.add_argument("--n", type=int, default=200, help="timed calls per configuration")
    ap.add_argument("--images", type=int, default=8, help="distinct 512x512 samples cycled through")
    ap.add_argument("--library", default=None, help="load this library instead of building one")
    ap.add_argument("--lib-images", type=int, default=64, help="images used to build the library")
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    root = resolve_data_root(args.data)
    t0 = time.perf_counter()
    if args.library:
        lib = TargetLibrary.load(args.library)
        how = f"loaded {args.library}"
    else:
        lib = build_target_library(root, args.split, max_images=args.lib_images)
        how = f"built from {args.lib_images} images of {args.split}"
    print(f"library: {len(lib)} targets ({how}) in {time.perf_counter() - t0:.1f} s")

    ds = DenseSIRST(
        root, args.split, sky_mask="palette", target_mask="binary", points=True,
        transforms=v2.Resize((args.size, args.size), antialias=True),
    )
    samples = [ds[i] for i in range(min(args.images, len(ds)))]
    print(f"samples: {len(samples)} images of {args.split} resized to {args.size}x{args.size}; "
          f"torch threads {torch.get_num_threads()}; {args.n} calls per configuration\n")

    print(f"{'configuration':32s} {'samples/s':>10s} {'ms/sample':>10s} {'pasted/sample':>14s} {'refused':>8s}  goal")
    for name, sw in CONFIGS:
        if sw.get("variant") == "reference":
            bag = ReferenceBAGCP(lib, source_scale=source_scales(lib, (args.size, args.size)), seed=0)
        else:
            bag = BAGCP(lib if sw.get("copy_paste", True) else None, seed=0, **sw)
        for s in samples:  # warm-up (fills the resized-entry cache)
            bag(s)
        bag.reset_stats()
        t = time.perf_counter()
        for i in range(args.n):
            bag(samples[i % len(samples)])
        dt = time.perf_counter() - t
        rate = args.n / dt
        st = bag.stats
        pasted = st["targets_pasted"] / max(1, st["samples"])
        refused = st["targets_refused"] / max(1, st["targets_requested"])
        flag = "ok" if rate >= GOAL else f"BELOW {GOAL:.0f}/s"
        print(f"{name:32s} {rate:10.1f} {1000 / rate:10.2f} {pasted:14.1f} {refused:8.1%}  {flag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
