"""Cross-task hard-exchange semantics (BAFE-Net Eqs. 4–9) and the BAFE head."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from irdet.errors import ConfigError
from irdet.models.heads import exchange as exchange_mod
from irdet.models.heads.bafe import BAFEHead
from irdet.models.heads.exchange import ChannelExchange, CrossTaskExchange, SpatialExchange
from irdet.models.heads.lsk import LSKAttention, LSKScorer


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


def test_without_adapter_channels_are_swapped_in_channel_order():
    ex = ChannelExchange(16, ratio=0.5, adapter=False)
    x1, x2 = _inputs()
    y1, y2 = ex(x1, x2)
    (i1, _), (i2, _) = ex.select(x1, x2)
    assert torch.equal(i1, i1.sort(dim=1).values) and torch.equal(i2, i2.sort(dim=1).values)
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
    ex = ChannelExchange(16, 0.5, 8, scorer="ste")
    x1, x2 = _inputs()
    y1, y2 = ex(x1, x2)
    (i1, _), (i2, _) = ex.select(x1, x2)
    for n in range(3):  # Eqs. 8-9 with the plain (unscaled) selected channels
        assert torch.allclose(y1[n, i1[n]], ex.adapter(x2[n : n + 1, i2[n]])[0], atol=1e-6)
        assert torch.allclose(y2[n, i2[n]], ex.adapter(x1[n : n + 1, i1[n]])[0], atol=1e-6)


class _FixedScores(nn.Module):
    """A stand-in scorer: the given (N, C) channel scores at every pixel."""

    def __init__(self, scores):
        super().__init__()
        self.scores = scores

    def forward(self, x):
        return self.scores[:, :, None, None].expand_as(x)


def _roll_within_topk(scores, k):
    """The same top-k set per sample, its scores cyclically shifted (so the score order changes)."""
    out = scores.clone()
    for n in range(scores.shape[0]):
        top = scores[n].topk(k).indices
        out[n, top] = scores[n, top.roll(1)]
    return out


def _exchange_with_scores(ex, s1, s2, x1, x2):
    ex.scorer1, ex.scorer2 = _FixedScores(s1), _FixedScores(s2)
    return ex(x1, x2)


def test_selected_channels_keep_their_identity(monkeypatch):
    """Permuting the scores inside the selected set leaves Y1, Y2 unchanged (the mask form
    A(X2 ⊙ E2)); with the indices in score order (the old behaviour) the output changes."""
    torch.manual_seed(0)
    ex = ChannelExchange(16, ratio=0.5, hidden=8, scorer="ste")
    x1, x2 = _inputs()
    g = torch.Generator().manual_seed(1)
    s1, s2 = torch.rand(3, 16, generator=g), torch.rand(3, 16, generator=g)
    r1, r2 = _roll_within_topk(s1, 8), _roll_within_topk(s2, 8)
    a = _exchange_with_scores(ex, s1, s2, x1, x2)
    b = _exchange_with_scores(ex, r1, r2, x1, x2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])

    def score_order(idx, values=None):  # Eq. 6 without the ascending order: the top-k indices in score order
        return idx, values

    monkeypatch.setattr(exchange_mod, "mask_indices", score_order)
    a_old = _exchange_with_scores(ex, s1, s2, x1, x2)
    b_old = _exchange_with_scores(ex, r1, r2, x1, x2)
    assert not torch.allclose(a_old[0], b_old[0]) and not torch.allclose(a_old[1], b_old[1])


def test_equations_5_to_9_in_mask_form():
    """The index-form functions against the paper's dense formulas: K = round(C·p) (Eq. 5), the
    top-k of the scores (Eq. 5), the 0/1 mask e (Eq. 6) expanded over H × W (Eq. 7), and
    Y1 = X1 ⊙ (1 − E_d1) + A(X2 ⊙ E_d2), Y2 likewise (Eqs. 8–9), with an element-wise adapter A
    (for which the mask form is defined channel by channel) and equal masks in both branches."""
    assert [exchange_mod.exchange_count(256, p) for p in (0.5, 0.25, 1 / 256, 1e-4, 1.0)] == [128, 64, 1, 1, 256]
    x1, x2 = (t.detach() for t in _inputs())
    n, c, h, w = x1.shape
    k = exchange_mod.exchange_count(c, 0.5)
    scores = torch.rand(n, c, generator=torch.Generator().manual_seed(3))
    values, idx = exchange_mod.top_k(scores, k)
    assert torch.equal(values, scores.sort(dim=1, descending=True).values[:, :k])
    idx, values = exchange_mod.mask_indices(idx, values)
    e = torch.zeros(n, c)
    e.scatter_(1, idx, 1.0)  # Eq. 6: e[i] = 1 iff i in I_topk
    assert torch.equal(e.sum(1), torch.full((n,), float(k)))
    assert torch.equal(idx, e.nonzero()[:, 1].view(n, k))  # the ones of e, ascending
    assert torch.equal(values, scores.gather(1, idx))
    e_d = e[:, :, None, None].expand(n, c, h, w)  # Eq. 7: E_d = e ⊗ 1_{H×W}
    index = exchange_mod.expand_mask(idx, h, w)
    assert torch.equal(torch.zeros(n, c, h, w).scatter(1, index, 1.0), e_d)

    def adapt(t):  # an element-wise adapter
        return 2 * t + 1

    y1, y2 = exchange_mod.hard_exchange(x1, x2, index, index, adapt)
    torch.testing.assert_close(y1, x1 * (1 - e_d) + adapt(x2) * e_d, rtol=0, atol=0)
    torch.testing.assert_close(y2, x2 * (1 - e_d) + adapt(x1) * e_d, rtol=0, atol=0)


def test_scorer_gradient_factor_is_one_forward_and_scores_backward():
    """ste: the multiplier is 1 in the forward pass and has the gradient of v (irdet extension);
    scale: it is v; reference or no scores: none."""
    v = torch.tensor([[0.2, 0.9], [0.5, 0.7]], requires_grad=True)
    f = exchange_mod.scorer_gradient_factor(v, "ste")
    assert torch.equal(f.detach(), torch.ones(2, 2))
    (f * torch.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    torch.testing.assert_close(v.grad, torch.tensor([[1.0, 2.0], [3.0, 4.0]]) / v.detach())
    assert exchange_mod.scorer_gradient_factor(v, "scale") is v
    assert exchange_mod.scorer_gradient_factor(v, "reference") is None
    assert exchange_mod.scorer_gradient_factor(None, "ste") is None


def test_reference_scorer_is_one_shared_scorer():
    ex = ChannelExchange(16, ratio=0.5, hidden=8, scorer="reference")
    assert ex.scorer1 is ex.scorer2 and isinstance(ex.scorer1, LSKScorer)
    n_scorer = sum(p.numel() for p in ex.scorer1.parameters())
    n_adapter = sum(p.numel() for p in ex.adapter.parameters())
    assert sum(p.numel() for p in ex.parameters()) == n_scorer + n_adapter
    # checkpoints keep both names (an older reference-mode checkpoint with two scorers still loads)
    keys = ex.state_dict().keys()
    assert "scorer1.conv0.weight" in keys and "scorer2.conv0.weight" in keys
    ste = ChannelExchange(16, scorer="ste")  # irdet's default: one learnable scorer per branch
    assert ste.scorer1 is not ste.scorer2


def test_reference_scorer_init_is_normal_001():
    torch.manual_seed(0)
    ref = ChannelExchange(256, scorer="reference").scorer1
    weights = torch.cat([m.weight.flatten() for m in ref.modules() if isinstance(m, nn.Conv2d)])
    biases = torch.cat([m.bias.flatten() for m in ref.modules() if isinstance(m, nn.Conv2d)])
    assert weights.std().item() == pytest.approx(0.01, rel=0.03) and abs(weights.mean().item()) < 1e-3
    assert torch.count_nonzero(biases) == 0
    ste = ChannelExchange(256, scorer="ste").scorer1  # irdet's learnable scorer keeps PyTorch's default init
    assert ste.conv1.weight.std().item() > 0.02 and torch.count_nonzero(ste.conv1.bias) > 0


def test_reference_scores_are_sigmoid_of_global_average():
    torch.manual_seed(0)
    ex = ChannelExchange(16, ratio=0.5, hidden=8, scorer="reference")
    scorer = ex.scorer1
    with torch.no_grad():  # larger weights than the init, so that sigmoid(mean) and mean(sigmoid) differ
        for p in scorer.parameters():
            p.normal_(0, 0.3)
    x1, x2 = _inputs()
    # LSK attention written out with the module's own weights (5x5 dw, 7x7 dw dil. 3, 1x1 branches, gates)
    a1 = F.conv2d(x1, scorer.conv0.weight, scorer.conv0.bias, padding=2, groups=16)
    a2 = F.conv2d(a1, scorer.conv_spatial.weight, scorer.conv_spatial.bias, padding=9, dilation=3, groups=16)
    a1, a2 = F.conv2d(a1, scorer.conv1.weight, scorer.conv1.bias), F.conv2d(a2, scorer.conv2.weight, scorer.conv2.bias)
    both = torch.cat([a1, a2], 1)
    gates = torch.sigmoid(F.conv2d(torch.cat([both.mean(1, keepdim=True), both.amax(1, keepdim=True)], 1),
                                   scorer.conv_squeeze.weight, scorer.conv_squeeze.bias, padding=3))
    attn = F.conv2d(a1 * gates[:, :1] + a2 * gates[:, 1:], scorer.conv.weight, scorer.conv.bias)
    expected = torch.sigmoid((x1 * attn).mean((2, 3)))
    got = scorer.pooled_channel_scores(x1)
    assert torch.allclose(got, expected, atol=1e-6, rtol=0)
    # not the average of the per-pixel sigmoid (irdet's form)
    assert (got - torch.sigmoid(x1 * attn).mean((2, 3))).abs().max() > 1e-2
    (i1, f1), (i2, _) = ex.select(x1, x2)
    assert f1 is None and torch.equal(i1, expected.topk(8, dim=1).indices.sort(dim=1).values)
    assert torch.equal(i2, scorer.pooled_channel_scores(x2).topk(8, dim=1).indices.sort(dim=1).values)


def test_reference_scorer_is_frozen():
    from irdet.engine.optim import build_optimizer

    torch.manual_seed(0)
    head = BAFEHead(in_channels=32, feat_channels=32, stacked_convs=1, strides=(8, 16, 32), scorer="reference")
    scorer = head.exchange.steps[0].scorer1
    assert not any(p.requires_grad for p in scorer.parameters())
    before = [p.detach().clone() for p in scorer.parameters()]
    opt = build_optimizer(head)
    assert not {id(p) for p in scorer.parameters()} & {id(p) for g in opt.param_groups for p in g["params"]}
    feats = [torch.randn(2, 32, 64 // s, 64 // s) for s in (8, 16, 32)]
    sky = torch.randint(0, 2, (2, 64, 64), dtype=torch.uint8)
    for _ in range(2):
        opt.zero_grad()
        losses = head.loss(head(feats), [torch.tensor([[4.0, 4.0, 20.0, 20.0]])] * 2, [torch.tensor([0])] * 2, sky_mask=sky)
        sum(losses.values()).backward()
        assert all(p.grad is None for p in scorer.parameters())
        assert head.exchange.steps[0].adapter[0].weight.grad.abs().sum() > 0
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, scorer.parameters()))


def test_reference_scorer_gets_no_gradient():
    ex = ChannelExchange(16, ratio=0.5, hidden=8, scorer="reference")
    x1, x2 = _inputs()
    y1, y2 = ex(x1, x2)
    (y1.sum() + y2.sum()).backward()
    assert all(p.grad is None for p in ex.scorer1.parameters())
    assert all(p.grad is not None for p in ex.adapter.parameters())
    assert x1.grad is not None and x2.grad is not None


@pytest.mark.parametrize("kind", [ChannelExchange, SpatialExchange])
def test_random_selection_is_deterministic_in_eval(kind):
    torch.manual_seed(0)
    ex = kind(16, ratio=0.5, hidden=8, selection="random")
    x1, x2 = _inputs(n=3, h=4, w=4)
    with torch.no_grad():
        train_a, train_b = ex(x1, x2), ex(x1, x2)
        ex.eval()
        a, b = ex(x1, x2), ex(x1, x2)
        single = ex(x1[1:2], x2[1:2])
    assert not torch.equal(train_a[0], train_b[0])  # training re-draws every forward pass
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # the same channels / pixels are exchanged whatever the batch (a different draw changes whole channels by O(1));
    # the values agree to float rounding only, as a batch of 1 and of 3 take different multi-threaded conv paths
    assert torch.allclose(single[0], a[0][1:2], rtol=1e-5, atol=1e-6)


def test_bafe_head_random_selection_eval_is_deterministic():
    torch.manual_seed(0)
    head = BAFEHead(in_channels=32, feat_channels=32, stacked_convs=1, strides=(8, 16), regress_ranges=((-1, 64), (64, 1e8)),
                    selection="random").eval()
    feats = [torch.randn(2, 32, 8, 8), torch.randn(2, 32, 4, 4)]
    with torch.no_grad():
        a, b = head(feats), head(feats)
    for key in ("cls_scores", "centernesses", "seg_logits"):
        assert all(torch.equal(u, v) for u, v in zip(a[key], b[key]))


def test_reference_blocks():
    torch.manual_seed(0)
    plain = BAFEHead(in_channels=256, feat_channels=256, stacked_convs=1)
    ref = BAFEHead(in_channels=256, feat_channels=256, stacked_convs=1, reference_blocks=True)
    assert not hasattr(plain, "convs_cls") and not hasattr(plain, "lsk_module")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(ref) - count(plain) == 1_300_422
    assert count(ref.lsk_module) == 118_470 and count(ref.convs_cls) == count(ref.convs_seg) == 590_976
    assert isinstance(ref.lsk_module, LSKAttention) and not isinstance(ref.lsk_module, LSKScorer)
    convs = [m for m in ref.convs_cls.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(256, 128, (3, 3)), (128, 256, (3, 3))]
    assert all(torch.count_nonzero(c.bias) == 0 for c in convs)
    assert convs[0].weight.std().item() == pytest.approx(0.01, rel=0.03)
    # order: towers -> shared LSK module -> convs_cls / convs_seg -> exchange
    small = BAFEHead(in_channels=32, feat_channels=32, stacked_convs=1, strides=(8,), regress_ranges=((-1, 1e8),),
                     reference_blocks=True)
    seen = []
    small.lsk_module.register_forward_hook(lambda m, i, o: seen.append("lsk"))
    small.convs_cls.register_forward_hook(lambda m, i, o: seen.append("cls"))
    small.convs_seg.register_forward_hook(lambda m, i, o: seen.append("seg"))
    small.exchange.register_forward_pre_hook(lambda m, i: seen.append("exchange"))
    out = small([torch.randn(2, 32, 8, 8)])
    assert seen == ["lsk", "cls", "lsk", "seg", "exchange"]
    assert out["cls_scores"][0].shape == (2, 1, 8, 8) and out["seg_logits"][0].shape == (2, 1, 8, 8)
    (out["cls_scores"][0].sum() + out["seg_logits"][0].sum()).backward()
    for mod in (small.lsk_module, small.convs_cls, small.convs_seg):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mod.parameters())


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


def test_reference_head_config_builds_the_reference_head():
    from pathlib import Path

    from irdet.config import load_config
    from irdet.models import build_detector

    configs = Path(__file__).resolve().parents[2] / "configs"
    det = build_detector(load_config(configs / "bafenet_r18_refhead_densesirst_cpu.yaml")["model"])
    step = det.head.exchange.steps[0]
    assert det.head.reference_blocks and step.scorer == "reference" and step.scorer1 is step.scorer2
    # R18 at 256 channels: 21.71 M parameters (irdet's default BAFE-Net-R18: 20.53 M; the paper's Table II: 22.31 M)
    assert sum(p.numel() for p in det.parameters()) == 21_712_534
    assert sum(p.numel() for p in det.parameters() if p.requires_grad) == 21_712_534 - 118_470  # the frozen scorer


@pytest.mark.parametrize("stop", [False, True])
def test_seg_stop_grad_keeps_the_sky_loss_off_the_shared_features(stop):
    """seg_stop_grad (sky head without exchange, Table IV b): the sky loss trains the sky tower but
    sends no gradient into the shared input; the classification path still does."""
    torch.manual_seed(0)
    head = BAFEHead(in_channels=32, feat_channels=32, stacked_convs=1, strides=[8], regress_ranges=[(-1, 1e8)],
                    exchange=False, seg_stop_grad=stop)
    x = torch.randn(2, 32, 8, 8, requires_grad=True)
    out = head([x])
    (g_seg,) = torch.autograd.grad(out["seg_logits"][0].sum(), x, retain_graph=True, allow_unused=True)
    assert (g_seg is None or g_seg.abs().sum() == 0) == stop
    assert any(p.grad is None for p in head.seg_tower.parameters())  # nothing accumulated yet
    out["seg_logits"][0].sum().backward(retain_graph=True)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.seg_tower.parameters() if p.dim() > 1)
    (g_cls,) = torch.autograd.grad(out["cls_scores"][0].sum(), x)
    assert g_cls.abs().sum() > 0
    with pytest.raises(ConfigError, match="seg_stop_grad must be true/false"):
        BAFEHead(in_channels=32, feat_channels=32, stacked_convs=1, strides=[8], regress_ranges=[(-1, 1e8)],
                 seg_stop_grad="yes")
