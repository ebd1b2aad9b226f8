"""The tasks of the engine, by the ``task`` config value: :data:`TASKS` (name → :class:`Task`).

``task: detect`` (the default): single-frame images (:class:`DetectTask`); ``task: sequence``:
clips of T frames (:class:`SequenceTask`). The engine calls ``task_of(cfg)`` and never asks
which task a config is; adding a task is one module plus one line in :data:`TASKS`.
"""

from __future__ import annotations

from irdet.config import config_task
from irdet.engine.tasks.base import EvalSet, Task
from irdet.engine.tasks.detect import DetectTask
from irdet.engine.tasks.sequence import SequenceTask
from irdet.errors import ConfigError

__all__ = ["TASKS", "Task", "EvalSet", "task_of", "results_task"]

#: ``task`` config value → the task
TASKS: dict[str, Task] = {task.name: task for task in (DetectTask(), SequenceTask())}


def task_of(cfg: dict) -> Task:
    """The task of a config (:func:`irdet.config.config_task`).

    Raises:
        ConfigError: an unknown ``task`` (the message lists the known ones).
    """
    name = config_task(cfg)
    if name not in TASKS:
        raise ConfigError(f"task must be one of {list(TASKS)}, got {name!r}")
    return TASKS[name]


def results_task(ann=None) -> Task:
    """The task whose protocol evaluates a results file: the moving-target protocol
    (``sequence``) when a COCO annotation file ``ann`` of a sequence split is given, else the
    single-frame one (``detect``) on a dataset split."""
    return TASKS["sequence" if ann is not None else "detect"]
