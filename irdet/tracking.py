"""Tracks of small targets from per-frame detections, and their scores (irdet extension).

Linking: ByteTrack (Zhang et al., ECCV 2022) as implemented by the maintained ``trackers``
package (Roboflow, :class:`trackers.ByteTrackTracker`: Kalman filter on the box corners,
two-stage association — detections with score ≥ ``score_thr`` first, then the remaining ones
with score ≥ ``low_score_thr`` to the still-unmatched tracks — Hungarian assignment, lost
tracks kept ``lost_frames`` frames). The only change is the similarity: IoU between a
2–9 px box and its predicted box drops to 0 with a pixel of motion or camera jitter, so
tracks and detections are associated by **centre distance**, similarity
``max(0, 1 − d / radius)`` (d = distance in px between box centres), accepted while
``d < radius`` (:class:`CentreDistance`, a ``trackers`` similarity plug-in).

ByteTrack labels a track from its second detection on (the first one starts the track). After
the last frame, the detection that started each track is given the track's id (it is the
unlabelled detection of the previous frame, score ≥ ``score_thr``, nearest the track's first
labelled box within ``radius``), and tracks shorter than ``min_length`` frames are dropped.

Scoring: CLEAR MOTA and IDF1 of ``trackers.eval`` (ported from TrackEval), per sequence and
summed over sequences, a track box matching a ground-truth box at IoU ≥ 0.5 (the detection
protocol's AP50 rule) or, with ``match="centre"``, at a centre distance < 3 px (the Pd rule).

Boxes: (K, 4) XYXY pixel-edge, original-frame pixels; scores in [0, 1]; frames are indexed
0 … N−1 in source order. The ``trackers`` package is optional: ``pip install 'irdet[track]'``.
"""

from __future__ import annotations

import numpy as np

from irdet.errors import IrdetError

__all__ = ["CentreDistance", "TrackLinker", "link_tracks", "save_tracks", "score_tracks", "require_trackers"]


def require_trackers():
    """Import the ``trackers`` package or raise a one-line :class:`IrdetError` saying how to install it."""
    try:
        import trackers
    except ImportError:
        raise IrdetError("tracking needs the 'trackers' package (ByteTrack): pip install 'irdet[track]' "
                         "or pip install trackers") from None
    return trackers


def _centres(boxes) -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return (b[:, :2] + b[:, 2:]) / 2


def centre_similarity(boxes_1, boxes_2, radius: float) -> np.ndarray:
    """(N, M) similarity ``max(0, 1 − d / radius)`` of box centres (d in px; 0 for d ≥ radius)."""
    d = np.linalg.norm(_centres(boxes_1)[:, None, :] - _centres(boxes_2)[None, :, :], axis=2)
    return np.clip(1.0 - d / float(radius), 0.0, None)


def CentreDistance(radius: float = 8.0):
    """A ``trackers`` similarity (a ``trackers.utils.iou.BaseIoU``) scoring box pairs by
    centre distance, :func:`centre_similarity` (defined lazily: ``trackers`` is optional)."""
    require_trackers()
    from trackers.utils.iou import BaseIoU

    class _CentreDistance(BaseIoU):
        def __init__(self, r: float):
            if not r > 0:
                raise IrdetError(f"tracking radius must be > 0 px, got {r!r}")
            self.radius = float(r)

        def _compute(self, boxes_1, boxes_2):
            return centre_similarity(boxes_1, boxes_2, self.radius)

    return _CentreDistance(radius)


