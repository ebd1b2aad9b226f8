"""Metrics that only a synthetic moving-target benchmark can give (irdet extension).

``irdet synthesize-sequences`` records each target's SNR on its COCO annotation (``snr``) and,
with static distractors, lists their per-frame boxes apart from the targets (top-level
``"distractors"``: ``{"image_id", "bbox": [x, y, w, h], "distractor_id", "snr", "on_sky"}``).
Two measurements use them:

* **AP50 per SNR bin** (:func:`ap50_by_snr`): the host protocol (:func:`irdet.metrics.coco.coco_evaluate`,
  pycocotools AP at IoU 0.5 over the whole ranked list, score ≥ 0.001) once per bin, the
  targets outside the bin marked ``iscrowd = 1``: pycocotools then neither counts them as
  misses nor counts a detection on them as a false positive (a detection covered ≥ 50 % by
  such a box is ignored). A bin's AP50 answers "how well are the targets of this SNR found
  among everything the detector outputs". Bins are half-open ``[lo, hi)``, the last closed.
* **False alarms on static distractors** (:func:`distractor_false_alarms`): a detection with
  score ≥ ``score_thr`` *hits* a distractor when its box centre is closer than ``dist_thr``
  [3] px to the distractor box's centre (the centroid rule of Pd / Fa,
  :func:`irdet.metrics.pd_fa`) and it does not hit a target of the frame by the same rule.
  ``distractor_fa_per_frame`` = hits / frames holding at least one distractor;
  ``distractor_hit_rate`` = distractor boxes hit at least once / distractor boxes. A
  single-frame detector cannot tell a static distractor from a target by appearance (they
  are drawn alike); only motion can, so these two numbers measure what the temporal model
  adds.
* **AP50 lost to the distractors** (:func:`distractor_ap50_cost`): the same two numbers hang on
  one score threshold, and a detector early in training may put no score above it. Without a
  threshold: AP50 once as it is, and once with every distractor box added as ``iscrowd = 1``
  (a detection on a distractor is then ignored, not a false positive);
  ``distractor_AP50_cost`` = the second minus the first, ≥ 0, the AP50 the detector loses by
  ranking distractors among its detections.

Boxes: COCO ``[x, y, w, h]`` pixel-edge, original-frame pixels.
"""

from __future__ import annotations

import math

import numpy as np

from irdet.data.coco import load_coco
from irdet.metrics.coco import coco_evaluate, load_coco_results

__all__ = ["SNR_EDGES", "ap50_by_snr", "snr_key", "distractor_false_alarms", "distractor_ap50_cost", "synthetic_metrics",
           "format_synthetic_table"]

#: default SNR bin edges: [0, 2) very dim, [2, 5) dim, [5, 10), [10, ∞)
SNR_EDGES = (0.0, 2.0, 5.0, 10.0, math.inf)


def ap50_by_snr(ann, results, edges=SNR_EDGES) -> list[dict]:
    """Per-SNR-bin AP50 / recall of ``results`` against ``ann`` (module docstring).

    Args:
        ann: COCO annotation path or dict; every annotation must have a numeric ``snr``.
        results: COCO results path or list (``image_id`` int ids or frame names).
        edges: increasing bin edges (``math.inf`` allowed as the last).

    Returns:
        one dict per bin: ``bin`` (lo, hi), ``num_gts``, ``AP50`` and ``recall`` (None for a
        bin without targets).

    Raises:
        ValueError: fewer than two or non-increasing edges, an annotation without ``snr``.
        DataError: bad annotation or results file.
    """
    edges = [float(e) for e in edges]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"SNR bins need at least two increasing edges, got {edges}")
    gt = load_coco(ann)  # a private copy: its crowd flags are rewritten per bin
    res = load_coco_results(results, gt)
    if any(not isinstance(a.get("snr"), (int, float)) for a in gt["annotations"]):
        raise ValueError("annotations without 'snr': not an irdet synthetic benchmark")
    rows = []
    for k in range(len(edges) - 1):
        lo, hi = edges[k], edges[k + 1]
        last = k == len(edges) - 2
        n = 0
        for a in gt["annotations"]:
            inside = lo <= a["snr"] < hi or (last and a["snr"] == hi)
            a["iscrowd"] = 0 if inside else 1
            n += inside
        m = coco_evaluate(gt, res) if n else None
        rows.append({"bin": (lo, hi), "num_gts": n, "AP50": m and m["AP50"], "recall": m and m["recall"]})
    return rows


