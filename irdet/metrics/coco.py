"""Moving-target evaluation with the host's protocol (SSTNet / Tridos reference code): COCO AP via
pycocotools, precision / recall / F1 at IoU 0.5, plus irdet's Pd / Fa.

Protocol (read in UESTC-nnLab/SSTNet ``vid_map_coco.py`` and UESTC-nnLab/Tridos
``Tridos/vid_map_IRDST.py``, identical in both):

* detections with confidence ≥ 0.001 after NMS at IoU 0.65 (a model-side setting: irdet's
  sequence configs set ``model.head.test: {score_thr: 0.001, nms_iou: 0.65}``; this module
  additionally drops results scored below ``score_thr`` = 0.001, so results files of any method
  are held to the same floor), COCO's at most 100 detections per image (``maxDets``);
* ``COCOeval(cocoGt, cocoDt, "bbox")`` with the default parameters: **AP50** = ``stats[1]``
  (101-point interpolated AP at IoU 0.5, area "all"), **AP50_95** = ``stats[0]``, AP75 =
  ``stats[2]``; COCO boxes ``[x, y, w, h]``, IoU without the VOC "+1";
* **precision, recall, F1** (the reference's own definition, not a thresholded count)::

      p50 = E.eval["precision"][0, :, 0, 0, -1]   # IoU 0.5, the 101 recall thresholds, class 0, area all, 100 dets
      R   = E.eval["recall"][0, 0, 0, -1]          # recall at IoU 0.5 with all kept detections (score ≥ 0.001)
      P   = mean(p50[:int(R * 100)])               # mean interpolated precision over the recall range reached
      F1  = 2 P R / (P + R)

  i.e. there is *no* score threshold: R is the final recall of the whole ranked list and P the
  mean interpolated precision on recall thresholds 0, 0.01, … below R. ``int(R * 100)``
  truncates exactly as the reference does (including float effects, e.g. R = 0.29 → 28
  entries); P = 0 when that range is empty, F1 = 0 when P + R = 0.

irdet additions (named as such in the output): ``precision_at_thr`` / ``recall_at_thr`` /
``F1_at_thr``, plain counts at IoU 0.5 for detections with score ≥ ``prf_score_thr`` (COCO's
greedy matching by score, crowd-ignored boxes excluded); **Pd / Fa** via
:func:`irdet.metrics.pd_fa` (centroid distance < 3 px, score ≥ ``pdfa_score_thr``); counts.

Every image of the annotation file is evaluated (COCOeval's default ``imgIds`` = all
images). Difference to the reference scripts: they only *predict* on frames that carry an
annotation (``cocoGt.imgToAnns``), so their false alarms on target-free frames are never
counted; irdet predicts and counts on every frame of the split (stricter; identical when
every frame has a target). The metrics report ``images_without_targets``.

Image ids in results files: an ``int`` is a COCO image ``id``; a ``str`` is a frame name,
matched in this order to an image's ``file_name`` (``"seq01/12.png"``), its ``file_name``
without the suffix (``"seq01/12"``, irdet's frame id), or uniquely to the trailing ``/``-separated components
of either, at least ``<sequence>/<frame>`` (``"data6/0"`` matches ``"images/test/data6/0.bmp"``;
a bare ``"0"`` never matches a name, and a digit string is never read as a COCO id).
A name that matches no image, or several, is an error naming the file. Results of frames
absent from the annotation file are never dropped silently: they are an error.

Annotation sets are read and checked by :func:`irdet.data.coco.load_coco` (the reader of the
clips too; here every image must declare its size); results lists are checked here
(:func:`load_coco_results`). Boxes everywhere: pixel-edge ``(x1, y1, x2, y2)`` of the original
frame (COCO ``[x1, y1, x2 − x1, y2 − y1]``), pixels.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from irdet.data.coco import finite_number, load_coco
from irdet.data.io import atomic_write_json, read_json
from irdet.errors import DataError
from irdet.metrics.pdfa import pd_fa
from irdet.metrics.report import format_table, plot_pr_curve

__all__ = [
    "ImageIndex",
    "load_coco_results",
    "dets_to_coco_results",
    "coco_evaluate",
    "sstnet_prf",
    "format_coco_table",
    "write_coco_report",
    "PROTOCOL",
]

#: The host protocol's constants (SSTNet ``vid_map_coco.py``).
PROTOCOL = {"score_thr": 0.001, "nms_iou": 0.65, "iou_thr": 0.5, "max_dets": 100}


# ---------------------------------------------------------------------------------------- results
class ImageIndex:
    """Resolve results' ``image_id`` (COCO int id or frame name) to COCO image ids.

    See the module docstring for the matching rules (int id; ``file_name``; ``file_name``
    without suffix; unique trailing path components).

    Args:
        gt: a normalised COCO dict (:func:`irdet.data.coco.load_coco`).
    """

    def __init__(self, gt: dict):
        self.ids = {img["id"] for img in gt["images"]}
        self.exact: dict[str, set] = {}
        self.suffix: dict[str, set] = {}
        self.key_of: dict[int, str] = {}
        for img in gt["images"]:
            name = str(img["file_name"]).replace("\\", "/")
            stem = name.rsplit(".", 1)[0] if "." in name.rsplit("/", 1)[-1] else name
            self.key_of[img["id"]] = stem
            for full in {name, stem}:
                self.exact.setdefault(full, set()).add(img["id"])
                parts = full.split("/")
                for i in range(1, len(parts) - 1):  # trailing suffixes of >= 2 components (<sequence>/<frame>)
                    self.suffix.setdefault("/".join(parts[i:]), set()).add(img["id"])

    def resolve(self, key) -> int | None:
        """The COCO id for ``key`` (int id or frame name), None if unknown or ambiguous."""
        if isinstance(key, bool):
            return None
        if isinstance(key, int):
            return key if key in self.ids else None
        if isinstance(key, str) and key:
            key = key.replace("\\", "/")
            for table in (self.exact, self.suffix):
                hit = table.get(key)
                if hit:
                    return next(iter(hit)) if len(hit) == 1 else None
        return None

    def frame_key(self, image_id: int) -> str:
        """irdet's frame id of a COCO image: its ``file_name`` without the suffix."""
        return self.key_of[image_id]


