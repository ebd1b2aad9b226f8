"""Detections as the Python API returns them: :class:`Result` (one image or frame) and :class:`Results`.

Coordinates: boxes are (x1, y1, x2, y2) pixel-edge coordinates of the original image (a
target covering columns 10..12 has x1 = 10, x2 = 13); scores are class probability ×
centerness in [0, 1]. Source: irdet extension.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from irdet.errors import IrdetError

__all__ = ["Result", "Results", "make_result"]


@dataclass
class Result:
    """Detections on one image (or one frame of a sequence).

    Attributes:
        image_id: the image's id (file path relative to the inputs' common parent without
            suffix, as ``irdet detect``; ``input_<i>`` for the i-th in-memory input;
            ``<sequence>/<frame>`` for frames).
        boxes: (K, 4) float32 XYXY pixel-edge boxes in original-image pixels.
        scores: (K,) float32 in [0, 1], descending.
        orig_size: (H, W) of the original image.
        path: the image file (None for in-memory images and video frames).
        sky_prob: BAFE-Net: (h, w) float32 sky probability at the finest stride, else None.
        frame_index: position of the frame in its sequence (sequence models), else None.
    """

    image_id: str
    boxes: np.ndarray
    scores: np.ndarray
    orig_size: tuple[int, int]
    path: str | None = None
    sky_prob: np.ndarray | None = None
    frame_index: int | None = None
    source: object = field(default=None, repr=False)  #: the in-memory input or decoded frame, for :meth:`image`

    def __len__(self) -> int:
        return len(self.scores)

    def image(self) -> np.ndarray:
        """The original image, (H, W, 3) float32 in [0, 255] (re-read from ``path``).

        Raises:
            DataError: the file cannot be read any more. IrdetError: a video frame not kept
                (results of :meth:`irdet.api.Model.predict` on a video; :meth:`irdet.api.Model.stream` keeps them).
        """
        from irdet.data.datasets.inputs import image_from
        from irdet.data.io import read_image

        if self.source is not None:
            return image_from(self.source, f"<{self.image_id}>")
        if self.path is not None:
            return read_image(self.path)
        raise IrdetError(f"{self.image_id}: the frame is not kept in this result (use Model.stream, or "
                         f"save(path, image=frame))")

    def save(self, path, score_thr: float | None = None, image: np.ndarray | None = None) -> Path:
        """Write an overlay PNG (boxes drawn 1 px outside; sky tinted for BAFE-Net), atomically.

        Args:
            score_thr: draw only boxes with score ≥ it (None: all of this result's boxes).
            image: the original image, when this result does not keep it.

        Returns:
            ``path`` as a Path.
        """
        from irdet.data.io import atomic_save_image
        from irdet.visualize import overlay

        keep = self.scores >= score_thr if score_thr is not None else slice(None)
        path = Path(path)
        atomic_save_image(path, overlay(self.image() if image is None else image, self.boxes[keep], self.sky_prob))
        return path

    def to_dict(self) -> dict:
        """``{"image_id", "path", "orig_size": [H, W], "boxes": [[x1, y1, x2, y2], ...], "scores": [...]}``
        (plus ``frame_index`` for frames), plain Python numbers."""
        d = {"image_id": self.image_id, "path": self.path, "orig_size": [int(v) for v in self.orig_size],
             "boxes": np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4).tolist(),
             "scores": np.asarray(self.scores, dtype=np.float64).tolist()}
        if self.frame_index is not None:
            d["frame_index"] = int(self.frame_index)
        return d

    def to_json(self, indent: int | None = None) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)


class Results(list):
    """A list of :class:`Result`, plus ``skipped``: ``[{"path", "reason"}]`` of inputs that gave
    no result (non-image files inside folders; unreadable images with ``errors="skip"``)."""

    def __init__(self, items=(), skipped=None):
        super().__init__(items)
        self.skipped: list[dict] = list(skipped or [])

    def to_results(self) -> list[dict]:
        """All detections in irdet's results-file format (``irdet evaluate --predictions``):
        ``[{"image_id", "bbox": [x, y, w, h], "score", "category_id": 1}, ...]``."""
        from irdet.metrics import dets_to_results

        return dets_to_results({r.image_id: (r.boxes, r.scores) for r in self})


def make_result(item: dict, score_thr, source=None, frame_index=None) -> Result:
    """A :class:`Result` of one prediction item (``image_id``, ``boxes``, ``scores``, ``orig_size``,
    optional ``path`` / ``sky_prob``), keeping the boxes with score ≥ ``score_thr`` (None: all)."""
    boxes, scores = item["boxes"], item["scores"]
    if score_thr is not None:
        keep = scores >= score_thr
        boxes, scores = boxes[keep], scores[keep]
    return Result(item["image_id"], boxes, scores, tuple(int(v) for v in item["orig_size"]), item.get("path"),
                  item.get("sky_prob"), frame_index, source)
