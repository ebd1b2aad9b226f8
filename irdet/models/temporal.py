"""Multi-frame detector for moving infrared small targets: shared per-frame backbone + neck,
temporal fusion of the T stride-8 maps, one-level FCOS head.

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
per-frame neck        top-down FPN → P3 (stride 8)           FPN or BP-FPN (``build_neck``) on C3–C5
                                                             (+C2 for GILS); only P3 is used
temporal fusion       motion coupling neck (2D convs on      3D-convolution block (C3D / I3D style),
                      concatenated frames) + ConvLSTM aux    residual onto the current frame's P3
head                  YOLOX head, stride 8                   FCOS head, one level (stride 8), with an
                                                             optional small-target assignment
                                                             (``min_assign_size`` of :class:`FCOSHead`)
====================  =====================================  =====================================

Temporal fusion choice: a **3D-convolution block** (:class:`TemporalFusion3D`, C3D, Tran et al.
2015; I3D, Carreira & Zisserman 2017) rather than a ConvGRU, because (1) a clip is a short,
fixed window (T = 5) that a 3D convolution covers in two layers, with every frame processed in
parallel (a ConvGRU is sequential over T, and its gates cost 3× the convolutions per step);
(2) on the 2-core CPU budget the cost is set directly by the reduced width ``hidden`` (C/2 by
default); (3) the block degenerates cleanly for T = 1 (below), so the single-frame baseline
is the same network; (4) its gradient reaches every frame in one hop (tested), unlike a
recurrence whose oldest frames get gradients through T−1 gate products.

Block (``N`` clips, ``T`` frames, ``C`` = neck channels, ``h × w`` = the stride-8 grid, ``Ch`` =
``hidden``)::

    X (N, T, C, h, w) → (N, C, T, h, w)
    reduce:   Conv3d 1×1×1 C→Ch → GN → ReLU
    temporal: layers × [Conv3d kt×3×3 Ch→Ch (zero padding in t, h, w) → GN → ReLU]
    collapse: Conv3d T×1×1 Ch→Ch (no padding: T → 1, a learned weighting of all frames) → GN → ReLU
    expand:   Conv2d 1×1 Ch→C → GN (affine weight initialised to ``init_scale`` = 0.1, bias 0)
    out = X[:, T−1] + expand(...)          (N, C, h, w): residual onto the current frame

GroupNorm (groups gcd(32, channels)) as in the FCOS head: per-clip statistics, batch-size
independent, so clips of a batch never exchange information (tested). The small non-zero
``init_scale`` (BP-FPN's ``shortcut_init`` convention) starts the network close to the
single-frame detector while every frame already receives gradient at step 0.

**T = 1** (the single-frame baseline): with one frame and zero temporal padding, each
kt×3×3 Conv3d only ever multiplies its centre temporal slice with data (the other slices see
padding), so it *is* a 3×3 Conv2d with kernel ``weight[:, :, kt // 2]``; ``collapse`` is a
1×1 conv. The block therefore reduces to a per-frame residual conv block of the same depth
(``P3 + expand(collapse(convs(reduce(P3))))``), and the T = 1 vs T = 5 comparison changes the
temporal input, not the depth of the network (tested against an explicit Conv2d computation).
``model.temporal.type: none`` is the other baseline, no fusion at all (head on the current
frame's P3; only the current frame goes through the backbone).

Neck auxiliary losses (BP-FPN's ``loss_dgr``): the backbone and neck run once on the N·T
frames of a batch as one (N·T, 3, H, W) batch, so the neck's losses are **means over all
frames of all clips** (DGR is a mean over positions and images; averaging over T frames equals
the mean of per-frame DGR terms); they are not multiplied by T.

Normalisation as :class:`irdet.models.detector.Detector` (ImageNet mean/std of [0, 255] inputs).

Input layout: ``video`` (N, T, 3, H, W) float32 in [0, 255], frames oldest → current (index
T − 1 is the frame whose boxes are predicted), H and W multiples of 32 (the clip transforms
pad). Source: BP-FPN paper (host), SSTNet ``nets/Network.py`` (read for the host's structure);
the fusion block and everything else is irdet's.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn
from irdet.config import SEQUENCE_DEFAULTS
from irdet.errors import ConfigError
from irdet.models.backbones import ResNetBackbone
from irdet.models.detector import FCOS_KEYS, build_neck, neck_inputs
from irdet.models.heads.fcos import FCOSHead

__all__ = ["TemporalFusion3D", "IdentityFusion", "SequenceDetector", "build_sequence_detector",
           "build_fusion", "TEMPORAL_DEFAULTS", "SEQUENCE_TEST_CFG", "FUSION_TYPES"]

FUSION_TYPES = ("conv3d", "none")
#: ``model.temporal`` options (validated by :func:`build_fusion`); the one copy lives in
#: :data:`irdet.config.SEQUENCE_DEFAULTS`: ``type`` conv3d | none; ``num_frames`` T (SSTNet: 5);
#: ``hidden`` Ch (None = out_channels // 2); ``layers``; ``kernel_t`` (odd); ``init_scale``.
TEMPORAL_DEFAULTS: dict[str, Any] = SEQUENCE_DEFAULTS["model"]["temporal"]
#: Test-time settings of the host protocol (SSTNet ``vid_map_coco.py``: confidence 0.001, NMS 0.65; COCO's 100 per image).
SEQUENCE_TEST_CFG = {"nms_pre": 1000, "score_thr": 0.001, "nms_iou": 0.65, "max_per_img": 100}


def _gn(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels)


class IdentityFusion(nn.Module):
    """No fusion (``model.temporal.type: none``): (N, T, C, h, w) → the current frame (N, C, h, w)."""

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return feats[:, -1]


class TemporalFusion3D(nn.Module):
    """3D-convolution temporal fusion of T stride-8 maps, residual onto the current frame.

    See the module docstring for the exact block, the reason for the choice and the T = 1
    reduction.

    Args:
        channels: C, channels of the per-frame maps (the neck's ``out_channels``).
        num_frames: T, frames per clip (≥ 1); fixes the ``collapse`` kernel (T×1×1).
        hidden: Ch, channels inside the block (default ``channels // 2``, at least 8).
        layers: temporal conv layers (≥ 1).
        kernel_t: temporal kernel size (odd, ≥ 1); spatial kernels are 3×3.
        init_scale: initial GroupNorm weight of the expand conv (> 0).

    Forward: ``feats`` (N, T, C, h, w) → (N, C, h, w) fused map of the current frame (index T − 1).

    Raises:
        ConfigError: bad sizes. ValueError (forward): wrong T or C.
    """

    def __init__(self, channels: int, num_frames: int, hidden: int | None = None, layers: int = 2, kernel_t: int = 3,
                 init_scale: float = 0.1):
        super().__init__()
        hidden = int(hidden) if hidden else max(8, channels // 2)
        if num_frames < 1 or layers < 1 or kernel_t < 1 or kernel_t % 2 == 0 or hidden < 1:
            raise ConfigError(f"model.temporal: need num_frames >= 1, layers >= 1, odd kernel_t >= 1, hidden >= 1 "
                              f"(got {num_frames}, {layers}, {kernel_t}, {hidden})")
        if not init_scale > 0:
            raise ConfigError(f"model.temporal.init_scale must be > 0, got {init_scale!r}")
        self.channels, self.num_frames, self.hidden = channels, num_frames, hidden
        self.reduce = nn.Sequential(nn.Conv3d(channels, hidden, 1, bias=False), _gn(hidden), nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        for _ in range(layers):
            blocks += [nn.Conv3d(hidden, hidden, (kernel_t, 3, 3), padding=(kernel_t // 2, 1, 1), bias=False),
                       _gn(hidden), nn.ReLU(inplace=True)]
        self.temporal = nn.Sequential(*blocks)
        self.collapse = nn.Sequential(nn.Conv3d(hidden, hidden, (num_frames, 1, 1), bias=False), _gn(hidden),
                                      nn.ReLU(inplace=True))
        self.expand = nn.Conv2d(hidden, channels, 1, bias=False)
        self.norm = _gn(channels)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.constant_(self.norm.weight, float(init_scale))
        nn.init.zeros_(self.norm.bias)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if feats.ndim != 5 or feats.shape[1] != self.num_frames or feats.shape[2] != self.channels:
            raise ValueError(f"TemporalFusion3D expects (N, {self.num_frames}, {self.channels}, h, w), got {tuple(feats.shape)}")
        x = feats.transpose(1, 2)  # (N, C, T, h, w)
        x = self.collapse(self.temporal(self.reduce(x))).squeeze(2)  # (N, Ch, h, w)
        return feats[:, -1] + self.norm(self.expand(x))


def build_fusion(cfg: dict | None, channels: int) -> nn.Module:
    """Fusion block from ``model.temporal`` (see :data:`TEMPORAL_DEFAULTS`).

    Raises:
        ConfigError: unknown keys or type, bad values.
    """
    cfg = {**TEMPORAL_DEFAULTS, **(cfg or {})}
    unknown = set(cfg) - set(TEMPORAL_DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown model.temporal keys: {sorted(unknown)} (known: {list(TEMPORAL_DEFAULTS)})")
    t = cfg["num_frames"]
    if not isinstance(t, int) or isinstance(t, bool) or t < 1:
        raise ConfigError(f"model.temporal.num_frames must be an int >= 1, got {t!r}")
    if cfg["type"] == "none":
        return IdentityFusion()
    if cfg["type"] != "conv3d":
        raise ConfigError(f"model.temporal.type must be one of {list(FUSION_TYPES)}, got {cfg['type']!r}")
    return TemporalFusion3D(channels, t, cfg["hidden"], int(cfg["layers"]), int(cfg["kernel_t"]), float(cfg["init_scale"]))


class SequenceDetector(nn.Module):
    """Per-frame backbone → neck (P3 of each frame) → temporal fusion → one-level FCOS head.

    Args:
        backbone: returns a dict ``C_k`` → features (shared by all frames).
        neck: FPN / BP-FPN, returns ``(levels, aux_losses)``; must output ``level``.
        fusion: :class:`TemporalFusion3D` or :class:`IdentityFusion`.
        head: :class:`FCOSHead` with ``strides == (8,)`` (one level).
        num_frames: T, frames per clip.
        pixel_mean, pixel_std: per-channel normalisation of [0, 255] inputs.
        level: the neck output fused and fed to the head (``"P3"``, stride 8).

    Shapes: ``video`` (N, T, 3, H, W) float32 in [0, 255], oldest → current, H and W multiples of
    32; per-frame maps (N, T, C, H/8, W/8); head output as :class:`FCOSHead` with one level.
    """

    def __init__(self, backbone: nn.Module, neck: nn.Module, fusion: nn.Module, head: FCOSHead, num_frames: int,
                 pixel_mean: Sequence[float] = (123.675, 116.28, 103.53),
                 pixel_std: Sequence[float] = (58.395, 57.12, 57.375), level: str = "P3"):
        super().__init__()
        if level not in neck.levels:
            raise ConfigError(f"the sequence detector fuses {level}, which the neck does not output ({list(neck.levels)})")
        self.backbone, self.neck, self.fusion, self.head = backbone, neck, fusion, head
        self.num_frames = int(num_frames)
        self.level = level
        self.level_index = list(neck.levels).index(level)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def uses_history(self) -> bool:
        """False for ``type: none`` (only the current frame is looked at)."""
        return not isinstance(self.fusion, IdentityFusion)

    def frame_features(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-frame stride-8 maps: (M, 3, H, W) in [0, 255] → ((M, C, H/8, W/8), neck losses).

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
        feats, losses = self.frame_features(video.flatten(0, 1))
        feats = feats.view(n, t, *feats.shape[1:])
        return self.head_from_features(feats), losses

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """Training losses for a batch of :func:`irdet.engine.sequence.collate_clips`.

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


def build_sequence_detector(cfg: dict) -> SequenceDetector:
    """Build a :class:`SequenceDetector` from the ``model`` section of a sequence config.

    Uses ``model.backbone`` and ``model.neck`` as :func:`irdet.models.detector.build_detector`
    (so ``neck: {type: bpfpn, shortcut: gils, dgr: {...}}`` works; the neck must output P3),
    ``model.temporal`` (:data:`TEMPORAL_DEFAULTS`), and the FCOS keys of ``model.head`` with one
    level: ``strides (8,)``, ``regress_ranges ((-1, 1e8),)`` (every target on the stride-8 map;
    an explicit one-entry ``head.regress_ranges`` is honoured). The test settings come from
    ``model.head.test`` (the sequence configs set the host's 0.001 / NMS 0.65,
    :data:`SEQUENCE_TEST_CFG`).

    Raises:
        ConfigError: ``head.seg_head: true`` (BAFE-Net heads need sky masks, not part of the
            sequence layout), a neck without P3, a multi-entry ``regress_ranges``, bad
            ``model.temporal``.
    """
    head_cfg = cfg["head"]
    if head_cfg.get("seg_head", False):
        raise ConfigError("the sequence detector uses an FCOS head: set model.head.seg_head: false")
    neck_cfg = dict(cfg["neck"])
    levels = list(neck_cfg.get("levels", ["P3", "P4", "P5"]))
    if "P3" not in levels:
        raise ConfigError(f"the sequence detector fuses the stride-8 map P3: model.neck.levels {levels} must contain P3")
    bb = cfg["backbone"]
    needed = neck_inputs(neck_cfg)
    backbone = ResNetBackbone(bb["depth"], bb.get("weights"), bb.get("norm", "auto"), bb.get("frozen_stages", "auto"),
                              out_levels=sorted(needed))
    neck = build_neck(neck_cfg, backbone.out_channels)
    fusion = build_fusion(cfg.get("temporal"), neck.out_channels)
    ranges = head_cfg.get("regress_ranges") or [(-1, 1e8)]
    if len(ranges) != 1:
        raise ConfigError(f"the sequence head has one level (stride 8): model.head.regress_ranges needs 1 entry, got {ranges}")
    kwargs = {k: head_cfg[k] for k in FCOS_KEYS if k in head_cfg}
    kwargs.update(in_channels=neck.out_channels, strides=(8,), regress_ranges=ranges)
    head = FCOSHead(**kwargs)
    t = int({**TEMPORAL_DEFAULTS, **(cfg.get("temporal") or {})}["num_frames"])
    return SequenceDetector(backbone, neck, fusion, head, t, cfg.get("pixel_mean", (123.675, 116.28, 103.53)),
                            cfg.get("pixel_std", (58.395, 57.12, 57.375)))
