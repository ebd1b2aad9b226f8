"""Building detectors from a config's ``model`` section: one assembly of backbone → neck → head.

:func:`build_detector` (single-frame, :class:`~irdet.models.detector.Detector`) and
:func:`build_sequence_detector` (multi-frame, :class:`~irdet.models.sequence_detector.SequenceDetector`)
share :func:`build_trunk` (the backbone with only the levels the neck reads, then the neck) and
:func:`build_head`; the sequence detector adds :func:`build_fusion` between the two. Each part
comes from its registry (:mod:`irdet.models.registry`) and reads the keys it declares.

The parts are built in this order (backbone, neck, fusion, head), so under a fixed seed
(``torch.manual_seed``) the initial weights do not depend on anything else.
"""

from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from irdet.errors import ConfigError
from irdet.models.detector import Detector
from irdet.models.heads.fcos import FCOSHead, default_regress_ranges
from irdet.models.normalization import PIXEL_MEAN, PIXEL_STD
from irdet.models.registry import HEADS, backbone_class, fusion_class, head_name, neck_class, neck_inputs, temporal_defaults
from irdet.models.sequence_detector import SequenceDetector

__all__ = ["build_detector", "build_sequence_detector", "build_trunk", "build_neck", "build_head", "build_fusion"]

#: The sequence detector's head reads one level (``model.temporal.level``), every target on it.
SEQUENCE_LEVELS, SEQUENCE_RANGES = ("P2", "P3"), [(-1, 1e8)]


def build_neck(cfg: dict, in_channels: dict[str, int]) -> nn.Module:
    """The neck of ``model.neck`` (``type`` selects it from :data:`~irdet.models.registry.NECKS`)
    on backbone levels of ``in_channels`` (e.g. ``{"C3": 128, "C4": 256, "C5": 512}``).

    Raises:
        ConfigError: unknown neck type, a key the neck does not declare, or the neck's own checks.
    """
    cls = neck_class(cfg)
    kind = cfg.get("type", "fpn")
    options = {k: v for k, v in cfg.items() if k != "type"}
    known = cls.config_keys()
    unknown = set(options) - set(known)
    if unknown:
        raise ConfigError(f"unknown model.neck keys for {kind}: {sorted(unknown)} (known: {', '.join(known)})")
    return cls.from_config(options, in_channels=in_channels)


def build_trunk(cfg: dict) -> tuple[nn.Module, nn.Module]:
    """``(backbone, neck)`` of a ``model`` section: the backbone builds only the levels the neck
    reads (:func:`~irdet.models.registry.neck_inputs`; BP-FPN's GILS adds C2), then the neck on them.

    Raises:
        ConfigError: unknown part types or keys, bad values (the parts' own checks).
    """
    bb = dict(cfg["backbone"])
    cls = backbone_class(bb)
    bb.pop("type", None)
    backbone = cls.from_config(bb, out_levels=neck_inputs(cfg["neck"]))
    return backbone, build_neck(cfg["neck"], backbone.out_channels)


def build_head(head_cfg: dict, name: str, in_channels: int, strides: Sequence[int],
               regress_ranges: Sequence[Sequence[float]]) -> FCOSHead:
    """The head ``name`` of :data:`~irdet.models.registry.HEADS` from ``model.head``, reading
    (N, ``in_channels``, H_l, W_l) maps at ``strides`` with one regress range (pixels) per level.

    Raises:
        ConfigError: bad head options (the head's own checks, e.g. an unknown ``assigner``).
    """
    return HEADS[name].from_config(head_cfg, in_channels=in_channels, strides=strides, regress_ranges=regress_ranges)


def build_fusion(cfg: dict | None, channels: int) -> nn.Module:
    """The temporal fusion block of ``model.temporal`` (defaults:
    :func:`~irdet.models.registry.temporal_defaults`) for C = ``channels`` per-frame maps.

    Raises:
        ConfigError: unknown keys or type, bad values.
    """
    defaults = temporal_defaults()
    cfg = {**defaults, **(cfg or {})}
    unknown = set(cfg) - set(defaults)
    if unknown:
        raise ConfigError(f"unknown model.temporal keys: {sorted(unknown)} (known: {list(defaults)})")
    t = cfg["num_frames"]
    if not isinstance(t, int) or isinstance(t, bool) or t < 1:
        raise ConfigError(f"model.temporal.num_frames must be an int >= 1, got {t!r}")
    cls = fusion_class(cfg)
    options = {k: v for k, v in cfg.items() if k in cls.config_keys()}
    return cls.from_config(options, channels=channels, num_frames=t)


