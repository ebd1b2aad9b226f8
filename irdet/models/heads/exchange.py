"""Dynamic cross-task feature hard-exchange (BAFE-Net paper §IV-B, Eqs. 4–9, Fig. 4).

Between the classification features X1 and the segmentation features X2 of one pyramid
level (both (N, C, H, W)):

1. **Scores (Eq. 4).** An LSKNet-style large-kernel attention per branch,
   ``m = σ(X ⊙ (F(X) ⊙ σ(S(avg(X) ⊕ max(X)))))`` computed per pixel: F = 5×5 depthwise →
   7×7 depthwise (dilation 3) with a 1×1 (C → C/2) branch after each; S = 7×7 conv over
   the channel-mean and channel-max of the two branches, giving two sigmoid gates; a final
   1×1 (C/2 → C). Channel scores are ``m`` averaged over H, W → (N, C) in (0, 1); spatial
   scores (for spatial exchange) are ``m`` averaged over channels → (N, H·W).
2. **Selection (Eq. 5).** Per sample, the top K = round(p·C) channels of each branch
   (``selection="dynamic"``); Table VII's alternatives: ``"random"`` (K random channels per
   sample and forward pass) and ``"fixed"`` (the evenly spaced channels ``⌊i·C/K⌋``).
3. **Hard exchange (Eqs. 6–9).** ``Y1 = X1 ⊙ (1 − E1) + A(X2 ⊙ E2)`` and symmetrically:
   the K selected channels of X1 (in descending score order) are *replaced* by the K
   selected channels of X2 passed through the adapter A, and vice versa; all other
   channels are untouched. A is a per-pixel MLP K → hidden → K (ReLU), shared by both
   directions (Table V: hidden 64); ``adapter=False`` exchanges the raw channels (Table IV c).

The top-k indices carry no gradient, so in the reference code the scorer never trains
(SPEC §3). ``scorer`` selects how irdet makes it learnable:

* ``"ste"`` (default): the gathered channels are multiplied by ``v / v.detach()`` (v = their
  scores): the forward pass is exactly Eqs. 8–9, the backward pass gives the scorer the
  gradient of a score-scaled exchange (straight-through estimator; irdet extension);
* ``"scale"``: the gathered channels are multiplied by their scores v (forward changes;
  irdet extension);
* ``"reference"``: the reference's behaviour, for side-by-side measurement: no gradient to
  the scorer and its LSK block returns ``attn`` without the ``X ⊙`` product.

Spatial exchange (Table VI, irdet's reading — the paper gives no equations): a fraction p of
the H·W positions, chosen per sample by the sum of both branches' spatial scores, is swapped
between the branches (all C channels at those positions, through a C → hidden → C adapter).
``mode`` = ``"channel"`` (the paper's choice), ``"spatial"``, ``"channel+spatial"`` (channel
exchange, then spatial) or ``"spatial+channel"``.
"""

from __future__ import annotations

import torch
from torch import nn

from irdet.errors import ConfigError

__all__ = ["LSKScorer", "Adapter", "ChannelExchange", "SpatialExchange", "CrossTaskExchange"]

SELECTIONS = ("dynamic", "random", "fixed")
SCORERS = ("ste", "scale", "reference")
MODES = ("channel", "spatial", "channel+spatial", "spatial+channel")


