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
   sample and training forward pass; in eval mode one fixed draw, the same for every sample
   and call, from a generator seeded with :data:`EVAL_SEED`, so evaluation is deterministic:
   irdet's reading, the paper does not say) and ``"fixed"`` (the evenly spaced channels
   ``⌊i·C/K⌋``). The selected indices are kept in ascending channel order, whatever their
   scores: the mask form ``A(X2 ⊙ E2)`` keeps every channel's identity, and the reference
   sorts the top-k indices the same way.
3. **Hard exchange (Eqs. 6–9).** ``Y1 = X1 ⊙ (1 − E1) + A(X2 ⊙ E2)`` and symmetrically:
   the K selected channels of X1 are *replaced* by the K selected channels of X2 passed
   through the adapter A, and vice versa, the j-th lowest selected index of one branch
   receiving the j-th lowest of the other; all other channels are untouched. A is a
   per-pixel MLP K → hidden → K (ReLU), shared by both directions (Table V: hidden 64);
   ``adapter=False`` exchanges the raw channels (Table IV c).

The top-k indices carry no gradient, so in the reference code the scorer never trains.
``scorer`` selects how irdet makes it learnable:

* ``"ste"`` (default): the gathered channels are multiplied by ``v / v.detach()`` (v = their
  scores): the forward pass is exactly Eqs. 8–9, the backward pass gives the scorer the
  gradient of a score-scaled exchange (straight-through estimator; irdet extension);
* ``"scale"``: the gathered channels are multiplied by their scores v (forward changes;
  irdet extension);
* ``"reference"``: the reference code's scorer, for side-by-side measurement: ONE scorer
  shared by both branches (an ``LSKLayer``), channel scores ``σ(mean_HW(X ⊙ attn))`` (the
  sigmoid of the global average, not the average of the per-pixel sigmoid), every conv
  initialised Normal(0, 0.01) with zero bias (MMDetection's FCOS-head init, which covers
  it there), and frozen (``requires_grad`` off, scored under ``no_grad``): it stays at its
  initialisation, as in the reference, where it never receives a gradient. Channels are
  ranked by the logit ``mean_HW(X ⊙ attn)`` in float32, the same order as its sigmoid
  without the sigmoid's float rounding ties (measured: 202 and 206 distinct sigmoid scores
  of 256 channels on two random 64×64 maps at that init; 256 distinct logits).

Spatial exchange (Table VI, irdet's reading — the paper gives no equations): a fraction p
of the H·W positions, chosen per sample by the mean of both branches' spatial scores, is
swapped between the branches (all C channels at those positions, through a C → hidden → C
adapter). With ``scorer="reference"`` the positions are ranked by the mean over both branches
of the shared frozen scorer's ``mean_C(X ⊙ attn)`` per position (irdet's analogue; the
reference has no scored spatial exchange).
``mode`` = ``"channel"`` (the paper's choice), ``"spatial"``, ``"channel+spatial"`` (channel
exchange, then spatial) or ``"spatial+channel"``.
"""

from __future__ import annotations

import torch
from torch import nn

from irdet.errors import ConfigError
from irdet.models.heads.lsk import LSKScorer, init_normal_

__all__ = ["LSKScorer", "Adapter", "ChannelExchange", "SpatialExchange", "CrossTaskExchange", "EVAL_SEED"]

SELECTIONS = ("dynamic", "random", "fixed")
SCORERS = ("ste", "scale", "reference")
MODES = ("channel", "spatial", "channel+spatial", "spatial+channel")
#: Seed of the one fixed draw of ``selection="random"`` in eval mode (irdet's choice).
EVAL_SEED = 0


class Adapter(nn.Sequential):
    """Per-pixel MLP ``in → hidden → in`` with ReLU (1×1 convs), (N, in, H, W) → (N, in, H, W)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))


