"""Single-frame detection metrics (DenseSIRST Table II protocol of the BAFE-Net paper + irdet extensions).

All boxes given to these functions are ``(N, 4)`` ``(xmin, ymin, xmax, ymax)`` in the xml's
own numbers, which for DenseSIRST are irdet's pixel-edge coordinates of the original image
(:mod:`irdet.data.io`), and IoU uses the reference's VOC "+1" formula by default
(:mod:`irdet.metrics.voc`). Detections are ``{image_id: ((M, 4) boxes, (M,) scores)}``, ground
truth ``{image_id: (N, 4) boxes}``.

* :mod:`irdet.metrics.voc`: MMDetection ``eval_map`` replica (mAP07, mAP12, recall);
* :mod:`irdet.metrics.pdfa`: IRSTD Pd / Fa read for box detectors;
* :mod:`irdet.metrics.results`: COCO-style results JSON (the exchange format);
* :mod:`irdet.metrics.report`: :func:`evaluate`, text table, PR plot, report files.
"""

from irdet.metrics.pdfa import pd_fa
from irdet.metrics.report import evaluate, format_table, plot_pr_curve, write_report
from irdet.metrics.results import dets_to_results, gt_to_results, load_results, results_to_dets, save_results
from irdet.metrics.voc import box_iou, eval_voc, match_detections, voc_ap

__all__ = [
    "box_iou",
    "voc_ap",
    "match_detections",
    "eval_voc",
    "pd_fa",
    "dets_to_results",
    "results_to_dets",
    "load_results",
    "save_results",
    "gt_to_results",
    "evaluate",
    "format_table",
    "plot_pr_curve",
    "write_report",
]
