"""Track scores (CLEAR MOTA, IDF1 of ``trackers.eval``) on an irdet synthetic sequence split.

irdet diagnostic for the tracking output of ``irdet detect --track``: the detections of every
sequence of the split are linked with :class:`irdet.tracking.TrackLinker` (the linker ``irdet
detect --track`` runs, same parameters) and scored against the ground-truth tracks
(``track_id`` of the COCO annotations), matching at IoU >= 0.5 and at a centre distance <= 3 px.

Detections come from one of:

* ``--predictions FILE``: a COCO results file of the split (``predictions.json`` of ``irdet
  evaluate`` on a sequence checkpoint);
* ``--oracle``: the ground-truth target boxes plus the static-distractor boxes (a detector that
  finds every bright blob and cannot tell a distractor from a target; ``--without-distractors``:
  the target boxes only), each missed with
  probability ``--miss``, centres moved by N(0, ``--noise``²) px, scores U[0.5, 1]. This measures
  the linker alone, not a detector. Nothing is asserted. Example::

    python benchmarks/track_synthetic.py --ann data/seq_hard/annotations/test.json --oracle --miss 0.1 --noise 0.5
"""

from __future__ import annotations

import argparse

import numpy as np

from irdet.data.coco import load_coco
from irdet.metrics.coco import load_coco_results
from irdet.tracking import TrackLinker, score_tracks


def sequences_of(gt: dict) -> dict[str, list[dict]]:
    """Sequence name → its images ordered by frame number (``sequence`` / ``frame`` keys, else file names)."""
    seqs: dict[str, list] = {}
    for im in gt["images"]:
        name = im.get("sequence") or im["file_name"].rsplit("/", 1)[0]
        seqs.setdefault(name, []).append(im)
    for ims in seqs.values():
        ims.sort(key=lambda im: im.get("frame", int(im["file_name"].rsplit("/", 1)[-1].split(".")[0])))
    return seqs


def _xyxy(b):
    x, y, w, h = b
    return [x, y, x + w, y + h]


def oracle_detections(gt: dict, miss: float, noise: float, seed: int, distractors: bool = True) -> list[dict]:
    """Results list: target (+ distractor) boxes, missed with probability ``miss``, centres jittered."""
    rng = np.random.default_rng(seed)
    out = []
    for a in gt["annotations"] + (gt.get("distractors", []) if distractors else []):
        if rng.random() < miss:
            continue
        dx, dy = rng.normal(0, noise, 2) if noise > 0 else (0.0, 0.0)
        x, y, w, h = a["bbox"]
        out.append({"image_id": a["image_id"], "category_id": 1, "bbox": [x + dx, y + dy, w, h],
                    "score": float(rng.uniform(0.5, 1.0))})
    return out


def track_scores(gt: dict, results: list[dict], **linker) -> dict:
    """Link per sequence and score (IoU and centre matching); also the per-kind track counts."""
    seqs = sequences_of(gt)
    by_image: dict[int, list] = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(r)
    gt_by_image: dict[int, list] = {}
    for a in gt["annotations"]:
        gt_by_image.setdefault(a["image_id"], []).append(a)
    scored = []
    for ims in seqs.values():
        lk = TrackLinker(**linker)
        gt_tracks: dict[int, list] = {}
        for f, im in enumerate(ims):
            rs = by_image.get(im["id"], [])
            lk.update(np.asarray([_xyxy(r["bbox"]) for r in rs]).reshape(-1, 4), np.asarray([r["score"] for r in rs]))
            for a in gt_by_image.get(im["id"], []):
                gt_tracks.setdefault(a["track_id"], []).append({"frame": f, "bbox": a["bbox"]})
        scored.append(([{"track_id": k, "detections": v} for k, v in gt_tracks.items()], lk.tracks(), len(ims)))
    return {m: score_tracks(scored, match=m) for m in ("iou", "centre")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ann", required=True, help="COCO annotation json of an irdet synthetic split (track_id per box)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--predictions", help="COCO results file of the split")
    src.add_argument("--oracle", action="store_true", help="ground-truth target + distractor boxes as detections")
    ap.add_argument("--miss", type=float, default=0.1, help="oracle: probability of missing a box")
    ap.add_argument("--noise", type=float, default=0.5, help="oracle: std of the centre noise, px")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--without-distractors", action="store_true", help="oracle: the target boxes only")
    ap.add_argument("--radius", type=float, default=8.0, help="linker: association gate, px")
    ap.add_argument("--score-thr", type=float, default=0.3, help="linker: score that starts a track")
    args = ap.parse_args()
    gt = load_coco(args.ann)
    results = (oracle_detections(gt, args.miss, args.noise, args.seed, not args.without_distractors) if args.oracle
               else load_coco_results(args.predictions, gt))
    scores = track_scores(gt, results, radius=args.radius, score_thr=args.score_thr,
                          low_score_thr=min(0.1, args.score_thr))
    keys = ("MOTA", "IDF1", "IDP", "IDR", "IDSW", "CLR_FP", "CLR_FN", "MT", "ML", "gt_tracks", "pred_tracks",
            "sequences")
    print("| match | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for m, s in scores.items():
        print(f"| {m} | " + " | ".join(f"{s[k]:.3f}" if isinstance(s[k], float) else str(s[k]) for k in keys) + " |")
    print(f"distractor boxes in the split: {len(gt.get('distractors', []))}")


if __name__ == "__main__":
    main()
