"""``irdet package``: a training checkpoint turned into a float16 weights file that carries its own score."""

from __future__ import annotations

from pathlib import Path

from irdet.engine import zoo
from irdet.engine.evaluate import evaluate_checkpoint
from irdet.engine.precision import resolve_precision
from irdet.engine.predict import inference_precision, load_checkpoint
from irdet.errors import DataError

__all__ = ["package"]


def package(checkpoint, out, data: str | None = None, split: str | None = None, accelerator: str = "auto",
            num_workers: int = 2, evaluate: bool = True) -> tuple[Path, dict]:
    """Turn a training checkpoint into a float16 weights file and score the file itself.

    Writes ``out`` (``.pt``) with ``<stem>.yaml`` and ``<stem>.metrics.json`` beside it
    (:func:`irdet.engine.zoo.write_weights`). With ``evaluate``, the written weights are
    loaded back and evaluated on ``split`` (None: the config's ``data.test_split``, ``test_v2``
    for DenseSIRST models, ``test`` for the synthetic sequence benchmarks;
    :func:`irdet.engine.evaluate.evaluate_checkpoint`,
    outputs in ``<stem>_eval/`` beside ``out``), and those metrics are stored in the file, so
    ``irdet evaluate`` on the packaged file reproduces them: they are scored in the config's
    ``train.precision`` as it resolves on ``accelerator`` (bf16 autocast only where the CPU has
    the instructions), that precision is stored as the metrics' ``eval_precision``, and
    evaluation and detection of the file default to it
    (:func:`irdet.engine.predict.inference_precision`). Source: irdet extension.

    Returns:
        ``(out, metrics)``.

    Raises:
        DataError: unreadable checkpoint, a file over the size limit, bad data.
    """
    if Path(checkpoint).suffix == ".onnx":
        raise DataError(checkpoint, "an ONNX model cannot be packaged: package its training checkpoint")
    module = load_checkpoint(checkpoint)
    out = zoo.write_weights(module, out, source=Path(checkpoint).name)
    metrics: dict = {}
    if evaluate:
        precision = resolve_precision(inference_precision(module), accelerator)  # a checkpoint: its train.precision
        metrics = evaluate_checkpoint(out, data, split, out.with_name(out.stem + "_eval"), accelerator,
                                      num_workers=num_workers, precision=precision)
        metrics = {"split": split or module.config["data"]["test_split"],
                   **{k: v for k, v in metrics.items() if isinstance(v, (int, float, str))},
                   "eval_precision": precision}
        zoo.write_weights(module, out, metrics, source=Path(checkpoint).name)  # the same float16 tensors
    return out, metrics
