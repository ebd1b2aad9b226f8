"""Optimizer and LR schedule of the BAFE-Net protocol (irdet.engine.optim): DAdaptAdam, the two
parameter groups, constant warmup × step decay, against hand-computed values."""

from __future__ import annotations

import pytest
import torch
from dadaptation import DAdaptAdam
from torch import nn

from irdet.engine.optim import build_optimizer, build_scheduler, lr_factor, param_groups


class Net(nn.Module):
    """A conv + BN + GN + LayerNorm + linear net with a frozen layer and a tied (shared) weight."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)                    # weight: decay, bias: none
        self.bn = nn.BatchNorm2d(4)                       # norm: none
        self.gn = nn.GroupNorm(2, 4)                      # norm: none
        self.ln = nn.LayerNorm(4)                         # norm: none
        self.fc = nn.Linear(4, 2, bias=False)             # weight: decay
        self.frozen = nn.Conv2d(4, 4, 1)                  # left out
        self.tied = nn.Linear(4, 2, bias=False)
        self.tied.weight = self.fc.weight                 # the same tensor twice: counted once
        for p in self.frozen.parameters():
            p.requires_grad_(False)


def _names(model: nn.Module, params) -> set[str]:
    ids = {id(p) for p in params}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_param_groups_split_decay_from_norms_and_biases_and_skip_frozen():
    model = Net()
    decay, no_decay = param_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert _names(model, decay["params"]) == {"conv.weight", "fc.weight"}
    assert _names(model, no_decay["params"]) == {"conv.bias", "bn.weight", "bn.bias", "gn.weight", "gn.bias",
                                                  "ln.weight", "ln.bias"}
    # each trainable tensor exactly once (the tied weight too), frozen ones never
    listed = [id(p) for g in (decay, no_decay) for p in g["params"]]
    assert len(listed) == len(set(listed)) == 9
    assert not {id(p) for p in model.frozen.parameters()} & set(listed)


def test_optimizer_is_dadaptadam_with_decoupled_weight_decay():
    model = Net()
    opt = build_optimizer(model, lr=1.0, weight_decay=0.05)
    assert isinstance(opt, DAdaptAdam)
    assert opt.defaults["decouple"] is True and opt.defaults["lr"] == 1.0
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert [len(g["params"]) for g in opt.param_groups] == [2, 7]
    # one real step moves the decayed weights (D-Adaptation starts from d0 > 0)
    before = model.conv.weight.detach().clone()
    loss = model.fc(model.ln(model.gn(model.bn(model.conv(torch.rand(2, 3, 5, 5)))).mean((2, 3)))).sum()
    loss.backward()
    opt.step()
    assert not torch.equal(before, model.conv.weight)


@pytest.mark.parametrize(("step", "expected"), [
    (0, 1 / 3), (499, 1 / 3),        # constant warmup: x warmup_factor for the first warmup_iters steps
    (500, 1.0), (799, 1.0),          # epoch 7.99: before the first milestone
    (800, 0.1), (1599, 0.1),         # epochs 8 .. 15.99: x gamma
    (1600, 0.01), (5000, 0.01),      # from epoch 16: x gamma^2
])
def test_lr_factor_bafenet_protocol(step, expected):
    # 100 steps per epoch, warmup 500 steps x 1/3, milestones at epochs 8 and 16, gamma 0.1
    assert lr_factor(step, 100, 500, 1 / 3, [8, 16], 0.1) == pytest.approx(expected, rel=1e-12)


def test_lr_factor_fractional_milestones_overlapping_warmup_and_no_epochs():
    # milestone at half an epoch of 10 steps: step 4 is epoch 0.4, step 5 epoch 0.5
    assert lr_factor(4, 10, 0, 1 / 3, [0.5], 0.5) == 1.0
    assert lr_factor(5, 10, 0, 1 / 3, [0.5], 0.5) == 0.5
    # a milestone inside the warmup: both factors apply
    assert lr_factor(800, 100, 1000, 1 / 3, [8], 0.1) == pytest.approx(1 / 30, rel=1e-12)
    # steps_per_epoch 0 is read as 1 (no division by zero)
    assert lr_factor(3, 0, 0, 1.0, [2, 3], 0.5) == 0.25


def test_scheduler_sets_the_lr_of_every_group_each_step():
    model = Net()
    opt = build_optimizer(model, lr=1.0, weight_decay=0.05)
    # 2 steps per epoch, warmup 3 steps x 1/3, milestones at epochs 2 and 3, gamma 0.5
    sched = build_scheduler(opt, steps_per_epoch=2, warmup_iters=3, warmup_factor=1 / 3, milestones=[2, 3], gamma=0.5)
    seen = []
    for _ in range(8):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    # step: 0     1     2     3 (ep 1.5) 4 (ep 2) 5     6 (ep 3) 7
    want = [1 / 3, 1 / 3, 1 / 3, 1.0, 0.5, 0.5, 0.25, 0.25]
    for lrs, w in zip(seen, want):
        assert lrs == pytest.approx([w, w], rel=1e-12)
