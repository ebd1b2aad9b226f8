"""Cost of the BP-FPN variants (``configs/bpfpn/*.yaml``) relative to the FPN variant of the same host.

For every variant: parameters, multiply-adds (:func:`irdet.models.complexity.complexity`, one
multiply-add = one FLOP, at ``--img-size``, default 512×512, inference mode: DGR is a
training-only loss and costs nothing there) and CPU inference latency (median over
``--repeats`` timed forward passes of one (1, 3, H, W) image through backbone → neck → head,
raw head outputs, no decoding/NMS, under ``torch.inference_mode``; the variants of a host are
timed round-robin in the same run so that background load hits them alike). Prints a markdown
table and the MAC overhead of GILS+DGR over FPN per host (goal ≤ 5%). Reported, not asserted.
No dataset needed (weights are random; the cost does not depend on them). Usage::

    python benchmarks/bench_bpfpn.py [--threads 2] [--repeats 5] [--img-size 512 512] [--hosts fcos bafenet]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from irdet.config import load_config
from irdet.models import build_detector
from irdet.models.complexity import complexity

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ["fpn", "vanilla_shortcut", "gils", "dgr", "gils_dgr", "gils_dgr_p2", "gils_dgr_cs"]
GOAL_MAC_OVERHEAD = 0.05  # GILS+DGR vs FPN


def variant_configs(host: str) -> list[tuple[str, Path]]:
    """(variant, path) of ``configs/bpfpn/<host>_*.yaml``, in :data:`VARIANTS` order, then any others."""
    paths = {p.stem[len(host) + 1:]: p for p in sorted((REPO / "configs/bpfpn").glob(f"{host}_*.yaml"))}
    order = [v for v in VARIANTS if v in paths] + [v for v in paths if v not in VARIANTS]
    return [(v, paths[v]) for v in order]


def bench_host(host: str, img_size: tuple[int, int], repeats: int) -> list[dict]:
    rows = []
    for variant, path in variant_configs(host):
        torch.manual_seed(0)
        model = build_detector(load_config(path)["model"]).eval()
        stats = complexity(model, img_size)
        rows.append({"host": host, "variant": variant, "config": str(path.relative_to(REPO)), "model": model,
                     "params": stats["params"], "macs": stats["macs"], "neck_macs": stats["neck"]["macs"], "times": []})
    x = torch.rand(1, 3, *img_size) * 255
    with torch.inference_mode():
        for r in rows:  # warm-up
            r["model"](x)
        for _ in range(repeats):
            for r in rows:
                t0 = time.perf_counter()
                r["model"](x)
                r["times"].append(time.perf_counter() - t0)
    for r in rows:
        r["latency_s"] = statistics.median(r["times"])
        del r["model"]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--repeats", type=int, default=5, help="timed forward passes per variant (after one warm-up)")
    ap.add_argument("--img-size", type=int, nargs=2, default=[512, 512], metavar=("H", "W"))
    ap.add_argument("--hosts", nargs="*", default=["fcos", "bafenet"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    size = (args.img_size[0], args.img_size[1])
    print(f"threads={args.threads} repeats={args.repeats} input=1x3x{size[0]}x{size[1]} (inference, no decoding) "
          f"torch={torch.__version__}\n")
    print("| host | variant | params (M) | Δparams vs FPN | GMACs | ΔMACs vs FPN | neck GMACs | CPU latency (ms) | × FPN |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    summary = []
    for host in args.hosts:
        rows = bench_host(host, size, args.repeats)
        base = next((r for r in rows if r["variant"] == "fpn"), rows[0])
        for r in rows:
            print(f"| {host} | {r['variant']} | {r['params'] / 1e6:.3f} | {r['params'] - base['params']:+,d} "
                  f"({100 * (r['params'] / base['params'] - 1):+.2f}%) | {r['macs'] / 1e9:.3f} | "
                  f"{100 * (r['macs'] / base['macs'] - 1):+.2f}% | {r['neck_macs'] / 1e9:.3f} | "
                  f"{1e3 * r['latency_s']:.0f} | {r['latency_s'] / base['latency_s']:.2f} |")
        full = next((r for r in rows if r["variant"] == "gils_dgr"), None)
        if full is not None:
            summary.append((host, full["macs"] / base["macs"] - 1, full["params"] / base["params"] - 1,
                            full["latency_s"] / base["latency_s"]))
    print()
    for host, dm, dp, lat in summary:
        verdict = "within" if dm <= GOAL_MAC_OVERHEAD else "ABOVE"
        print(f"{host}: GILS+DGR over FPN: MACs {100 * dm:+.2f}% ({verdict} the {100 * GOAL_MAC_OVERHEAD:.0f}% goal), "
              f"params {100 * dp:+.2f}%, CPU latency ×{lat:.2f}")


if __name__ == "__main__":
    main()
