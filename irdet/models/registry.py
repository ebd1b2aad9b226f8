"""Registries of the model parts (plain dicts name → class) and the config schema they declare.

=====================  ===========================  =============================================
registry               chosen by                    parts
=====================  ===========================  =============================================
:data:`BACKBONES`      ``model.backbone.type``      ``resnet`` (:class:`ResNetBackbone`; the key is
                       (optional, ``resnet``)       optional: configs never set it)
:data:`NECKS`          ``model.neck.type``          ``fpn`` (:class:`FPN`), ``bpfpn`` (:class:`BPFPN`)
:data:`HEADS`          ``model.head.seg_head``      ``fcos`` (false: :class:`FCOSHead`), ``bafe``
                                                    (true: :class:`BAFEHead`)
:data:`FUSIONS`        ``model.temporal.type``      ``conv3d`` (:class:`TemporalFusion3D`), ``none``
                                                    (:class:`IdentityFusion`)
=====================  ===========================  =============================================

Every part is a :class:`~irdet.models.configurable.Configurable`: it declares the keys of its
section it reads (``CONFIG``, with the defaults every resolved config holds, and
``OPTIONAL_CONFIG``), and necks the backbone levels they read (``input_levels(cfg)``). From these
declarations come :func:`model_defaults` and :func:`temporal_defaults` (the ``model`` part of
:data:`irdet.config.DEFAULTS` / ``SEQUENCE_DEFAULTS``), :func:`section_keys` (which keys
:func:`irdet.config.validate` accepts in a section), :func:`neck_inputs` (the backbone levels
the builders build) and :func:`unused_head_keys` (the head settings a run key ignores).
Adding a neck, head, backbone or fusion is its own file plus one line here.

Source: irdet extension.
"""

from __future__ import annotations

import copy
from typing import Any

from irdet.errors import ConfigError
from irdet.models.backbones import ResNetBackbone
from irdet.models.heads.bafe import BAFEHead
from irdet.models.heads.fcos import FCOSHead
from irdet.models.necks.bpfpn import BPFPN
from irdet.models.necks.fpn import FPN
from irdet.models.normalization import PIXEL_MEAN, PIXEL_STD
from irdet.models.sequence_detector import NUM_FRAMES
from irdet.models.temporal import IdentityFusion, TemporalFusion3D

__all__ = ["BACKBONES", "NECKS", "HEADS", "FUSIONS", "backbone_class", "neck_class", "head_name", "fusion_class",
           "neck_inputs", "unused_head_keys", "model_defaults", "temporal_defaults", "section_keys"]

BACKBONES: dict[str, type] = {"resnet": ResNetBackbone}
NECKS: dict[str, type] = {"fpn": FPN, "bpfpn": BPFPN}
HEADS: dict[str, type] = {"fcos": FCOSHead, "bafe": BAFEHead}
FUSIONS: dict[str, type] = {"conv3d": TemporalFusion3D, "none": IdentityFusion}

#: The part a section gets when it names none (``type`` absent; ``seg_head: true`` for heads).
DEFAULT_BACKBONE, DEFAULT_NECK, DEFAULT_FUSION = "resnet", "fpn", "conv3d"
#: ``model.head.seg_head`` → head: the FCOS baseline (false) or BAFE-Net with its sky head (true).
HEAD_BY_SEG_HEAD = {False: "fcos", True: "bafe"}


def _lookup(registry: dict[str, type], kind: str, section: str) -> type:
    if not isinstance(kind, str) or kind not in registry:
        raise ConfigError(f"{section}.type must be one of {list(registry)}, got {kind!r}")
    return registry[kind]


def backbone_class(cfg: dict) -> type:
    """The backbone class of ``model.backbone`` (``type``, default ``resnet``).

    Raises:
        ConfigError: unknown type.
    """
    return _lookup(BACKBONES, cfg.get("type", DEFAULT_BACKBONE), "model.backbone")


def neck_class(cfg: dict) -> type:
    """The neck class of ``model.neck`` (``type``, default ``fpn``).

    Raises:
        ConfigError: unknown type (``model.neck.type must be one of ['fpn', 'bpfpn'], got 'x'``).
    """
    return _lookup(NECKS, cfg.get("type", DEFAULT_NECK), "model.neck")


def head_name(cfg: dict) -> str:
    """The registered head ``model.head`` selects: ``bafe`` for ``seg_head: true`` (the default), else ``fcos``."""
    return HEAD_BY_SEG_HEAD[bool(cfg.get("seg_head", True))]


