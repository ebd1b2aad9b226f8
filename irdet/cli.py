"""``irdet`` command line: parse, call the library, print. ``irdet COMMAND --help`` for details."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from irdet.errors import IrdetError

__all__ = ["main"]

#: file suffixes of models: a first ``irdet detect`` argument with one of these is the checkpoint
MODEL_SUFFIXES = (".ckpt", ".pt", ".onnx")


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config file (or a name from configs/, e.g. bafenet_r18_densesirst_cpu)")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. train.max_epochs=2 data.crop=[256,256]")


def _data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None,
                   help="dataset root (DenseSIRST layout); default $IRDET_DATA, then ../shared/data/DenseSIRST/SIRSTdevkit; "
                        "'sample' = the small sample shipped with irdet")


#: exit status of ``irdet detect`` when some inputs were skipped (the others were processed)
DETECT_SKIPPED = 3
DETECT_EPILOG = """exit status:
  0  every input was processed
  2  error, one line on stderr: bad checkpoint, missing input, no image at all, non-empty
     --out without --overwrite, bad option
  3  done, but some inputs were skipped (unreadable or not images): each is printed on stderr
     as "irdet: skipped PATH: REASON" and listed in OUT/summary.json ("skipped": [{"path",
     "reason"}]); detections.json and overlays hold the other images
  130 interrupted"""


TRAIN_EPILOG = """checkpoints (OUT/checkpoints): last.ckpt every train.checkpoint_every_n_steps steps and at each
epoch end, written atomically (a killed run keeps its previous last.ckpt); best.ckpt only with a
data.val_split. Checkpoint selection never uses trained-on or test images: train on train_v2 and
select on val_v2, or train on trainval_v2 with data.val_split null (the default) and keep
last.ckpt; a val split that is the test split or shares images with the training or test split
is refused.

