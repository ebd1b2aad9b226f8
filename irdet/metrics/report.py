"""One-call evaluation of single-frame detections, text table, PR plot and report files.

Conventions as in :mod:`irdet.metrics.voc`: boxes are ``(xmin, ymin, xmax, ymax)`` in VOC
xml's numbers (pixel edges of the original image), VOC "+1" IoU.
Source: DenseSIRST Table II protocol of the BAFE-Net paper (Xiao et al., arXiv 2407.20078) plus irdet extensions (AP75, Pd/Fa, report).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from irdet.data.io import atomic_write_bytes, atomic_write_json
from irdet.metrics.background import fa_by_background
from irdet.metrics.pdfa import pd_fa
from irdet.metrics.voc import eval_voc

__all__ = ["evaluate", "format_table", "plot_pr_curve", "write_report"]


def evaluate(
    gts: Mapping[str, np.ndarray],
    dets: Mapping[str, tuple[np.ndarray, np.ndarray]],
    image_sizes: Mapping[str, tuple[int, int]],
    *,
    pdfa_score_thr: float = 0.5,
    sky_masks: Mapping[str, np.ndarray] | None = None,
) -> dict:
    """All single-frame metrics (Table II protocol + irdet extensions) in one JSON-ready dict.

    Every image of ``gts`` is evaluated (images without detections count as misses and are
    counted in ``images_without_detections``); no image is dropped.

    Args:
        gts: ``{image_id: (N, 4) boxes}``, xml numbers, pixels (N may be 0).
        dets: ``{image_id: ((M, 4) boxes, (M,) scores)}``, same convention, scores in
            [0, 1]; all detections are used for the AP metrics.
        image_sizes: ``{image_id: (H, W)}`` pixels, for every image of ``gts`` (Fa).
        pdfa_score_thr: detections with ``score >= pdfa_score_thr`` are used for Pd/Fa.
        sky_masks: optional ``{image_id: (H, W) sky mask}`` at the original size (truthy =
            sky; e.g. :class:`irdet.metrics.background.SkyMasks`): the false alarms are then
            also split by background (:func:`irdet.metrics.background.fa_by_background`).

    Returns:
        dict (plain Python numbers) with

        * ``mAP07`` / ``mAP12``: VOC2007 11-point / VOC2012 area AP at IoU 0.5, "+1";
        * ``recall`` / ``precision``: at IoU 0.5 over all detections;
        * ``AP75``: area AP at IoU 0.75 (irdet extension: the BAFE-Net paper names IoU 0.75, its reference code uses 0.5 only);
        * ``Pd``, ``Fa``, ``fa_per_image``: see :func:`irdet.metrics.pd_fa`
          (``dist_thr`` 3 px);
        * with ``sky_masks``: ``fa_sky_per_image``, ``fa_nonsky_per_image``,
          ``fa_sky_per_mpix``, ``fa_nonsky_per_mpix`` (None without pixels of that kind),
          ``num_false_alarms_sky``, ``num_false_alarms_nonsky``, ``sky_pixels``,
          ``nonsky_pixels``; or ``fa_background_note`` (a string) when an image has no mask;
        * ``num_images``, ``num_gts``, ``num_dets``, ``images_without_detections`` (ints);
        * ``pr``: ``{"iou_thr": 0.5, "ap07", "ap12", "recall": [...], "precision": [...],
          "score": [...]}``, the IoU-0.5 PR curve (one point per detection, by score
          descending), enough to re-make the plot with :func:`plot_pr_curve`.

        All rates are in [0, 1] (Fa >= 0).

    Raises:
        ValueError: ``dets`` has image ids not in ``gts``, ``image_sizes`` lacks an image
            of ``gts``, or bad shapes.

    Source: MMDetection ``VOCMetric`` / ``eval_map`` (as in the BAFE-Net reference code) + IRSTD Pd/Fa (irdet reading).
    """
    v50 = eval_voc(gts, dets, iou_thr=0.5)
    v75 = eval_voc(gts, dets, iou_thr=0.75)
    pf = pd_fa(gts, dets, image_sizes, score_thr=pdfa_score_thr)
    bg = {} if sky_masks is None else fa_by_background(gts, dets, image_sizes, sky_masks, score_thr=pdfa_score_thr)
    without = sum(1 for k in gts if k not in dets or len(dets[k][1]) == 0)
    return {
        "mAP07": v50["ap07"],
        "mAP12": v50["ap12"],
        "recall": v50["recall"],
        "AP75": v75["ap12"],
        "Pd": pf["Pd"],
        "Fa": pf["Fa"],
        "fa_per_image": pf["fa_per_image"],
        **bg,
        "precision": v50["precision"],
        "num_images": len(gts),
        "num_gts": v50["num_gts"],
        "num_dets": v50["num_dets"],
        "images_without_detections": int(without),
        "pr": {
            "iou_thr": 0.5,
            "ap07": v50["ap07"],
            "ap12": v50["ap12"],
            "recall": v50["recalls"].tolist(),
            "precision": v50["precisions"].tolist(),
            "score": v50["scores"].tolist(),
        },
    }


_ROWS = (
    ("mAP07", "AP@0.5, VOC07 11-point"),
    ("mAP12", "AP@0.5, VOC12 area"),
    ("AP75", "AP@0.75, area"),
    ("recall", "recall@0.5, all dets"),
    ("precision", "precision@0.5, all dets"),
    ("Pd", "probability of detection"),
    ("Fa", "false-alarm pixel rate"),
    ("fa_per_image", "false alarms per image"),
    ("fa_sky_per_image", "false alarms on sky per image"),
    ("fa_nonsky_per_image", "false alarms on non-sky per image"),
    ("fa_sky_per_mpix", "false alarms per megapixel of sky"),
    ("fa_nonsky_per_mpix", "false alarms per megapixel of non-sky"),
    ("num_images", "images"),
    ("num_gts", "targets"),
    ("num_dets", "detections"),
    ("images_without_detections", "images without detections"),
)


def format_table(metrics: Mapping, rows: Sequence[tuple[str, str]] | None = None) -> str:
    """A small aligned text table of the main metrics.

    Args:
        metrics: the dict from :func:`evaluate` (missing keys are skipped).
        rows: ``(key, description)`` pairs to print, in order (default: the single-frame
            metrics; :mod:`irdet.metrics.coco` passes its own).

    Returns:
        multi-line string ``name  value  description``; rates with 3 decimals, ``Fa`` in
        scientific notation (``1.234e-06``), counts as integers, None as ``n/a``; a
        ``fa_background_note`` in ``metrics`` is added as a last line.

    Source: irdet extension.
    """
    lines = []
    for key, desc in rows or _ROWS:
        if key not in metrics:
            continue
        v = metrics[key]
        if v is None:
            s = "n/a"
        elif key == "Fa":
            s = f"{float(v):.3e}"
        elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            s = str(int(v))
        else:
            s = f"{float(v):.3f}"
        lines.append((key, s, desc))
    note = metrics.get("fa_background_note") if rows is None else None
    if not lines:
        return note or ""
    kw = max(len(r[0]) for r in lines)
    vw = max(len(r[1]) for r in lines)
    return "\n".join([f"{k:<{kw}}  {s:>{vw}}  {d}" for k, s, d in lines] + ([note] if note else []))


def plot_pr_curve(metrics_or_pr: Mapping, path, title: str | None = None) -> Path:
    """Plot the IoU-0.5 precision-recall curve and save it atomically as an image.

    Args:
        metrics_or_pr: the dict from :func:`evaluate`, or its ``"pr"`` entry
            (``recall`` / ``precision`` lists in [0, 1], ``ap07`` / ``ap12``).
        path: output file (``.png``; parent folders are created).
        title: optional figure title.

    Returns:
        the written path.

    Raises:
        KeyError: no ``recall`` / ``precision`` lists in the input.

    Source: irdet extension (matplotlib Agg canvas, no global pyplot state).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pr = metrics_or_pr["pr"] if "pr" in metrics_or_pr else metrics_or_pr
    rec = np.asarray(pr["recall"], dtype=np.float64)
    prec = np.asarray(pr["precision"], dtype=np.float64)
    label = "IoU 0.5"
    if "ap07" in pr and "ap12" in pr:
        label += f" (AP07 {pr['ap07']:.3f}, AP12 {pr['ap12']:.3f})"
    fig = Figure(figsize=(5, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if rec.size:
        ax.plot(np.concatenate(([0.0], rec)), np.concatenate(([prec[0]], prec)), lw=1.5, label=label)
    else:
        ax.plot([], [], label=label + ", no detections")
    ax.set_xlim(0, 1.0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    path = Path(path)
    fig.savefig(buf, format=path.suffix.lstrip(".").lower() or "png")
    atomic_write_bytes(path, buf.getvalue())
    return path


def write_report(out_dir, metrics: Mapping) -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``pr_curve.png`` into ``out_dir`` (both atomically).

    Args:
        out_dir: output folder (created if needed).
        metrics: the dict from :func:`evaluate`.

    Returns:
        ``(metrics_json_path, pr_curve_png_path)``.

    Raises:
        OSError: a file cannot be written.

    Source: irdet extension.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "metrics.json"
    atomic_write_json(json_path, dict(metrics))
    png_path = plot_pr_curve(metrics, out / "pr_curve.png")
    return json_path, png_path
