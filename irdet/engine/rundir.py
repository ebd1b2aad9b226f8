"""The run directory of :func:`irdet.engine.train.train`: what a run owns in it, when it may
start there, and what a failed start leaves behind.

A run owns :data:`RUN_ENTRIES` (``config.yaml``, ``checkpoints/``, ``logs/``); other files in
the folder (an ablation's lock, evaluations, notes) are never touched. A second ``train`` into
a folder that holds a run is refused unless it resumes that run or ``overwrite`` clears it:
otherwise ``last.ckpt`` and ``config.yaml`` would be overwritten, a second log version
started and the first run's ``best.ckpt`` overwritten. Source: irdet
extension.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from irdet.errors import ConfigError

__all__ = ["RUN_ENTRIES", "run_entries", "check_run_dir", "clear_run", "discard_failed_start"]

#: what a training run writes in its run directory
RUN_ENTRIES = ("config.yaml", "checkpoints", "logs")


def run_entries(out_dir) -> list[str]:
    """The :data:`RUN_ENTRIES` present in ``out_dir`` (a file, or a non-empty folder). Source: irdet extension."""
    out_dir = Path(out_dir)
    found = []
    for name in RUN_ENTRIES:
        p = out_dir / name
        if p.is_file() or (p.is_dir() and any(p.iterdir())):
            found.append(name)
    return found


def check_run_dir(out_dir, resume, overwrite: bool) -> None:
    """Refuse to start a new run in a folder that already holds one.

    Raises:
        ConfigError: ``resume`` and ``overwrite`` both given; or ``out_dir`` holds a
            ``config.yaml``, checkpoints or logs and neither is given (the message names
            them and says to use ``--resume`` or ``--overwrite``).

    Source: irdet extension.
    """
    if resume and overwrite:
        raise ConfigError("give --resume (continue the run) or --overwrite (delete it and start again), not both")
    if resume or overwrite:
        return
    found = run_entries(out_dir)
    if found:
        raise ConfigError(f"{out_dir}: already holds a run ({', '.join(found)}); continue it with --resume, or delete it "
                          f"and start again with --overwrite (or pass another --out)")


def clear_run(out_dir) -> None:
    """Delete the :data:`RUN_ENTRIES` of ``out_dir`` (``--overwrite``); other files stay.

    Raises:
        OSError: an entry cannot be deleted (permissions).

    Source: irdet extension.
    """
    for name in RUN_ENTRIES:
        p = Path(out_dir) / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def discard_failed_start(out_dir, created: bool) -> bool:
    """After a training failure: when no checkpoint was written, remove what the run wrote
    (:data:`RUN_ENTRIES`), and ``out_dir`` itself when this run ``created`` it.

    Returns:
        True when something was removed (False: a checkpoint exists and everything stays).

    Source: irdet extension.
    """
    out_dir = Path(out_dir)
    if any((out_dir / "checkpoints").glob("*.ckpt")):
        return False
    if created:
        shutil.rmtree(out_dir, ignore_errors=True)
    else:
        clear_run(out_dir)
    return True
