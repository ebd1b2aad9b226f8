"""Multi-frame detector for moving infrared small targets: shared per-frame backbone + neck,
temporal fusion of the T stride-8 maps (:mod:`irdet.models.temporal`), one-level FCOS head.

Host in the BP-FPN paper (Zhang et al., arXiv 2511.13013): BP-FPN's "YOLO-BP" is BP-FPN inside **SSTNet** (UESTC-nnLab/SSTNet,
``nets/Network.py``): a YOLOX-S CSPDarknet (depth 0.33, width 0.50) runs on each of the 5
frames of a clip (oldest → current), a top-down FPN/PAN reduces C3–C5 to **one stride-8 map**
(128 channels) per frame, a "motion coupling neck" fuses the 5 maps into one map for the
current frame, and a YOLOX head (one level, stride 8) predicts the current frame's boxes; a
ConvLSTM motion branch adds an auxiliary loss during training only.

irdet's :class:`SequenceDetector` keeps the structure and swaps the parts for irdet's own,
each a well-established component:

====================  =====================================  =====================================
part                  SSTNet (host)                          irdet
====================  =====================================  =====================================
per-frame backbone    YOLOX-S CSPDarknet                     ResNet-18/34/50 (:mod:`~irdet.models.backbones`)
per-frame neck        top-down FPN → P3 (stride 8)           FPN or BP-FPN (``model.neck``) on C3–C5
                                                             (+C2 for GILS); only P3 is used
temporal fusion       motion coupling neck (2D convs on      3D-convolution block (C3D / I3D style),
                      concatenated frames) + ConvLSTM aux    residual onto the current frame's P3
head                  YOLOX head, stride 8                   FCOS head, one level (stride 8), with an
                                                             optional small-target assignment
                                                             (``min_assign_size`` of :class:`FCOSHead`)
====================  =====================================  =====================================

The fusion block, why a 3D convolution and what it reduces to for T = 1: :mod:`irdet.models.temporal`.

Neck auxiliary losses (BP-FPN's ``loss_dgr``): the backbone and neck run once on the N·T
frames of a batch as one (N·T, 3, H, W) batch, so the neck's losses are **means over all
frames of all clips** (DGR is a mean over positions and images; averaging over T frames equals
the mean of per-frame DGR terms); they are not multiplied by T.

Normalisation as :class:`irdet.models.detector.Detector` (:mod:`irdet.models.normalization`: ImageNet mean/std of [0, 255] inputs).

Input layout: ``video`` (N, T, 3, H, W) float32 in [0, 255], frames oldest → current (index
T − 1 is the frame whose boxes are predicted), H and W multiples of 32 (the clip transforms
pad). Source: BP-FPN paper (host), SSTNet ``nets/Network.py`` (read for the host's structure);
the fusion block and everything else is irdet's.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from irdet.errors import ConfigError
from irdet.models.heads.fcos import FCOSHead
from irdet.models.normalization import PIXEL_MEAN, PIXEL_STD, register_pixel_normalization
from irdet.models.temporal import IdentityFusion

__all__ = ["SequenceDetector", "SEQUENCE_TEST_CFG", "NUM_FRAMES"]

#: Frames per clip T by default (``model.temporal.num_frames``; SSTNet: 5).
NUM_FRAMES = 5
#: Test-time settings of the host protocol (SSTNet ``vid_map_coco.py``: confidence 0.001, NMS 0.65; COCO's 100 per image).
SEQUENCE_TEST_CFG = {"nms_pre": 1000, "score_thr": 0.001, "nms_iou": 0.65, "max_per_img": 100}


class SequenceDetector(nn.Module):
    """Per-frame backbone → neck (P3 of each frame) → temporal fusion → one-level FCOS head
    (built by :func:`irdet.models.build.build_sequence_detector`).

    Args:
        backbone: returns a dict ``C_k`` → features (shared by all frames).
        neck: FPN / BP-FPN, returns ``(levels, aux_losses)``; must output ``level``.
        fusion: a block of :mod:`irdet.models.temporal` (:class:`~irdet.models.temporal.TemporalFusion3D`
            or :class:`~irdet.models.temporal.IdentityFusion`), (N, T, C, h, w) → (N, C, h, w).
        head: :class:`FCOSHead` with one level, at the stride of ``level`` (8 for P3, 4 for P2).
        num_frames: T, frames per clip.
        pixel_mean, pixel_std: per-channel normalisation of [0, 255] inputs (:mod:`irdet.models.normalization`).
        level: the neck output fused and fed to the head (``"P3"``, stride 8, the host's; or
            ``"P2"``, stride 4, irdet extension).
        history_grad: True (the host's): in training, backbone and neck receive gradient from all
            T frames. False (irdet extension, ``model.temporal.history_grad``): the T − 1 earlier
            frames of a clip run under ``torch.no_grad`` (their maps are inputs of the fusion, as
            the cached maps of ``irdet detect``), only the current frame's backbone + neck pass
            is differentiated, so a T = 5 step costs about one forward of the history more than
            a T = 1 step; the fusion block and the head are trained as before, and the neck's
            auxiliary losses (``loss_dgr``) are those of the current frames. BatchNorm normalises
            the history and the current frames as two batches (each updates the running
            statistics). Evaluation is the same either way.

    Shapes: ``video`` (N, T, 3, H, W) float32 in [0, 255], oldest → current, H and W multiples of
    32; per-frame maps (N, T, C, H/s, W/s), s = 8 (P3) or 4 (P2); head output as :class:`FCOSHead` with one level.
    """

    def __init__(self, backbone: nn.Module, neck: nn.Module, fusion: nn.Module, head: FCOSHead, num_frames: int,
                 pixel_mean: Sequence[float] = PIXEL_MEAN, pixel_std: Sequence[float] = PIXEL_STD, level: str = "P3",
                 history_grad: bool = True):
        super().__init__()
        if level not in neck.levels:
            raise ConfigError(f"the sequence detector fuses {level}, which the neck does not output ({list(neck.levels)})")
        self.backbone, self.neck, self.fusion, self.head = backbone, neck, fusion, head
        self.num_frames = int(num_frames)
        self.level = level
        self.history_grad = bool(history_grad)
        self.level_index = list(neck.levels).index(level)
        register_pixel_normalization(self, pixel_mean, pixel_std)

    @property
    def uses_history(self) -> bool:
        """False for ``type: none`` (only the current frame is looked at)."""
        return not isinstance(self.fusion, IdentityFusion)

    def frame_features(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-frame maps of ``level``: (M, 3, H, W) in [0, 255] → ((M, C, H/s, W/s), neck losses), s = 8 (P3) or 4 (P2).

        In eval mode each frame's map depends on that frame only (BatchNorm uses running
        statistics), so maps can be cached and reused by overlapping clips (``irdet detect``).
        """
        x = (images - self.pixel_mean) / self.pixel_std
        levels, losses = self.neck(self.backbone(x))
        return levels[self.level_index], losses

    def head_from_features(self, feats: torch.Tensor) -> dict:
        """Fuse (N, T, C, h, w) per-frame maps and run the head; returns the head output dict."""
        return self.head([self.fusion(feats)])

    def forward(self, video: torch.Tensor) -> tuple[dict, dict]:
        """Returns ``(head_out, neck_losses)`` for a (N, T, 3, H, W) clip batch.

        Raises:
            ValueError: not 5-D, or T differs from ``num_frames``.
        """
        if video.ndim != 5 or video.shape[2] != 3:
            raise ValueError(f"expected video (N, T, 3, H, W), got {tuple(video.shape)}")
        n, t = video.shape[:2]
        if t != self.num_frames:
            raise ValueError(f"model built for T={self.num_frames} frames per clip, got T={t}")
        if not self.uses_history:  # only the current frame matters
            feat, losses = self.frame_features(video[:, -1])
            return self.head([feat]), losses
        if self.training and not self.history_grad and t > 1:
            with torch.no_grad():
                past, _ = self.frame_features(video[:, :-1].flatten(0, 1))
            current, losses = self.frame_features(video[:, -1])
            feats = torch.cat([past.view(n, t - 1, *past.shape[1:]), current.unsqueeze(1)], dim=1)
            return self.head_from_features(feats), losses
        feats, losses = self.frame_features(video.flatten(0, 1))
        feats = feats.view(n, t, *feats.shape[1:])
        return self.head_from_features(feats), losses

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """Training losses for a batch of :func:`irdet.data.collate.collate_clips`.

        ``batch``: ``video`` (N, T, 3, H, W) in [0, 255], ``boxes`` list of
        (G_i, 4) XYXY pixel-edge boxes of the current frames in input pixels, ``labels`` list
        of (G_i,) int64.

        Returns head losses (``loss_cls``, ``loss_bbox``, ``loss_centerness``) on the current
        frames' boxes, neck auxiliary losses (e.g. ``loss_dgr``, mean over all frames), and
        ``loss``, their sum.
        """
        out, losses = self(batch["video"])
        losses = {**self.head.loss(out, batch["boxes"], batch["labels"]), **losses}
        losses["loss"] = sum(losses.values())
        return losses

    @torch.no_grad()
    def predict(self, batch: dict, rescale: bool = True) -> tuple[list[dict], dict]:
        """Detections on the current frame of each clip, as :meth:`Detector.predict`.

        Returns ``(dets, out)``: per clip ``boxes`` (K, 4) XYXY pixel-edge in original-frame
        pixels (``rescale``, using ``batch["img_size"]`` / ``batch["orig_size"]``) or input
        pixels, ``scores`` (K,) in [0, 1] (cls × centerness), ``labels`` (K,); ``out`` the head output.
        """
        out, _ = self(batch["video"])
        return self.head.predict(out, batch["img_size"], batch["orig_size"] if rescale else None), out

    @torch.no_grad()
    def predict_features(self, feats: torch.Tensor, img_sizes, orig_sizes=None) -> list[dict]:
        """Detections from cached per-frame maps (N, T, C, h, w) (see :meth:`frame_features`)."""
        return self.head.predict(self.head_from_features(feats), img_sizes, orig_sizes)
