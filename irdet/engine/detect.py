"""``irdet detect``: a model on images, a frame folder or a video; detections and pictures in a folder.

The model's task writes the files (:meth:`irdet.engine.tasks.Task.detect`): single-frame models
``detections.json``, ``overlays/`` and ``summary.json`` through the Python API's prediction;
sequence models ``detections.json``, an annotated video (and ``frames/``, ``tracks.json``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from irdet.engine.predict import Inference, load_model, set_tiling
from irdet.engine.zoo import default_model_for
from irdet.engine.tasks import task_of
from irdet.errors import ConfigError

__all__ = ["detect", "prepare_detect_out", "DETECT_OUTPUTS"]

#: what ``irdet detect`` writes in its out folder (``--overwrite`` clears these first)
DETECT_OUTPUTS = ("detections.json", "summary.json", "overlays", "frames", "tracks.json")


def prepare_detect_out(out, overwrite: bool = False) -> Path:
    """Make ``out`` ready for :func:`detect`: refuse a non-empty folder unless ``overwrite``.

    With ``overwrite``, :data:`DETECT_OUTPUTS` (``detections.json``, ``summary.json``,
    ``overlays/``, ``frames/``, ``tracks.json``) are deleted first, so no overlay of an earlier run survives;
    other files stay (an annotated video is replaced by name when written).

    Returns:
        ``out`` as a Path (created).

    Raises:
        ConfigError: ``out`` is a file, or a non-empty folder and ``overwrite`` is False (the
            message names what is there).

    Source: irdet extension.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: --out is a file, not a folder")
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir()) if out.is_dir() else []
    if entries and not overwrite:
        shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
        raise ConfigError(f"{out}: output folder is not empty ({shown}); pass --overwrite to replace the results "
                          f"of an earlier run, or another --out")
    for name in DETECT_OUTPUTS if overwrite else ():
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def detect(checkpoint, inputs, out: str | Path = "detections", score_thr: float = 0.3, accelerator: str = "auto",
           batch_size: int = 1, num_workers: int = 2, precision: str | None = None, overwrite: bool = False,
           tile=None, tile_overlap: int | None = None, backend: str | None = None, frames: bool = False,
           **options) -> Path:
    """Run a checkpoint on images (files or folders, any size and mode), or a sequence
    checkpoint on one frame folder or video file.

    Single-frame models write ``out/detections.json`` (results format, all kept detections,
    the xml's numbers), ``out/overlays/<image id>.png`` (boxes with score ≥ ``score_thr``; sky
    tinted for BAFE-Net) and ``out/summary.json`` ``{"images": [{"image_id", "path",
    "overlay"}], "skipped": [{"path", "reason"}]}``. Image ids are unique
    (:class:`~irdet.data.datasets.inputs.ImageFolder`: ``dirA/frame.png`` → ``dirA/frame``,
    overlay ``overlays/dirA/frame.png``). Files that cannot be read (corrupt, not an image, a
    non-image file in a folder) are listed in ``skipped`` and the others are still processed
    (irdet extension). They run through the Python API's prediction
    (:meth:`irdet.api.Model.predict`, ``errors="skip"``), so a script gets the same detections.
    Sequence models: :meth:`irdet.engine.tasks.sequence.SequenceTask.detect` (``options``:
    ``fps``, ``save_frames``, ``track``, ``track_radius``; no skipping there; ``track`` with
    a single-frame checkpoint is a ConfigError). The inputs are opened (every path checked)
    before ``out`` is touched; ``out`` must be empty unless ``overwrite``
    (:func:`prepare_detect_out`).

    Args:
        checkpoint: a checkpoint / weights / ONNX file, or None for the shipped model that fits the
            inputs (:func:`irdet.engine.zoo.default_model_for`: the video model on one video file,
            or on one folder with ``frames`` or ``track``; the single-frame model otherwise).
        frames: with no checkpoint, the one input folder holds the frames of one video.
        precision: Lightning precision string; None = the checkpoint config's
            ``train.precision``, resolved for the device (:func:`irdet.engine.precision.resolve_precision`).
        tile, tile_overlap: (h, w) and pixels of the network input, over the checkpoint
            config's ``eval.tile`` / ``eval.tile_overlap``: tiled inference
            (:mod:`irdet.models.tiling`, irdet extension; single-frame checkpoints only).
        backend: :func:`irdet.engine.predict.load_model` (``onnxruntime``: the network run by
            ONNX Runtime; an ``.onnx`` checkpoint implies it).

    Returns:
        the path of ``detections.json``.

    Raises:
        DataError: unreadable checkpoint, a missing input, inputs without any image file.
        ConfigError: ``out`` not empty and ``overwrite`` False; bad tile options; ``track``
            with a single-frame checkpoint. IrdetError: several inputs for a sequence checkpoint.
    """
    if checkpoint is None:  # the shipped single-frame model on images, the video model on a video / frame folder
        checkpoint = default_model_for(inputs, frames=frames or bool(options.get("track")))
    module = load_model(checkpoint, backend)
    set_tiling(module, tile, tile_overlap)
    task = task_of(module.config)
    inference = Inference(module, accelerator, precision)
    opened = task.open_detect_inputs(inference, inputs, **options)  # missing inputs are refused before --out is touched
    out = prepare_detect_out(out, overwrite)
    return task.detect(inference, opened, out, score_thr, batch_size, num_workers, **options)
