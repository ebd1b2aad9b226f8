"""Detectors and their parts: ResNet backbones, necks (FPN, BP-FPN), heads (FCOS, BAFE-Net),
temporal fusion blocks, and the builders that assemble them from a config's ``model`` section.

Layout: :mod:`~irdet.models.backbones`, :mod:`~irdet.models.necks`, :mod:`~irdet.models.heads`,
:mod:`~irdet.models.temporal` (the parts, each declaring its config keys,
:mod:`~irdet.models.configurable`) → :mod:`~irdet.models.registry` (name → part, the config
schema) → :mod:`~irdet.models.detector` / :mod:`~irdet.models.sequence_detector` (the models) →
:mod:`~irdet.models.build` (one assembly for both). Around them: :mod:`~irdet.models.normalization`
(input mean / std), :mod:`~irdet.models.tiling` (tiled inference), :mod:`~irdet.models.postprocess`
(decoding + NMS), :mod:`~irdet.models.complexity` (parameters and MACs).
"""

from irdet.models.build import build_detector, build_sequence_detector
from irdet.models.detector import Detector
from irdet.models.registry import BACKBONES, FUSIONS, HEADS, NECKS, neck_inputs, unused_head_keys
from irdet.models.sequence_detector import SequenceDetector

__all__ = ["build_detector", "build_sequence_detector", "Detector", "SequenceDetector", "neck_inputs",
           "unused_head_keys", "BACKBONES", "NECKS", "HEADS", "FUSIONS"]
