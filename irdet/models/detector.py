"""Single-frame detector (backbone → neck → head) and its builder from a config dict.

``build_detector(cfg["model"])`` gives FCOS (``head.seg_head: false``) or BAFE-Net
(``head.seg_head: true``) on a ResNet backbone with an FPN (``neck.type: fpn``) or BP-FPN
(``neck.type: bpfpn``) neck.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from irdet.errors import ConfigError
from irdet.models.backbones import ResNetBackbone
from irdet.models.heads.bafe import BAFEHead
from irdet.models.heads.fcos import FCOSHead
from irdet.models.necks import FPN
from irdet.models.tiling import DEFAULT_OVERLAP, DEFAULT_TILE_BATCH, tiled_forward

__all__ = ["Detector", "build_detector", "build_neck", "default_regress_ranges", "neck_inputs"]

BAFE_KEYS = ("exchange", "adapter", "exchange_ratio", "adapter_hidden", "selection", "exchange_mode", "scorer", "seg_loss_weight",
             "reference_blocks")
FCOS_KEYS = ("num_classes", "stacked_convs", "feat_channels", "center_sampling", "center_sample_radius",
             "focal_alpha", "focal_gamma", "assigner", "assign_radius", "min_assign_size", "box_param", "test")


class Detector(nn.Module):
    """Backbone → neck → dense head, with input normalisation.

    Args:
        backbone: returns a dict ``C_k`` → features. neck: returns ``(levels, aux_losses)``.
        head: an :class:`FCOSHead` (or subclass).
        pixel_mean, pixel_std: per-channel normalisation of [0, 255] inputs.

    Inputs are (N, 3, H, W) float32 images in [0, 255] (H, W multiples of the largest stride).
    """

    def __init__(self, backbone: nn.Module, neck: nn.Module, head: FCOSHead,
                 pixel_mean: Sequence[float] = (123.675, 116.28, 103.53),
                 pixel_std: Sequence[float] = (58.395, 57.12, 57.375)):
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.head = head
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[dict, dict]:
        """Returns ``(head_out, neck_losses)`` for (N, 3, H, W) images in [0, 255]."""
        x = (images - self.pixel_mean) / self.pixel_std
        feats, neck_losses = self.neck(self.backbone(x))
        return self.head(feats), neck_losses

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """Training losses for a collated batch (:func:`irdet.data.transforms.collate`).

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


def default_regress_ranges(levels: Sequence[str]) -> list[tuple[float, float]]:
    """FCOS regress ranges: level P_k gets (2^(k+2), 2^(k+3)], the finest starts at −1.

    P3–P5 → (−1, 64), (64, 128), (128, 256) (the paper); with P2 → (−1, 32), (32, 64), ...
    """
    ranges = []
    for i, lv in enumerate(levels):
        k = int(lv[1:])
        ranges.append((-1.0 if i == 0 else float(2 ** (k + 2)), float(2 ** (k + 3))))
    return ranges


def build_neck(cfg: dict, in_channels: dict[str, int]) -> nn.Module:
    """Neck from ``model.neck`` (``type: fpn | bpfpn``).

    Raises:
        ConfigError: unknown neck type or options.
    """
    cfg = dict(cfg)
    kind = cfg.pop("type", "fpn")
    if kind == "fpn":
        unknown = set(cfg) - {"out_channels", "levels", "in_levels"}
        if unknown:
            raise ConfigError(f"unknown model.neck keys for fpn: {sorted(unknown)}")
        return FPN(in_channels, cfg.get("out_channels", 256), cfg.get("levels", ("P3", "P4", "P5")), cfg.get("in_levels"))
    if kind == "bpfpn":
        from irdet.models.necks.bpfpn import BPFPN

        return BPFPN(in_channels, **cfg)
    raise ConfigError(f"model.neck.type must be 'fpn' or 'bpfpn', got {kind!r}")


def build_detector(cfg: dict) -> Detector:
    """Build a :class:`Detector` from the ``model`` section of a config (see :mod:`irdet.config`).

    Raises:
        ConfigError: inconsistent switches (e.g. ``exchange`` without ``seg_head``).
    """
    bb = cfg["backbone"]
    neck_cfg = dict(cfg["neck"])
    levels = list(neck_cfg.get("levels", ["P3", "P4", "P5"]))
    needed = neck_inputs(neck_cfg)
    backbone = ResNetBackbone(bb["depth"], bb.get("weights"), bb.get("norm", "auto"), bb.get("frozen_stages", "auto"),
                              out_levels=sorted(needed))
    neck = build_neck(neck_cfg, backbone.out_channels)
    head_cfg = cfg["head"]
    ranges = head_cfg.get("regress_ranges") or default_regress_ranges(levels)
    if len(ranges) != len(levels):
        raise ConfigError(f"model.head.regress_ranges has {len(ranges)} entries for {len(levels)} levels {levels}")
    kwargs = {k: head_cfg[k] for k in FCOS_KEYS if k in head_cfg}
    kwargs.update(in_channels=neck.out_channels, strides=neck.strides, regress_ranges=ranges)
    if head_cfg.get("seg_head", True):
        head = BAFEHead(**kwargs, **{k: head_cfg[k] for k in BAFE_KEYS if k in head_cfg})
    else:
        if head_cfg.get("exchange"):
            raise ConfigError("model.head.exchange needs model.head.seg_head: true (there is no segmentation branch to exchange with)")
        head = FCOSHead(**kwargs)
    return Detector(backbone, neck, head, cfg.get("pixel_mean", (123.675, 116.28, 103.53)), cfg.get("pixel_std", (58.395, 57.12, 57.375)))


def neck_inputs(neck_cfg: dict) -> list[str]:
    """Backbone levels a neck reads, sorted: the ``C_k`` of its outputs, its ``in_levels``
    (FPN top-down path) and C2 for BP-FPN's GILS shortcut. The backbone builds only these."""
    levels = list(neck_cfg.get("levels", ["P3", "P4", "P5"]))
    needed = {f"C{lv[1:]}" for lv in levels} | set(neck_cfg.get("in_levels") or ())
    if neck_cfg.get("type") == "bpfpn" and neck_cfg.get("shortcut", "gils") != "none":
        needed.add("C2")
    return sorted(needed)
