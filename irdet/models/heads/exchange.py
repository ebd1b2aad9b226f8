"""Dynamic cross-task feature hard-exchange (BAFE-Net paper §IV-B, Eqs. 4–9, Fig. 4).

Between the classification features X1 and the segmentation features X2 of one pyramid
level (both (N, C, H, W)); one function per equation of the paper:

- Eq. 4, the per-pixel scores ``m = σ(X ⊙ attn)`` of an LSK block: :meth:`LSKScorer.forward`
  (:mod:`irdet.models.heads.lsk`), pooled to channel / position scores by ``_Exchange._scores``;
- Eq. 5, ``K = C × p``: :func:`exchange_count`; its second line ``V_topk, I_topk = TopK(m, K)``:
  :func:`top_k`;
- Eq. 6, the mask ``e[i] = 1`` iff ``i ∈ I_topk``: :func:`mask_indices`;
- Eq. 7, ``E_d = e ⊗ 1_{H×W}``: :func:`expand_mask`;
- Eqs. 8–9, ``Y1 = X1 ⊙ (1 − E_d1) + A(X2 ⊙ E_d2)`` and ``Y2`` likewise: :func:`hard_exchange`,
  with the adapter A: :class:`Adapter`;
- the gradient to the scorer through the top-k (irdet extension): :func:`scorer_gradient_factor`;
  the selections of Table VII: :func:`select_items`.

1. **Scores (Eq. 4).** An LSKNet-style large-kernel attention per branch,
   ``m = σ(X ⊙ (F(X) ⊙ σ(S(avg(X) ⊕ max(X)))))`` computed per pixel: F = 5×5 depthwise →
   7×7 depthwise (dilation 3) with a 1×1 (C → C/2) branch after each; S = 7×7 conv over
   the channel-mean and channel-max of the two branches, giving two sigmoid gates; a final
   1×1 (C/2 → C). Channel scores are ``m`` averaged over H, W → (N, C) in (0, 1); spatial
   scores (for spatial exchange) are ``m`` averaged over channels → (N, H·W).
2. **Selection (Eqs. 5–6).** Per sample, the top K = round(p·C) channels of each branch
   (``selection="dynamic"``); Table VII's alternatives: ``"random"`` (K random channels per
   sample and training forward pass; in eval mode one fixed draw, the same for every sample
   and call, from a generator seeded with :data:`EVAL_SEED`, so evaluation is deterministic:
   irdet's reading, the paper does not say) and ``"fixed"`` (the evenly spaced channels
   ``⌊i·C/K⌋``). The selected indices are kept in ascending channel order, whatever their
   scores: the mask ``e`` of Eq. 6 keeps every channel's identity, and the reference
   sorts the top-k indices the same way.
3. **Hard exchange (Eqs. 7–9).** ``Y1 = X1 ⊙ (1 − E1) + A(X2 ⊙ E2)`` and symmetrically:
   the K selected channels of X1 are *replaced* by the K selected channels of X2 passed
   through the adapter A, and vice versa, the j-th lowest selected index of one branch
   receiving the j-th lowest of the other; all other channels are untouched. A is a
   per-pixel MLP K → hidden → K (ReLU), shared by both directions (Table V: hidden 64);
   ``adapter=False`` exchanges the raw channels (Table IV c). The masks are held in index
   form (the K indices of the ones of ``e``), so the products with ``E_d`` are gathers and
   the sums with ``X ⊙ (1 − E_d)`` are scatters.

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
adapter), with the same functions along the position axis. With ``scorer="reference"`` the
positions are ranked by the mean over both branches of the shared frozen scorer's
``mean_C(X ⊙ attn)`` per position (irdet's analogue; the reference has no scored spatial exchange).
``mode`` = ``"channel"`` (the paper's choice), ``"spatial"``, ``"channel+spatial"`` (channel
exchange, then spatial) or ``"spatial+channel"``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from irdet.errors import ConfigError
from irdet.models.heads.lsk import LSKScorer, init_normal_

__all__ = ["LSKScorer", "Adapter", "ChannelExchange", "SpatialExchange", "CrossTaskExchange", "EVAL_SEED",
           "exchange_count", "top_k", "mask_indices", "expand_mask", "hard_exchange", "scorer_gradient_factor",
           "select_items"]

SELECTIONS = ("dynamic", "random", "fixed")
SCORERS = ("ste", "scale", "reference")
MODES = ("channel", "spatial", "channel+spatial", "spatial+channel")
#: Seed of the one fixed draw of ``selection="random"`` in eval mode (irdet's choice).
EVAL_SEED = 0


class Adapter(nn.Sequential):
    """The adapter A of Eqs. 8–9 (BAFE-Net §IV-B2: an MLP that projects the exchanged features
    into the receiving task's space): per pixel ``in → hidden → in`` with ReLU (1×1 convs),
    (N, in, H, W) → (N, in, H, W). ``in`` = K channels (channel exchange) or C (spatial)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))


