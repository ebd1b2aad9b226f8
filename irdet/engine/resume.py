"""What an exact ``irdet train --resume`` needs beyond Lightning's checkpoint: random states, the loader's position.

Lightning stores weights, optimizer, schedulers and loop counters. irdet adds (irdet
extension):

* the training loader's position: :func:`train_loader` is a torchdata
  :class:`~torchdata.stateful_dataloader.StatefulDataLoader`, whose ``state_dict`` Lightning's
  fit loop writes into every checkpoint (``loops.fit_loop.state_dict.combined_loader``) and
  loads back when it restarts a run, mid-epoch ones included; its keys come from
  :class:`~irdet.data.sample_stream.EpochSampler` and each sample's augmentations from
  :class:`~irdet.data.sample_stream.SeededSamples`, so the position is all the data state there is;
* the training process's random states (torch CPU and CUDA, numpy, Python), which the model
  draws from (e.g. the exchange head's random selection): :class:`RandomStates`, a callback
  whose state goes into the checkpoint.

A checkpoint written before this (no such state) still resumes as it did: Lightning keeps its
step count, the loader starts its epoch from the first batch again and the random streams
start from the run's seed; :func:`resume_notice` says so in one line. Exactness is checked on
the CPU in one process (``tests/test_resume_exact.py``); under DDP the checkpoint holds rank
0's random states only.
"""

from __future__ import annotations

import math
import random
import warnings
from typing import Any

import lightning as L
import numpy as np
import torch
from torchdata.stateful_dataloader import StatefulDataLoader

from irdet.data.sample_stream import EpochSampler, SeededSamples

__all__ = ["RandomStates", "ResumableLoader", "train_loader", "resume_notice"]


def _collect() -> dict[str, Any]:
    """The states as tensors, ints, floats and tuples: what ``torch.load(weights_only=True)``
    (Lightning's default when resuming) reads back."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (str(kind), torch.from_numpy(key.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["torch.cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    kind, key, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(states["python"])
    if "torch.cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["torch.cuda"])


class RandomStates(L.Callback):
    """Save the training process's random states in each checkpoint and restore them on resume.

    ``state_dict`` (written by Lightning with every checkpoint, under ``callbacks``) holds the
    torch CPU generator state, numpy's and Python's global states and, when CUDA is in use,
    every CUDA generator's state, as they are when the checkpoint is written. On resume,
    Lightning hands them to :meth:`load_state_dict` before the loaders are built; they are set
    at ``on_train_start``, after the loaders exist and just before the first training step,
    so the next step draws what the uninterrupted run drew. Data loading does not draw from
    these states (:class:`~irdet.data.sample_stream.SeededSamples`, the loader's own
    generator), so nothing between the checkpoint and the next step moves them.

    Raises:
        KeyError: a stored state without its ``torch``, ``numpy`` or ``python`` entry (on
            ``on_train_start`` of a resumed run).

    Source: irdet extension (Lightning stores no random state).
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        """The current random states (see the class docstring)."""
        return _collect()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep ``state_dict`` to set at ``on_train_start``."""
        self._pending = dict(state_dict)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Set the states of a resumed checkpoint (nothing on a fresh run)."""
        if self._pending is not None:
            _restore(self._pending)
            self._pending = None


def _epoch_to_train(trainer: L.Trainer | None) -> int:
    """The epoch Lightning will train next (the ``set_epoch`` value of its fit loop); 0 outside a fit."""
    loop = getattr(trainer, "fit_loop", None)
    return int(loop.epoch_progress.current.processed) if loop is not None else 0


def _batches_per_epoch(full: int, limit) -> int:
    """Lightning's count of training batches for ``limit_train_batches`` (``_parse_num_batches``)."""
    if limit is None or isinstance(limit, bool):
        return full
    if isinstance(limit, int):
        return min(full, limit)
    return int(full * float(limit))


def _sampler_position(state: dict, batch_size: int) -> dict | None:
    """The :class:`~irdet.data.sample_stream.EpochSampler` state of a StatefulDataLoader state
    of either layout (``num_workers`` 0 or more), moved to the batches handed out; None when
    ``state`` has none (another sampler)."""
    if "_snapshot" in state:  # worker processes: the main snapshot + batches handed out since
        main = state["_snapshot"]["_main_snapshot"]
        extra = int(state.get("_steps_since_snapshot", 0))
    else:
        main, extra = state, 0
    iter_state = main.get("_sampler_iter_state") or {}
    sampler = iter_state.get("sampler_state")
    if not isinstance(sampler, dict) or "yielded" not in sampler:
        return None
    return {**sampler, "yielded": int(sampler["yielded"]) + extra * int(batch_size)}


