"""Training checkpoints on disk: written atomically in their own folder, checked before a resume.

Lightning's :class:`~lightning.fabric.plugins.io.torch_io.TorchCheckpointIO` serialises into
memory and writes through an fsspec transaction: a temp file from :func:`tempfile.mkstemp`
(in ``$TMPDIR``) moved over the checkpoint with :func:`shutil.move`. When ``$TMPDIR`` is on
another filesystem the move is a copy onto the old file, so a run killed during that copy
leaves a truncated ``last.ckpt`` and nothing to resume from. :class:`AtomicCheckpointIO` writes
``.<name>.tmp-<pid>`` beside the checkpoint, fsyncs it and :func:`os.replace` s it into place:
the previous checkpoint stays intact until the new one is complete. Source: irdet extension.

:class:`LastCheckpoint` decides when ``last.ckpt`` is written: only at states that Lightning
resumes exactly (step ends and validation ends, never an epoch's end; irdet extension).
:class:`BestCheckpoint` keeps ``best.ckpt`` and its record (the best validation score) right
across a resume (irdet extension).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from irdet.config import config_task
from irdet.errors import DataError

__all__ = ["read_checkpoint_file", "AtomicCheckpointIO", "LastCheckpoint", "BestCheckpoint", "atomic_torch_save", "temp_path", "remove_stale_temp_files",
           "read_resume_checkpoint", "check_resume_weights"]

_TEMP = re.compile(r"^\..+\.tmp-(\d+)$")


def temp_path(path) -> Path:
    """The temp file a checkpoint ``path`` is written to first: ``<dir>/.<name>.tmp-<pid>``. Source: irdet extension."""
    path = Path(path)
    return path.parent / f".{path.name}.tmp-{os.getpid()}"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_torch_save(obj: Any, path) -> None:
    """``torch.save(obj)`` to ``path`` atomically: write :func:`temp_path`, fsync, ``os.replace``.

    The file is created with mode ``0o666`` minus the umask (0644 under the usual umask 022),
    as a plain ``open()`` would; the temp file is removed if writing fails.

    Raises:
        OSError: the folder cannot be written (the old file, if any, is untouched).

    Source: irdet extension.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint plugin (``Trainer(plugins=[AtomicCheckpointIO()])``) saving with
    :func:`atomic_torch_save`; loading and removing are Lightning's.

    Lightning routes every save through it: ``ModelCheckpoint._save_checkpoint`` →
    ``Trainer.save_checkpoint`` → ``Strategy.save_checkpoint`` → ``checkpoint_io.save_checkpoint``.

    Source: irdet extension.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        """Write ``checkpoint`` to ``path`` atomically (see :func:`atomic_torch_save`).

        Raises:
            TypeError: ``storage_options`` given (as Lightning's TorchCheckpointIO).
        """
        if storage_options is not None:
            raise TypeError(f"{self.__class__.__name__}.save_checkpoint does not take storage_options")
        atomic_torch_save(checkpoint, path)


class LastCheckpoint(ModelCheckpoint):
    """``<dirpath>/last.ckpt``: every ``every_n_train_steps`` steps, at each epoch's last step, at the ``max_steps``-th
    step, and after each validation.

    A Lightning :class:`~lightning.pytorch.callbacks.ModelCheckpoint` (``save_top_k=1``, no
    monitor) that saves at the end of a training step (``on_train_batch_end``) and after a
    validation (``on_validation_end``, after :class:`BestCheckpoint`, so the file holds the updated ``best.ckpt`` record),
    never at ``on_train_epoch_end``: every ``last.ckpt`` is then a state that Lightning resumes
    where it was written (irdet extension). Lightning's epoch-end state does not resume so:
    an epoch that ``max_steps`` cut short is stored as finished (the resumed run starts the
    next epoch), and a run with ``max_steps`` resumed from an epoch's end trains one more
    batch in that finished epoch. An epoch's last step is resumed as that epoch done (the
    weights are the same as at its end); a run killed during the epoch-end validation
    therefore resumes after it, without running it again.

    Args:
        dirpath: the checkpoint folder.
        every_n_train_steps: the step interval (``train.checkpoint_every_n_steps``; 0 = only
            epoch ends, validations and the last step).

    Raises:
        ValueError: a negative ``every_n_train_steps``.

    Source: irdet extension on Lightning's ModelCheckpoint (uses its private
    ``_save_topk_checkpoint``, ``_monitor_candidates``, ``_should_skip_saving_checkpoint`` and
    ``_last_global_step_saved``; checked against Lightning 2.6).
    """

    def __init__(self, dirpath, every_n_train_steps: int = 0):
        super().__init__(dirpath, filename="last", save_top_k=1, enable_version_counter=False,
                         save_on_train_epoch_end=True, every_n_epochs=0)
        self.every = int(every_n_train_steps)
        if self.every < 0:
            raise ValueError(f"every_n_train_steps must be >= 0, got {every_n_train_steps}")

    def _save(self, trainer) -> None:
        self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Save after step ``every_n_train_steps``·k, an epoch's last step, or the ``max_steps``-th step."""
        step = trainer.global_step
        last_of_epoch = (trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
                         or batch_idx + 1 >= trainer.num_training_batches)
        due = (self.every > 0 and step % self.every == 0) or 0 <= trainer.max_steps <= step or last_of_epoch
        if due and not self._should_skip_saving_checkpoint(trainer):
            self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Nothing: the epoch's last step was saved (see the class docstring)."""

    def on_validation_end(self, trainer, pl_module) -> None:
        """Save after a validation during training (again at a step saved before it)."""
        self._last_global_step_saved = -1  # the step's pre-validation state is replaced
        if not self._should_skip_saving_checkpoint(trainer):
            self._save(trainer)


