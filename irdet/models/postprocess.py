"""Decoding and NMS of dense FCOS-style head outputs: the one post-process of every backend.

:meth:`irdet.models.heads.fcos.FCOSHead.predict` (PyTorch) and the ONNX Runtime models of
:mod:`irdet.deploy.runtime` both call :func:`decode_detections` on the raw per-level head
outputs, so the two backends differ only in the network's numbers, never in decoding. It stays
outside the exported graph: torchvision's NMS does not export under the ``torch.export``-based
ONNX exporter, and boxes-after-NMS have a data-dependent count.

Source: FCOS test procedure (Tian et al., ICCV 2019) in the MMDetection form the BAFE-Net
reference uses: top ``nms_pre`` per level by class score with score > ``score_thr``, score ×
centerness, boxes clipped to the resized image and rescaled to the original *before* NMS,
class-wise NMS at ``nms_iou``, at most ``max_per_img`` boxes per image.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torchvision.ops import batched_nms


__all__ = ["decode_detections", "level_points", "OUTPUT_KEYS"]

#: raw head outputs, in the order they are exported (BAFE-Net adds ``seg_logits``, not decoded)
OUTPUT_KEYS = ("cls_scores", "bbox_preds", "centernesses")


@torch.no_grad()

def level_points(h: int, w: int, stride: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Points of an (h, w) feature map at ``stride``: (h·w, 2) ``(x, y)`` in input pixels, row-major."""
    xs = torch.arange(w, device=device, dtype=dtype) * stride + stride / 2
    ys = torch.arange(h, device=device, dtype=dtype) * stride + stride / 2
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)

def decode_detections(out: dict, strides: Sequence[int], test_cfg: dict, img_sizes: Sequence[Sequence[int]],
                      orig_sizes: Sequence[Sequence[int]] | None = None) -> list[dict]:
    """Detections of N images from raw dense head outputs.

    Args:
        out: per-level lists (finest first, level ``l`` at ``strides[l]``): ``cls_scores``
            (N, C, H_l, W_l) class logits, ``bbox_preds`` (N, 4, H_l, W_l) float ltrb distances
            in input pixels from each point ``(j·s + s/2, i·s + s/2)`` to the box sides,
            ``centernesses`` (N, 1, H_l, W_l) logits. Other keys are ignored.
        strides: stride of each level in input pixels.
        test_cfg: ``nms_pre`` (int), ``score_thr`` (class probability, exclusive), ``nms_iou``,
            ``max_per_img``.
        img_sizes: per image (h, w) of the resized, unpadded input; boxes are clipped to it.
        orig_sizes: per image (H, W) of the original image; when given, boxes are rescaled
            by (W / w, H / h) to it before NMS.

    Returns:
        N dicts with ``boxes`` (K, 4) float32 XYXY pixel-edge boxes (original-image pixels
        with ``orig_sizes``, else input pixels), ``scores`` (K,) in [0, 1] (class probability
        × centerness), ``labels`` (K,) int64; K ≤ ``max_per_img``, sorted by score, boxes of
        zero width or height dropped.
    """
    cls_maps, box_maps, ctr_maps = (out[k] for k in OUTPUT_KEYS)
    points = [level_points(t.shape[-2], t.shape[-1], s, t.device) for t, s in zip(cls_maps, strides)]
    results = []
    for i in range(cls_maps[0].shape[0]):
        all_boxes, all_scores, all_labels = [], [], []
        for lvl, pts in enumerate(points):
            scores = cls_maps[lvl][i].float().flatten(1).t().sigmoid()  # (P, C)
            ctr = ctr_maps[lvl][i].float().flatten().sigmoid()
            reg = box_maps[lvl][i].float().flatten(1).t()
            keep = scores > test_cfg["score_thr"]
            sc = scores[keep]
            pidx, lab = keep.nonzero(as_tuple=True)
            if sc.numel() > test_cfg["nms_pre"]:
                sc, top = sc.topk(test_cfg["nms_pre"])
                pidx, lab = pidx[top], lab[top]
            p, d = pts[pidx], reg[pidx]
            bx = torch.stack([p[:, 0] - d[:, 0], p[:, 1] - d[:, 1], p[:, 0] + d[:, 2], p[:, 1] + d[:, 3]], -1)
            all_boxes.append(bx)
            all_scores.append(sc * ctr[pidx])
            all_labels.append(lab)
        boxes = torch.cat(all_boxes)
        scores = torch.cat(all_scores)
        labels = torch.cat(all_labels)
        h, w = img_sizes[i]
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        if orig_sizes is not None:
            oh, ow = orig_sizes[i]
            boxes = boxes * boxes.new_tensor([ow / w, oh / h, ow / w, oh / h])
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
        keep = batched_nms(boxes, scores, labels, test_cfg["nms_iou"])[: test_cfg["max_per_img"]]
        results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
    return results
