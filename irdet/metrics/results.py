"""COCO-style detection results lists: irdet's exchange format for predictions.

A results file is a JSON list with one object per detection::

    [{"image_id": "20210725-S1-561", "bbox": [x, y, w, h], "score": 0.93, "category_id": 1}, ...]

* ``image_id``: the DenseSIRST image id (a string, the xml/png stem);
* ``bbox``: ``x = xmin, y = ymin, w = xmax - xmin, h = ymax - ymin`` in the xml's own
  numbers (for DenseSIRST: pixel-edge coordinates of the original image, see
  :mod:`irdet.data.io`). ``w = 0`` / ``h = 0`` is accepted (the "+1" metric gives it a
  1-pixel width); negative ``w`` / ``h`` is an error. Written this way, the ground truth
  itself scores mAP 1.0;
* ``score``: confidence in [0, 1];
* ``category_id``: optional, must be 1 (single class "Target") when present.
Other keys are ignored.

In memory, detections are ``{image_id: ((M, 4) boxes, (M,) scores)}`` with boxes
``(xmin, ymin, xmax, ymax)`` in the xml's numbers (see :mod:`irdet.metrics.voc`).
Source: COCO results format, adapted by irdet (string ids, VOC numbering; irdet extension).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from irdet.data.io import atomic_write_json, read_json
from irdet.errors import DataError
from irdet.metrics.voc import _as_boxes, _as_scores

__all__ = ["dets_to_results", "results_to_dets", "load_results", "save_results", "gt_to_results"]

_REQUIRED = ("image_id", "bbox", "score")


def dets_to_results(dets: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> list[dict]:
    """Convert in-memory detections to a results list.

    Args:
        dets: ``{image_id: ((M, 4) boxes, (M,) scores)}``, boxes ``(xmin, ymin, xmax, ymax)``
            in xml numbers (pixels), scores in [0, 1].

    Returns:
        list of ``{"image_id", "bbox": [xmin, ymin, xmax - xmin, ymax - ymin], "score",
        "category_id": 1}`` (plain Python floats), images in dict order, detections in
        input order.

    Raises:
        ValueError: bad shapes, or boxes/scores of different lengths.

    Source: COCO results format with VOC numbering (irdet extension).
    """
    out: list[dict] = []
    for image_id, (boxes, scores) in dets.items():
        b = _as_boxes(boxes, f"detections of {image_id!r}")
        s = _as_scores(scores, b.shape[0], f"scores of {image_id!r}")
        for (x1, y1, x2, y2), sc in zip(b.tolist(), s.tolist()):
            out.append({"image_id": str(image_id), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": sc, "category_id": 1})
    return out


def gt_to_results(gts: Mapping[str, np.ndarray]) -> list[dict]:
    """Ground truth as a results list (score 1.0 for every box).

    Args:
        gts: ``{image_id: (N, 4) boxes}``, xml numbers, pixels.

    Returns:
        results list (see :func:`dets_to_results`); evaluated against ``gts`` it scores
        mAP07 = mAP12 = recall = Pd = 1 and Fa = 0.

    Raises:
        ValueError: a box array is not ``(N, 4)``.

    Source: irdet extension.
    """
    dets = {}
    for image_id, boxes in gts.items():
        b = _as_boxes(boxes, f"ground truth of {image_id!r}")
        dets[image_id] = (b, np.ones(b.shape[0]))
    return dets_to_results(dets)


def _number(value, source, index: int, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(source, f"entry {index}: {what} is not a number ({value!r})")
    v = float(value)
    if not math.isfinite(v):
        raise DataError(source, f"entry {index}: {what} is not finite ({value!r})")
    return v


def results_to_dets(results, source="<results>") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Validate a results list and convert it to in-memory detections.

    Args:
        results: the decoded JSON (must be a list of objects, see module docstring).
        source: name used in error messages (normally the file path).

    Returns:
        ``{image_id: ((M, 4) float64 boxes (xmin, ymin, xmax = x + w, ymax = y + h),
        (M,) float64 scores)}`` in xml numbers, images in order of first appearance,
        detections in file order. Images with no entry are absent (they count as images
        without detections in :func:`irdet.metrics.evaluate`).

    Raises:
        DataError(source, ...): not a list; an entry that is not an object, lacks
            ``image_id`` / ``bbox`` / ``score``, has a non-string or empty ``image_id``, a
            ``bbox`` that is not 4 numbers, a non-numeric or non-finite number, a negative
            ``w`` or ``h`` (reported, not fixed), a score outside [0, 1], or a
            ``category_id`` other than 1. The message names the entry index.

    Source: COCO results format with VOC numbering (irdet extension).
    """
    if not isinstance(results, list):
        raise DataError(source, f"expected a JSON list of detections, got {type(results).__name__}")
    boxes: dict[str, list] = {}
    scores: dict[str, list] = {}
    for k, entry in enumerate(results):
        if not isinstance(entry, dict):
            raise DataError(source, f"entry {k} is not an object ({type(entry).__name__})")
        missing = [key for key in _REQUIRED if key not in entry]
        if missing:
            raise DataError(source, f"entry {k} is missing key(s) {', '.join(missing)}")
        image_id = entry["image_id"]
        if not isinstance(image_id, str) or not image_id:
            raise DataError(source, f"entry {k}: image_id must be a non-empty string (DenseSIRST id), got {image_id!r}")
        bbox = entry["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise DataError(source, f"entry {k}: bbox must be a list of 4 numbers [x, y, w, h], got {bbox!r}")
        x, y, w, h = (_number(v, source, k, f"bbox[{i}]") for i, v in enumerate(bbox))
        if w < 0 or h < 0:
            raise DataError(source, f"entry {k}: bbox has negative width or height (w={w:g}, h={h:g})")
        score = _number(entry["score"], source, k, "score")
        if not 0.0 <= score <= 1.0:
            raise DataError(source, f"entry {k}: score {score:g} is outside [0, 1]")
        if "category_id" in entry:
            cat = entry["category_id"]
            if isinstance(cat, bool) or cat != 1:
                raise DataError(source, f"entry {k}: category_id must be 1 (single class), got {cat!r}")
        boxes.setdefault(image_id, []).append((x, y, x + w, y + h))
        scores.setdefault(image_id, []).append(score)
    return {
        i: (np.asarray(boxes[i], dtype=np.float64).reshape(-1, 4), np.asarray(scores[i], dtype=np.float64))
        for i in boxes
    }


def load_results(path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read and validate a results JSON file.

    Args:
        path: the ``.json`` results file (see module docstring for the format).

    Returns:
        ``{image_id: ((M, 4) boxes, (M,) scores)}``, xml numbers, pixels (see
        :func:`results_to_dets`).

    Raises:
        DataError(path, ...): missing/unreadable file, invalid JSON, or any problem listed
            in :func:`results_to_dets` (one line naming the file and the entry index).

    Source: irdet extension.
    """
    path = Path(path)
    data = read_json(path)
    return results_to_dets(data, source=path)


def save_results(path, results) -> None:
    """Write a results list (or in-memory detections) atomically as JSON.

    Args:
        path: destination ``.json`` file (parent folders are created).
        results: a results list, or a ``{image_id: (boxes, scores)}`` dict which is first
            converted with :func:`dets_to_results`.

    Raises:
        ValueError: ``results`` is a detections dict with bad shapes.
        OSError: the file cannot be written.

    Source: irdet extension (atomic write via :func:`irdet.data.io.atomic_write_json`).
    """
    if isinstance(results, Mapping):
        results = dets_to_results(results)
    atomic_write_json(path, list(results), indent=None)
