"""PASCAL-VOC average precision for one class, as computed by MMDetection's ``VOCMetric``.

This module replicates ``mmdet.evaluation.functional.eval_map`` (``tpfp_default`` +
``average_precision``) with ``use_legacy_coordinate=True``, which is what the DenseSIRST
reference code reports (BAFE-Net paper Table II). Source: MMDetection ``eval_map`` / PASCAL VOC devkit.

Coordinate convention of the whole metric API (:mod:`irdet.metrics`):

* Boxes are ``(N, 4)`` arrays ``(xmin, ymin, xmax, ymax)`` in the **xml's own numbers**,
  which for DenseSIRST are irdet's pixel-edge coordinates (see :mod:`irdet.data.io`), in
  pixels of the original image (floats allowed, e.g. for predictions).
* With ``plus_one=True`` (the default: the VOC "+1" formula of the reference metric) a
  box is ``xmax - xmin + 1`` pixels wide and the intersection width of two boxes is
  ``max(0, min(xmax) - max(xmin) + 1)``; ``(5, 5, 5, 5)`` has area 1. Applied to
  pixel-edge numbers this enlarges every box (ground truth and prediction alike) by one
  pixel in each dimension, exactly as the reference does with its own (shifted) boxes, so
  scores match the reference's; ``plus_one=False`` gives the plain continuous IoU.

Differences from MMDetection (all deliberate, none changes a result except on exact ties):

* sorting by score uses a *stable* sort (``np.argsort(kind="stable")``), so detections with
  equal scores keep their input order (per image) and image order (pooled over images:
  images in the order of the ``gts`` dict); MMDetection uses numpy's default unstable sort;
* arithmetic is float64 (MMDetection accumulates in float32);
* no "difficult"/ignored boxes and no area ranges (DenseSIRST has none).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = [
    "box_iou",
    "voc_ap",
    "match_detections",
    "eval_voc",
]

_EPS = float(np.finfo(np.float32).eps)  # as in MMDetection eval_map


def _as_boxes(boxes, what: str = "boxes") -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{what} must have shape (N, 4), got {arr.shape}")
    return arr


def _as_scores(scores, n: int, what: str = "scores") -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{what} has {arr.shape[0]} entries for {n} boxes")
    return arr


def box_iou(boxes1, boxes2, plus_one: bool = True) -> np.ndarray:
    """Pairwise IoU of two sets of boxes.

    Args:
        boxes1: ``(N, 4)`` ``(xmin, ymin, xmax, ymax)``, xml numbers, pixels.
        boxes2: ``(M, 4)``, same convention.
        plus_one: True (default) for the VOC "+1" convention (width ``xmax - xmin + 1``,
            intersection width ``max(0, min(xmax) - max(xmin) + 1)``); False for the
            continuous convention (width ``xmax - xmin``).

    Returns:
        ``(N, M)`` float64 IoU in [0, 1]. A pair whose union is not positive (only possible
        with degenerate boxes) gets IoU 0.

    Raises:
        ValueError: an input is not ``(K, 4)``.

    Source: MMDetection ``bbox_overlaps(use_legacy_coordinate=True)``, as in the BAFE-Net reference code.
    """
    a = _as_boxes(boxes1, "boxes1")
    b = _as_boxes(boxes2, "boxes2")
    extra = 1.0 if plus_one else 0.0
    area_a = np.maximum(a[:, 2] - a[:, 0] + extra, 0.0) * np.maximum(a[:, 3] - a[:, 1] + extra, 0.0)
    area_b = np.maximum(b[:, 2] - b[:, 0] + extra, 0.0) * np.maximum(b[:, 3] - b[:, 1] + extra, 0.0)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + extra
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + extra
    inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return iou


def voc_ap(recalls, precisions, mode: str = "area") -> float:
    """Average precision from a precision-recall sequence.

    Args:
        recalls: ``(K,)`` cumulative recall after each detection (sorted by score
            descending), values in [0, 1].
        precisions: ``(K,)`` cumulative precision, same length, values in [0, 1].
        mode: ``"11points"`` (VOC2007): mean over ``t = 0, 0.1, ..., 1.0`` of the maximum
            precision at recall ``>= t`` (0 when no point reaches ``t``).
            ``"area"`` (VOC2010+): ``mrec = [0, rec, 1]``, ``mpre = [0, prec, 0]``, the
            precision envelope is taken from the right (``mpre[i-1] = max(mpre[i-1],
            mpre[i])``) and AP = sum of ``(mrec[i+1] - mrec[i]) * mpre[i+1]`` where recall
            changes.

    Returns:
        AP in [0, 1] (a Python float); 0.0 for an empty sequence.

    Raises:
        ValueError: unknown ``mode`` or mismatched lengths.

    Source: MMDetection ``average_precision`` / PASCAL VOC devkit.
    """
    rec = np.asarray(recalls, dtype=np.float64).reshape(-1)
    prec = np.asarray(precisions, dtype=np.float64).reshape(-1)
    if rec.shape != prec.shape:
        raise ValueError(f"recalls {rec.shape} and precisions {prec.shape} differ in length")
    if mode == "area":
        mrec = np.concatenate(([0.0], rec, [1.0]))
        mpre = np.concatenate(([0.0], prec, [0.0]))
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]
        ind = np.where(mrec[1:] != mrec[:-1])[0]
        return float(np.sum((mrec[ind + 1] - mrec[ind]) * mpre[ind + 1]))
    if mode == "11points":
        ap = 0.0
        for thr in np.arange(0, 1 + 1e-3, 0.1):
            precs = prec[rec >= thr]
            ap += float(precs.max()) if precs.size > 0 else 0.0
        return ap / 11.0
    raise ValueError(f"unknown AP mode {mode!r} (expected 'area' or '11points')")


def match_detections(det_boxes, det_scores, gt_boxes, iou_thr: float = 0.5, plus_one: bool = True):
    """Mark each detection of one image as true or false positive.

    Detections are visited by score descending (stable sort: ties keep input order). Each
    takes the ground-truth box of maximum IoU (the first one on ties); if that IoU is
    ``>= iou_thr`` and the box is not yet covered, the detection is a TP and covers it,
    otherwise it is a FP (a duplicate detection of a covered target is a FP; it does *not*
    fall back to its second-best box, as in VOC / MMDetection). With no ground truth every
    detection is a FP.

    Args:
        det_boxes: ``(M, 4)`` detections, xml numbers, pixels.
        det_scores: ``(M,)`` confidences (any real values; only their order matters).
        gt_boxes: ``(N, 4)`` ground truth, xml numbers, pixels.
        iou_thr: IoU threshold in [0, 1].
        plus_one: VOC "+1" IoU convention (see :func:`box_iou`).

    Returns:
        ``(tp, fp)``: two ``(M,)`` bool arrays **in the input order** of the detections
        (``tp[i] != fp[i]`` for every i).

    Raises:
        ValueError: bad shapes or ``det_scores`` length differs from ``det_boxes``.

    Source: MMDetection ``tpfp_default`` / PASCAL VOC devkit.
    """
    dets = _as_boxes(det_boxes, "det_boxes")
    scores = _as_scores(det_scores, dets.shape[0], "det_scores")
    gts = _as_boxes(gt_boxes, "gt_boxes")
    m = dets.shape[0]
    tp = np.zeros(m, dtype=bool)
    fp = np.zeros(m, dtype=bool)
    if m == 0:
        return tp, fp
    if gts.shape[0] == 0:
        fp[:] = True
        return tp, fp
    ious = box_iou(dets, gts, plus_one=plus_one)
    ious_max = ious.max(axis=1)
    ious_argmax = ious.argmax(axis=1)
    covered = np.zeros(gts.shape[0], dtype=bool)
    for i in np.argsort(-scores, kind="stable"):
        if ious_max[i] >= iou_thr and not covered[ious_argmax[i]]:
            covered[ious_argmax[i]] = True
            tp[i] = True
        else:
            fp[i] = True
    return tp, fp


def eval_voc(
    gts: Mapping[str, np.ndarray],
    dets: Mapping[str, tuple[np.ndarray, np.ndarray]],
    iou_thr: float = 0.5,
    plus_one: bool = True,
) -> dict:
    """Single-class VOC evaluation over a set of images.

    Every image of ``gts`` is evaluated; an image missing from ``dets`` (or with zero
    detections) contributes only misses. Per image, detections are matched with
    :func:`match_detections`; then all detections are pooled (images in ``gts`` order),
    stably sorted by score descending, and the cumulative TP/FP give
    ``recall = tp / max(num_gts, eps)`` and ``precision = tp / max(tp + fp, eps)``
    (``eps`` = float32 machine epsilon, as in MMDetection).

    Args:
        gts: ``{image_id: (N, 4) boxes}``, xml numbers, pixels (N may be 0).
        dets: ``{image_id: ((M, 4) boxes, (M,) scores)}``, same convention; scores are
            the detector confidences (every detection given is kept: apply any score
            threshold before).
        iou_thr: IoU threshold for a TP, in [0, 1] (Table II protocol: 0.5; 0.75 for AP75).
        plus_one: VOC "+1" IoU convention (see :func:`box_iou`).

    Returns:
        dict with ``ap07`` (11-point AP), ``ap12`` (area AP), ``recall`` and ``precision``
        (final values, i.e. over all detections; 0.0 when there are none), ``num_gts``,
        ``num_dets``, ``num_tp`` (ints), and the PR arrays ``recalls``, ``precisions``,
        ``scores`` (``(num_dets,)`` float64, scores sorted descending). All values in
        [0, 1]. With no detections every AP/recall/precision is 0.

    Raises:
        ValueError: ``dets`` names image ids that are not in ``gts`` (the message lists
            them), or boxes/scores have bad shapes.

    Source: MMDetection ``eval_map`` as used by ``VOCMetric`` / PASCAL VOC devkit.
    """
    unknown = [k for k in dets if k not in gts]
    if unknown:
        shown = ", ".join(repr(k) for k in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise ValueError(f"detections for {len(unknown)} image id(s) not in the ground truth: {shown}{more}")
    num_gts = 0
    tps, fps, scores_all = [], [], []
    for image_id, gt in gts.items():
        gt_boxes = _as_boxes(gt, f"ground truth of {image_id!r}")
        num_gts += gt_boxes.shape[0]
        if image_id not in dets:
            continue
        boxes, scores = dets[image_id]
        boxes = _as_boxes(boxes, f"detections of {image_id!r}")
        scores = _as_scores(scores, boxes.shape[0], f"scores of {image_id!r}")
        tp, fp = match_detections(boxes, scores, gt_boxes, iou_thr=iou_thr, plus_one=plus_one)
        tps.append(tp)
        fps.append(fp)
        scores_all.append(scores)
    if tps:
        tp = np.concatenate(tps)
        fp = np.concatenate(fps)
        scores = np.concatenate(scores_all)
    else:
        tp = fp = np.zeros(0, dtype=bool)
        scores = np.zeros(0, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    tp_cum = np.cumsum(tp[order].astype(np.float64))
    fp_cum = np.cumsum(fp[order].astype(np.float64))
    recalls = tp_cum / max(float(num_gts), _EPS)
    precisions = tp_cum / np.maximum(tp_cum + fp_cum, _EPS)
    n = int(scores.shape[0])
    return {
        "ap07": voc_ap(recalls, precisions, "11points"),
        "ap12": voc_ap(recalls, precisions, "area"),
        "recall": float(recalls[-1]) if n else 0.0,
        "precision": float(precisions[-1]) if n else 0.0,
        "num_gts": int(num_gts),
        "num_dets": n,
        "num_tp": int(tp_cum[-1]) if n else 0,
        "recalls": recalls,
        "precisions": precisions,
        "scores": scores[order],
    }
