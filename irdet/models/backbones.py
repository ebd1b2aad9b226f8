"""ResNet backbones (torchvision definitions) returning C1..C5.

Source: BAFE-Net reference configuration: ResNet-18/34/50/101, frozen-statistics
BN and ``frozen_stages=1`` with ImageNet weights. ImageNet weights cannot be downloaded
here, so irdet trains from scratch by default (``weights=None``) with trainable BN, and
accepts a local torchvision checkpoint file (``weights: path/to/resnet18-f37072fd.pth``),
in which case the reference's frozen BN and frozen stem+layer1 apply (``"auto"``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet
from torchvision.ops import FrozenBatchNorm2d

from irdet.errors import ConfigError, DataError
from irdet.models.configurable import Configurable

__all__ = ["ResNetBackbone"]

_RESNETS = {18: resnet.resnet18, 34: resnet.resnet34, 50: resnet.resnet50, 101: resnet.resnet101}


class ResNetBackbone(nn.Module, Configurable):
    """torchvision ResNet body returning the stage outputs C1..C5 (``model.backbone``, registered as ``resnet``).

    Args (``depth``, ``weights``, ``norm``, ``frozen_stages``: the keys of ``model.backbone``):
        depth: 18, 34, 50 or 101.
        weights: None (random init, the default here) or a path to a local torchvision
            ImageNet state dict (``resnetXX-*.pth``); the ``fc`` layer is ignored.
        norm: ``"bn"`` (trainable BatchNorm), ``"frozen_bn"`` (torchvision
            ``FrozenBatchNorm2d``, the reference with ImageNet init) or ``"auto"``
            (``frozen_bn`` when ``weights`` is given, else ``bn``).
        frozen_stages: stages whose parameters get no gradient: -1 none, 0 stem, 1 stem +
            layer1 (the reference), ... ``"auto"``: 1 with weights, -1 without.
        out_levels: which of ``"C1".."C5"`` to return; stages deeper than the deepest of
            them are not built. ``C1`` (irdet extension, for a stride-2 output level P1) is
            the stem's 7×7 stride-2 conv + BN + ReLU before its max-pool, 64 channels.

    Input: images (N, 3, H, W), normalised. Output: dict level → (N, C_l, H/s, W/s) with
    strides 2, 4, 8, 16, 32 for C1..C5 and channels 64/64/128/256/512 (R18/34) or
    64/256/512/1024/2048 (R50/101), see :attr:`out_channels` and :attr:`strides`.

    Raises:
        ConfigError: unknown depth/norm, or out_levels empty or outside C1..C5. DataError: unreadable weights file.
    """

    CONFIG = {"depth": 18, "weights": None, "norm": "auto", "frozen_stages": "auto"}

    def __init__(self, depth: int = 18, weights: str | None = None, norm: str = "auto",
                 frozen_stages: int | str = "auto", out_levels=("C3", "C4", "C5")):
        super().__init__()
        if depth not in _RESNETS:
            raise ConfigError(f"backbone depth must be one of {sorted(_RESNETS)}, got {depth}")
        if norm == "auto":
            norm = "frozen_bn" if weights else "bn"
        if norm not in ("bn", "frozen_bn"):
            raise ConfigError(f"backbone norm must be 'bn', 'frozen_bn' or 'auto', got {norm!r}")
        if frozen_stages == "auto":
            frozen_stages = 1 if weights else -1
        norm_layer = FrozenBatchNorm2d if norm == "frozen_bn" else nn.BatchNorm2d
        net = _RESNETS[depth](weights=None, norm_layer=norm_layer)
        if weights:
            path = Path(weights)
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except FileNotFoundError:
                raise DataError(path, "backbone weights file not found") from None
            except Exception as exc:  # noqa: BLE001 - any unpickling problem is a bad file
                raise DataError(path, f"cannot read backbone weights ({exc.__class__.__name__}: {exc})") from None
            state = state.get("state_dict", state)
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            missing, unexpected = net.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.startswith("fc.")]
            if missing or unexpected:
                raise DataError(path, f"not a ResNet-{depth} state dict (missing {missing[:3]}, unexpected {unexpected[:3]})")
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.out_levels = tuple(out_levels)
        width = 64 * (4 if depth >= 50 else 1)
        self.out_channels = {"C1": 64, **{f"C{i + 2}": width * 2**i for i in range(4)}}
        self.strides = {f"C{i + 1}": 2 ** (i + 1) for i in range(5)}
        if not self.out_levels or any(lv not in self.strides for lv in self.out_levels):
            raise ConfigError(f"backbone out_levels must be among C1..C5, got {list(self.out_levels)}")
        # Build only the stages up to the deepest requested level (e.g. stem + layer1 for C2
        # alone), so parameters, MACs and weights files count only what runs.
        self._last = max(int(lv[1]) for lv in self.out_levels) - 2
        self.layers = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4][: self._last + 1])
        self.frozen_stages = int(frozen_stages)
        for stage in [self.stem, *self.layers][: self.frozen_stages + 1]:
            for p in stage.parameters():
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        x = self.stem[:3](x)  # conv1 + bn1 + relu: C1, the stride-2 output before the max-pool
        if "C1" in self.out_levels:
            out["C1"] = x
        x = self.stem[3](x)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if f"C{i + 2}" in self.out_levels:
                out[f"C{i + 2}"] = x
        return out

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen_stages >= 0:  # frozen stages keep eval-mode statistics (MMDet norm_eval)
            for stage in [self.stem, *self.layers][: self.frozen_stages + 1]:
                stage.eval()
        return self