def load_coco_results(results, gt: dict, source=None) -> list[dict]:
    """Validate a COCO results list (or file) against an annotation set.

    Args:
        results: path of a results JSON file, or the decoded list
            ``[{"image_id": int | str, "bbox": [x, y, w, h], "score": s, "category_id"?: c}, ...]``.
        gt: normalised annotations (:func:`irdet.data.coco.load_coco`).
        source: name for error messages (default: the path or ``"<results>"``).

    Returns:
        a new list of ``{"image_id": int, "category_id": int, "bbox": [4 floats], "score": float}``.
        A missing ``category_id`` is set to the annotation set's only category.

    Raises:
        DataError(source, ...): unreadable / invalid JSON, not a list, an entry that is not an
            object or lacks ``image_id`` / ``bbox`` / ``score``, non-finite numbers, negative w or
            h, a score outside [0, 1], an unknown ``category_id`` (or none while the annotation
            set has several categories), image ids that match no image or several (the message
            names up to 5).
    """
    if isinstance(results, (str, Path)):
        path = Path(results)
        source = source or path
        results = read_json(path)
    source = source or "<results>"
    if not isinstance(results, list):
        raise DataError(source, f"expected a JSON list of detections, got {type(results).__name__}")
    index = ImageIndex(gt)
    cat_ids = {c["id"] for c in gt["categories"]}
    only_cat = next(iter(cat_ids)) if len(cat_ids) == 1 else None
    out, unknown = [], []
    for k, r in enumerate(results):
        if not isinstance(r, dict):
            raise DataError(source, f"entry {k} is not an object ({type(r).__name__})")
        missing = [key for key in ("image_id", "bbox", "score") if key not in r]
        if missing:
            raise DataError(source, f"entry {k} is missing key(s) {', '.join(missing)}")
        bbox = r["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise DataError(source, f"entry {k}: bbox must be a list of 4 numbers [x, y, w, h], got {bbox!r}")
        bbox = [finite_number(v, source, f"entry {k}: bbox[{i}]") for i, v in enumerate(bbox)]
        if bbox[2] < 0 or bbox[3] < 0:
            raise DataError(source, f"entry {k}: bbox has negative width or height (w={bbox[2]:g}, h={bbox[3]:g})")
        score = finite_number(r["score"], source, f"entry {k}: score")
        if not 0.0 <= score <= 1.0:
            raise DataError(source, f"entry {k}: score {score:g} is outside [0, 1]")
        cat = r.get("category_id", only_cat)
        if cat is None or isinstance(cat, bool) or cat not in cat_ids:
            raise DataError(source, f"entry {k}: category_id {r.get('category_id')!r} is not one of {sorted(cat_ids)}")
        image_id = index.resolve(r["image_id"])
        if image_id is None:
            unknown.append(r["image_id"])
            continue
        out.append({"image_id": image_id, "category_id": cat, "bbox": bbox, "score": score})
    if unknown:
        shown = ", ".join(repr(u) for u in list(dict.fromkeys(unknown))[:5])
        raise DataError(source, f"{len(unknown)} detections have image ids that match no image (or several) of the "
                                f"annotation file: {shown}")
    return out


def dets_to_coco_results(dets: Mapping[int, tuple[np.ndarray, np.ndarray]], category_id: int = 1) -> list[dict]:
    """In-memory detections ``{coco image id: ((M, 4) XYXY boxes, (M,) scores)}`` → COCO results list.

    Boxes are pixel-edge ``(x1, y1, x2, y2)`` of the original frame; the output ``bbox`` is
    ``[x1, y1, x2 − x1, y2 − y1]`` (plain floats), ``image_id`` the int key.
    """
    out = []
    for image_id, (boxes, scores) in dets.items():
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(s) != len(b):
            raise ValueError(f"image {image_id!r}: {len(s)} scores for {len(b)} boxes")
        for (x1, y1, x2, y2), sc in zip(b.tolist(), s.tolist()):
            out.append({"image_id": int(image_id), "category_id": int(category_id), "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": sc})
    return out


# ---------------------------------------------------------------------------------------- evaluation
def sstnet_prf(precision_50: np.ndarray, recall_50: float) -> tuple[float, float, float]:
    """The reference's P, R, F1 from COCOeval's IoU-0.5 arrays (module docstring).

    Args:
        precision_50: (101,) interpolated precision at recall thresholds 0, 0.01, …, 1
            (``E.eval["precision"][0, :, k, 0, -1]``), −1 where undefined (no targets).
        recall_50: ``E.eval["recall"][0, k, 0, -1]`` (−1 when there are no targets).

    Returns:
        ``(P, R, F1)`` in [0, 1]; all 0 without targets.
    """
    r = float(recall_50)
    if r <= 0:
        return 0.0, max(r, 0.0), 0.0
    n = int(r * 100)
    p = float(np.mean(precision_50[:n])) if n > 0 else 0.0
    p = max(p, 0.0)
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f1


def _run_cocoeval(gt: dict, results: list[dict], max_dets: int):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        if results:
            coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        else:  # pycocotools' loadRes cannot take an empty list
            coco_dt = COCO()
            coco_dt.dataset = {"images": list(gt["images"]), "categories": copy.deepcopy(gt["categories"]), "annotations": []}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.maxDets = [1, 10, int(max_dets)]
        if len(gt["categories"]) > 1:  # irdet is single-class: evaluate class-agnostically
            ev.params.useCats = 0
        ev.evaluate()
        ev.accumulate()
        buf.truncate(0)
        buf.seek(0)
        ev.summarize()
    return ev, buf.getvalue()


def _counts_at(ev, thr: float) -> tuple[int, int, int]:
    """(TP, FP, targets) at IoU 0.5, area "all", max dets, for detections with score ≥ thr."""
    tp = fp = 0
    num_gt = 0
    all_rng = ev.params.areaRng[0]
    for e in ev.evalImgs:
        if e is None or list(e["aRng"]) != list(all_rng) or e["maxDet"] != ev.params.maxDets[-1]:
            continue
        num_gt += int(np.count_nonzero(np.asarray(e["gtIgnore"]) == 0))
        scores = np.asarray(e["dtScores"], dtype=np.float64)
        if scores.size == 0:
            continue
        matched = np.asarray(e["dtMatches"])[0] > 0
        ignored = np.asarray(e["dtIgnore"])[0].astype(bool)
        keep = (scores >= thr) & ~ignored
        tp += int(np.count_nonzero(matched & keep))
        fp += int(np.count_nonzero(~matched & keep))
    return tp, fp, num_gt


def coco_evaluate(ann, results, *, score_thr: float = PROTOCOL["score_thr"], max_dets: int = PROTOCOL["max_dets"],
                  pdfa_score_thr: float = 0.5, prf_score_thr: float = 0.5, results_source=None) -> dict:
    """All moving-target metrics (SSTNet protocol + irdet's Pd / Fa) in one JSON-ready dict (protocol in the module docstring).

    Args:
        ann: COCO annotations (path, dict or COCO object; read by :func:`irdet.data.coco.load_coco`).
        results: COCO results (path or list; ``image_id`` int ids or frame names,
            :func:`load_coco_results`).
        score_thr: results scored below are dropped first (the protocol's 0.001).
        max_dets: COCO ``maxDets`` (100).
        pdfa_score_thr: score threshold for Pd / Fa (irdet extension).
        prf_score_thr: score threshold of ``precision_at_thr`` etc. (irdet extension).
        results_source: name of the results in error messages.

    Returns:
        dict (plain numbers): ``AP50``, ``AP50_95``, ``AP75``, ``precision``, ``recall``,
        ``F1`` (reference definition), ``precision_at_thr``, ``recall_at_thr``, ``F1_at_thr``,
        ``Pd``, ``Fa``, ``fa_per_image``, ``num_images``, ``num_gts``, ``num_dets`` (kept, ≥
        ``score_thr``), ``num_dets_below_score_thr``, ``images_without_detections``,
        ``images_without_targets``, ``protocol`` (the thresholds used), ``pr`` (``recall`` =
        the 101 recall thresholds, ``precision`` = interpolated IoU-0.5 precision, for
        :func:`irdet.metrics.plot_pr_curve`) and ``coco_summary`` (pycocotools' text). Rates in
        [0, 1] (0 when there are no targets); ``Fa`` ≥ 0.

    Raises:
        DataError: bad annotation or results file (naming it).
    """
    gt = load_coco(ann)
    res = load_coco_results(results, gt, results_source)
    kept = [r for r in res if r["score"] >= score_thr]
    ev, summary = _run_cocoeval(gt, kept, max_dets)
    stats = [max(float(s), 0.0) for s in ev.stats]
    prec50 = ev.eval["precision"][0, :, 0, 0, -1]
    rec50 = float(ev.eval["recall"][0, 0, 0, -1])
    p, r, f1 = sstnet_prf(prec50, rec50)
    tp, fp, num_gt = _counts_at(ev, prf_score_thr)
    p_t = tp / (tp + fp) if tp + fp else 0.0
    r_t = tp / num_gt if num_gt else 0.0
    f1_t = 2 * p_t * r_t / (p_t + r_t) if p_t + r_t else 0.0
    # Pd / Fa on the same (kept) detections, non-crowd targets
    gts = {img["id"]: np.zeros((0, 4)) for img in gt["images"]}
    sizes = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    boxes: dict[int, list] = {i: [] for i in gts}
    for a in gt["annotations"]:
        if not a.get("iscrowd", 0):
            x, y, w, h = a["bbox"]
            boxes[a["image_id"]].append((x, y, x + w, y + h))
    gts = {i: np.asarray(b, dtype=np.float64).reshape(-1, 4) for i, b in boxes.items()}
    dets: dict[int, tuple[list, list]] = {}
    for d in kept:
        x, y, w, h = d["bbox"]
        entry = dets.setdefault(d["image_id"], ([], []))
        entry[0].append((x, y, x + w, y + h))
        entry[1].append(d["score"])
    dets_np = {i: (np.asarray(b, dtype=np.float64).reshape(-1, 4), np.asarray(s, dtype=np.float64)) for i, (b, s) in dets.items()}
    pf = pd_fa(gts, dets_np, sizes, score_thr=pdfa_score_thr)
    return {
        "AP50": stats[1],
        "AP50_95": stats[0],
        "AP75": stats[2],
        "precision": p,
        "recall": r,
        "F1": f1,
        "precision_at_thr": p_t,
        "recall_at_thr": r_t,
        "F1_at_thr": f1_t,
        "Pd": pf["Pd"],
        "Fa": pf["Fa"],
        "fa_per_image": pf["fa_per_image"],
        "num_images": len(gt["images"]),
        "num_gts": int(num_gt),
        "num_dets": len(kept),
        "num_dets_below_score_thr": len(res) - len(kept),
        "images_without_detections": int(sum(1 for i in gts if i not in dets)),
        "images_without_targets": int(sum(1 for b in gts.values() if len(b) == 0)),
        "protocol": {"iou_thr": 0.5, "score_thr": float(score_thr), "max_dets": int(max_dets),
                     "prf_score_thr": float(prf_score_thr), "pdfa_score_thr": float(pdfa_score_thr),
                     "class_agnostic": len(gt["categories"]) > 1,
                     "source": "SSTNet vid_map_coco.py (pycocotools COCOeval bbox; P = mean p50[:int(R*100)])"},
        "pr": {"iou_thr": 0.5, "recall": [float(v) for v in ev.params.recThrs],
               "precision": [max(float(v), 0.0) for v in prec50]},
        "coco_summary": summary.strip(),
    }


_ROWS = (
    ("AP50", "COCO AP@0.5 (pycocotools)"),
    ("AP50_95", "COCO AP@[0.5:0.95]"),
    ("AP75", "COCO AP@0.75"),
    ("precision", "P@0.5, mean interp. precision up to R (SSTNet)"),
    ("recall", "R@0.5, all dets >= score_thr (SSTNet)"),
    ("F1", "2PR/(P+R) (SSTNet)"),
    ("precision_at_thr", "precision@0.5, score >= prf_score_thr"),
    ("recall_at_thr", "recall@0.5, score >= prf_score_thr"),
    ("F1_at_thr", "F1@0.5, score >= prf_score_thr"),
    ("Pd", "probability of detection"),
    ("Fa", "false-alarm pixel rate"),
    ("fa_per_image", "false alarms per frame"),
    ("num_images", "frames"),
    ("num_gts", "targets"),
    ("num_dets", "detections (score >= score_thr)"),
    ("images_without_detections", "frames without detections"),
    ("images_without_targets", "frames without targets"),
)


def format_coco_table(metrics: Mapping) -> str:
    """Aligned text table ``name  value  description`` of :func:`coco_evaluate`'s metrics
    (:func:`irdet.metrics.report.format_table` with the moving-target rows)."""
    return format_table(metrics, _ROWS)

def write_coco_report(out_dir, metrics: Mapping) -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``pr_curve.png`` (COCO interpolated IoU-0.5 curve) atomically.

    Returns:
        ``(metrics_json_path, pr_curve_png_path)``.
    """

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "metrics.json"
    atomic_write_json(json_path, dict(metrics))
    title = (f"AP50 {metrics.get('AP50', 0):.3f}  P {metrics.get('precision', 0):.3f}  "
             f"R {metrics.get('recall', 0):.3f}  F1 {metrics.get('F1', 0):.3f}")
    png = plot_pr_curve(metrics["pr"], out / "pr_curve.png", title=title)
    return json_path, png

