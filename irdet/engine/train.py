"""``irdet train``: a detector of any task trained with PyTorch Lightning."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import LearningRateMonitor, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger

from irdet.data.io import atomic_write_bytes
from irdet.engine.checkpoints import (AtomicCheckpointIO, BestCheckpoint, LastCheckpoint, check_resume_weights, read_resume_checkpoint,
                                      remove_stale_temp_files)
from irdet.engine.datamodule import DataModule
from irdet.engine.module import DetectorModule
from irdet.engine.precision import resolve_precision
from irdet.engine.resume import RandomStates, resume_notice
from irdet.engine.rundir import check_run_dir, clear_run, discard_failed_start
from irdet.engine.selection import check_selection
from irdet.engine.tasks import task_of

__all__ = ["train"]


def _trainer_kwargs(t: dict) -> dict:
    return {"accelerator": t["accelerator"], "devices": t["devices"], "num_nodes": t["num_nodes"],
            "strategy": t["strategy"], "precision": resolve_precision(t["precision"], t["accelerator"])}


def _set_threads(t: dict) -> None:
    if t.get("threads"):
        torch.set_num_threads(int(t["threads"]))


def train(cfg: dict, data: str | None = None, out: str | Path | None = None, resume: str | bool | None = None,
          overwrite: bool = False) -> Path:
    """Train a detector (BAFE-Net paper §V-A protocol by default) with PyTorch Lightning.

    Writes ``<out>/config.yaml``, ``<out>/checkpoints/last.ckpt`` (every
    ``train.checkpoint_every_n_steps`` steps, at each epoch's last step, after each validation
    and at ``train.max_steps``: the final model; :class:`~irdet.engine.checkpoints.LastCheckpoint`) and, when
    ``data.val_split`` is set, ``best.ckpt`` (highest value of the task's monitor on it:
    ``val/mAP07`` for single-frame models, ``val/AP50`` for ``task: sequence``; across resumes too:
    :class:`~irdet.engine.checkpoints.BestCheckpoint`); CSV logs under
    ``<out>/logs/``. ``data.val_split: null`` (the default: train on ``trainval_v2``, keep the
    last checkpoint) runs no validation and writes no ``best.ckpt``. The config's task
    (:func:`irdet.engine.tasks.task_of`) supplies the model, the data and the monitor; the
    trainer, checkpoints, logs and resume are the same for every task.

    Before anything is written (irdet extension): the split rule
    (:func:`irdet.engine.selection.check_selection`), the run directory
    (:func:`irdet.engine.rundir.check_run_dir`) and the checkpoint to resume from
    (:func:`irdet.engine.checkpoints.read_resume_checkpoint`, its weights against the model).
    A resume continues exactly where the checkpoint was written (irdet extension,
    :mod:`irdet.engine.resume`): on the CPU, a run interrupted after step 2 and resumed to
    step 4 ends with the weights of 4 uninterrupted steps, mid-epoch too, with any
    ``data.num_workers`` (also another one than before) and a larger ``train.max_steps``; a
    checkpoint of an older irdet (no random states or loader position) resumes as before,
    with a one-line notice on stderr.
    Checkpoints are written atomically (:class:`~irdet.engine.checkpoints.AtomicCheckpointIO`)
    and temp files of killed runs are deleted at the start. A run that fails before its first
    checkpoint removes what it wrote (and the run directory when this call created it).

    Args:
        cfg: full config (:func:`irdet.config.load_config`).
        data: dataset root (else ``data.root``, then the layout's defaults).
        out: run directory (default ``runs/<config name>``).
        resume: True to continue from ``<out>/checkpoints/last.ckpt``, or a checkpoint path.
        overwrite: delete the run already in ``out`` (``config.yaml``, ``checkpoints/``,
            ``logs/``) and start again.

    Returns:
        the run directory.

    Raises:
        DataError: bad data root or split; the checkpoint to resume from is missing,
            unreadable, not an irdet training checkpoint, or of another model; the run's
            ``best.ckpt`` is unreadable or holds no score of the monitor.
        ConfigError: ``data.val_split`` is the test split or shares images with the training
            or test split; ``out`` holds a run and neither ``resume`` nor ``overwrite`` is
            given; both are given.
        KeyboardInterrupt: Ctrl-C or SIGTERM (to the process alone or to its process group) stopped
            the run; its last checkpoint stays for ``resume``.
    """
    t = cfg["train"]
    task = task_of(cfg)
    root = task.resolve_root(cfg, data)
    out_dir = Path(out or Path("runs") / cfg["name"])
    ckpt_dir = out_dir / "checkpoints"
    check_selection(cfg, root)
    check_run_dir(out_dir, resume, overwrite)
    validate = cfg["data"]["val_split"] is not None
    best = [BestCheckpoint(ckpt_dir, task.monitor)] if validate else []
    ckpt_path = state = None
    if resume:
        for b in best:  # the record of best.ckpt is its own
            b.read_record()
        ckpt_path = ckpt_dir / "last.ckpt" if resume is True else Path(resume)
        state = read_resume_checkpoint(ckpt_path, cfg)
        notice = resume_notice(state)
        if notice:
            print(f"[irdet] {ckpt_path}: {notice}", file=sys.stderr)
    _set_threads(t)
    L.seed_everything(int(t["seed"]), workers=True)
    run_cfg = task.training_config(cfg, root)
    module = DetectorModule(run_cfg)
    datamodule = DataModule(run_cfg, root)
    if state is not None:
        check_resume_weights(ckpt_path, state, module)
        del state
    created = not out_dir.exists()
    if overwrite:
        clear_run(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(ckpt_dir)
    atomic_write_bytes(out_dir / "config.yaml", yaml.safe_dump({**cfg, "data": {**cfg["data"], "root": str(root)}}, sort_keys=False).encode())
    callbacks = [
        *best,
        LastCheckpoint(ckpt_dir, int(t["checkpoint_every_n_steps"])),
        LearningRateMonitor("step"),
        TQDMProgressBar(refresh_rate=10),
        RandomStates(),
    ]
    trainer = L.Trainer(
        **_trainer_kwargs(t),
        max_epochs=int(t["max_epochs"]),
        max_steps=int(t["max_steps"]),
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        logger=CSVLogger(out_dir, name="logs"),
        check_val_every_n_epoch=int(t["val_interval"]),
        log_every_n_steps=int(t["log_every_n_steps"]),
        limit_train_batches=t["limit_train_batches"],
        limit_val_batches=t["limit_val_batches"] if validate else 0,  # no val split: no validation loop
        num_sanity_val_steps=0,
        default_root_dir=out_dir,
    )
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except BaseException as exc:
        if created or not resume:  # a resumed run keeps its folder
            discard_failed_start(out_dir, created)
        if (isinstance(exc, SystemExit) and trainer.interrupted) or _stopped_by_sigterm(exc, trainer):
            _reraise_interrupt()
        raise
    return out_dir


def _stopped_by_sigterm(exc: BaseException, trainer: L.Trainer) -> bool:
    """True when SIGTERM reached the whole process group (GNU ``timeout``, a job scheduler): the
    DataLoader workers die of it first, so the main process gets a RuntimeError about a lost worker
    before Lightning's own graceful SIGTERM stop; that is an interruption, not a failure."""
    return isinstance(exc, RuntimeError) and bool(getattr(trainer, "received_sigterm", False)) \
        and "DataLoader worker" in str(exc)


def _reraise_interrupt() -> None:
    """Lightning answers Ctrl-C with a graceful shutdown, ``SIGINT`` ignored and ``sys.exit(1)``;
    give the caller the KeyboardInterrupt back (the CLI exits 130) and Ctrl-C its default handler."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    raise KeyboardInterrupt from None