def snr_key(lo: float, hi: float) -> str:
    """Flat metrics key of the SNR bin [lo, hi), e.g. ``AP50_snr_0_2``, ``AP50_snr_10_inf``."""
    return f"AP50_snr_{lo:g}_{'inf' if math.isinf(hi) else f'{hi:g}'}"


def distractor_ap50_cost(ann, results, ap50: float | None = None) -> dict | None:
    """AP50 with and without the static distractors counted (module docstring), threshold-free.

    Args:
        ann: COCO annotation path or dict with a top-level ``"distractors"`` list.
        results: COCO results path or list.
        ap50: the plain AP50 of ``results``, when the caller has it (:func:`irdet.metrics.coco.coco_evaluate`
            already ran); None: computed here.

    Returns:
        None when the annotations have no ``"distractors"`` key; else ``AP50_distractors_ignored``
        (detections on a distractor box ignored, pycocotools crowd rule: covered ≥ 50 % by it) and
        ``distractor_AP50_cost`` (that minus the plain AP50; 0.0 without distractor boxes).

    Raises:
        DataError: bad annotation or results file.
    """
    gt = load_coco(ann)  # a private copy: the distractors are appended to its annotations
    if "distractors" not in gt:
        return None
    res = load_coco_results(results, gt)
    plain = coco_evaluate(gt, res)["AP50"] if ap50 is None else float(ap50)
    first = max((a["id"] for a in gt["annotations"]), default=0) + 1
    category = gt["categories"][0]["id"]
    gt["annotations"] = gt["annotations"] + [
        {"id": first + i, "image_id": d["image_id"], "category_id": category, "bbox": list(d["bbox"]),
         "area": float(d["bbox"][2] * d["bbox"][3]), "iscrowd": 1} for i, d in enumerate(gt["distractors"])]
    ignored = coco_evaluate(gt, res)["AP50"] if gt["distractors"] else plain
    return {"AP50_distractors_ignored": ignored, "distractor_AP50_cost": ignored - plain}


def _centres(boxes) -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return b[:, :2] + b[:, 2:] / 2


def distractor_false_alarms(ann, results, score_thr: float = 0.5, dist_thr: float = 3.0) -> dict | None:
    """False alarms on the static distractors (module docstring).

    Args:
        ann: COCO annotation path or dict with a top-level ``"distractors"`` list.
        results: COCO results path or list.
        score_thr: detections with score ≥ this count. dist_thr: centroid distance (px, strict <).

    Returns:
        None when the annotations have no ``"distractors"`` key; else ``distractor_fa_per_frame``,
        ``distractor_hit_rate`` (0.0 without distractor boxes), ``distractor_false_alarms``,
        ``distractor_boxes``, ``distractor_frames``, ``distractor_score_thr``.

    Raises:
        DataError: bad annotation or results file.
    """
    gt = load_coco(ann)
    if "distractors" not in gt:
        return None
    res = load_coco_results(results, gt)
    dis: dict[int, list] = {}
    for d in gt["distractors"]:
        dis.setdefault(d["image_id"], []).append(d["bbox"])
    tgt: dict[int, list] = {}
    for a in gt["annotations"]:
        if not a.get("iscrowd", 0):
            tgt.setdefault(a["image_id"], []).append(a["bbox"])
    det: dict[int, list] = {}
    for r in res:
        if r["score"] >= score_thr and r["image_id"] in dis:
            det.setdefault(r["image_id"], []).append(r["bbox"])
    hits = boxes_hit = 0
    for image_id, d_boxes in dis.items():
        dc = _centres(det.get(image_id, []))
        if not len(dc):
            continue
        near_d = np.linalg.norm(dc[:, None, :] - _centres(d_boxes)[None], axis=2) < dist_thr  # (M, D)
        tc = _centres(tgt.get(image_id, []))
        on_target = np.zeros(len(dc), bool)
        if len(tc):
            on_target = (np.linalg.norm(dc[:, None, :] - tc[None], axis=2) < dist_thr).any(1)
        near_d &= ~on_target[:, None]
        hits += int(near_d.any(1).sum())
        boxes_hit += int(near_d.any(0).sum())
    n_boxes = len(gt["distractors"])
    return {
        "distractor_fa_per_frame": hits / len(dis) if dis else 0.0,
        "distractor_hit_rate": boxes_hit / n_boxes if n_boxes else 0.0,
        "distractor_false_alarms": hits,
        "distractor_boxes": n_boxes,
        "distractor_frames": len(dis),
        "distractor_score_thr": float(score_thr),
    }