def fusion_class(cfg: dict) -> type:
    """The fusion block class of ``model.temporal`` (``type``, default ``conv3d``).

    Raises:
        ConfigError: unknown type.
    """
    return _lookup(FUSIONS, cfg.get("type", DEFAULT_FUSION), "model.temporal")


def neck_inputs(neck_cfg: dict) -> list[str]:
    """Backbone levels the neck of ``model.neck`` reads, sorted (e.g. ``["C2", "C3", "C4", "C5"]``):
    its ``input_levels`` (FPN: the ``C_k`` of its outputs and its ``in_levels``; BP-FPN adds C2
    for the GILS shortcut). The backbone builds only these.

    Raises:
        ConfigError: unknown neck type.
    """
    return sorted(neck_class(neck_cfg).input_levels(neck_cfg))


def unused_head_keys(head_cfg: dict) -> set[str]:
    """Keys of ``model.head`` that the selected head does not read with these settings: those
    only other registered heads declare (the BAFE-Net keys of an FCOS head) and the head's own
    :meth:`~irdet.models.configurable.Configurable.inactive_config_keys` (the exchange options of
    BAFE-Net without exchange). A run key ignores them, so equal experiments get equal keys."""
    own = HEADS[head_name(head_cfg)]
    others = {k for cls in HEADS.values() for k in cls.config_keys()} - set(own.config_keys())
    return others | own.inactive_config_keys(head_cfg)


def _head_defaults() -> dict[str, Any]:
    """``model.head`` defaults: FCOS's, the selector ``seg_head: true``, BAFE-Net's, with ``test``
    last (the key order of the resolved configs written before the registries)."""
    fcos = dict(FCOSHead.CONFIG)
    test = fcos.pop("test")
    return {**fcos, "seg_head": True, **BAFEHead.CONFIG, "test": test}


def model_defaults() -> dict[str, Any]:
    """The ``model`` section of :data:`irdet.config.DEFAULTS` (a new deep copy): ``pixel_mean``,
    ``pixel_std`` (:mod:`irdet.models.normalization`), and the ``CONFIG`` of the default backbone,
    neck (with its ``type``) and the heads."""
    return copy.deepcopy({
        "pixel_mean": list(PIXEL_MEAN),
        "pixel_std": list(PIXEL_STD),
        "backbone": dict(BACKBONES[DEFAULT_BACKBONE].CONFIG),
        "neck": {"type": DEFAULT_NECK, **NECKS[DEFAULT_NECK].CONFIG},
        "head": _head_defaults(),
    })


def temporal_defaults() -> dict[str, Any]:
    """``model.temporal`` of a sequence config (a new deep copy): ``type``, ``num_frames`` (T,
    :data:`irdet.models.sequence_detector.NUM_FRAMES`), ``level`` (the neck output fused and fed
    to the head, ``P3``), ``history_grad`` (True: backbone and neck trained on all T frames) and
    the keys every fusion block declares."""
    keys: dict[str, Any] = {"type": DEFAULT_FUSION, "num_frames": NUM_FRAMES, "level": "P3", "history_grad": True}
    for cls in FUSIONS.values():
        keys.update(cls.config_keys())
    return copy.deepcopy(keys)


def section_keys(path: tuple[str, ...], section: dict) -> dict[str, Any] | None:
    """The keys (→ defaults) a model section may hold, as its parts declare them, for
    :func:`irdet.config.validate`; None for a path that is not a part's section.

    ``model.backbone``: ``type`` and the backbone's keys; ``model.neck``: ``type`` and the keys of
    the neck it names (so ``shortcut`` is accepted for ``bpfpn`` only); ``model.head``: the
    selector ``seg_head`` and every registered head's keys (one section serves both heads: an
    FCOS config resolves with the BAFE-Net keys too); ``model.temporal``: :func:`temporal_defaults`.

    Raises:
        ConfigError: a section naming an unknown type.
    """
    if path == ("model", "backbone"):
        return {"type": DEFAULT_BACKBONE, **backbone_class(section).config_keys()}
    if path == ("model", "neck"):
        return {"type": DEFAULT_NECK, **neck_class(section).config_keys()}
    if path == ("model", "head"):
        return {"seg_head": True, **{k: v for cls in HEADS.values() for k, v in cls.config_keys().items()}}
    if path == ("model", "temporal"):
        return temporal_defaults()
    return None
