"""LSKNet large selective kernel attention, as BAFE-Net uses it (paper Eq. 4; Li et al.,
"Large Selective Kernel Network for Remote Sensing Object Detection", ICCV 2023).

One block, three uses in BAFE-Net:

* :class:`LSKAttention` returns the attention map ``attn`` itself, (N, C, H, W) → (N, C, H, W),
  unbounded. This is the reference code's ``LSKModule``, which the reference head applies
  (one module shared by both branches) to the classification and segmentation features
  before its ``convs_cls`` / ``convs_seg`` blocks: it replaces the features by ``attn``
  (no ``X ⊙ attn`` product, no sigmoid).
* :meth:`LSKScorer.forward`: Eq. 4 as written, per pixel ``m = σ(X ⊙ attn)`` in (0, 1);
  irdet's exchange scorer averages ``m`` over H, W (channel scores) or over C (spatial).
* :meth:`LSKScorer.pooled_channel_scores`: the reference code's exchange scorer
  (``LSKLayer`` + sigmoid): ``σ(mean_HW(X ⊙ attn))``, (N, C) in (0, 1) — the sigmoid of the
  global average, which is not the average of the per-pixel sigmoid
  (:meth:`LSKScorer.pooled_channel_logits`: the same before the sigmoid, for ranking).

Block (C channels)::

    a1 = conv0(X)               5×5 depthwise
    a2 = conv_spatial(a1)       7×7 depthwise, dilation 3
    a1, a2 = conv1(a1), conv2(a2)                      1×1 C → C/2 each
    g = σ(conv_squeeze([mean_c(a1 ⊕ a2), max_c(a1 ⊕ a2)]))   7×7 conv 2 → 2, two gates
    attn = conv(a1 · g[0] + a2 · g[1])                 1×1 C/2 → C
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LSKAttention", "LSKScorer", "init_normal_"]


def init_normal_(module: nn.Module, std: float = 0.01) -> nn.Module:
    """Every ``nn.Conv2d`` of ``module``: weight ~ Normal(0, std), bias 0 (MMDetection's FCOS-head
    ``init_cfg``, which covers every conv of the reference head). Returns ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class LSKAttention(nn.Module):
    """LSK attention map (see the module docstring), (N, C, H, W) → (N, C, H, W), unbounded.

    Args:
        channels: C (the branches have C // 2 channels).
    """

    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.conv0 = nn.Conv2d(channels, channels, 5, padding=2, groups=channels)
        self.conv_spatial = nn.Conv2d(channels, channels, 7, padding=9, groups=channels, dilation=3)
        self.conv1 = nn.Conv2d(channels, half, 1)
        self.conv2 = nn.Conv2d(channels, half, 1)
        self.conv_squeeze = nn.Conv2d(2, 2, 7, padding=3)
        self.conv = nn.Conv2d(half, channels, 1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """``attn`` of (N, C, H, W) features, (N, C, H, W)."""
        a1 = self.conv0(x)
        a2 = self.conv_spatial(a1)
        a1 = self.conv1(a1)
        a2 = self.conv2(a2)
        both = torch.cat([a1, a2], dim=1)
        agg = torch.cat([both.mean(1, keepdim=True), both.amax(1, keepdim=True)], dim=1)
        gates = self.conv_squeeze(agg).sigmoid()
        return self.conv(a1 * gates[:, 0:1] + a2 * gates[:, 1:2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x)


class LSKScorer(LSKAttention):
    """Exchange scores from LSK attention; ``forward``: (N, C, H, W) → per-pixel
    ``σ(X ⊙ attn)``, (N, C, H, W) in (0, 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """BAFE-Net Eq. 4, ``m = σ(X ⊙ (F(X) ⊙ σ(S(avg(X) ⊕ max(X)))))``, per pixel: (N, C, H, W)
        features → (N, C, H, W) scores in (0, 1); ``F(X) ⊙ σ(S(…))`` is :meth:`attention`. The
        exchange averages them over H, W into the channel scores (the C-vector ``m`` of the
        paper), or over C into position scores for the spatial exchange."""
        return torch.sigmoid(x * self.attention(x))

    def pooled_channel_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``mean_HW(X ⊙ attn)``, (N, C, H, W) → float32 (N, C): the reference scorer before its
        sigmoid. It ranks channels as :meth:`pooled_channel_scores` does, without the ties that
        rounding the sigmoid creates (at the reference's Normal(0, 0.01) init the scores differ
        from 0.5 by ~1e-5, and about a fifth of 256 channels tie in float32; in bfloat16, whose
        resolution near 0.5 is ~4e-3, nearly all would). Computed in float32."""
        return (x.float() * self.attention(x).float()).mean((2, 3))

    def pooled_channel_scores(self, x: torch.Tensor) -> torch.Tensor:
        """The reference scorer: ``σ(mean_HW(X ⊙ attn))``, (N, C, H, W) → float32 (N, C) in (0, 1)."""
        return torch.sigmoid(self.pooled_channel_logits(x))

    def pooled_spatial_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``mean_C(X ⊙ attn)``, (N, C, H, W) → float32 (N, H·W) (the reference scorer's form for
        spatial exchange, before the sigmoid; irdet's reading)."""
        return (x.float() * self.attention(x).float()).mean(1).flatten(1)
