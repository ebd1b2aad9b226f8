"""Optimizer and LR schedule of the BAFE-Net protocol (BAFE-Net paper §V-A and its reference config).

DAdaptAdam (``dadaptation`` package), lr 1.0, decoupled weight decay 0.05, no decay on
normalisation parameters and biases; LR × ``warmup_factor`` (1/3) for the first
``warmup_iters`` (500) iterations (MMDetection ``ConstantLR``), then × ``gamma`` (0.1) at
each epoch in ``milestones`` ([8, 16]) (``MultiStepLR``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from dadaptation import DAdaptAdam
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["param_groups", "build_optimizer", "build_scheduler", "lr_factor"]

_NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.SyncBatchNorm)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: decayed weights, and norm-layer parameters + biases with weight decay 0.

    Parameters without ``requires_grad`` (frozen stages) are left out.
    """
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            (no_decay if isinstance(module, _NORMS) or name == "bias" else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, lr: float = 1.0, weight_decay: float = 0.05) -> DAdaptAdam:
    """DAdaptAdam with decoupled weight decay over :func:`param_groups`."""
    return DAdaptAdam(param_groups(model, weight_decay), lr=lr, weight_decay=weight_decay, decouple=True)


def lr_factor(step: int, steps_per_epoch: int, warmup_iters: int, warmup_factor: float,
              milestones: Sequence[float], gamma: float) -> float:
    """LR multiplier at optimizer step ``step`` (0-based): constant warmup × step decay.

    ``milestones`` are in epochs (fractions allowed); epoch = step / steps_per_epoch.
    """
    factor = warmup_factor if step < warmup_iters else 1.0
    epoch = step / max(steps_per_epoch, 1)
    return factor * gamma ** sum(epoch >= m for m in milestones)


def build_scheduler(optimizer: torch.optim.Optimizer, steps_per_epoch: int, warmup_iters: int = 500,
                    warmup_factor: float = 1 / 3, milestones: Sequence[float] = (8, 16), gamma: float = 0.1) -> LambdaLR:
    """Per-step ``LambdaLR`` implementing :func:`lr_factor` (call ``step()`` every optimizer step)."""
    return LambdaLR(optimizer, lambda s: lr_factor(s, steps_per_epoch, warmup_iters, warmup_factor, milestones, gamma))
