"""Temporal fusion blocks of the multi-frame detector (:class:`irdet.models.sequence_detector.SequenceDetector`):
T per-frame stride-8 maps (N, T, C, h, w) → one map of the current frame (N, C, h, w).

Registered in :data:`irdet.models.registry.FUSIONS` by ``model.temporal.type``: ``conv3d``
(:class:`TemporalFusion3D`) and ``none`` (:class:`IdentityFusion`). Source: irdet's own block
(the BP-FPN paper's host, SSTNet, fuses with a "motion coupling neck" of 2D convs plus a ConvLSTM
auxiliary branch; see :mod:`irdet.models.sequence_detector`).

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
"""

from __future__ import annotations

import math

import torch
from torch import nn

from irdet.errors import ConfigError
from irdet.models.configurable import Configurable

__all__ = ["TemporalFusion3D", "IdentityFusion"]


def _gn(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels)


class IdentityFusion(nn.Module, Configurable):
    """No fusion (``model.temporal.type: none``): (N, T, C, h, w) → the current frame (N, C, h, w).

    Reads no key of ``model.temporal`` beyond ``type`` and ``num_frames``.
    """

    @classmethod
    def from_config(cls, cfg: dict, channels: int, num_frames: int) -> "IdentityFusion":
        """The block; ``cfg``, ``channels`` and ``num_frames`` are not used."""
        return cls()

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return feats[:, -1]


class TemporalFusion3D(nn.Module, Configurable):
    """3D-convolution temporal fusion of T stride-8 maps, residual onto the current frame
    (``model.temporal.type: conv3d``).

    See the module docstring for the exact block, the reason for the choice and the T = 1
    reduction.

    Args (``hidden``, ``layers``, ``kernel_t``, ``init_scale``: keys of ``model.temporal``):
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

    CONFIG = {"hidden": None, "layers": 2, "kernel_t": 3, "init_scale": 0.1}

    @classmethod
    def from_config(cls, cfg: dict, channels: int, num_frames: int) -> "TemporalFusion3D":
        """The block from ``model.temporal`` (its :attr:`CONFIG` keys; ``layers`` and ``kernel_t``
        read as int, ``init_scale`` as float) for C = ``channels`` and T = ``num_frames``."""
        cfg = {**cls.CONFIG, **cfg}
        return cls(channels, num_frames, cfg["hidden"], int(cfg["layers"]), int(cfg["kernel_t"]), float(cfg["init_scale"]))

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
