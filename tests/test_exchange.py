"""Cross-task hard-exchange semantics (BAFE-Net Eqs. 4–9) and the BAFE head."""

from __future__ import annotations

import pytest
import torch

from irdet.errors import ConfigError
from irdet.models.heads.bafe import BAFEHead
from irdet.models.heads.exchange import ChannelExchange, CrossTaskExchange, SpatialExchange


def _inputs(n=3, c=16, h=6, w=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, h, w, generator=g, requires_grad=True), torch.randn(n, c, h, w, generator=g, requires_grad=True)


def _changed_channels(x, y):
    """Per sample, the set of channels where y differs from x."""
    return [set((x[i] != y[i]).flatten(1).any(1).nonzero().flatten().tolist()) for i in range(x.shape[0])]


@pytest.mark.parametrize("selection", ["dynamic", "random", "fixed"])
@pytest.mark.parametrize("ratio,k", [(0.5, 8), (0.25, 4), (1 / 16, 1)])
def test_exactly_k_channels_replaced(selection, ratio, k):
    torch.manual_seed(0)
    ex = ChannelExchange(16, ratio=ratio, hidden=8, selection=selection)
    x1, x2 = _inputs()
    y1, y2 = ex(x1, x2)
    (i1, _), (i2, _) = ex.select(x1, x2) if selection != "random" else ((None, None), (None, None))
    for x, y in ((x1, y1), (x2, y2)):
        changed = _changed_channels(x, y)
        assert all(len(c) == k for c in changed)
        for i, c in enumerate(changed):  # all other channels are exactly the input
            keep = [ch for ch in range(16) if ch not in c]
            assert torch.equal(y[i, keep], x[i, keep])
    if selection == "dynamic":
        assert _changed_channels(x1, y1)[0] == set(i1[0].tolist())
    if selection == "fixed":
        assert sorted(_changed_channels(x1, y1)[0]) == [(j * 16) // k for j in range(k)]


def test_without_adapter_channels_are_swapped_in_score_order():
    ex = ChannelExchange(16, ratio=0.5, adapter=False)
    x1, x2 = _inputs()
    y1, y2 = ex(x1, x2)
    (i1, _), (i2, _) = ex.select(x1, x2)
    for n in range(3):
        assert torch.equal(y1[n, i1[n]], x2[n, i2[n]])  # Y1[I1] = X2[I2] (STE factor is exactly 1)
        assert torch.equal(y2[n, i2[n]], x1[n, i1[n]])


def test_selection_is_per_sample():
    ex = ChannelExchange(16, ratio=0.5, hidden=8)
    x1, x2 = _inputs(n=4)
    (i1, _), _ = ex.select(x1, x2)
    assert len({tuple(sorted(r.tolist())) for r in i1}) > 1


@pytest.mark.parametrize("scorer", ["ste", "scale"])
def test_gradient_reaches_scorer_and_adapter(scorer):
    ex = ChannelExchange(16, ratio=0.5, hidden=8, scorer=scorer)
    x1, x2 = _inputs()
    y1, y2 = ex(x1, x2)
    (y1.square().sum() + y2.sum()).backward()
    for mod in (ex.scorer1, ex.scorer2, ex.adapter):
        grads = [p.grad for p in mod.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_ste_forward_equals_hard_exchange():
    torch.manual_seed(0)
    ste = ChannelExchange(16, 0.5, 8, scorer="ste")
    ref = ChannelExchange(16, 0.5, 8, scorer="reference")
    ref.load_state_dict(ste.state_dict())
    ref.scorer1.input_product = ref.scorer2.input_product = True  # same scores, only the gradient differs
    x1, x2 = _inputs()
    a, b = ste(x1, x2), ref(x1, x2)
    assert torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1])


def test_reference_scorer_gets_no_gradient():
    ex = ChannelExchange(16, ratio=0.5, hidden=8, scorer="reference")
    assert ex.scorer1.input_product is False  # the reference's LSK block drops X ⊙ attn
    x1, x2 = _inputs()
    y1, y2 = ex(x1, x2)
    (y1.sum() + y2.sum()).backward()
    assert all(p.grad is None for p in ex.scorer1.parameters())
    assert all(p.grad is not None for p in ex.adapter.parameters())
    assert x1.grad is not None and x2.grad is not None


def test_no_unused_modules():
    assert ChannelExchange(16, selection="random").scorer1 is None
    assert ChannelExchange(16, adapter=False).adapter is None
    head = BAFEHead(in_channels=32, feat_channels=32, stacked_convs=1, exchange=False)
    assert head.exchange is None


def test_spatial_exchange_swaps_positions():
    ex = SpatialExchange(16, ratio=0.5, adapter=False)
    x1, x2 = _inputs(h=4, w=4)
    y1, y2 = ex(x1, x2)
    changed = (x1 != y1).any(1).flatten(1).sum(1)
    assert changed.tolist() == [8, 8, 8]
    pos = (x1 != y1).any(1)
    assert torch.equal(y1.permute(0, 2, 3, 1)[pos], x2.permute(0, 2, 3, 1)[pos])
    assert torch.equal(y2.permute(0, 2, 3, 1)[pos], x1.permute(0, 2, 3, 1)[pos])


@pytest.mark.parametrize("mode", ["channel", "spatial", "channel+spatial", "spatial+channel"])
def test_modes_build_and_backprop(mode):
    ex = CrossTaskExchange(16, 0.5, 8, mode=mode)
    x1, x2 = _inputs()
    y1, y2 = ex(x1, x2)
    assert y1.shape == x1.shape
    (y1.sum() + y2.sum()).backward()
    assert [type(s).__name__ for s in ex.steps] == [{"channel": "ChannelExchange", "spatial": "SpatialExchange"}[m] for m in mode.split("+")]


def test_bad_options():
    with pytest.raises(ConfigError):
        CrossTaskExchange(16, mode="diagonal")
    with pytest.raises(ConfigError):
        ChannelExchange(16, ratio=0.0)
    with pytest.raises(ConfigError):
        ChannelExchange(16, selection="best")


def test_bafe_head_seg_loss_ignores_padding():
    torch.manual_seed(0)
    head = BAFEHead(in_channels=32, feat_channels=32, stacked_convs=1, strides=(8, 16, 32))
    feats = [torch.randn(1, 32, 64 // s, 64 // s) for s in (8, 16, 32)]
    out = head(feats)
    assert [t.shape[-2:] for t in out["seg_logits"]] == [f.shape[-2:] for f in feats]
    sky = torch.full((1, 64, 64), 255, dtype=torch.uint8)
    sky[:, :32] = 1
    losses = head.loss(out, [torch.tensor([[0.0, 0.0, 16.0, 16.0]])], [torch.tensor([0])], sky_mask=sky)
    # only sky pixels (target 1) count: the loss equals BCE against all-ones on the top half
    logits = torch.cat([o[0, 0, : o.shape[-2] // 2].flatten() for o in out["seg_logits"]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    assert losses["loss_seg"].item() == pytest.approx(expected.item(), rel=1e-5)
    losses["loss_seg"].backward()
    assert head.conv_seg.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="sky mask"):
        head.loss(head(feats), [torch.zeros(0, 4)], [torch.zeros(0, dtype=torch.long)])