exit status:
  0  trained
  2  error, one line on stderr: bad config or data, a refused val split, OUT already holds a run
     (use --resume or --overwrite), a checkpoint that cannot be resumed (corrupt, not an irdet
     training checkpoint, another model)
  130 interrupted by Ctrl-C or SIGTERM (continue with --resume once a checkpoint exists; a run
     interrupted before its first checkpoint removes what it wrote)"""


def _inference_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=["32-true", "bf16-mixed", "16-mixed"], default=None,
                   help="numeric precision of the network run from a checkpoint (default: the checkpoint config's "
                        "train.precision; for a packaged weights file, the shipped model included, the precision "
                        "its metrics were scored in, so it reproduces them). "
                        "Resolved for the device: on a CPU without bf16 instructions (avx512_bf16/amx_bf16) "
                        "bf16-mixed and 16-mixed run as 32-true, on a CPU with them 16-mixed runs as bf16-mixed; "
                        "a change is said once on stderr. Decoding and metrics stay fp32")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes (0 = read images in the main "
                                                          "process; default 2); errors read the same whatever the count. "
                                                          "detect with a sequence checkpoint reads frames in the main "
                                                          "process")


def _backend_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["pytorch", "onnxruntime"], default=None,
                   help="inference backend (default: onnxruntime for an .onnx model, else pytorch). onnxruntime with a "
                        ".ckpt / .pt model exports it to ONNX in memory first; the same pre-processing, decoding, NMS "
                        "and outputs either way. Needs the export extra: pip install \"irdet[export]\"")


def _tile_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tile", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="tiled inference (irdet extension): run the network on overlapping H x W tiles of the network "
                        "input (multiples of the model's stride, e.g. 256 256) and stitch its outputs before decoding "
                        "and NMS; bounds memory on large frames. Overrides the checkpoint config's eval.tile (default: "
                        "that, null = whole frame in one pass)")
    p.add_argument("--tile-overlap", type=int, default=None, metavar="PX",
                   help="with --tile: minimum overlap of neighbouring tiles in pixels (default: the checkpoint config's "
                        "eval.tile_overlap, 32)")


def cmd_train(args) -> int:
    from irdet.config import load_config
    from irdet.engine.train import train

    cfg = load_config(args.config, args.overrides)
    resume = True if args.resume == "" else args.resume
    out = train(cfg, data=args.data, out=args.out, resume=resume, overwrite=args.overwrite)
    print(f"run directory: {out}  (checkpoints in {out / 'checkpoints'})")
    return 0


def cmd_evaluate(args) -> int:
    from irdet.engine.evaluate import evaluate_model, evaluate_results

    if args.checkpoint and args.predictions:
        raise IrdetError("give one of --checkpoint CKPT or --predictions FILE, not both (neither: the shipped default model)")
    if args.ann and not args.predictions:
        raise IrdetError("--ann COCO_JSON goes with --predictions FILE (a sequence checkpoint knows its annotations)")
    if args.predictions and (args.tile or args.tile_overlap is not None):
        raise IrdetError("--tile / --tile-overlap go with a checkpoint, not with --predictions FILE")
    if args.predictions and args.backend:
        raise IrdetError("--backend goes with a checkpoint or ONNX model, not with --predictions FILE")
    if not args.predictions:  # no --checkpoint: the shipped default model
        task, metrics = evaluate_model(args.checkpoint, args.data, args.split, args.out, args.accelerator,
                                       num_workers=args.workers, precision=args.precision, tile=args.tile,
                                       tile_overlap=args.tile_overlap, backend=args.backend)
    else:
        task, metrics = evaluate_results(args.predictions, args.data, args.split, args.out, args.pdfa_score_thr,
                                         ann=args.ann)
    print(task.format_metrics(metrics))  # the table of the task's protocol
    print(f"wrote {Path(args.out) / 'metrics.json'} and {Path(args.out) / 'pr_curve.png'}")
    return 0


def cmd_detect(args) -> int:
    from irdet.data.io import read_json
    from irdet.engine.detect import detect

    extra = {"fps": args.fps, "save_frames": args.save_frames} if (args.fps or args.save_frames) else {}
    if args.track:
        extra.update(track=True, track_radius=args.track_radius)
    checkpoint, inputs = args.checkpoint, list(args.inputs)
    if checkpoint is None and Path(inputs[0]).suffix in MODEL_SUFFIXES:  # irdet detect CKPT INPUTS...
        checkpoint, inputs = inputs[0], inputs[1:]
        if not inputs:
            raise IrdetError(f"no inputs after the checkpoint {checkpoint}")
    path = detect(checkpoint, inputs, args.out, args.score_thr, args.accelerator, num_workers=args.workers,
                  precision=args.precision, overwrite=args.overwrite, tile=args.tile, tile_overlap=args.tile_overlap,
                  backend=args.backend, frames=args.frames, **extra)
    overlays = Path(args.out) / "overlays"
    print(f"wrote {path} and overlays in {overlays if overlays.is_dir() else Path(args.out)}")
    summary = Path(args.out) / "summary.json"
    skipped = read_json(summary, "detection summary")["skipped"] if summary.is_file() else []
    for item in skipped:
        print(f"irdet: skipped {item['path']}: {item['reason']}", file=sys.stderr)
    if skipped:
        print(f"irdet: {len(skipped)} input(s) skipped, listed in {summary}", file=sys.stderr)
        return DETECT_SKIPPED
    return 0


def cmd_flops(args) -> int:
    from irdet.config import load_config
    from irdet.models.complexity import PAPER_BAFENET_R18, complexity
    from irdet.models import build_detector

    if args.config:
        cfg = load_config(args.config, args.overrides)
    else:  # the shipped default model's config
        from irdet.engine.zoo import read_weights, weights_path

        if not weights_path().is_file():
            raise IrdetError(f"{weights_path()}: this irdet has no shipped default model yet: give a CONFIG")
        cfg = read_weights(weights_path())["config"]
    stats = complexity(build_detector(cfg["model"]), args.img_size or cfg["data"]["img_size"])
    if args.json:
        print(json.dumps(stats))
        return 0
    size = stats["img_size"]
    print(f"{cfg['name']} at {size[0]}x{size[1]} (one multiply-add = one FLOP)")
    print(f"{'part':10s} {'params (M)':>12s} {'MACs (G)':>10s}")
    for part in ("backbone", "neck", "head"):
        if part in stats:
            print(f"{part:10s} {stats[part]['params'] / 1e6:12.3f} {stats[part]['macs'] / 1e9:10.3f}")
    print(f"{'total':10s} {stats['params'] / 1e6:12.3f} {stats['macs'] / 1e9:10.3f}")
    print(f"(paper, BAFE-Net-R18, Table II: {PAPER_BAFENET_R18['params'] / 1e6:.2f} M params, {PAPER_BAFENET_R18['macs'] / 1e9:.3f} G)")
    return 0


def cmd_export(args) -> int:
    from irdet.deploy.export import export_onnx
    from irdet.engine.predict import load_checkpoint

    if args.checkpoint and Path(args.checkpoint).suffix == ".onnx":
        raise IrdetError(f"{args.checkpoint}: already an ONNX model (export a .ckpt or .pt file)")
    module = load_checkpoint(args.checkpoint)
    source = Path(args.checkpoint).name if args.checkpoint else "default"
    out = export_onnx(module, args.out, args.opset, True if args.dynamic else None, args.half, source=source)
    from irdet.deploy.runtime import OnnxNetwork

    meta = OnnxNetwork(out).meta  # the written file loads in ONNX Runtime
    size = "dynamic H/W (multiples of %d)" % meta["hw_multiple"] if meta["dynamic_hw"] else \
        "H x W = %d x %d" % tuple(meta["input_size"])
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MB, opset {meta['opset']}, {meta['precision']}, input "
          f"{meta['input_name']} {meta['input_layout']} float32 in [0, 255], {size}; strides {meta['strides']})")
    print(f"run it: irdet detect {out} IMAGES --out DIR")
    return 0


def cmd_package(args) -> int:
    from irdet.engine.package import package

    out, metrics = package(args.checkpoint, args.out, args.data, args.split, num_workers=args.workers,
                           evaluate=not args.no_evaluate)
    key = next((k for k in ("mAP07", "AP50") if k in metrics), None)  # single-frame / sequence protocol
    scored = f" (scored on {metrics['split']}: {key} {metrics[key]:.4f})" if key else ""
    print(f"wrote {out}, {out.with_suffix('.yaml').name} and {out.stem}.metrics.json{scored}")
    return 0


def cmd_synthesize(args) -> int:
    from irdet.data.synthesis.images import print_summary, synthesize

    summary = synthesize(args.source, args.split, args.out, args.seed, library=args.library, limit=args.limit,
                         overwrite=args.overwrite)
    print(print_summary(summary))
    return 0


def cmd_synthesize_sequences(args) -> int:
    from irdet.data.synthesis.sequences import print_summary, synthesize_sequences

    kwargs = {"split": args.split, "overwrite": args.overwrite}
    if args.size:
        kwargs["size"] = tuple(args.size)
    if args.val_fraction is not None:
        kwargs["val_fraction"] = args.val_fraction
    if args.test_fraction is not None:
        kwargs["test_fraction"] = args.test_fraction
    for key in ("targets", "target_size", "snr", "pan", "distractors"):
        if getattr(args, key) is not None:
            kwargs[key] = tuple(getattr(args, key))
    for key in ("jitter", "snr_distribution", "cross_sky_border", "cross_cloud_edge", "distractor_sky"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    summary = synthesize_sequences(args.backgrounds, args.out, args.sequences, args.frames, args.seed, **kwargs)
    print(print_summary(summary))
    return 0


def cmd_show_augment(args) -> int:
    from irdet.config import load_config
    from irdet.data.datasets import resolve_root
    from irdet.data.io import atomic_write_bytes
    from irdet.visualize import augment_grid
    import io

    cfg = load_config(args.config, args.overrides)
    fig = augment_grid(cfg, resolve_root(cfg, args.data or cfg["data"]["root"]), args.n, args.seed, args.as_trained)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(args.out, buf.getvalue())
    print(f"wrote {args.out}")
    return 0


def cmd_ablate(args) -> int:
    from irdet.engine.ablate import ablate

    md = ablate(args.table, args.budget, args.data, args.out, args.overrides, args.rows, args.dry_run, args.seeds)
    print(Path(md).read_text())
    print(f"wrote {md}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="irdet", description="Infrared small target detection (BAFE-Net, BAG-CP, DenseSIRST, BP-FPN)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a detector from a config", epilog=TRAIN_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_config(p)
    _data(p)
    p.add_argument("--out", default=None, help="run directory (default runs/<config name>)")
    p.add_argument("--resume", nargs="?", const="", default=None, metavar="CKPT",
                   help="resume from CKPT, or from <out>/checkpoints/last.ckpt when no path is given")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the run already in --out (config.yaml, checkpoints/, logs/) and start again; "
                        "without it (or --resume) a folder holding a run is refused")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint or a results JSON (mAP07, mAP12, recall, AP75, Pd, Fa)")
    p.add_argument("--checkpoint", default=None,
                   help="irdet checkpoint (.ckpt), weights file (.pt) or ONNX model (.onnx, irdet export); default: "
                        "the shipped default model")
    p.add_argument("--predictions", default=None,
                   help='COCO-style results [{"image_id": id, "bbox": [x, y, w, h], "score": s}, ...] in the xml\'s numbers')
    _data(p)
    p.add_argument("--split", default=None,
                   help="split to evaluate (default test_v2; for a sequence checkpoint its data.test_split)")
    p.add_argument("--ann", default=None, metavar="COCO_JSON",
                   help="with --predictions: COCO annotation file of a sequence split -> moving-target protocol (COCO AP50, "
                        "P/R/F1, Pd/Fa); result image_id = COCO ids or frame names")
    p.add_argument("--out", default="eval", help="output folder (metrics.json, pr_curve.png, predictions.json)")
    p.add_argument("--pdfa-score-thr", type=float, default=0.5, help="score threshold for Pd/Fa (results files)")
    p.add_argument("--accelerator", default="auto")
    _inference_options(p)
    _tile_options(p)
    _backend_option(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("detect", help="detect targets in images (files or folders), or in a frame folder / video file "
                                      "with a sequence checkpoint; writes JSON + overlays (or an annotated video)",
                       epilog=DETECT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="[CHECKPOINT] INPUTS",
                   help="image files and/or folders of independent images; or one video file, or one folder of "
                        "the frames of one video (sorted numerically), for a sequence checkpoint. A first argument "
                        "ending in .ckpt, .pt or .onnx is the model (as --checkpoint). Without one, irdet picks its "
                        "shipped model by the input: the video model for one video file (a file without an image "
                        "suffix), or for one folder given with --frames (or --track); the single-frame model for "
                        "image files and folders, which are never guessed to be videos")
    p.add_argument("--checkpoint", default=None, help="irdet checkpoint (.ckpt), weights file (.pt) or ONNX model (.onnx)")
    p.add_argument("--frames", action="store_true",
                   help="without a checkpoint: the one input folder holds the frames of one video (run the shipped "
                        "video model on it, not the single-frame model on each image)")
    p.add_argument("--fps", type=float, default=None, help="sequence checkpoints: frame rate of the annotated video "
                                                           "(default: the input video's, 10 for frame folders)")
    p.add_argument("--save-frames", action="store_true", help="sequence checkpoints: also write annotated PNG frames")
    p.add_argument("--track", action="store_true",
                   help="sequence checkpoints: also link the detections into tracks (ByteTrack from the 'trackers' "
                        "package, centre-distance association): OUT/tracks.json, track ids drawn on the video")
    p.add_argument("--track-radius", type=float, default=8.0, metavar="PX",
                   help="with --track: largest centre distance in px between a track's predicted box and its next "
                        "detection (default 8)")
    p.add_argument("--out", default="detections")
    p.add_argument("--score-thr", type=float, default=0.3, help="minimum score of boxes drawn on overlays")
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--overwrite", action="store_true",
                   help="allow a non-empty --out: first delete detections.json, summary.json, tracks.json, overlays/ "
                        "and frames/ there (without it a non-empty --out is refused)")
    _inference_options(p)
    _tile_options(p)
    _backend_option(p)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("ablate", help="train + evaluate every row of a paper table; writes a markdown table (resumable)")
    p.add_argument("table", help="table3 ... table9 (configs/ablations/<table>_*.yaml) or a folder of configs")
    p.add_argument("--budget", choices=["cpu", "paper"], default="cpu",
                   help="cpu: overlay configs/budgets/cpu.yaml; paper: the row as written")
    _data(p)
    p.add_argument("--out", default="runs/ablations", help="results root (runs are shared between tables)")
    p.add_argument("--rows", nargs="*", default=None, help="only these rows (e.g. a b f)")
    p.add_argument("--dry-run", action="store_true", help="only rewrite the table from finished runs")
    p.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                   help="run every row once per seed (train.seed) and report mean ± std per row in "
                        "OUT/BUDGET/<table>_seeds.md (default: one run per row at its config's seed)")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("synthesize", help="paste dense target clusters into sky regions: write a DenseSIRST-layout dataset")
    p.add_argument("--source", required=True, help="DenseSIRST-layout root with sky masks")
    p.add_argument("--split", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--library", default=None, help="saved target library (.npz); default: built from the split")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_synthesize)

    p = sub.add_parser("synthesize-sequences",
                       help="moving-target sequences on real infrared backgrounds: write a COCO sequence dataset "
                            "(splits train / val, layout 'irdet')")
    p.add_argument("--backgrounds", required=True, help="DenseSIRST-layout root with sky masks (the backgrounds)")
    p.add_argument("--out", required=True, help="output root (must be empty unless --overwrite)")
    p.add_argument("--sequences", type=int, required=True, help="number of sequences")
    p.add_argument("--frames", type=int, required=True, help="frames per sequence")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default=None,
                   help="background split of the DenseSIRST root (default trainval_v2 if present, else all images)")
    p.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"), help="frame size (default 256 256)")
    p.add_argument("--val-fraction", type=float, default=None, help="fraction of sequences in the val split (0.2)")
    p.add_argument("--test-fraction", type=float, default=None,
                   help="fraction of sequences in a held-out test split with its own backgrounds (default 0: none)")
    p.add_argument("--targets", type=int, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="targets (tracks) per sequence (default 1 3)")
    p.add_argument("--target-size", type=int, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="target side in pixels (default 2 7)")
    p.add_argument("--snr", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="per-track SNR range: peak amplitude / background noise std (default 1 10)")
    p.add_argument("--snr-distribution", choices=["uniform", "log-uniform"], default=None,
                   help="how the SNR is drawn over --snr (default uniform; log-uniform: as many dim as bright targets)")
    p.add_argument("--pan", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="camera pan speed range in px/frame (default 0 1.5)")
    p.add_argument("--jitter", type=float, default=None, metavar="PX",
                   help="camera jitter amplitude in px, uniform per axis and frame, sub-pixel (default 0.5)")
    p.add_argument("--cross-sky-border", type=float, default=None, metavar="FRACTION",
                   help="fraction of tracks built to cross the sky / non-sky border of the sky mask (default 0)")
    p.add_argument("--cross-cloud-edge", type=float, default=None, metavar="FRACTION",
                   help="fraction of tracks built to cross a cloud edge (strong background gradient in sky; default 0)")
    p.add_argument("--distractors", type=int, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="static target-like distractors per sequence, fixed in the scene, annotated apart from the "
                        "targets (default 0 0: none)")
    p.add_argument("--distractor-sky", type=float, default=None, metavar="FRACTION",
                   help="fraction of the distractors on sky, the others on buildings / ground (default 0.5)")
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty output folder")
    p.set_defaults(func=cmd_synthesize_sequences)

    p = sub.add_parser("show-augment", help="PNG grid of augmented training samples (boxes drawn, sky tinted)")
    _add_config(p)
    _data(p)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--as-trained", action="store_true", help="also apply the CPU-budget crop")
    p.add_argument("--out", default="augment.png")
    p.set_defaults(func=cmd_show_augment)

    p = sub.add_parser("flops", help="parameters and multiply-adds (backbone / neck / head)")
    p.add_argument("config", nargs="?", default=None,
                   help="YAML config file or a name from configs/ (default: the shipped default model)")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. model.head.feat_channels=128")
    p.add_argument("--json", action="store_true", help='print {"params": int, "macs": int, ...}')
    p.add_argument("--img-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="input size (default: the config's data.img_size; 512 512 for native-resolution models)")
    p.set_defaults(func=cmd_flops)

    p = sub.add_parser("export", help="export a model to ONNX: the network's raw per-level outputs, decoding and NMS "
                                      "left to irdet (irdet detect / evaluate / irdet.load run the file)")
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="irdet checkpoint (.ckpt) or weights file (.pt); default: the shipped default model")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="export format (onnx)")
    p.add_argument("--out", required=True, help="output file (.onnx)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the torch exporter's)")
    p.add_argument("--dynamic", action="store_true",
                   help="dynamic input H/W (multiples of the network stride). Always on for native-resolution "
                        "(data.img_size null) and keep_ratio models; otherwise the input is fixed to the padded "
                        "data.img_size. The batch size is always dynamic")
    p.add_argument("--half", action="store_true",
                   help="float16 weights and arithmetic (float32 input and outputs), for runtimes with fp16 kernels; "
                        "ONNX Runtime's CPU provider runs it too (its speed there is not measured by irdet)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("package", help="turn a training checkpoint into a float16 weights file (<= 25 MB) with its "
                                       "config and the metrics the file itself scores on a split")
    p.add_argument("checkpoint", help="irdet training checkpoint (.ckpt)")
    p.add_argument("--out", required=True, help="weights file (.pt); NAME.yaml and NAME.metrics.json are written beside it")
    _data(p)
    p.add_argument("--split", default=None, help="split the packaged weights are scored on (default: the config's "
                                                  "data.test_split: test_v2 for DenseSIRST models)")
    p.add_argument("--no-evaluate", action="store_true", help="write the weights without scoring them")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes (default 2)")
    p.set_defaults(func=cmd_package)
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
