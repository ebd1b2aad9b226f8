"""A training sample stream that a checkpoint can resume exactly: which sample comes when, and its randomness.

Two pieces, both deterministic functions of the run's seed (irdet extension, for an exact
``irdet train --resume``):

* :class:`EpochSampler` orders the samples of an epoch by a permutation of ``(seed, epoch)``
  (torchdata's stateful :class:`~torchdata.stateful_dataloader.StatefulDistributedSampler`),
  remembers how many it has handed out, and yields ``(epoch, index)`` pairs, so the epoch
  travels with each index into the DataLoader workers;
* :class:`SeededSamples` wraps the training dataset and computes sample ``index`` of
  ``epoch`` under its own random state: ``torch.manual_seed`` of :func:`sample_seed`
  ``(seed, epoch, index)`` inside :func:`torch.random.fork_rng`. Every torch-random
  augmentation (flip, :class:`~irdet.data.transforms.TargetAwareCrop`, clip transforms) and
  BAG-CP (whose generator follows ``torch.initial_seed()`` there, see
  :func:`in_seeded_sample`) then draws the same numbers for the same sample whatever process,
  worker count or history computed it, and the calling process's torch random state is left
  as it was.

A resumed run therefore only needs the sampler's position (held by torchdata's
:class:`~torchdata.stateful_dataloader.StatefulDataLoader` state in the checkpoint) to see the
same samples, with the same augmentations, as an uninterrupted run.
"""

from __future__ import annotations

import threading
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset
from torchdata.stateful_dataloader.sampler import StatefulDistributedSampler

__all__ = ["EpochSampler", "SeededSamples", "sample_seed", "in_seeded_sample"]

_state = threading.local()


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The torch seed of sample ``index`` in ``epoch`` of a run seeded ``seed``: 64 bits of
    ``numpy.random.SeedSequence((seed, epoch, index))`` (well mixed: neighbouring indices or
    epochs get unrelated streams).

    Raises:
        ValueError: a negative ``epoch`` or ``index``.

    Source: irdet extension.
    """
    if epoch < 0 or index < 0:
        raise ValueError(f"sample_seed needs a non-negative epoch and index, got epoch={epoch}, index={index}")
    hi, lo = np.random.SeedSequence((int(seed) % 2**64, int(epoch), int(index))).generate_state(2, np.uint32)
    return (int(hi) << 32) | int(lo)


def in_seeded_sample() -> bool:
    """True while :class:`SeededSamples` computes a sample in this thread (BAG-CP then keys its
    generator on ``torch.initial_seed()``, i.e. on the sample's seed). Source: irdet extension."""
    return getattr(_state, "depth", 0) > 0


class SeededSamples(Dataset):
    """``dataset`` whose item ``(epoch, i)`` is computed under ``torch.manual_seed(sample_seed(seed, epoch, i))``.

    The torch CPU random state of the caller is saved before and restored after each item
    (:func:`torch.random.fork_rng`), so loading data in the main process (``num_workers=0``)
    does not move the training process's random stream. A plain ``int`` key is read as
    ``(epoch, key)`` with the ``epoch`` given here (default 0).

    Args:
        dataset: a map-style dataset (e.g. a :class:`~torch.utils.data.ConcatDataset` of
            :class:`~irdet.data.datasets.densesirst.DenseSIRST`).
        seed: the run's seed (``train.seed``).
        epoch: epoch of plain ``int`` keys.

    Raises:
        IndexError: from ``dataset`` for an index out of range.
        ValueError: a negative epoch or index (:func:`sample_seed`).

    Source: irdet extension.
    """

    def __init__(self, dataset, seed: int, epoch: int = 0):
        self.dataset = dataset
        self.seed = int(seed)
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key) -> Any:
        epoch, index = (self.epoch, key) if isinstance(key, (int, np.integer)) else key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(self.seed, int(epoch), int(index)))
            _state.depth = getattr(_state, "depth", 0) + 1
            try:
                return self.dataset[int(index)]
            finally:
                _state.depth -= 1


class EpochSampler(StatefulDistributedSampler):
    """Shuffled ``(epoch, index)`` keys for :class:`SeededSamples`: a permutation of ``(seed, epoch)``, resumable.

    torchdata's :class:`~torchdata.stateful_dataloader.StatefulDistributedSampler` (the
    permutation of :class:`torch.utils.data.DistributedSampler`: ``randperm`` seeded
    ``seed + epoch``; ``state_dict`` = samples handed out this epoch) with the epoch added to
    its state and to every key. Lightning calls :meth:`set_epoch` before each epoch; ``epoch``
    sets the first one (the epoch a resumed run continues with: the key iteration of a
    multi-worker loader starts when its iterator is created, before Lightning's
    ``set_epoch``). A :class:`~torchdata.stateful_dataloader.StatefulDataLoader` built on it
    saves and restores the position, the epoch included.

    Args:
        dataset: the dataset (its length).
        seed: the run's seed.
        num_replicas, rank: the data-parallel world size and this process's rank (each rank
            gets every ``num_replicas``-th key of the permutation, as DistributedSampler).
        epoch: the epoch of the first iteration.
        samples_per_epoch: keys handed out per epoch and replica (None: all of them); the
            trainer's ``limit_train_batches`` × batch size, so that an epoch ends where the
            trainer ends it and a checkpoint of its last step continues with the next epoch.
            ``len()`` stays the full count (the trainer applies its limit to it).

    Raises:
        ValueError: ``rank`` not in ``[0, num_replicas)`` (DistributedSampler's check); a
            state without ``yielded`` in :meth:`load_state_dict`.

    Source: irdet extension on torchdata.
    """

    _EPOCH = "epoch"

    def __init__(self, dataset, seed: int, num_replicas: int = 1, rank: int = 0, epoch: int = 0,
                 samples_per_epoch: int | None = None):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=int(seed), drop_last=False)
        self.epoch = int(epoch)
        self.samples_per_epoch = self.num_samples if samples_per_epoch is None else min(int(samples_per_epoch),
                                                                                         self.num_samples)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, stop = self.epoch, self.samples_per_epoch
        if stop <= 0:
            return
        for index in super().__iter__():
            yield epoch, index
            if self.yielded >= stop:
                return

    def state_dict(self) -> dict[str, Any]:
        """Samples handed out in the current epoch (``yielded``) and the epoch."""
        return {**super().state_dict(), self._EPOCH: self.epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the epoch of ``state_dict`` after its ``yielded`` samples (on the next iteration).

        A state whose epoch was handed out completely (a checkpoint of an epoch's last step, or
        of its end) continues with the next epoch from its first sample: Lightning trains the
        next epoch from this same iterator without calling ``iter`` again, and an exhausted
        iterator would give it no batch.
        """
        super().load_state_dict(state_dict)
        self.epoch = int(state_dict.get(self._EPOCH, self.epoch))
        if self.next_yielded >= self.samples_per_epoch:
            self.epoch += 1
            self.next_yielded = 0
