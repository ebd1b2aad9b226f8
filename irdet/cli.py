"""``irdet`` command line: parse, call the library, print. ``irdet COMMAND --help`` for details."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from irdet.errors import IrdetError

__all__ = ["main"]


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config file (or a name from configs/, e.g. bafenet_r18_densesirst_cpu)")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. train.max_epochs=2 data.crop=[256,256]")


def _data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None,
                   help="dataset root (DenseSIRST layout); default $IRDET_DATA, then ../shared/data/DenseSIRST/SIRSTdevkit; "
                        "'sample' = the small sample shipped with irdet")


def cmd_train(args) -> int:
    from irdet.config import load_config
    from irdet.engine.runner import train

    cfg = load_config(args.config, args.overrides)
    resume = True if args.resume == "" else args.resume
    out = train(cfg, data=args.data, out=args.out, resume=resume)
    print(f"run directory: {out}  (checkpoints in {out / 'checkpoints'})")
    return 0


def cmd_evaluate(args) -> int:
    from irdet.engine.runner import evaluate_checkpoint, evaluate_predictions
    from irdet.metrics import format_table

    if bool(args.checkpoint) == bool(args.predictions):
        raise IrdetError("give exactly one of --checkpoint CKPT or --predictions FILE")
    if args.checkpoint:
        metrics = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.out, args.accelerator)
    else:
        metrics = evaluate_predictions(args.predictions, args.data, args.split, args.out, args.pdfa_score_thr)
    print(format_table(metrics))
    print(f"wrote {Path(args.out) / 'metrics.json'} and {Path(args.out) / 'pr_curve.png'}")
    return 0


def cmd_detect(args) -> int:
    from irdet.engine.runner import detect

    path = detect(args.checkpoint, args.inputs, args.out, args.score_thr, args.accelerator)
    print(f"wrote {path} and overlays in {Path(args.out) / 'overlays'}")
    return 0


def cmd_flops(args) -> int:
    from irdet.config import load_config
    from irdet.models.complexity import PAPER_BAFENET_R18, complexity
    from irdet.models.detector import build_detector

    cfg = load_config(args.config, args.overrides)
    size = args.img_size or cfg["data"]["img_size"]
    stats = complexity(build_detector(cfg["model"]), size)
    if args.json:
        print(json.dumps(stats))
        return 0
    print(f"{cfg['name']} at {size[0]}x{size[1]} (one multiply-add = one FLOP)")
    print(f"{'part':10s} {'params (M)':>12s} {'MACs (G)':>10s}")
    for part in ("backbone", "neck", "head"):
        if part in stats:
            print(f"{part:10s} {stats[part]['params'] / 1e6:12.3f} {stats[part]['macs'] / 1e9:10.3f}")
    print(f"{'total':10s} {stats['params'] / 1e6:12.3f} {stats['macs'] / 1e9:10.3f}")
    print(f"(paper, BAFE-Net-R18, Table II: {PAPER_BAFENET_R18['params'] / 1e6:.2f} M params, {PAPER_BAFENET_R18['macs'] / 1e9:.3f} G)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="irdet", description="Infrared small target detection (BAFE-Net, BAG-CP, DenseSIRST, BP-FPN)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a detector from a config")
    _add_config(p)
    _data(p)
    p.add_argument("--out", default=None, help="run directory (default runs/<config name>)")
    p.add_argument("--resume", nargs="?", const="", default=None, metavar="CKPT",
                   help="resume from CKPT, or from <out>/checkpoints/last.ckpt when no path is given")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint or a results JSON (mAP07, mAP12, recall, AP75, Pd, Fa)")
    p.add_argument("--checkpoint", default=None, help="irdet checkpoint (.ckpt)")
    p.add_argument("--predictions", default=None,
                   help='COCO-style results [{"image_id": id, "bbox": [x, y, w, h], "score": s}, ...] in xml numbering')
    _data(p)
    p.add_argument("--split", default="test_v2")
    p.add_argument("--out", default="eval", help="output folder (metrics.json, pr_curve.png, predictions.json)")
    p.add_argument("--pdfa-score-thr", type=float, default=0.5, help="score threshold for Pd/Fa (results files)")
    p.add_argument("--accelerator", default="auto")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("detect", help="detect targets in images (files or folders); writes JSON + overlays")
    p.add_argument("checkpoint")
    p.add_argument("inputs", nargs="+", help="image files and/or folders")
    p.add_argument("--out", default="detections")
    p.add_argument("--score-thr", type=float, default=0.3, help="minimum score of boxes drawn on overlays")
    p.add_argument("--accelerator", default="auto")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("flops", help="parameters and multiply-adds (backbone / neck / head)")
    _add_config(p)
    p.add_argument("--json", action="store_true", help='print {"params": int, "macs": int, ...}')
    p.add_argument("--img-size", type=int, nargs=2, default=None, metavar=("H", "W"))
    p.set_defaults(func=cmd_flops)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``irdet`` console script. Returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except IrdetError as exc:
        print(f"irdet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("irdet: interrupted (a training run continues with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