class ResumableLoader(StatefulDataLoader):
    """torchdata's :class:`~torchdata.stateful_dataloader.StatefulDataLoader` that also loads a state
    written with another ``num_workers``.

    torchdata's states differ with the number of worker processes (and refuse another
    number); irdet's sample stream does not depend on it (:mod:`irdet.data.sample_stream`),
    so such a state is read for its sampler position only and the loader continues from
    there, exactly. Lightning calls ``state_dict`` / ``load_state_dict`` (fit loop,
    ``combined_loader``).

    Raises:
        ValueError: a state of another worker count that holds no
            :class:`~irdet.data.sample_stream.EpochSampler` position.

    Source: irdet extension on torchdata.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load ``state_dict`` (torchdata's, or its sampler position when written with another ``num_workers``)."""
        workers = (state_dict.get("_snapshot") or {}).get("_main_snapshot", {}).get("_num_workers", 0)
        if not state_dict or workers == self.num_workers:
            super().load_state_dict(state_dict)
            return
        position = _sampler_position(state_dict, self.batch_size)
        if position is None or not isinstance(self.sampler, EpochSampler):
            raise ValueError(f"the data-loader state was written with num_workers={workers} and holds no irdet "
                             f"sampler position; resume with data.num_workers={workers}")
        super().load_state_dict({})
        self.sampler.load_state_dict(position)


def train_loader(dataset, batch_size: int, num_workers: int, collate_fn, seed: int,
                 trainer: L.Trainer | None = None) -> ResumableLoader:
    """The resumable training loader: shuffled, seeded per sample, its position in the checkpoint.

    ``dataset`` is wrapped in :class:`~irdet.data.sample_stream.SeededSamples` and ordered by
    an :class:`~irdet.data.sample_stream.EpochSampler` (both of ``seed``; rank and world size
    from ``trainer``), in a :class:`ResumableLoader` with its own generator (worker seeds are
    not drawn from the global torch state), persistent workers when ``num_workers > 0`` and
    no dropped last batch. With a ``trainer``, the sampler starts at the epoch its fit loop
    trains next (a run resumed at an epoch boundary shuffles that epoch as the uninterrupted
    run did) and hands out ``limit_train_batches`` batches per epoch.

    Raises:
        ValueError: from torch's DataLoader checks (e.g. a negative ``num_workers``).

    Source: irdet extension.
    """
    world, rank = (int(trainer.world_size), int(trainer.global_rank)) if trainer is not None else (1, 0)
    sampler = EpochSampler(dataset, seed, num_replicas=world, rank=rank, epoch=_epoch_to_train(trainer))
    limit = getattr(trainer, "limit_train_batches", None)
    sampler.samples_per_epoch = min(sampler.num_samples,
                                    _batches_per_epoch(math.ceil(sampler.num_samples / batch_size), limit) * batch_size)
    with warnings.catch_warnings():  # torchdata 0.11 calls torch.set_vital, deprecated in recent torch
        warnings.filterwarnings("ignore", message=".*set_vital.*", category=UserWarning)
        return ResumableLoader(SeededSamples(dataset, seed), batch_size=batch_size, sampler=sampler,
                               num_workers=num_workers, collate_fn=collate_fn, persistent_workers=num_workers > 0,
                               drop_last=False, generator=torch.Generator().manual_seed(int(seed) % 2**63))


def resume_notice(state: dict) -> str | None:
    """One line telling that ``state`` (a checkpoint dict) cannot be resumed exactly, or None when it can.

    A checkpoint lacks what an exact resume needs when it holds no :class:`RandomStates`
    entry or no training-loader state (irdet before torchdata's StatefulDataLoader): the loader
    then starts its epoch from the first batch again and the random streams from the run's
    seed. Source: irdet extension.
    """
    callbacks = state.get("callbacks") or {}
    has_rng = any(str(key).split("{")[0] == RandomStates.__qualname__ for key in callbacks)
    fit = (state.get("loops") or {}).get("fit_loop") or {}
    has_loader = bool((fit.get("state_dict") or {}).get("combined_loader"))
    if has_rng and has_loader:
        return None
    missing = " and no ".join(name for name, ok in (("random states", has_rng), ("data-loader position", has_loader))
                              if not ok)
    return (f"this checkpoint holds no {missing} (written by an older irdet): training continues from it, but "
            f"not exactly as an uninterrupted run would")
