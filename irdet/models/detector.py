"""Single-frame detector: backbone → neck → head, with input normalisation.

:class:`Detector` is FCOS (``model.head.seg_head: false``) or BAFE-Net (``seg_head: true``) on a
ResNet backbone with an FPN (``neck.type: fpn``) or BP-FPN (``neck.type: bpfpn``) neck, as
:func:`irdet.models.build.build_detector` assembles it from a config's ``model`` section.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from irdet.models.heads.fcos import FCOSHead
from irdet.models.normalization import PIXEL_MEAN, PIXEL_STD, register_pixel_normalization
from irdet.models.tiling import DEFAULT_OVERLAP, DEFAULT_TILE_BATCH, tiled_forward

__all__ = ["Detector"]


class Detector(nn.Module):
    """Backbone → neck → dense head, with input normalisation (built by :func:`irdet.models.build.build_detector`).

    Args:
        backbone: returns a dict ``C_k`` → features. neck: returns ``(levels, aux_losses)``.
        head: an :class:`FCOSHead` (or subclass).
        pixel_mean, pixel_std: per-channel normalisation of [0, 255] inputs (:mod:`irdet.models.normalization`).

    Inputs are (N, 3, H, W) float32 images in [0, 255] (H, W multiples of the largest stride).
    """

    def __init__(self, backbone: nn.Module, neck: nn.Module, head: FCOSHead,
                 pixel_mean: Sequence[float] = PIXEL_MEAN, pixel_std: Sequence[float] = PIXEL_STD):
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.head = head
        register_pixel_normalization(self, pixel_mean, pixel_std)

    def forward(self, images: torch.Tensor) -> tuple[dict, dict]:
        """Returns ``(head_out, neck_losses)`` for (N, 3, H, W) images in [0, 255]."""
        x = (images - self.pixel_mean) / self.pixel_std
        feats, neck_losses = self.neck(self.backbone(x))
        return self.head(feats), neck_losses

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """Training losses for a collated batch (:func:`irdet.data.collate.collate`).

        Returns a dict of scalar losses (head losses + neck auxiliary losses) plus ``loss``,
        their sum.
        """
        out, losses = self(batch["images"])
        losses = {**self.head.loss(out, batch["boxes"], batch["labels"], sky_mask=batch.get("sky_mask")), **losses}
        losses["loss"] = sum(losses.values())
        return losses

    @torch.no_grad()
    def predict(self, batch: dict, rescale: bool = True, tile: Sequence[int] | None = None,
                tile_overlap: int = DEFAULT_OVERLAP, tile_batch: int = DEFAULT_TILE_BATCH) -> tuple[list[dict], dict]:
        """Detections per image and the raw head output.

        Args:
            tile: None (the default): the whole input in one pass. (th, tw) pixels of the
                network input: tiled inference (irdet extension, :mod:`irdet.models.tiling`),
                the head outputs stitched from overlapping tiles and decoded as in one pass.
            tile_overlap, tile_batch: minimum tile overlap (pixels) and tiles per network
                call, used only with ``tile``.

        Returns:
            ``(dets, out)``: ``dets`` list of dicts with ``boxes`` (K, 4) XYXY pixel-edge in
            original-image pixels (``rescale``) or input pixels, ``scores`` (K,), ``labels``
            (K,); ``out`` the head output (e.g. ``seg_logits`` for BAFE-Net; whole-input maps
            when tiled).

        Raises:
            ConfigError: bad tiling options (:func:`irdet.models.tiling.check_tile_options`).
        """
        if tile is None:
            out, _ = self(batch["images"])
        else:
            out = tiled_forward(self, batch["images"], tile, tile_overlap, tile_batch)
        dets = self.head.predict(out, batch["img_size"], batch["orig_size"] if rescale else None)
        return dets, out
