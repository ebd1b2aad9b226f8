"""Input normalisation of the detectors: the per-channel mean / std of [0, 255] RGB inputs.

Source: the ImageNet statistics of torchvision's ResNet weights (mean 0.485, 0.456, 0.406 and
std 0.229, 0.224, 0.225 of [0, 1] RGB inputs), × 255.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["PIXEL_MEAN", "PIXEL_STD", "register_pixel_normalization"]

#: Per-channel (R, G, B) mean of [0, 255] inputs (``model.pixel_mean``).
PIXEL_MEAN = (123.675, 116.28, 103.53)
#: Per-channel (R, G, B) standard deviation of [0, 255] inputs (``model.pixel_std``).
PIXEL_STD = (58.395, 57.12, 57.375)


def register_pixel_normalization(module: nn.Module, mean: Sequence[float] = PIXEL_MEAN,
                                 std: Sequence[float] = PIXEL_STD) -> None:
    """Give ``module`` the buffers ``pixel_mean`` and ``pixel_std``, float32 (1, 3, 1, 1).

    Not persistent: they are not part of the ``state_dict`` (checkpoints hold the config that
    sets them). The module normalises (N, 3, H, W) [0, 255] images as
    ``(images - module.pixel_mean) / module.pixel_std``.
    """
    module.register_buffer("pixel_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
    module.register_buffer("pixel_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
