"""What the CPU budget's training crops contain: own (ground-truth) vs BAG-CP-pasted targets.

irdet diagnostic for the CPU-budget finding that BAG-CP lowers FCOS mAP07 (docs/ablations.md):
draws ``--samples`` training samples through a config's training pipeline (resize, BAG-CP,
flip, 256x256 target-aware crop) under three settings and prints, per crop, the mean number
of the image's own targets, of pasted targets, and the share of crops holding at least one
own target:

- ``no BAG-CP``: Table III (a);
- ``BAG-CP, crop_on=all``: Table III (f) as measured (crops may centre on pasted targets);
- ``BAG-CP, crop_on=gt``: the ``data.crop_on: gt`` switch (crops centre on own targets only).

Counts, not timings; nothing is asserted. Example::

    python benchmarks/crop_targets.py --config configs/fcos_r18_densesirst_cpu.yaml --samples 300
"""

from __future__ import annotations

import argparse

import torch


def crop_stats(cfg: dict, root, samples: int, seed: int) -> dict:
    """Mean own / pasted boxes per training crop of ``cfg`` over ``samples`` draws."""
    from irdet.visualize import _PASTED, marked_train_set

    torch.manual_seed(seed)
    ds = marked_train_set(cfg, root)
    idx = torch.randint(len(ds), (samples,)).tolist()
    own = pasted = with_own = 0
    for i in idx:
        labels = ds[i]["labels"]
        n_p = int((labels == _PASTED).sum())
        own += len(labels) - n_p
        pasted += n_p
        with_own += int(len(labels) > n_p)
    return {"own": own / samples, "pasted": pasted / samples, "with_own": with_own / samples}


def main() -> None:
    from irdet.config import load_config
    from irdet.data.datasets.densesirst import resolve_data_root

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/fcos_r18_densesirst_cpu.yaml")
    ap.add_argument("--data", default=None, help="dataset root (default: the config's / ../shared)")
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    settings = {
        "no BAG-CP": ["data.bagcp.enabled=false"],
        "BAG-CP, crop_on=all": ["data.bagcp.enabled=true", "data.crop_on=all"],
        "BAG-CP, crop_on=gt": ["data.bagcp.enabled=true", "data.crop_on=gt"],
    }
    print(f"| setting | own targets / crop | pasted / crop | crops with an own target |  ({args.samples} crops, seed {args.seed})")
    print("|---|---|---|---|")
    for name, overrides in settings.items():
        cfg = load_config(args.config, overrides)
        root = resolve_data_root(args.data or cfg["data"]["root"])
        s = crop_stats(cfg, root, args.samples, args.seed)
        print(f"| {name} | {s['own']:.2f} | {s['pasted']:.2f} | {s['with_own']:.1%} |")


if __name__ == "__main__":
    main()