def exchange_count(total: int, ratio: float) -> int:
    """Eq. 5, ``K = C × p``: how many of ``total`` items (channels C, or positions H·W for the
    spatial exchange) are exchanged at ratio ``p`` ∈ (0, 1]; rounded to the nearest integer
    (the paper's p = 1/2 of C = 256 is exact), at least 1."""
    return max(1, int(round(ratio * total)))


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``V_topk, I_topk = TopK(m, K)`` (the second line of Eq. 5): per sample the ``k`` highest of
    (N, total) scores, ``(values, idx)`` each (N, k), in descending score order."""
    return scores.topk(k, dim=1)


def mask_indices(idx: torch.Tensor, values: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Eq. 6, the exchange mask ``e[i] = 1`` if ``i ∈ I_topk`` else 0, in index form: the
    indices of its ones in ascending order (N, K) int64, and ``values`` (N, K) (or None)
    reordered with them.

    A mask has no order, so every selected item keeps its identity: the j-th lowest selected
    index of one branch receives the j-th lowest of the other (:func:`hard_exchange`).
    """
    idx, order = idx.sort(dim=1)
    return idx, None if values is None else values.gather(1, order)


def expand_mask(idx: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Eq. 7, ``E_d = e ⊗ 1_{H×W}``, in index form: the channel indices (N, K) of the ones of
    ``e`` expanded over the map, (N, K, H, W) (a view), the index tensor of the gathers and
    scatters of :func:`hard_exchange`."""
    return idx[:, :, None, None].expand(-1, -1, height, width)


def hard_exchange(x1: torch.Tensor, x2: torch.Tensor, e1: torch.Tensor, e2: torch.Tensor,
                  adapt: Callable[[torch.Tensor], torch.Tensor], f1: torch.Tensor | None = None,
                  f2: torch.Tensor | None = None, dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. 8–9, ``Y1 = X1 ⊙ (1 − E_d1) + A(X2 ⊙ E_d2)``, ``Y2 = X2 ⊙ (1 − E_d2) + A(X1 ⊙ E_d1)``.

    With the masks in index form: ``X ⊙ E_d`` is the gather of the selected items along
    ``dim`` and ``X ⊙ (1 − E_d) + …`` the scatter of the adapted items of the other branch into
    their places; every other item of ``Y`` equals ``X``.

    Args:
        x1, x2: the two branches, e.g. (N, C, H, W) (channel exchange, ``dim`` 1) or
            (N, C, H·W) (spatial exchange, ``dim`` 2).
        e1, e2: index tensors of the masks, of ``x``'s shape with K items along ``dim``
            (:func:`expand_mask`), ascending along ``dim``.
        adapt: the adapter A (:class:`Adapter`, or the identity without adapter), applied to
            the K gathered items.
        f1, f2: multipliers of the gathered items, broadcastable to them
            (:func:`scorer_gradient_factor`), or None.

    Returns:
        ``(y1, y2)`` of the shapes of ``x1``, ``x2``.
    """
    g1 = x1.gather(dim, e1)
    g2 = x2.gather(dim, e2)
    if f1 is not None:
        g1 = g1 * f1.to(g1.dtype)
        g2 = g2 * f2.to(g2.dtype)
    return x1.scatter(dim, e1, adapt(g2)), x2.scatter(dim, e2, adapt(g1))


def scorer_gradient_factor(values: torch.Tensor | None, scorer: str) -> torch.Tensor | None:
    """Multiplier (N, K) of the gathered items that routes a gradient to the scorer through the
    top-k, whose indices carry none (irdet extension, not a paper equation).

    ``ste``: ``v / v.detach()`` (v = the selected scores), 1 in the forward pass, so the forward
    is exactly Eqs. 8–9 and the backward that of a score-scaled exchange (straight-through
    estimator); ``scale``: ``v`` itself (the forward changes); ``reference`` or no scores
    (random / fixed selection): None, no multiplier.
    """
    if values is None or scorer == "reference":
        return None
    return values / values.detach().clamp_min(1e-12) if scorer == "ste" else values


def select_items(scores: torch.Tensor | None, n: int, total: int, k: int, selection: str, device,
           training: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per sample, ``k`` of ``total`` items: ``(idx, values)``, ``idx`` (N, k) int64 ascending.

    ``dynamic`` (the paper): :func:`top_k` of ``scores`` (N, total), then :func:`mask_indices`;
    ``values`` (N, k) the scores of ``idx``. ``random`` (Table VII a): per sample from the global
    RNG in training; in eval mode one fixed draw (CPU generator seeded with :data:`EVAL_SEED`)
    for every sample and call. ``fixed`` (Table VII b): the evenly spaced ``⌊i·total/k⌋``. The
    last two return ``values`` None.
    """
    if selection == "dynamic":
        values, idx = top_k(scores, k)
        return mask_indices(idx, values)
    if selection == "random":
        if training:
            idx = torch.rand(n, total, device=device).argsort(dim=1)[:, :k]
        else:
            draw = torch.randperm(total, generator=torch.Generator().manual_seed(EVAL_SEED))[:k]
            idx = draw.to(device).expand(n, k)
        return mask_indices(idx)[0], None
    idx = (torch.arange(k, device=device) * total) // k
    return idx.expand(n, k), None


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
        """float32 selection scores: the per-pixel scores of :meth:`LSKScorer.forward` averaged per
        channel (N, C) for ``dim=1``, per position (N, H·W) for ``dim=2`` (float32 so that mixed precision does not create ties in
        the top-k). In (0, 1), except for ``reference``: the logit ``mean(X ⊙ attn)``, whose top-k
        is that of its sigmoid (the reference's score) without the sigmoid's rounding ties; no gradient."""
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
    """Channel hard-exchange of two (N, C, H, W) maps (BAFE-Net §IV-B); see the module docstring.

    Args:
        channels: C. ratio: p, K = :func:`exchange_count` (C, p). hidden: adapter width.
        adapter: use the shared adapter A. selection: dynamic / random / fixed.
        scorer: ste / scale / reference.

    ``forward(x1, x2) -> (y1, y2)``, same shapes; exactly K channels of each sample are
    replaced in each output and all others equal the input.
    """

    def __init__(self, channels: int, ratio: float = 0.5, hidden: int = 64, adapter: bool = True,
                 selection: str = "dynamic", scorer: str = "ste"):
        super().__init__(channels, ratio, hidden, adapter, selection, scorer)
        self.k = exchange_count(channels, ratio)
        self._make_scorers(channels)
        self.adapter = Adapter(self.k, hidden) if adapter else None

    def select(self, x1: torch.Tensor, x2: torch.Tensor):
        """Per branch ``(idx, factor)``: the selected channel indices (N, K) in ascending order
        (:meth:`_scores`, :func:`select_items`) and the score multipliers (N, K) of :func:`scorer_gradient_factor` (None without dynamic scores)."""
        n, c = x1.shape[:2]
        out = []
        for scorer, x in ((self.scorer1, x1), (self.scorer2, x2)):
            idx, values = select_items(self._scores(scorer, x, 1), n, c, self.k, self.selection, x.device, self.training)
            out.append((idx, scorer_gradient_factor(values, self.scorer)))
        return out

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Y1, Y2)`` (:func:`hard_exchange`) of the (N, C, H, W) classification / segmentation features."""
        (i1, f1), (i2, f2) = self.select(x1, x2)
        h, w = x1.shape[-2:]
        if f1 is not None:
            f1, f2 = f1[:, :, None, None], f2[:, :, None, None]
        return hard_exchange(x1, x2, expand_mask(i1, h, w), expand_mask(i2, h, w), self._adapt, f1, f2)


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

    def _adapt_positions(self, g: torch.Tensor) -> torch.Tensor:
        """The adapter on gathered positions (N, C, K): as a (N, C, K, 1) map."""
        return self._adapt(g[..., None])[..., 0]

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Y1, Y2)``: (N, C, H, W) maps with the selected positions swapped (all channels)."""
        n, c, h, w = x1.shape
        k = exchange_count(h * w, self.ratio)
        s1 = self._scores(self.scorer1, x1, 2)
        s2 = self._scores(self.scorer2, x2, 2)
        scores = None if s1 is None else (s1 + s2) / 2
        idx, values = select_items(scores, n, h * w, k, self.selection, x1.device, self.training)
        factor = scorer_gradient_factor(values, self.scorer)
        if factor is not None:
            factor = factor[:, None, :]
        e = idx[:, None, :].expand(-1, c, -1)
        y1, y2 = hard_exchange(x1.flatten(2), x2.flatten(2), e, e, self._adapt_positions, factor, factor, dim=2)
        return y1.view_as(x1), y2.view_as(x2)


class CrossTaskExchange(nn.Module):
    """The BAFE exchange block: channel and/or spatial exchange in the configured order.

    Args:
        channels: C of both branches. ratio: p (Table VIII). hidden: adapter width (Table V).
        adapter: use the adapter (Table IV). selection: Table VII. mode: Table VI.
        scorer: gradient routing to the scorer (see module docstring).

    ``forward(x1, x2) -> (y1, y2)``: (N, C, H, W) each, the steps applied in turn.

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