def synthetic_metrics(ann, results, score_thr: float = 0.5, edges=SNR_EDGES, ap50: float | None = None) -> dict:
    """The measurements the annotations allow: ``AP50_snr`` (list of ``{"snr_min", "snr_max"
    (None = ∞), "num_gts", "AP50", "recall"}``) and the same AP50s as flat keys
    (:func:`snr_key`) when every annotation has ``snr``; the :func:`distractor_false_alarms`
    and :func:`distractor_ap50_cost` keys when the file lists distractors; {} otherwise.
    ``ap50``: the plain AP50 of ``results`` if the caller has computed it (not computed again).

    Raises:
        DataError: bad annotation or results file.
    """
    gt = load_coco(ann)
    res = load_coco_results(results, gt)
    out: dict = {}
    if gt["annotations"] and all(isinstance(a.get("snr"), (int, float)) for a in gt["annotations"]):
        bins = ap50_by_snr(gt, res, edges)
        out["AP50_snr"] = [{"snr_min": r["bin"][0], "snr_max": None if math.isinf(r["bin"][1]) else r["bin"][1],
                            "num_gts": r["num_gts"], "AP50": r["AP50"], "recall": r["recall"]} for r in bins]
        out.update({snr_key(*r["bin"]): r["AP50"] for r in bins})
    fa = distractor_false_alarms(gt, res, score_thr)
    if fa is not None:
        out.update(fa)
        out.update(distractor_ap50_cost(gt, res, ap50))
    return out


def format_synthetic_table(metrics: dict) -> str:
    """Text lines for :func:`synthetic_metrics` keys in ``metrics`` ("" when there are none)."""
    lines = []
    for r in metrics.get("AP50_snr", []):
        hi = "inf" if r["snr_max"] is None else f"{r['snr_max']:g}"
        ap = "-" if r["AP50"] is None else f"{r['AP50']:.3f}"
        rec = "-" if r["recall"] is None else f"{r['recall']:.3f}"
        lines.append(f"AP50 SNR [{r['snr_min']:g}, {hi})  {ap}  recall {rec}  ({r['num_gts']} targets)")
    if "distractor_fa_per_frame" in metrics:
        lines.append(f"distractor_fa_per_frame  {metrics['distractor_fa_per_frame']:.3f}  detections on static "
                     f"distractors per frame (score >= {metrics['distractor_score_thr']:g}, "
                     f"{metrics['distractor_frames']} frames)")
        lines.append(f"distractor_hit_rate      {metrics['distractor_hit_rate']:.3f}  distractor boxes hit "
                     f"({metrics['distractor_boxes']} boxes)")
    if "distractor_AP50_cost" in metrics:
        lines.append(f"distractor_AP50_cost     {metrics['distractor_AP50_cost']:.3f}  AP50 lost to detections on "
                     f"distractors (AP50 {metrics['AP50_distractors_ignored']:.3f} with them ignored)")
    return "\n".join(lines)
