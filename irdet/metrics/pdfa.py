"""IRSTD point metrics Pd (probability of detection) and Fa (false-alarm rate) for boxes.

The IRSTD literature (DNANet / BasicIRSTD ``PD_FA``) defines them on segmentation masks:
a target is detected when a predicted connected component has its centroid within 3 px of
the target's centroid, and Fa is the number of pixels of unmatched predicted components
divided by the number of pixels of all images. irdet's reading of the IRSTD Pd/Fa for box
detectors (an irdet adaptation) replaces components with boxes:

* centroid of a box ``(xmin, ymin, xmax, ymax)`` = ``((xmin + xmax) / 2, (ymin + ymax) / 2)``
  for ground truth and detections alike (same numbering, so any offset cancels);
* per image, detections with ``score >= score_thr`` are visited by score descending
  (stable sort); each matches the *nearest not-yet-matched* target whose centroid is at a
  Euclidean distance strictly less than ``dist_thr`` pixels (strict ``<``, as the reference
  code's ``distance < 3``) -- each detection is used once, each target matched once;
* the "pixels" of an unmatched detection are its box area in the VOC "+1" convention,
  ``(xmax - xmin + 1) * (ymax - ymin + 1)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from irdet.metrics.voc import _as_boxes, _as_scores

__all__ = ["pd_fa", "unmatched_detections"]


def _centres(boxes: np.ndarray) -> np.ndarray:
    return np.stack(((boxes[:, 0] + boxes[:, 2]) / 2.0, (boxes[:, 1] + boxes[:, 3]) / 2.0), axis=1)


def _match_image(gt, boxes, scores, score_thr: float, dist_thr: float, image_id: str):
    """One image's matching (module docstring): ``(gt_boxes, kept boxes, taken (N,) bool,
    unmatched)``, ``unmatched`` the indices of the kept boxes matched to no target, in the
    order they were visited (score descending)."""
    gt_boxes = _as_boxes(gt, f"ground truth of {image_id!r}")
    boxes = _as_boxes(boxes, f"detections of {image_id!r}")
    scores = _as_scores(scores, boxes.shape[0], f"scores of {image_id!r}")
    keep = scores >= score_thr
    boxes, scores = boxes[keep], scores[keep]
    gt_c = _centres(gt_boxes)
    det_c = _centres(boxes)
    taken = np.zeros(gt_boxes.shape[0], dtype=bool)
    unmatched = []
    for i in np.argsort(-scores, kind="stable"):
        if gt_boxes.shape[0]:
            dist = np.hypot(gt_c[:, 0] - det_c[i, 0], gt_c[:, 1] - det_c[i, 1])
            dist[taken] = np.inf
            j = int(np.argmin(dist))
            if dist[j] < dist_thr:
                taken[j] = True
                continue
        unmatched.append(int(i))
    return gt_boxes, boxes, taken, np.asarray(unmatched, dtype=np.int64)


def unmatched_detections(gt, boxes, scores, score_thr: float = 0.5, dist_thr: float = 3.0,
                         image_id: str = "image") -> np.ndarray:
    """The false alarms of one image under :func:`pd_fa`'s rule.

    Args:
        gt: (N, 4) ground-truth boxes ``(xmin, ymin, xmax, ymax)``, xml numbers, pixels.
        boxes: (M, 4) detections, same convention; scores: (M,).
        score_thr, dist_thr: as :func:`pd_fa`.
        image_id: named in shape errors.

    Returns:
        (K, 4) float64 kept detections (``score >= score_thr``) matched to no target, by
        score descending.

    Raises:
        ValueError: bad box/score shapes.

    Source: irdet extension (the false alarms :func:`pd_fa` counts).
    """
    _, kept, _, unmatched = _match_image(gt, boxes, scores, score_thr, dist_thr, image_id)
    return kept[unmatched]


def pd_fa(
    gts: Mapping[str, np.ndarray],
    dets: Mapping[str, tuple[np.ndarray, np.ndarray]],
    image_sizes: Mapping[str, tuple[int, int]],
    score_thr: float = 0.5,
    dist_thr: float = 3.0,
) -> dict:
    """Pd and Fa of box detections: irdet's reading of the IRSTD Pd/Fa for box detectors.

    See the module docstring for the exact matching rule (greedy by score, nearest
    unmatched target centroid at distance ``< dist_thr`` px, one-to-one).

    Args:
        gts: ``{image_id: (N, 4) boxes}``, xml numbers ``(xmin, ymin, xmax, ymax)``
            (pixel edges), pixels. Every image is evaluated.
        dets: ``{image_id: ((M, 4) boxes, (M,) scores)}``, same convention; images absent
            here have no detections.
        image_sizes: ``{image_id: (H, W)}`` in pixels for every image of ``gts``.
        score_thr: detections with ``score >= score_thr`` are kept.
        dist_thr: centroid distance threshold in pixels (strict ``<``).

    Returns:
        dict with ``Pd`` = matched targets / all targets in [0, 1] (0.0 when there are no
        targets), ``Fa`` = total "+1" area in pixels of the unmatched kept detections /
        total pixels ``sum(H * W)`` of all images (>= 0; 0.0 with no images),
        ``fa_per_image`` = unmatched kept detections / number of images,
        ``num_false_alarms``, ``num_matched``, ``num_targets``, ``num_kept_dets``,
        ``false_alarm_pixels``, ``total_pixels``, ``num_images`` (ints except rates).

    Raises:
        ValueError: ``dets`` names image ids not in ``gts``, an image of ``gts`` has no
            entry in ``image_sizes`` (or a non-positive size), or bad box/score shapes.

    Source: DNANet / BasicIRSTD ``PD_FA`` (segmentation), adapted to boxes by irdet
    (irdet extension).
    """
    unknown = [k for k in dets if k not in gts]
    if unknown:
        raise ValueError(
            f"detections for {len(unknown)} image id(s) not in the ground truth: "
            + ", ".join(repr(k) for k in unknown[:10])
        )
    missing = [k for k in gts if k not in image_sizes]
    if missing:
        raise ValueError(
            f"no image size for {len(missing)} image id(s): " + ", ".join(repr(k) for k in missing[:10])
        )
    num_targets = num_matched = num_fa = num_kept = 0
    fa_pixels = 0.0
    total_pixels = 0
    for image_id, gt in gts.items():
        h, w = (int(v) for v in image_sizes[image_id])
        if h <= 0 or w <= 0:
            raise ValueError(f"image {image_id!r} has a non-positive size {(h, w)}")
        total_pixels += h * w
        if image_id not in dets:
            num_targets += _as_boxes(gt, f"ground truth of {image_id!r}").shape[0]
            continue
        gt_boxes, boxes, taken, unmatched = _match_image(gt, *dets[image_id], score_thr, dist_thr, image_id)
        num_targets += gt_boxes.shape[0]
        num_kept += boxes.shape[0]
        for b in boxes[unmatched]:
            num_fa += 1
            fa_pixels += max(b[2] - b[0] + 1.0, 0.0) * max(b[3] - b[1] + 1.0, 0.0)
        num_matched += int(taken.sum())
    num_images = len(gts)
    return {
        "Pd": num_matched / num_targets if num_targets else 0.0,
        "Fa": fa_pixels / total_pixels if total_pixels else 0.0,
        "fa_per_image": num_fa / num_images if num_images else 0.0,
        "num_false_alarms": int(num_fa),
        "num_matched": int(num_matched),
        "num_targets": int(num_targets),
        "num_kept_dets": int(num_kept),
        "false_alarm_pixels": float(fa_pixels),
        "total_pixels": int(total_pixels),
        "num_images": int(num_images),
    }