class LSKScorer(nn.Module):
    """Per-pixel attention scores of Eq. 4 (LSKNet large selective kernel), (N, C, H, W) → (N, C, H, W) in (0, 1).

    Args:
        channels: C (must be even).
        input_product: True = Eq. 4 as written (``σ(X ⊙ attn)``); False = the reference's
            block, which drops the input (``σ(attn)``).
    """

    def __init__(self, channels: int, input_product: bool = True):
        super().__init__()
        half = channels // 2
        self.input_product = input_product
        self.conv0 = nn.Conv2d(channels, channels, 5, padding=2, groups=channels)
        self.conv_spatial = nn.Conv2d(channels, channels, 7, padding=9, groups=channels, dilation=3)
        self.conv1 = nn.Conv2d(channels, half, 1)
        self.conv2 = nn.Conv2d(channels, half, 1)
        self.conv_squeeze = nn.Conv2d(2, 2, 7, padding=3)
        self.conv = nn.Conv2d(half, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a1 = self.conv0(x)
        a2 = self.conv_spatial(a1)
        a1 = self.conv1(a1)
        a2 = self.conv2(a2)
        both = torch.cat([a1, a2], dim=1)
        agg = torch.cat([both.mean(1, keepdim=True), both.amax(1, keepdim=True)], dim=1)
        gates = self.conv_squeeze(agg).sigmoid()
        attn = self.conv(a1 * gates[:, 0:1] + a2 * gates[:, 1:2])
        return torch.sigmoid(x * attn if self.input_product else attn)


class Adapter(nn.Sequential):
    """Per-pixel MLP ``in → hidden → in`` with ReLU (1×1 convs), (N, in, H, W) → (N, in, H, W)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))


def _select(scores: torch.Tensor | None, n: int, total: int, k: int, selection: str, device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(N, k) indices into ``total`` items per sample, and their scores (dynamic only)."""
    if selection == "dynamic":
        values, idx = scores.topk(k, dim=1)
        return idx, values
    if selection == "random":
        return torch.rand(n, total, device=device).argsort(dim=1)[:, :k], None
    idx = (torch.arange(k, device=device) * total) // k
    return idx.expand(n, k), None


def _grad_factor(values: torch.Tensor | None, scorer: str) -> torch.Tensor | None:
    """Multiplier that routes gradient to the scorer (see module docstring)."""
    if values is None or scorer == "reference":
        return None
    return values / values.detach().clamp_min(1e-12) if scorer == "ste" else values


class _Exchange(nn.Module):
    def __init__(self, channels: int, ratio: float, hidden: int, adapter: bool, selection: str, scorer: str):
        super().__init__()
        if not 0 < ratio <= 1:
            raise ConfigError(f"exchange_ratio must be in (0, 1], got {ratio}")
        if selection not in SELECTIONS:
            raise ConfigError(f"selection must be one of {SELECTIONS}, got {selection!r}")
        if scorer not in SCORERS:
            raise ConfigError(f"scorer must be one of {SCORERS}, got {scorer!r}")
        self.ratio = ratio
        self.selection = selection
        self.scorer = scorer
        self.channels = channels
        self.hidden = hidden
        self.use_adapter = adapter

    def _scores(self, scorer: LSKScorer | None, x: torch.Tensor) -> torch.Tensor | None:
        if scorer is None:
            return None
        if self.scorer == "reference":
            with torch.no_grad():
                return scorer(x)
        return scorer(x)

    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(x) if self.adapter is not None else x


class ChannelExchange(_Exchange):
    """Channel hard-exchange (Eqs. 4–9) of two (N, C, H, W) maps; see the module docstring.

    Args:
        channels: C. ratio: p, K = max(1, round(p·C)). hidden: adapter width.
        adapter: use the shared adapter A. selection: dynamic / random / fixed.
        scorer: ste / scale / reference.

    ``forward(x1, x2) -> (y1, y2)``, same shapes; exactly K channels of each sample are
    replaced in each output and all others equal the input.
    """

    def __init__(self, channels: int, ratio: float = 0.5, hidden: int = 64, adapter: bool = True,
                 selection: str = "dynamic", scorer: str = "ste"):
        super().__init__(channels, ratio, hidden, adapter, selection, scorer)
        self.k = max(1, int(round(ratio * channels)))
        dynamic = selection == "dynamic"
        self.scorer1 = LSKScorer(channels, scorer != "reference") if dynamic else None
        self.scorer2 = LSKScorer(channels, scorer != "reference") if dynamic else None
        self.adapter = Adapter(self.k, hidden) if adapter else None

    def select(self, x1: torch.Tensor, x2: torch.Tensor):
        """Per-sample channel indices (N, K) and score multipliers for both branches."""
        n, c = x1.shape[:2]
        out = []
        for scorer, x in ((self.scorer1, x1), (self.scorer2, x2)):
            s = self._scores(scorer, x)
            idx, values = _select(None if s is None else s.mean((2, 3)), n, c, self.k, self.selection, x.device)
            out.append((idx, _grad_factor(values, self.scorer)))
        return out

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (i1, f1), (i2, f2) = self.select(x1, x2)
        h, w = x1.shape[-2:]
        e1 = i1[:, :, None, None].expand(-1, -1, h, w)
        e2 = i2[:, :, None, None].expand(-1, -1, h, w)
        g1 = x1.gather(1, e1)
        g2 = x2.gather(1, e2)
        if f1 is not None:
            g1 = g1 * f1[:, :, None, None]
            g2 = g2 * f2[:, :, None, None]
        y1 = x1.scatter(1, e1, self._adapt(g2))
        y2 = x2.scatter(1, e2, self._adapt(g1))
        return y1, y2


class SpatialExchange(_Exchange):
    """Spatial hard-exchange of a fraction p of positions (Table VI; irdet's reading).

    The positions are the top K = round(p·H·W) of the summed spatial scores of both branches
    (dynamic), random, or evenly spaced (fixed); at those positions the two maps swap all C
    channels, each through the shared C → hidden → C adapter. ``forward(x1, x2) -> (y1, y2)``.
    """

    def __init__(self, channels: int, ratio: float = 0.5, hidden: int = 64, adapter: bool = True,
                 selection: str = "dynamic", scorer: str = "ste"):
        super().__init__(channels, ratio, hidden, adapter, selection, scorer)
        dynamic = selection == "dynamic"
        self.scorer1 = LSKScorer(channels, scorer != "reference") if dynamic else None
        self.scorer2 = LSKScorer(channels, scorer != "reference") if dynamic else None
        self.adapter = Adapter(channels, hidden) if adapter else None

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, h, w = x1.shape
        k = max(1, int(round(self.ratio * h * w)))
        s1 = self._scores(self.scorer1, x1)
        s2 = self._scores(self.scorer2, x2)
        scores = None if s1 is None else (s1.mean(1) + s2.mean(1)).flatten(1) / 2
        idx, values = _select(scores, n, h * w, k, self.selection, x1.device)
        factor = _grad_factor(values, self.scorer)
        e = idx[:, None, :].expand(-1, c, -1)
        f1, f2 = x1.flatten(2), x2.flatten(2)
        g1, g2 = f1.gather(2, e), f2.gather(2, e)
        if factor is not None:
            g1 = g1 * factor[:, None, :]
            g2 = g2 * factor[:, None, :]
        a21 = self._adapt(g2[..., None])[..., 0]
        a12 = self._adapt(g1[..., None])[..., 0]
        return f1.scatter(2, e, a21).view_as(x1), f2.scatter(2, e, a12).view_as(x2)


class CrossTaskExchange(nn.Module):
    """The BAFE exchange block: channel and/or spatial exchange in the configured order.

    Args:
        channels: C of both branches. ratio: p (Table VIII). hidden: adapter width (Table V).
        adapter: use the adapter (Table IV). selection: Table VII. mode: Table VI.
        scorer: gradient routing to the scorer (see module docstring).

    Raises:
        ConfigError: unknown mode/selection/scorer or ratio outside (0, 1].
    """

    def __init__(self, channels: int, ratio: float = 0.5, hidden: int = 64, adapter: bool = True,
                 selection: str = "dynamic", mode: str = "channel", scorer: str = "ste"):
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"exchange mode must be one of {MODES}, got {mode!r}")
        kinds = {"channel": ChannelExchange, "spatial": SpatialExchange}
        self.steps = nn.ModuleList(
            kinds[k](channels, ratio, hidden, adapter, selection, scorer) for k in mode.split("+")
        )

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for step in self.steps:
            x1, x2 = step(x1, x2)
        return x1, x2