class BestCheckpoint(ModelCheckpoint):
    """``<dirpath>/best.ckpt``: the state with the highest value of ``monitor`` over all validations
    of a run, resumed runs included.

    A Lightning :class:`~lightning.pytorch.callbacks.ModelCheckpoint` (``mode="max"``,
    ``save_top_k=1``) that differs from Lightning's defaults in three ways, each of which made a
    resumed run select the wrong checkpoint:

    - it saves at ``on_validation_end``, before :class:`LastCheckpoint` (listed after it), so every
      ``last.ckpt`` holds the record of the validation it follows. Lightning's default with one
      validation per epoch saves at the epoch's end instead, after ``last.ckpt``: a run resumed
      from there knew the previous epoch's best score only, and overwrote a better ``best.ckpt``;
    - on resume the record is the one stored in ``best.ckpt`` itself (:meth:`read_record`, set at
      the start of training): a run killed between the two saves resumes knowing the file;
    - the file is always ``best.ckpt`` (no version counter): Lightning otherwise saves
      ``best-v1.ckpt`` beside a ``best.ckpt`` it does not know, and ``best.ckpt`` stays stale.

    Args:
        dirpath: the checkpoint folder.
        monitor: the logged validation metric to maximise (e.g. ``val/mAP07``).

    Source: irdet extension on Lightning's ModelCheckpoint (sets its ``best_k_models``,
    ``kth_best_model_path``, ``kth_value``, ``best_model_path`` and ``best_model_score``;
    checked against Lightning 2.6). Its ``state_key`` is that of a plain ModelCheckpoint with
    the same monitor, so checkpoints of earlier irdet versions resume with their record.
    """

    def __init__(self, dirpath, monitor: str):
        super().__init__(dirpath, filename="best", monitor=monitor, mode="max", save_top_k=1,
                         auto_insert_metric_name=False, enable_version_counter=False,
                         save_on_train_epoch_end=False)
        self.file = Path(dirpath) / f"best{self.FILE_EXTENSION}"  # as the caller spelled the folder, for messages
        self.best_score: float | None = None

    @property
    def state_key(self) -> str:
        return "ModelCheckpoint" + super().state_key[len(type(self).__qualname__):]

    def read_record(self) -> None:
        """Take ``best_score`` from the run's ``best.ckpt`` (None when there is no such file):
        the score this callback stored in it. Call before resuming.

        Raises:
            DataError: ``best.ckpt`` is not a readable checkpoint or holds no record of ``monitor``.
        """
        if not self.file.is_file():
            self.best_score = None
            return
        try:
            state = read_checkpoint_file(self.file)
        except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line error
            raise DataError(f"{self.file}: not a readable checkpoint ({type(e).__name__}); delete it and resume: "
                            "the next validation writes a new one") from None
        callbacks = state.get("callbacks") if isinstance(state, dict) else None
        record = (callbacks or {}).get(self.state_key) or {}
        if record.get("best_model_score") is None:
            raise DataError(f"{self.file}: holds no {self.monitor} score; delete it and resume: the next "
                            "validation writes a new one")
        self.best_score = float(record["best_model_score"])

    def on_train_start(self, trainer, pl_module) -> None:
        """Make the record that of ``best.ckpt`` (``best_score``), or empty when there is none."""
        if self.best_score is None:
            self.best_k_models, self.kth_best_model_path, self.best_model_path = {}, "", ""
            self.best_model_score, self.kth_value = None, torch.tensor(-torch.inf)
        else:
            path, score = self.format_checkpoint_name({}), torch.tensor(self.best_score)
            self.best_k_models, self.kth_best_model_path, self.best_model_path = {path: score}, path, path
            self.best_model_score, self.kth_value = score, score


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temp_files(folder) -> list[Path]:
    """Delete temp files of :func:`atomic_torch_save` left in ``folder`` by killed processes.

    A temp file of a live process other than this one (another writer) is kept.

    Returns:
        the removed paths.

    Source: irdet extension.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = _TEMP.match(p.name)
        if m and p.is_file() and (int(m.group(1)) == os.getpid() or not _alive(int(m.group(1)))):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def read_checkpoint_file(path) -> Any:
    """``torch.load`` of a training checkpoint on the CPU, memory-mapped when it is a zip file
    (only what is touched is read), plainly otherwise. Errors are torch's. Source: irdet extension."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except RuntimeError:  # not a zip checkpoint (mmap needs one): read it plainly to tell what it is
        return torch.load(path, map_location="cpu", weights_only=False)


