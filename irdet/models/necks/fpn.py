"""Vanilla FPN neck over backbone levels C_k → P_k (torchvision ``FeaturePyramidNetwork``).

Source: FCOS/BAFE-Net reference: FPN on C3–C5, 256 channels, outputs P3/P4/P5 at strides
8/16/32, no extra levels. irdet small-target options: ``levels=("P2", ..., "P5")`` adds the
stride-4 level from C2; ``in_levels=("C2", ..., "C5")`` with ``levels=("P2",)`` keeps the
top-down path from C5 (context) but outputs, and pays the 3×3 output conv for, P2 only.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn
from torchvision.ops import FeaturePyramidNetwork

from irdet.errors import ConfigError
from irdet.models.configurable import Configurable

__all__ = ["FPN"]


class FPN(nn.Module, Configurable):
    """Top-down FPN: lateral 1×1 convs, nearest upsampling + sum, 3×3 output convs (``model.neck.type: fpn``).

    Args (``out_channels``, ``levels``, ``in_levels``: the keys of ``model.neck``):
        in_channels: channels of each backbone level, e.g. ``{"C3": 128, "C4": 256, "C5": 512}``.
        out_channels: channels of every output level (256 in the paper).
        levels: output levels, finest first, e.g. ``("P3", "P4", "P5")``; ``P_k`` is built
            from ``C_k``, so ``in_channels`` must hold every ``C_k``.
        in_levels: backbone levels on the top-down path, finest first (default: the ``C_k`` of
            ``levels``); must be consecutive and include every output's ``C_k``. Levels
            on the path but not in ``levels`` get a lateral 1×1 conv and no output conv.

    Raises:
        ConfigError: missing backbone levels, an output outside ``in_levels``.

    Forward: ``feats`` dict ``C_k`` → (N, C_k, H/2^k, W/2^k). Returns ``(outs, losses)``:
    ``outs`` list of (N, out_channels, H/2^k, W/2^k) in ``levels`` order, and an (empty)
    dict of auxiliary losses (the BP-FPN neck returns its DGR term there).
    """

    CONFIG = {"out_channels": 256, "levels": ["P3", "P4", "P5"]}
    OPTIONAL_CONFIG = {"in_levels": None}

    @classmethod
    def input_levels(cls, cfg: dict) -> set[str]:
        """Backbone levels the neck of section ``cfg`` reads: the ``C_k`` of its output levels
        ``P_k`` and its ``in_levels`` (the top-down path)."""
        levels = cfg.get("levels", cls.CONFIG["levels"])
        return {f"C{lv[1:]}" for lv in levels} | set(cfg.get("in_levels") or ())

    def __init__(self, in_channels: dict[str, int], out_channels: int = 256, levels: Sequence[str] = ("P3", "P4", "P5"),
                 in_levels: Sequence[str] | None = None):
        super().__init__()
        self.levels = tuple(levels)
        self.in_levels = tuple(in_levels) if in_levels else tuple(f"C{lv[1:]}" for lv in self.levels)
        outside = [lv for lv in self.levels if f"C{lv[1:]}" not in self.in_levels]
        if outside:
            raise ConfigError(f"FPN output levels {outside} are not on the top-down path in_levels {list(self.in_levels)}")
        missing = [c for c in self.in_levels if c not in in_channels]
        if missing:
            raise ConfigError(f"FPN levels {self.levels} need backbone levels {missing}")
        self.out_channels = out_channels
        self.strides = [2 ** int(lv[1:]) for lv in self.levels]
        self.fpn = FeaturePyramidNetwork([in_channels[c] for c in self.in_levels], out_channels)
        self._out_index = [self.in_levels.index(f"C{lv[1:]}") for lv in self.levels]
        for i in range(len(self.in_levels)):
            if i not in self._out_index:  # no output conv where nothing is output
                self.fpn.layer_blocks[i] = nn.Identity()

    def pyramid(self, feats: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The FPN outputs (N, out_channels, H_l, W_l) of ``levels``, finest first."""
        outs = list(self.fpn(OrderedDict((c, feats[c]) for c in self.in_levels)).values())
        return [outs[i] for i in self._out_index]

    def forward(self, feats: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        return self.pyramid(feats), {}