def _select(scores: torch.Tensor | None, n: int, total: int, k: int, selection: str, device,
            training: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per sample, ``k`` of ``total`` items: ``(idx, values)``.

    ``idx`` (N, k) int64 in ascending order (every selected item keeps its identity, as the
    mask form of Eqs. 6–9); ``values`` (N, k) the scores of ``idx`` (dynamic only, else None).
    ``random`` draws per sample from the global RNG in training, and in eval mode takes one
    fixed draw (CPU generator seeded with :data:`EVAL_SEED`) for every sample and call.
    """
    if selection == "dynamic":
        values, idx = scores.topk(k, dim=1)
        idx, order = idx.sort(dim=1)
        return idx, values.gather(1, order)
    if selection == "random":
        if training:
            idx = torch.rand(n, total, device=device).argsort(dim=1)[:, :k]
        else:
            draw = torch.randperm(total, generator=torch.Generator().manual_seed(EVAL_SEED))[:k]
            idx = draw.to(device).expand(n, k)
        return idx.sort(dim=1).values, None
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

    def _make_scorers(self, channels: int) -> None:
        """``scorer1`` / ``scorer2`` for dynamic selection (None otherwise): two learnable
        scorers, or for ``reference`` one frozen Normal(0, 0.01) scorer under both names."""
        if self.selection != "dynamic":
            self.scorer1 = self.scorer2 = None
        elif self.scorer == "reference":
            shared = init_normal_(LSKScorer(channels)).requires_grad_(False)
            self.scorer1 = self.scorer2 = shared
        else:
            self.scorer1, self.scorer2 = LSKScorer(channels), LSKScorer(channels)

    def _scores(self, scorer: LSKScorer | None, x: torch.Tensor, dim: int) -> torch.Tensor | None:
        """float32 selection scores: per channel (N, C) for ``dim=1``, per position (N, H·W) for
        ``dim=2`` (float32 so that mixed precision does not create ties in the top-k). In (0, 1),
        except for ``reference``: the logit ``mean(X ⊙ attn)``, whose top-k is that of its sigmoid
        (the reference's score) without the sigmoid's rounding ties; no gradient."""
        if scorer is None:
            return None
        if self.scorer == "reference":
            with torch.no_grad():
                return scorer.pooled_channel_logits(x) if dim == 1 else scorer.pooled_spatial_logits(x)
        m = scorer(x).float()
        return m.mean((2, 3)) if dim == 1 else m.mean(1).flatten(1)

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
        self._make_scorers(channels)
        self.adapter = Adapter(self.k, hidden) if adapter else None

    def select(self, x1: torch.Tensor, x2: torch.Tensor):
        """Per branch ``(idx, factor)``: channel indices (N, K) in ascending order and the
        score multipliers (N, K) of :func:`_grad_factor` (None without dynamic scores)."""
        n, c = x1.shape[:2]
        out = []
        for scorer, x in ((self.scorer1, x1), (self.scorer2, x2)):
            idx, values = _select(self._scores(scorer, x, 1), n, c, self.k, self.selection, x.device, self.training)
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
            g1 = g1 * f1[:, :, None, None].to(g1.dtype)
            g2 = g2 * f2[:, :, None, None].to(g2.dtype)
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
        self._make_scorers(channels)
        self.adapter = Adapter(channels, hidden) if adapter else None

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, h, w = x1.shape
        k = max(1, int(round(self.ratio * h * w)))
        s1 = self._scores(self.scorer1, x1, 2)
        s2 = self._scores(self.scorer2, x2, 2)
        scores = None if s1 is None else (s1 + s2) / 2
        idx, values = _select(scores, n, h * w, k, self.selection, x1.device, self.training)
        factor = _grad_factor(values, self.scorer)
        e = idx[:, None, :].expand(-1, c, -1)
        f1, f2 = x1.flatten(2), x2.flatten(2)
        g1, g2 = f1.gather(2, e), f2.gather(2, e)
        if factor is not None:
            g1 = g1 * factor[:, None, :].to(g1.dtype)
            g2 = g2 * factor[:, None, :].to(g2.dtype)
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