def _first_difference(a: Any, b: Any, prefix: str) -> tuple[str, Any, Any] | None:
    """First key path where two config sections differ; keys present in only one are skipped
    (a key added to irdet's defaults after the checkpoint was written is not a change)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a:
            if key in b:
                diff = _first_difference(a[key], b[key], f"{prefix}.{key}")
                if diff:
                    return diff
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            diff = _first_difference(x, y, f"{prefix}[{i}]")
            if diff:
                return diff
        return None
    return None if a == b else (prefix, a, b)


def read_resume_checkpoint(path, cfg: dict) -> dict:
    """Load a checkpoint to resume ``cfg``'s training from, and check that it is one.

    Returns:
        the checkpoint dict (tensors memory-mapped where the file allows).

    Raises:
        DataError (one line, naming the file): missing or unreadable (corrupt, truncated,
            not a torch file); not an irdet training checkpoint (no stored config, no
            ``state_dict``); weights only (no optimizer / loop state); another task; a model
            section that differs from ``cfg["model"]`` (the first differing key, both values).

    Source: irdet extension.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint to resume from not found")
    try:
        state = read_checkpoint_file(path)
    except Exception as exc:  # noqa: BLE001 - any failure to unpickle means an unusable file
        text = " ".join(str(exc).split())[:200]
        raise DataError(path, f"not a readable checkpoint ({exc.__class__.__name__}: {text})") from None
    hparams = state.get("hyper_parameters") if isinstance(state, dict) else None
    stored = hparams.get("config") if isinstance(hparams, dict) else None
    if not isinstance(stored, dict) or not isinstance(state.get("state_dict"), dict) or "model" not in stored:
        raise DataError(path, "not an irdet training checkpoint (no stored config or state_dict)")
    missing = [k for k in ("optimizer_states", "loops") if k not in state]
    if missing:
        raise DataError(path, f"holds no training state to resume ({', '.join(missing)} missing); start a new run instead")
    if config_task(stored) != config_task(cfg):
        raise DataError(path, f"checkpoint of a task: {config_task(stored)} run, the config is task: {config_task(cfg)}")
    diff = _first_difference(stored["model"], cfg["model"], "model")
    if diff:
        key, was, now = diff
        raise DataError(path, f"the checkpoint's model differs from the config's: {key} is {was!r} in the checkpoint, "
                              f"{now!r} in the config (resume with the run's config.yaml, or start a new run)")
    return state


def check_resume_weights(path, state: dict, module: torch.nn.Module) -> None:
    """Check that a checkpoint's ``state_dict`` fits ``module`` (same names and shapes).

    Raises:
        DataError (one line, naming the file): parameters missing from or unknown to the
            module, or a parameter whose shape differs (name and both shapes).

    Source: irdet extension.
    """
    have = state["state_dict"]
    want = module.state_dict()
    missing = [k for k in want if k not in have]
    unknown = [k for k in have if k not in want]
    if missing or unknown:
        parts = ([f"{len(missing)} parameters missing (e.g. {missing[0]})"] if missing else []) + (
            [f"{len(unknown)} unknown to the model (e.g. {unknown[0]})"] if unknown else [])
        raise DataError(path, f"the checkpoint's weights do not fit the config's model: {'; '.join(parts)}")
    for k, v in want.items():
        shape = tuple(getattr(have[k], "shape", ()))
        if shape != tuple(v.shape):
            raise DataError(path, f"the checkpoint's weights do not fit the config's model: {k} has shape "
                                  f"{shape} in the checkpoint, {tuple(v.shape)} in the model")