class TrackLinker:
    """Online ByteTrack with centre-distance association (module docstring).

    Args:
        radius: association gate in px (largest centre displacement between a track's
            predicted box and its next detection); 8 px fits the synthetic benchmark (target
            speed ≤ 2 px/frame + camera pan ≤ 1.5 + jitter).
        score_thr: detections with score ≥ this start tracks and are matched first.
        low_score_thr: lower detections are ignored; those in [low_score_thr, score_thr)
            only continue existing tracks (ByteTrack's second stage).
        lost_frames: frames a track survives without a detection.
        min_length: tracks with fewer detections are dropped from :meth:`tracks`.

    Use: ``ids = linker.update(boxes, scores)`` once per frame, in order (ids (K,) int64,
    −1 = not in a track yet), then :meth:`tracks`.

    Raises:
        IrdetError: ``trackers`` not installed, or a bad parameter.
    """

    def __init__(self, radius: float = 8.0, score_thr: float = 0.3, low_score_thr: float = 0.1,
                 lost_frames: int = 10, min_length: int = 3):
        trackers = require_trackers()
        if not 0.0 <= low_score_thr <= score_thr <= 1.0:
            raise IrdetError(f"tracking needs 0 <= low_score_thr <= score_thr <= 1, "
                             f"got {low_score_thr} and {score_thr}")
        if int(lost_frames) < 0 or int(min_length) < 1:
            raise IrdetError(f"tracking needs lost_frames >= 0 and min_length >= 1, got {lost_frames} and {min_length}")
        self.params = {"tracker": f"ByteTrack (trackers {_version('trackers')})", "association": "centre distance",
                       "radius": float(radius), "score_thr": float(score_thr), "low_score_thr": float(low_score_thr),
                       "lost_frames": int(lost_frames), "min_length": int(min_length)}
        # frame_rate 30 makes lost_track_buffer a frame count (the package counts it in 30-fps frames)
        self._tracker = trackers.ByteTrackTracker(
            lost_track_buffer=int(lost_frames), frame_rate=30.0, track_activation_threshold=float(score_thr),
            minimum_iou_threshold=1e-9, high_conf_det_threshold=float(score_thr), iou=CentreDistance(radius))
        self._frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def update(self, boxes, scores) -> np.ndarray:
        """Link one frame's detections ((K, 4) boxes, (K,) scores); returns (K,) int64 track ids
        (1-based, −1 for a detection not in a track now)."""
        import supervision as sv

        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        ids = np.full(len(boxes), -1, np.int64)
        keep = np.flatnonzero(scores >= self.params["low_score_thr"])
        dets = (sv.Detections(xyxy=boxes[keep], confidence=scores[keep], data={"index": keep})
                if len(keep) else sv.Detections.empty())
        out = self._tracker.update(dets)
        if len(out):
            tid = np.asarray(out.tracker_id, np.int64)
            ids[np.asarray(out.data["index"], np.int64)] = np.where(tid >= 0, tid + 1, -1)
        self._frames.append((boxes, scores, ids.copy()))
        return ids

    def tracks(self, frame_ids: list[str] | None = None) -> list[dict]:
        """The tracks so far (first detections given back, short tracks dropped; module docstring).

        Args:
            frame_ids: a name per frame (default ``"0"``, ``"1"``, …).

        Returns:
            ``[{"track_id", "length", "first_frame", "last_frame", "detections": [{"frame",
            "image_id", "bbox": [x, y, w, h], "score"}, ...]}, ...]`` sorted by track id.
        """
        ids = [f[2].copy() for f in self._frames]
        radius, thr = self.params["radius"], self.params["score_thr"]
        first: dict[int, int] = {}
        for k, frame_ids_k in enumerate(ids):
            for t in frame_ids_k[frame_ids_k > 0]:
                first.setdefault(int(t), k)
        for t, k in first.items():  # give each track back the detection that started it
            if k == 0:
                continue
            boxes, scores, _ = self._frames[k - 1]
            free = np.flatnonzero((ids[k - 1] < 0) & (scores >= thr))
            if not len(free):
                continue
            j = int(np.flatnonzero(ids[k] == t)[0])
            d = np.linalg.norm(_centres(boxes[free]) - _centres(self._frames[k][0][j : j + 1]), axis=1)
            if d.min() < radius:
                ids[k - 1][free[int(d.argmin())]] = t
        out: dict[int, list] = {}
        for k, (boxes, scores, _) in enumerate(self._frames):
            for j in np.flatnonzero(ids[k] > 0):
                x1, y1, x2, y2 = (float(v) for v in boxes[j])
                out.setdefault(int(ids[k][j]), []).append({
                    "frame": k, "image_id": frame_ids[k] if frame_ids else str(k), "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(scores[j])})
        return [{"track_id": t, "length": len(d), "first_frame": d[0]["frame"], "last_frame": d[-1]["frame"],
                 "detections": d} for t, d in sorted(out.items()) if len(d) >= self.params["min_length"]]


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def link_tracks(frames, **params) -> list[dict]:
    """Offline use of :class:`TrackLinker`: ``frames`` = ordered list of ((K, 4) boxes, (K,)
    scores); ``params`` as the class. Returns :meth:`TrackLinker.tracks` (frame names = indices)."""
    linker = TrackLinker(**params)
    for boxes, scores in frames:
        linker.update(boxes, scores)
    return linker.tracks()


def _frame_lists(tracks_or_frames, n_frames: int) -> tuple[list, list]:
    """Per frame (ids (K,), boxes (K, 4) XYXY) from a :meth:`TrackLinker.tracks` list."""
    ids = [[] for _ in range(n_frames)]
    boxes = [[] for _ in range(n_frames)]
    for t in tracks_or_frames:
        for d in t["detections"]:
            x, y, w, h = d["bbox"]
            ids[d["frame"]].append(t["track_id"])
            boxes[d["frame"]].append((x, y, x + w, y + h))
    return ([np.asarray(i, np.int64) for i in ids], [np.asarray(b, np.float64).reshape(-1, 4) for b in boxes])


def score_tracks(sequences, match: str = "iou") -> dict:
    """CLEAR MOTA / IDF1 of predicted tracks against ground-truth tracks (module docstring).

    Args:
        sequences: iterable of ``(gt_tracks, pred_tracks, n_frames)``, both in the
            :meth:`TrackLinker.tracks` format (``track_id``, ``detections`` with ``frame`` and
            ``bbox`` [x, y, w, h]).
        match: ``"iou"`` (IoU ≥ 0.5) or ``"centre"`` (centre distance < 3 px).

    Returns:
        dict: ``MOTA``, ``MOTP``, ``IDF1``, ``IDP``, ``IDR``, ``IDSW``, ``CLR_TP``, ``CLR_FN``,
        ``CLR_FP``, ``MT``, ``PT``, ``ML``, ``Frag`` (summed over sequences, rates from the
        sums), ``gt_tracks``, ``pred_tracks``, ``sequences``, ``match``.

    Raises:
        IrdetError: ``trackers`` missing, unknown ``match``.
    """
    require_trackers()
    from trackers.eval import (aggregate_clear_metrics, aggregate_identity_metrics, box_iou,
                               compute_clear_metrics, compute_identity_metrics)

    if match not in ("iou", "centre"):
        raise IrdetError(f"track matching must be 'iou' or 'centre', got {match!r}")
    clear, ident = [], []
    n_gt = n_pred = n_seq = 0
    for gt_tracks, pred_tracks, n_frames in sequences:
        g_ids, g_boxes = _frame_lists(gt_tracks, n_frames)
        p_ids, p_boxes = _frame_lists(pred_tracks, n_frames)
        if match == "iou":
            sim = [box_iou(g, p) if len(g) and len(p) else np.zeros((len(g), len(p))) for g, p in zip(g_boxes, p_boxes)]
        else:  # similarity >= 0.5 <=> centre distance < 3 px
            sim = [centre_similarity(g, p, 6.0) if len(g) and len(p) else np.zeros((len(g), len(p)))
                   for g, p in zip(g_boxes, p_boxes)]
        clear.append(compute_clear_metrics(g_ids, p_ids, sim, threshold=0.5))
        ident.append(compute_identity_metrics(g_ids, p_ids, sim, threshold=0.5))
        n_gt, n_pred, n_seq = n_gt + len(gt_tracks), n_pred + len(pred_tracks), n_seq + 1
    c, i = aggregate_clear_metrics(clear), aggregate_identity_metrics(ident)
    out = {k: c[k] for k in ("MOTA", "MOTP", "IDSW", "CLR_TP", "CLR_FN", "CLR_FP", "MT", "PT", "ML", "Frag")}
    out.update({k: i[k] for k in ("IDF1", "IDP", "IDR")})
    out.update({"gt_tracks": n_gt, "pred_tracks": n_pred, "sequences": n_seq, "match": match})
    return {k: (float(v) if isinstance(v, (float, np.floating)) else int(v) if isinstance(v, (int, np.integer)) else v)
            for k, v in out.items()}


def save_tracks(path, linker: TrackLinker, frame_ids: list[str], source: str | None = None) -> dict:
    """Write ``tracks.json`` atomically: ``{"source", "frames", "params" (the linker's),
    "tracks": TrackLinker.tracks(frame_ids)}``; returns the document."""
    from irdet.data.io import atomic_write_json

    doc = {"source": source, "frames": len(frame_ids), "params": dict(linker.params),
           "tracks": linker.tracks(list(frame_ids))}
    atomic_write_json(path, doc)
    return doc
