"""BP-FPN neck: vanilla FPN + gradient-isolated low-level shortcut (GILS) + directional
gradient regularization (DGR).

Source: Zhang et al., "You Only Look Omni Gradient Backpropagation for Moving Infrared Small
Target Detection" (BP-FPN). Only the abstract and the figure captions of that paper are
available to the project; its full text (equations, tables, implementation details) is
not. Everything below is **irdet's reading of BP-FPN's abstract and figure captions**, not the authors' code:

- what the paper states: BP-FPN is an FPN designed "from the backpropagation perspective",
  plug-and-play, with negligible overhead; GILS brings the stride-4 feature C2 into the
  pyramid through a downsampling module such that "only the parameters of the downsampling
  module in the C2 branch receive gradient updates" (Fig. 4), which avoids shortcut
  learning (Fig. 2b); the downsampling is motivated by the sparsity of infrared targets
  (compressive sensing, Fig. 5); DGR "enforces hierarchical feature consistency during
  backpropagation" in one direction;
- what irdet implements (exact definitions, P_l = FPN output at stride 2^l, finest first):

  GILS (``shortcut: gils``)::

      P3' = P3 + D(stopgrad(C2))          # D: learnable stride-2 downsampler, C2 → out_channels

  ``shortcut: vanilla`` is the same without ``stopgrad`` (the non-isolated low-level shortcut,
  Fig. 2/4 baseline); ``shortcut: none`` is the vanilla FPN. The shortcut always targets the
  stride-8 output P3 (also when P2 is an output level: P2 then comes from the FPN's own
  lateral path on C2, which does pass gradient to C2 — only the shortcut path is isolated).

  D (``downsampler``): ``conv`` = 3×3 conv stride 2 (no bias) → GroupNorm; ``s2d`` =
  space-to-depth ×2 (``PixelUnshuffle``, 4·C2 channels, lossless) → 1×1 conv (no bias) →
  GroupNorm, the compressive-sensing variant of Fig. 5. GroupNorm (groups gcd(32, C),
  batch-size independent like the FCOS head's GN) fixes the shortcut's scale independently
  of C2's; its affine weight starts at ``shortcut_init`` (default 0.1, bias 0), so the
  shortcut starts small (per-channel std 0.1, next to FPN outputs of std ≈1–2 for an R18
  trained from scratch at initialisation) but non-zero, hence D's conv receives gradient from
  the first step, and the network starts close to the plain FPN.

  DGR (``dgr``), over the adjacent pairs (P_a, P_b) of the output levels (a finer than b;
  all adjacent pairs by default), computed in training mode only::

      top_down : d(P_a, stopgrad(up(P_b)))     # only the finer level P_a receives gradient
      bottom_up: d(pool(stopgrad(P_a)), P_b)   # only the coarser level P_b receives gradient
      loss_dgr = weight · mean over pairs

  ``up`` = nearest upsampling to P_a's size (as in the FPN top-down path), ``pool`` =
  adaptive average pooling to P_b's size; ``cosine``: d = 1 − cos(x, y) over channels at
  each position, averaged over (N, H, W) (in [0, 2]); ``l2``: d = mean squared error of the
  channel-L2-normalised features averaged over (N, C, H, W), which equals 2(1 − cos)/C per
  position (same gradient direction as ``cosine``, C/2 times smaller).
  Default direction ``bottom_up``: on DenseSIRST every positive sits on P3 (no resized box exceeds 60 px, so P4/P5 get none), so the
  supervised fine level teaches the coarser ones (which otherwise see only background
  supervision), while the fine level is never pulled toward the blurrier coarse ones.

Shapes: inputs ``C_k`` are (N, C_k, H/2^k, W/2^k); outputs are (N, out_channels, H/2^k, W/2^k)
for ``P_k`` in ``levels`` (strides 4/8/16/32 for P2/P3/P4/P5).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from irdet.errors import ConfigError
from irdet.models.configurable import Configurable
from irdet.models.necks.fpn import FPN

__all__ = ["BPFPN", "LowLevelShortcut", "dgr_loss", "DGR_DEFAULTS", "SHORTCUTS", "DOWNSAMPLERS"]

SHORTCUTS = ("none", "vanilla", "gils")
DOWNSAMPLERS = ("conv", "s2d")
DIRECTIONS = ("top_down", "bottom_up")
DISTANCES = ("cosine", "l2")
ALL_LEVELS = ("P2", "P3", "P4", "P5")
#: DGR options (``model.neck.dgr``); ``levels: all`` = every adjacent pair of output levels.
DGR_DEFAULTS: dict[str, Any] = {"enabled": False, "weight": 0.5, "direction": "bottom_up", "distance": "cosine",
                                "levels": "all"}
#: The level the low-level shortcut is fused into (stride 8).
SHORTCUT_TARGET = "P3"


class LowLevelShortcut(nn.Module):
    """Low-level shortcut branch ``D(sg(C2))`` (GILS) or ``D(C2)`` (vanilla), (N, C2, H, W) → (N, C, ⌈H/2⌉, ⌈W/2⌉).

    Args:
        in_channels: channels of C2. out_channels: channels of the pyramid.
        downsampler: ``"conv"`` (3×3 stride-2 conv) or ``"s2d"`` (space-to-depth ×2 + 1×1 conv);
            both followed by GroupNorm(gcd(32, out_channels)).
        isolate: detach the input (GILS): D's parameters get gradient, C2 gets none through here.
        init_scale: initial GroupNorm weight (the shortcut's initial per-channel std).
    """

    def __init__(self, in_channels: int, out_channels: int, downsampler: str = "conv", isolate: bool = True,
                 init_scale: float = 0.1):
        super().__init__()
        self.isolate = isolate
        self.downsampler = downsampler
        if downsampler == "conv":
            self.reduce = nn.Identity()
            self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False)
        elif downsampler == "s2d":
            self.reduce = nn.PixelUnshuffle(2)
            self.conv = nn.Conv2d(4 * in_channels, out_channels, 1, bias=False)
        else:
            raise ConfigError(f"model.neck.downsampler must be one of {list(DOWNSAMPLERS)}, got {downsampler!r}")
        nn.init.kaiming_uniform_(self.conv.weight, a=1)  # as the FPN's own convs
        self.norm = nn.GroupNorm(math.gcd(32, out_channels), out_channels)
        nn.init.constant_(self.norm.weight, init_scale)
        nn.init.zeros_(self.norm.bias)

    def forward(self, c2: torch.Tensor) -> torch.Tensor:
        x = c2.detach() if self.isolate else c2
        if self.downsampler == "s2d" and (x.shape[-2] % 2 or x.shape[-1] % 2):
            x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))  # odd sizes: pad right/bottom (ceil, as conv)
        return self.norm(self.conv(self.reduce(x)))


def _distance(x: torch.Tensor, y: torch.Tensor, distance: str) -> torch.Tensor:
    """Scalar distance between (N, C, H, W) maps: ``cosine`` (1 − cos over C, mean) or ``l2`` (MSE of unit vectors)."""
    if distance == "cosine":
        return (1.0 - F.cosine_similarity(x, y, dim=1, eps=1e-8)).mean()
    if distance == "l2":
        return F.mse_loss(F.normalize(x, dim=1), F.normalize(y, dim=1))
    raise ConfigError(f"model.neck.dgr.distance must be one of {list(DISTANCES)}, got {distance!r}")


def dgr_loss(pyramid: Sequence[torch.Tensor], direction: str = "bottom_up", distance: str = "cosine",
             pairs: Sequence[tuple[int, int]] | None = None) -> torch.Tensor:
    """Directional cross-level consistency, the mean over pairs (unweighted), see the module docstring.

    Args:
        pyramid: (N, C, H_l, W_l) maps, finest first (same C).
        direction: ``"top_down"``: d(P_a, sg(up(P_b))), gradient reaches only the finer P_a;
            ``"bottom_up"``: d(pool(sg(P_a)), P_b), gradient reaches only the coarser P_b.
        distance: ``"cosine"`` or ``"l2"``.
        pairs: (finer, coarser) indices into ``pyramid``; default every adjacent pair.

    Returns:
        A scalar tensor (0-dim).

    Raises:
        ConfigError: unknown direction/distance. ValueError: fewer than two levels.
    """
    if pairs is None:
        pairs = [(i, i + 1) for i in range(len(pyramid) - 1)]
    if not pairs:
        raise ValueError("DGR needs at least two pyramid levels")
    terms = []
    for a, b in pairs:
        fine, coarse = pyramid[a], pyramid[b]
        if direction == "top_down":
            target = F.interpolate(coarse.detach(), size=fine.shape[-2:], mode="nearest")
            terms.append(_distance(fine, target, distance))
        elif direction == "bottom_up":
            target = F.adaptive_avg_pool2d(fine.detach(), coarse.shape[-2:])
            terms.append(_distance(target, coarse, distance))
        else:
            raise ConfigError(f"model.neck.dgr.direction must be one of {list(DIRECTIONS)}, got {direction!r}")
    return torch.stack(terms).mean()


class BPFPN(nn.Module, Configurable):
    """BP-FPN (irdet's reading of Zhang et al., arXiv 2511.13013): :class:`FPN` + GILS shortcut into P3 + DGR loss.

    Args (the keys of ``model.neck`` with ``type: bpfpn``):
        in_channels: backbone channels per level, e.g. ``{"C2": 64, "C3": 128, "C4": 256, "C5": 512}``;
            must hold ``C2`` when ``shortcut != "none"`` and every ``C_k`` of ``levels``.
        out_channels: channels of every output level (256).
        levels: output levels finest first, ``("P3", "P4", "P5")`` (strides 8/16/32, default)
            or ``("P2", "P3", "P4", "P5")`` (adds stride 4); must contain P3 with a shortcut.
        in_levels: backbone levels on the FPN's top-down path (default: the ``C_k`` of
            ``levels``), as :class:`FPN`: e.g. ``levels [P3, P4]`` with ``in_levels [C3, C4, C5]``
            keeps C5's top-down context but builds no P5 output conv.
        shortcut: ``"none"`` (vanilla FPN), ``"vanilla"`` (P3 += D(C2), C2 receives gradient) or
            ``"gils"`` (P3 += D(sg(C2)): D receives gradient, C2 none through the shortcut; default).
        downsampler: ``"conv"`` (3×3 stride-2 conv + GN, default) or ``"s2d"`` (space-to-depth ×2
            + 1×1 conv + GN).
        shortcut_init: initial GroupNorm weight of D (0.1): the shortcut starts small, non-zero.
        dgr: dict with ``enabled`` (False), ``weight`` (0.5), ``direction`` (``bottom_up`` |
            ``top_down``), ``distance`` (``cosine`` | ``l2``), ``levels`` (``"all"``: every
            adjacent pair of output levels, or a list of ≥ 2 output levels whose consecutive
            entries form the pairs); ``None``/``False`` = disabled, ``True`` = enabled with defaults.

    Forward: ``feats`` dict ``C_k`` → (N, C_k, H/2^k, W/2^k). Returns ``(outs, losses)``: ``outs`` a
    list of (N, out_channels, H/2^k, W/2^k) in ``levels`` order; ``losses`` = ``{"loss_dgr":
    weight · mean over pairs}`` in training mode with DGR enabled, else ``{}``.

    Attributes: ``levels``, ``strides`` (e.g. [8, 16, 32]), ``out_channels``, ``fpn`` (the
    wrapped :class:`FPN`), ``shortcut_branch`` (:class:`LowLevelShortcut` or None), ``dgr``
    (the resolved DGR options).

    Raises:
        ConfigError: unknown keys, bad values, missing backbone levels.
    """

    CONFIG = FPN.CONFIG
    OPTIONAL_CONFIG = {**FPN.OPTIONAL_CONFIG, "shortcut": "gils", "downsampler": "conv", "shortcut_init": 0.1,
                       "dgr": DGR_DEFAULTS}

    @classmethod
    def input_levels(cls, cfg: dict) -> set[str]:
        """Backbone levels the neck of section ``cfg`` reads: those of :meth:`FPN.input_levels`,
        and C2 for the low-level shortcut (GILS, or the vanilla shortcut) unless ``shortcut: none``."""
        needed = FPN.input_levels(cfg)
        if cfg.get("shortcut", cls.OPTIONAL_CONFIG["shortcut"]) != "none":
            needed.add("C2")
        return needed

    def __init__(self, in_channels: dict[str, int], out_channels: int = 256, levels: Sequence[str] = ("P3", "P4", "P5"),
                 shortcut: str = "gils", downsampler: str = "conv", dgr: dict | bool | None = None,
                 shortcut_init: float = 0.1, in_levels: Sequence[str] | None = None, **unknown):
        super().__init__()
        if unknown:
            raise ConfigError(f"unknown model.neck keys for bpfpn: {sorted(unknown)} (known: {', '.join(self.config_keys())})")
        if not isinstance(out_channels, int) or isinstance(out_channels, bool) or out_channels <= 0:
            raise ConfigError(f"model.neck.out_channels must be a positive int, got {out_channels!r}")
        if isinstance(levels, str) or not levels:
            raise ConfigError(f"model.neck.levels must be a non-empty list such as [P3, P4, P5], got {levels!r}")
        levels = tuple(levels)
        if any(lv not in ALL_LEVELS for lv in levels) or list(levels) != sorted(set(levels), key=ALL_LEVELS.index):
            raise ConfigError(f"model.neck.levels must be distinct entries of {list(ALL_LEVELS)}, finest first, got {list(levels)}")
        if shortcut not in SHORTCUTS:
            raise ConfigError(f"model.neck.shortcut must be one of {list(SHORTCUTS)}, got {shortcut!r}")
        if downsampler not in DOWNSAMPLERS:
            raise ConfigError(f"model.neck.downsampler must be one of {list(DOWNSAMPLERS)}, got {downsampler!r}")
        if not isinstance(shortcut_init, (int, float)) or isinstance(shortcut_init, bool) or shortcut_init <= 0:
            raise ConfigError(f"model.neck.shortcut_init must be a positive number, got {shortcut_init!r}")
        self.fpn = FPN(in_channels, out_channels, levels, in_levels)
        self.levels = self.fpn.levels
        self.strides = list(self.fpn.strides)
        self.out_channels = out_channels
        self.shortcut = shortcut
        self.shortcut_branch: LowLevelShortcut | None = None
        if shortcut != "none":
            if SHORTCUT_TARGET not in self.levels:
                raise ConfigError(f"model.neck.shortcut={shortcut!r} fuses C2 into {SHORTCUT_TARGET}, "
                                  f"which is not among levels {list(self.levels)}")
            if "C2" not in in_channels:
                raise ConfigError(f"model.neck.shortcut={shortcut!r} needs backbone level C2")
            self.shortcut_branch = LowLevelShortcut(in_channels["C2"], out_channels, downsampler,
                                                    isolate=(shortcut == "gils"), init_scale=float(shortcut_init))
        self.dgr = self._parse_dgr(dgr)
        self._pairs = self._dgr_pairs()

    def _parse_dgr(self, dgr) -> dict:
        if dgr is None or dgr is False:
            dgr = {}
        elif dgr is True:
            dgr = {"enabled": True}
        if not isinstance(dgr, dict):
            raise ConfigError(f"model.neck.dgr must be a mapping, got {dgr!r}")
        unknown = set(dgr) - set(DGR_DEFAULTS)
        if unknown:
            raise ConfigError(f"unknown model.neck.dgr keys: {sorted(unknown)} (known: {list(DGR_DEFAULTS)})")
        out = {**DGR_DEFAULTS, **dgr}
        if not isinstance(out["enabled"], bool):
            raise ConfigError(f"model.neck.dgr.enabled must be true/false, got {out['enabled']!r}")
        w = out["weight"]
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w) or w < 0:
            raise ConfigError(f"model.neck.dgr.weight must be a number >= 0, got {w!r}")
        out["weight"] = float(w)
        if out["direction"] not in DIRECTIONS:
            raise ConfigError(f"model.neck.dgr.direction must be one of {list(DIRECTIONS)}, got {out['direction']!r}")
        if out["distance"] not in DISTANCES:
            raise ConfigError(f"model.neck.dgr.distance must be one of {list(DISTANCES)}, got {out['distance']!r}")
        return out

    def _dgr_pairs(self) -> list[tuple[int, int]]:
        sel = self.dgr["levels"]
        if sel == "all":
            sel = list(self.levels)
        if isinstance(sel, str) or not isinstance(sel, (list, tuple)):
            raise ConfigError(f"model.neck.dgr.levels must be 'all' or a list of output levels, got {sel!r}")
        if any(lv not in self.levels for lv in sel) or len(set(sel)) != len(sel):
            raise ConfigError(f"model.neck.dgr.levels {list(sel)} must be distinct output levels {list(self.levels)}")
        idx = sorted(self.levels.index(lv) for lv in sel)
        if self.dgr["enabled"] and len(idx) < 2:
            raise ConfigError(f"model.neck.dgr needs at least two pyramid levels, got {list(sel)}")
        return list(zip(idx[:-1], idx[1:]))

    @property
    def dgr_trained_levels(self) -> list[str]:
        """Output levels DGR's gradient reaches: the finer level of each pair (``top_down``) or
        the coarser (``bottom_up``); ``[]`` with DGR off. A detector whose head reads none of them
        gets DGR's gradient only through the features these levels share with the others."""
        if not self.dgr["enabled"]:
            return []
        side = 0 if self.dgr["direction"] == "top_down" else 1
        return sorted({self.levels[pair[side]] for pair in self._pairs}, key=list(self.levels).index)

    def extra_repr(self) -> str:
        d = self.dgr
        dgr = f"dgr={d['direction']}/{d['distance']}/w={d['weight']}" if d["enabled"] else "dgr=off"
        return f"levels={list(self.levels)}, shortcut={self.shortcut}, {dgr}"

    def pyramid(self, feats: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """FPN outputs with the low-level shortcut fused (added) into P3, finest first."""
        outs = self.fpn.pyramid(feats)
        if self.shortcut_branch is not None:
            i = self.levels.index(SHORTCUT_TARGET)
            s = self.shortcut_branch(feats["C2"])
            if s.shape[-2:] != outs[i].shape[-2:]:  # only for odd input sizes
                s = F.interpolate(s, size=outs[i].shape[-2:], mode="nearest")
            outs[i] = outs[i] + s
        return outs

    def forward(self, feats: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        outs = self.pyramid(feats)
        losses: dict[str, torch.Tensor] = {}
        if self.training and self.dgr["enabled"]:
            losses["loss_dgr"] = self.dgr["weight"] * dgr_loss(outs, self.dgr["direction"], self.dgr["distance"], self._pairs)
        return outs, losses
