"""AP50 and recall of moving-target detections per target-SNR bin (synthetic benchmarks).

irdet diagnostic for the T = 5 vs T = 1 table (docs/sequences_model.md): ``irdet
synthesize-sequences`` stores each target's ``snr`` on its COCO annotation; this script
evaluates one or more COCO results files (``predictions.json`` of ``irdet evaluate``) with the
host's protocol (:func:`irdet.metrics.coco.coco_evaluate`: pycocotools AP50 at IoU 0.5, recall
of the whole ranked list at score >= 0.001) once per SNR bin. Targets outside the bin are
marked ``iscrowd = 1``: pycocotools then neither counts them as misses nor counts a
detection on them as a false positive (its crowd rule: a detection covered >= 50% by such a
box is ignored), so a bin's AP50 asks "how well are the targets of this brightness found
among everything the detector outputs". Nothing is asserted. Example::

    python benchmarks/ap_by_snr.py --ann runs/synthetic_sequences_snr2_20/annotations/test.json \\
        --predictions T1_FPN=runs/ablations/paper/runs/6f640b77a4/eval_test/predictions.json \\
        --bins 2 5 10 20
"""

from __future__ import annotations

import argparse

from irdet.data.coco import load_coco
from irdet.metrics.synthetic import ap50_by_snr


def ap_by_snr(ann, results, edges: list[float]) -> list[dict]:
    """Per-bin AP50 / recall for ``results`` against ``ann`` (annotations carry ``snr``):
    :func:`irdet.metrics.synthetic.ap50_by_snr` (``AP50`` / ``recall`` None for an empty bin).

    Raises:
        ValueError: fewer than two edges, or an annotation without ``snr``.
        DataError: bad annotation or results file.
    """
    return ap50_by_snr(ann, results, edges)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ann", required=True, help="COCO annotation json with 'snr' per annotation")
    ap.add_argument("--predictions", nargs="+", required=True, metavar="LABEL=FILE", help="COCO results files")
    ap.add_argument("--bins", nargs="+", type=float, default=[2, 5, 10, 20], help="SNR bin edges")
    args = ap.parse_args()
    runs = [p.rsplit("=", 1) if "=" in p else (p, p) for p in args.predictions]  # the label may hold "="
    gt = load_coco(args.ann)  # parsed once for all runs
    table = {label: ap_by_snr(gt, path, args.bins) for label, path in runs}
    bins = next(iter(table.values()))
    print("| run | " + " | ".join(f"SNR [{r['bin'][0]:g}, {r['bin'][1]:g}) AP50 / R (n={r['num_gts']})" for r in bins) + " |")
    print("|---|" + "---|" * len(bins))
    for label, rows in table.items():
        print(f"| {label} | " + " | ".join("-" if r["AP50"] is None else f"{r['AP50']:.3f} / {r['recall']:.3f}"
                                          for r in rows) + " |")


if __name__ == "__main__":
    main()
