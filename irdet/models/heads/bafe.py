"""BAFE head: FCOS + sky-segmentation branch + cross-task feature exchange (BAFE-Net §IV, Fig. 4).

Per pyramid level: the FCOS classification tower gives X1, a segmentation tower of the same
shape (4 × conv3×3-GN-ReLU) gives X2; the exchange block (:mod:`irdet.models.heads.exchange`)
turns them into Y1, Y2; class score and centerness are predicted from Y1, the sky logit
from Y2 (3×3 conv → 1 channel), and boxes from the untouched regression tower.

``reference_blocks`` (off by default; the reference code's head, not in the paper's text):
between the towers and the exchange, one :class:`~irdet.models.heads.lsk.LSKAttention`
shared by both branches replaces X1 and X2 by their LSK attention maps (the reference's
``LSKModule``: no ``X ⊙ attn``, no sigmoid), then ``convs_cls`` on X1 and ``convs_seg`` on
X2, each 3×3 C → C/2 + BatchNorm + ReLU, 3×3 C/2 → C + BatchNorm + ReLU (convs with bias,
Normal(0, 0.01) init, bias 0; BatchNorm statistics shared over levels as the head's
weights are). At C = 256 they add 1,300,422 parameters (LSK 118,470; each conv block
590,976).

Segmentation loss: sigmoid BCE (weight 1) between each level's sky logit and the sky mask
resized (nearest) to that level, averaged over all non-ignored (≠ 255) pixels of all levels,
as the reference's ``loss_seg`` over the flattened levels (BAFE-Net reference code).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from irdet.errors import ConfigError
from irdet.models.heads.exchange import CrossTaskExchange
from irdet.models.heads.fcos import FCOSHead, make_tower
from irdet.models.heads.lsk import LSKAttention, init_normal_

__all__ = ["BAFEHead", "EXCHANGE_CONFIG"]

IGNORE_INDEX = 255
#: ``model.head`` keys of the exchange block, read only with ``exchange: true``: the adapter
#: (Table IV c/d), p (``exchange_ratio``, Eq. 5, Table VIII), the adapter width (Table V), the
#: selection (Table VII), the exchange mode (Table VI) and the scorer (irdet extension).
EXCHANGE_CONFIG = {"adapter": True, "exchange_ratio": 0.5, "adapter_hidden": 64, "selection": "dynamic",
                   "exchange_mode": "channel", "scorer": "ste"}


def conv_bn_relu_pair(channels: int) -> nn.Sequential:
    """The reference head's ``convs_cls`` / ``convs_seg`` block, (N, C, H, W) → (N, C, H, W):
    3×3 conv C → C/2 + BatchNorm + ReLU, 3×3 conv C/2 → C + BatchNorm + ReLU."""
    half = channels // 2
    return nn.Sequential(
        nn.Conv2d(channels, half, 3, padding=1), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
        nn.Conv2d(half, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
    )


class BAFEHead(FCOSHead):
    """FCOS head with a sky-segmentation branch and (optionally) the cross-task exchange
    (``model.head.seg_head: true``, registered as ``bafe``).

    Args (beyond :class:`FCOSHead`; the keys of ``model.head`` in :attr:`CONFIG`):
        exchange: insert the exchange block between X1 and X2 (Table IV b vs c).
        adapter: use the shared MLP adapter in the exchange (Table IV c vs d).
        exchange_ratio: p, the exchanged fraction (Eq. 5; Table VIII, 1/2 best).
        adapter_hidden: adapter hidden width (Table V, 64 best).
        selection: ``dynamic`` / ``random`` / ``fixed`` (Table VII).
        exchange_mode: ``channel`` / ``spatial`` / ``channel+spatial`` / ``spatial+channel`` (Table VI).
        scorer: ``ste`` / ``scale`` / ``reference`` (see :mod:`irdet.models.heads.exchange`).
        seg_loss_weight: weight of the BCE sky loss (1).
        reference_blocks: add the reference code's shared LSK module and ``convs_cls`` /
            ``convs_seg`` blocks before the exchange (see the module docstring; False).
        seg_stop_grad: feed the sky tower a detached copy of the shared level features, so no
            gradient flows from the sky tower into the neck and backbone: without the exchange the
            sky loss then trains only the sky tower and ``conv_seg``; with it, the channels the
            exchange moves from the classification tower into Y2 still carry the sky loss back.
            A probe of how the sky task couples to detection (irdet extension; False = the paper).

    ``forward`` adds ``seg_logits``: per level (N, 1, H_l, W_l) sky logits.
    """

    CONFIG = {"exchange": True, **EXCHANGE_CONFIG, "seg_loss_weight": 1.0, "reference_blocks": False,
              "seg_stop_grad": False}

    @classmethod
    def config_keys(cls) -> dict:
        """The keys of :class:`FCOSHead` and the BAFE-Net switches."""
        return {**FCOSHead.config_keys(), **BAFEHead.CONFIG}

    @classmethod
    def inactive_config_keys(cls, cfg: dict) -> set[str]:
        """The exchange options (:data:`EXCHANGE_CONFIG`) when ``exchange`` is off."""
        return set() if cfg.get("exchange", True) else set(EXCHANGE_CONFIG)

    def __init__(self, *args, exchange: bool = True, adapter: bool = True, exchange_ratio: float = 0.5,
                 adapter_hidden: int = 64, selection: str = "dynamic", exchange_mode: str = "channel",
                 scorer: str = "ste", seg_loss_weight: float = 1.0, in_channels: int = 256,
                 stacked_convs: int = 4, feat_channels: int = 256, reference_blocks: bool = False,
                 seg_stop_grad: bool = False, **kwargs):
        super().__init__(*args, in_channels=in_channels, stacked_convs=stacked_convs, feat_channels=feat_channels, **kwargs)
        self.seg_tower = make_tower(in_channels, feat_channels, stacked_convs)
        self.conv_seg = nn.Conv2d(feat_channels, 1, 3, padding=1)
        for m in [*self.seg_tower.modules(), self.conv_seg]:
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.exchange = (
            CrossTaskExchange(feat_channels, exchange_ratio, adapter_hidden, adapter, selection, exchange_mode, scorer)
            if exchange
            else None
        )
        self.seg_loss_weight = seg_loss_weight
        self.reference_blocks = reference_blocks
        if not isinstance(seg_stop_grad, bool):
            raise ConfigError(f"model.head.seg_stop_grad must be true/false, got {seg_stop_grad!r}")
        self.seg_stop_grad = seg_stop_grad
        if reference_blocks:
            self.lsk_module = init_normal_(LSKAttention(feat_channels))
            self.convs_cls = init_normal_(conv_bn_relu_pair(feat_channels))
            self.convs_seg = init_normal_(conv_bn_relu_pair(feat_channels))

    def cls_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        x1 = self.cls_tower(x)
        x2 = self.seg_tower(x.detach() if self.seg_stop_grad else x)
        if self.reference_blocks:
            x1 = self.convs_cls(self.lsk_module(x1))
            x2 = self.convs_seg(self.lsk_module(x2))
        if self.exchange is not None:
            x1, x2 = self.exchange(x1, x2)
        return x1, {"seg_logits": self.conv_seg(x2).float()}

    def loss(self, out: dict, boxes, labels, sky_mask: torch.Tensor | None = None, **kw) -> dict[str, torch.Tensor]:
        """FCOS losses plus ``loss_seg``.

        Args:
            sky_mask: (N, H, W) uint8 of the padded input, 1 sky / 0 non-sky / 255 ignore.

        Raises:
            ValueError: no sky mask given (BAFE-Net needs sky annotations to train).
        """
        losses = super().loss(out, boxes, labels)
        if sky_mask is None:
            raise ValueError("BAFE head needs a sky mask to train (dataset sky_mask: palette|binary)")
        logits, targets = [], []
        for seg in out["seg_logits"]:
            t = F.interpolate(sky_mask[:, None].float(), size=seg.shape[-2:], mode="nearest")
            logits.append(seg.flatten())
            targets.append(t.flatten())
        logit = torch.cat(logits).float()
        target = torch.cat(targets)
        valid = target != IGNORE_INDEX
        if valid.any():
            loss = F.binary_cross_entropy_with_logits(logit[valid], target[valid])
        else:
            loss = logit.sum() * 0
        losses["loss_seg"] = loss * self.seg_loss_weight
        return losses
