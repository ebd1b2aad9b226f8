"""irdet.data.sample_stream: the training sample order and each sample's randomness are functions of
(seed, epoch, index), resumable from a sampler state, and leave the caller's random state alone."""

from __future__ import annotations

import pytest
import torch

from irdet.data.sample_stream import EpochSampler, SeededSamples, in_seeded_sample, sample_seed


class _Draw:
    """A dataset whose item is a torch draw (what an augmentation sees) and whether it ran seeded."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return i, float(torch.rand(())), in_seeded_sample()


def test_sample_seed_depends_on_seed_epoch_and_index():
    seeds = {sample_seed(s, e, i) for s in (0, 1) for e in (0, 1) for i in range(5)}
    assert len(seeds) == 20 and all(0 <= x < 2**64 for x in seeds)
    assert sample_seed(0, 3, 4) == sample_seed(0, 3, 4)
    with pytest.raises(ValueError, match="non-negative epoch and index"):
        sample_seed(0, -1, 0)


def test_seeded_samples_are_reproducible_and_leave_the_caller_stream():
    ds = SeededSamples(_Draw(), seed=3)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = ds[(2, 7)]
    assert torch.equal(torch.get_rng_state(), before)  # the training process's stream did not move
    assert ds[(2, 7)] == a and a[0] == 7 and a[2] is True and not in_seeded_sample()
    assert ds[(3, 7)][1] != a[1] and ds[(2, 6)][1] != a[1]  # another epoch / index: another draw
    assert ds[7] == SeededSamples(_Draw(), seed=3, epoch=0)[(0, 7)]  # plain int key: the given epoch


def test_epoch_sampler_order_state_and_limit():
    data = list(range(10))
    s = EpochSampler(data, seed=5)
    e0 = list(s)
    assert sorted(i for _, i in e0) == data and {e for e, _ in e0} == {0}
    s.set_epoch(1)
    e1 = list(s)
    assert {e for e, _ in e1} == {1} and [i for _, i in e1] != [i for _, i in e0]
    assert list(EpochSampler(data, seed=5, epoch=1)) == e1  # a function of (seed, epoch) only

    it = iter(s)
    head = [next(it) for _ in range(4)]
    state = s.state_dict()
    assert state == {"yielded": 4, "epoch": 1}
    resumed = EpochSampler(data, seed=5)
    resumed.load_state_dict(state)
    assert head + list(resumed) == e1

    done = EpochSampler(data, seed=5)
    done.load_state_dict({"yielded": 10, "epoch": 1})  # an epoch handed out completely: the next one
    assert list(done) == list(EpochSampler(data, seed=5, epoch=2))

    short = EpochSampler(data, seed=5, epoch=1, samples_per_epoch=4)  # limit_train_batches
    assert list(short) == e1[:4] and len(short) == 10
    short.load_state_dict(short.state_dict())
    assert [e for e, _ in short] == [2] * 4