def _normalization(cfg: dict) -> tuple[Any, Any]:
    return cfg.get("pixel_mean", PIXEL_MEAN), cfg.get("pixel_std", PIXEL_STD)


def build_detector(cfg: dict) -> Detector:
    """A :class:`~irdet.models.detector.Detector` from the ``model`` section of a config (see
    :mod:`irdet.config`): FCOS (``head.seg_head: false``) or BAFE-Net on the configured backbone
    and neck; ``head.regress_ranges: null`` → :func:`~irdet.models.heads.fcos.default_regress_ranges`
    of the neck's levels.

    Raises:
        ConfigError: unknown part types or keys, ``regress_ranges`` of another length than the
            levels, ``exchange`` without ``seg_head``, bad values.
    """
    head_cfg = cfg["head"]
    name = head_name(head_cfg)
    if name == "fcos" and head_cfg.get("exchange"):
        raise ConfigError("model.head.exchange needs model.head.seg_head: true (there is no segmentation branch to exchange with)")
    backbone, neck = build_trunk(cfg)
    levels = list(neck.levels)
    ranges = head_cfg.get("regress_ranges") or default_regress_ranges(levels)
    if len(ranges) != len(levels):
        raise ConfigError(f"model.head.regress_ranges has {len(ranges)} entries for {len(levels)} levels {levels}")
    head = build_head(head_cfg, name, neck.out_channels, neck.strides, ranges)
    return Detector(backbone, neck, head, *_normalization(cfg))


def build_sequence_detector(cfg: dict) -> SequenceDetector:
    """A :class:`~irdet.models.sequence_detector.SequenceDetector` from the ``model`` section of a
    sequence config.

    Uses ``model.backbone`` and ``model.neck`` as :func:`build_detector` (so ``neck: {type: bpfpn,
    shortcut: gils, dgr: {...}}`` works; the neck must output ``model.temporal.level``),
    ``model.temporal`` (:func:`build_fusion`; ``level`` is the neck output fused and fed to the head:
    ``P3``, stride 8, the host's, default; or ``P2``, stride 4, irdet extension; ``history_grad``, see
    :class:`~irdet.models.sequence_detector.SequenceDetector`), and the FCOS keys
    of ``model.head`` with one level: ``strides`` (8,) or (4,), ``regress_ranges ((-1, 1e8),)``
    (every target on that map; an explicit one-entry ``head.regress_ranges`` is honoured). The test settings come from ``model.head.test`` (the
    sequence configs set the host's 0.001 / NMS 0.65,
    :data:`~irdet.models.sequence_detector.SEQUENCE_TEST_CFG`).

    Raises:
        ConfigError: ``head.seg_head: true`` (BAFE-Net heads need sky masks, not part of the
            sequence layout), a ``temporal.level`` other than P2 / P3 or one the neck does not
            output, a non-bool ``temporal.history_grad``, a multi-entry ``regress_ranges``, bad
            ``model.temporal``.
    """
    head_cfg = cfg["head"]
    if head_cfg.get("seg_head", False):
        raise ConfigError("the sequence detector uses an FCOS head: set model.head.seg_head: false")
    temporal = {**temporal_defaults(), **(cfg.get("temporal") or {})}
    level = temporal["level"]
    if level not in SEQUENCE_LEVELS:
        raise ConfigError(f"model.temporal.level must be one of {list(SEQUENCE_LEVELS)}, got {level!r}")
    levels = list(cfg["neck"].get("levels", ["P3", "P4", "P5"]))
    if level not in levels:
        raise ConfigError(f"the sequence detector fuses {level} (model.temporal.level): "
                          f"model.neck.levels {levels} must contain {level}")
    ranges = head_cfg.get("regress_ranges") or SEQUENCE_RANGES
    if len(ranges) != 1:
        raise ConfigError(f"the sequence head has one level ({level}): model.head.regress_ranges needs 1 entry, got {ranges}")
    backbone, neck = build_trunk(cfg)
    fusion = build_fusion(cfg.get("temporal"), neck.out_channels)
    head = build_head(head_cfg, "fcos", neck.out_channels, (neck.strides[list(neck.levels).index(level)],), ranges)
    history_grad = temporal["history_grad"]
    if not isinstance(history_grad, bool):
        raise ConfigError(f"model.temporal.history_grad must be true/false, got {history_grad!r}")
    return SequenceDetector(backbone, neck, fusion, head, int(temporal["num_frames"]), *_normalization(cfg), level=level,
                            history_grad=history_grad)
