"""The main jobs: train, evaluate (a checkpoint or a results file), detect. The CLI calls these."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader
from tqdm import tqdm

from irdet.config import config_task
from irdet.data.densesirst import DenseSIRST, resolve_data_root
from irdet.data.io import atomic_write_bytes, atomic_write_json
from irdet.data.transforms import collate
from irdet.engine.checkpoints import (AtomicCheckpointIO, LastCheckpoint, check_resume_weights, read_checkpoint_file,
                                      read_resume_checkpoint, remove_stale_temp_files)
from irdet.engine import zoo
from irdet.engine.datamodule import DenseSIRSTDataModule, test_transforms_from_cfg
from irdet.engine.module import DetectorModule
from irdet.engine.precision import resolve_precision
from irdet.engine.resume import RandomStates, resume_notice
from irdet.engine.rundir import check_run_dir, clear_run, discard_failed_start
from irdet.engine.selection import check_selection
from irdet.errors import ConfigError, DataError
from irdet.metrics import dets_to_results, evaluate, load_results, save_results, write_report
from irdet.models.tiling import check_tile_options, tile_options

__all__ = ["train", "load_checkpoint", "predict", "evaluate_checkpoint", "evaluate_predictions", "detect",
           "prepare_detect_out", "DETECT_OUTPUTS", "package"]


def _trainer_kwargs(t: dict) -> dict:
    return {"accelerator": t["accelerator"], "devices": t["devices"], "num_nodes": t["num_nodes"],
            "strategy": t["strategy"], "precision": resolve_precision(t["precision"], t["accelerator"])}


def _set_threads(t: dict) -> None:
    if t.get("threads"):
        torch.set_num_threads(int(t["threads"]))


def _checkpoint_precision(cfg: dict) -> str:
    """``train.precision`` of a checkpoint's config (``32-true`` when absent)."""
    return str(cfg.get("train", {}).get("precision") or "32-true")


def set_tiling(module, tile=None, tile_overlap: int | None = None) -> None:
    """Apply ``--tile H W`` / ``--tile-overlap PX`` over the checkpoint config's ``eval.tile`` /
    ``eval.tile_overlap`` (in ``module.config``) and check the result against the model, before
    any inference (irdet extension, :mod:`irdet.models.tiling`).

    Raises:
        ConfigError: tiling asked of a ``task: sequence`` checkpoint; ``tile_overlap`` without a
            tile (neither given nor in the config); bad tile options
            (:func:`irdet.models.tiling.check_tile_options`).
    """
    ev = dict(module.config.get("eval") or {})
    if tile is not None:
        ev["tile"] = [int(tile[0]), int(tile[1])]
    if tile_overlap is not None:
        if ev.get("tile") is None:
            raise ConfigError("--tile-overlap needs --tile H W (or eval.tile in the checkpoint's config)")
        ev["tile_overlap"] = int(tile_overlap)
    opts = tile_options({"eval": ev})
    if not opts:
        return
    if config_task(module.config) == "sequence":
        raise ConfigError("tiled inference (--tile / eval.tile) is for single-frame checkpoints, not task: sequence ones")
    check_tile_options(module.model, **opts)
    module.config = {**module.config, "eval": ev}


def train(cfg: dict, data: str | None = None, out: str | Path | None = None, resume: str | bool | None = None,
          overwrite: bool = False) -> Path:
    """Train a detector (BAFE-Net paper §V-A protocol by default) with PyTorch Lightning.

    Writes ``<out>/config.yaml``, ``<out>/checkpoints/last.ckpt`` (every
    ``train.checkpoint_every_n_steps`` steps, at each epoch's last step, after each validation
    and at ``train.max_steps``: the final model; :class:`~irdet.engine.checkpoints.LastCheckpoint`) and, when
    ``data.val_split`` is set, ``best.ckpt`` (highest ``val/mAP07`` on it); CSV logs under
    ``<out>/logs/``. ``data.val_split: null`` (the default: train on ``trainval_v2``, keep the
    last checkpoint) runs no validation and writes no ``best.ckpt``. ``task: sequence`` configs
    train the multi-frame detector (:func:`irdet.engine.sequence.build_sequence_training`;
    ``best`` on ``val/AP50``) with the same trainer, checkpoints, logs and resume.

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
        data: dataset root (else ``data.root``, ``$IRDET_DATA``, the default path).
        out: run directory (default ``runs/<config name>``).
        resume: True to continue from ``<out>/checkpoints/last.ckpt``, or a checkpoint path.
        overwrite: delete the run already in ``out`` (``config.yaml``, ``checkpoints/``,
            ``logs/``) and start again.

    Returns:
        the run directory.

    Raises:
        DataError: bad data root or split; the checkpoint to resume from is missing,
            unreadable, not an irdet training checkpoint, or of another model.
        ConfigError: ``data.val_split`` is the test split or shares images with the training
            or test split; ``out`` holds a run and neither ``resume`` nor ``overwrite`` is
            given; both are given.
    """
    t = cfg["train"]
    sequence = config_task(cfg) == "sequence"  # task hook (multi-frame): module/data/monitor from irdet.engine.sequence
    if sequence:
        from irdet.engine.sequence import build_sequence_training, resolve_sequence_root

        root = resolve_sequence_root(data, cfg)
    else:
        root = resolve_data_root(data or cfg["data"]["root"])
    out_dir = Path(out or Path("runs") / cfg["name"])
    ckpt_dir = out_dir / "checkpoints"
    check_selection(cfg, root)
    check_run_dir(out_dir, resume, overwrite)
    ckpt_path = state = None
    if resume:
        ckpt_path = ckpt_dir / "last.ckpt" if resume is True else Path(resume)
        state = read_resume_checkpoint(ckpt_path, cfg)
        notice = resume_notice(state)
        if notice:
            print(f"[irdet] {ckpt_path}: {notice}", file=sys.stderr)
    _set_threads(t)
    L.seed_everything(int(t["seed"]), workers=True)
    if sequence:
        module, datamodule, monitor, _ = build_sequence_training(cfg, root)
    else:
        module = DetectorModule(cfg)
        datamodule = DenseSIRSTDataModule(cfg, root)
        monitor = "val/mAP07"
    if state is not None:
        check_resume_weights(ckpt_path, state, module)
        del state
    validate = cfg["data"]["val_split"] is not None
    created = not out_dir.exists()
    if overwrite:
        clear_run(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(ckpt_dir)
    atomic_write_bytes(out_dir / "config.yaml", yaml.safe_dump({**cfg, "data": {**cfg["data"], "root": str(root)}}, sort_keys=False).encode())
    best = [ModelCheckpoint(ckpt_dir, filename="best", monitor=monitor, mode="max", save_top_k=1, auto_insert_metric_name=False)]
    callbacks = [
        *(best if validate else []),
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
        if isinstance(exc, SystemExit) and trainer.interrupted:
            _reraise_interrupt()
        raise
    return out_dir


def _reraise_interrupt() -> None:
    """Lightning answers Ctrl-C with a graceful shutdown, ``SIGINT`` ignored and ``sys.exit(1)``;
    give the caller the KeyboardInterrupt back (the CLI exits 130) and Ctrl-C its default handler."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    raise KeyboardInterrupt from None


def _checkpoint_task(path: Path) -> str:
    """Task of a checkpoint's stored config (``detect`` or ``sequence``); reads the file memory-mapped."""
    return config_task(read_checkpoint_file(path)["hyper_parameters"]["config"])


def load_checkpoint(path: str | Path | None = None) -> DetectorModule:
    """Load a model on the CPU, in eval mode (a :class:`SequenceModule` for ``task: sequence``).

    Args:
        path: a Lightning training checkpoint (``.ckpt``), a packaged weights file (``.pt``,
            :func:`irdet.engine.zoo.load_weights`), an ``irdet export`` ONNX file (``.onnx``:
            an ONNX Runtime module, :func:`irdet.deploy.runtime.load_onnx`), or None for the
            shipped default model (:data:`irdet.engine.zoo.DEFAULT_MODEL`).

    Raises:
        DataError: missing file, or not an irdet checkpoint / weights / ONNX file; None when
            this irdet ships no default model.
        IrdetError: an ``.onnx`` file without the ``export`` extra installed.
    """
    if path is None:
        path = zoo.weights_path()
        if not path.is_file():
            raise DataError(path, "this irdet has no shipped default model yet: give a checkpoint "
                                  "(irdet train ... then RUN/checkpoints/last.ckpt)")
    path = Path(path)
    if path.suffix == ".onnx":
        from irdet.deploy.runtime import load_onnx

        return load_onnx(path)
    if zoo.is_weights_file(path):
        return zoo.load_weights(path)
    if not path.is_file():
        raise DataError(path, "checkpoint not found")
    try:
        module_cls = DetectorModule
        if _checkpoint_task(path) == "sequence":
            from irdet.engine.sequence import SequenceModule as module_cls
        module = module_cls.load_from_checkpoint(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - corrupt / foreign checkpoints are user errors
        raise DataError(path, f"not a readable irdet checkpoint ({exc.__class__.__name__}: {str(exc)[:200]})") from None
    module.eval()
    return module


#: inference backends of ``irdet evaluate`` / ``irdet detect`` / :func:`irdet.load`
BACKENDS = ("pytorch", "onnxruntime")


def load_model(path: str | Path | None = None, backend: str | None = None):
    """:func:`load_checkpoint`, on the inference ``backend``.

    Args:
        backend: None (by the file: ``onnxruntime`` for ``.onnx``, else ``pytorch``),
            ``"pytorch"``, or ``"onnxruntime"``: a checkpoint / weights file is then exported to
            ONNX in memory (dynamic H/W) and run by ONNX Runtime
            (:func:`irdet.deploy.runtime.onnx_module`; irdet extension).

    Raises:
        ConfigError: unknown backend; ``pytorch`` asked of an ``.onnx`` file.
        DataError / IrdetError: as :func:`load_checkpoint`; the export extra missing.
    """
    if backend not in (None, *BACKENDS):
        raise ConfigError(f"--backend must be one of {list(BACKENDS)}, got {backend!r}")
    module = load_checkpoint(path)
    current = getattr(module, "backend", "pytorch")
    if backend in (None, current):
        return module
    if current == "onnxruntime":
        raise ConfigError(f"{path}: an ONNX model runs with the onnxruntime backend only")
    from irdet.deploy.runtime import onnx_module

    return onnx_module(module)


def inference_precision(module, precision: str | None = None) -> str:
    """The precision to run ``module`` in: ``precision``, else its config's ``train.precision``;
    ``32-true`` for ONNX Runtime modules, whose precision was fixed at export.

    Raises:
        ConfigError: a precision other than ``32-true`` asked of an ONNX Runtime module.
    """
    if getattr(module, "backend", "pytorch") != "pytorch":
        if precision not in (None, "32", "32-true"):
            raise ConfigError(f"--precision {precision}: an ONNX model runs in the precision it was exported in "
                              f"(float32, or float16 with irdet export --half)")
        return "32-true"
    return precision or _checkpoint_precision(module.config)


def predict(module: DetectorModule, dataset, batch_size: int = 2, accelerator: str = "auto", num_workers: int = 2,
            collate_fn=collate, precision: str = "32-true") -> list[dict]:
    """Run ``module`` over ``dataset`` (test transforms) with a Lightning progress bar.

    Returns one dict per image (see :class:`DetectorModule`; skipped markers of
    :class:`~irdet.data.densesirst.ImageFolder` included). ``collate_fn``: the batcher
    (:func:`irdet.engine.sequence.collate_clips` for clips). ``precision``: a Lightning
    precision string, run as :func:`irdet.engine.precision.resolve_precision` decides for
    ``accelerator`` (decoding stays fp32).
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_fn)
    trainer = L.Trainer(accelerator=accelerator, devices=1, logger=False, enable_checkpointing=False,
                        precision=resolve_precision(precision, accelerator), callbacks=[TQDMProgressBar(refresh_rate=5)])
    batches = trainer.predict(module, loader)
    return [item for batch in batches for item in batch]


def _report(gts_edges: dict, sizes: dict, dets: dict, out: Path, pdfa_score_thr: float, root=None) -> dict:
    """Metrics (false alarms split by background with the ``SkySeg`` masks of ``root``, a note
    when it has none) written to ``out``."""
    from irdet.metrics.background import SkyMasks

    gts = {i: b for i, b in gts_edges.items()}
    sky = None if root is None else SkyMasks(root, gts)
    metrics = evaluate(gts, dets, sizes, pdfa_score_thr=pdfa_score_thr, sky_masks=sky)
    write_report(out, metrics)
    return metrics


def evaluate_checkpoint(checkpoint, data: str | None = None, split: str | None = "test_v2", out: str | Path = "eval",
                        accelerator: str = "auto", batch_size: int | None = None, num_workers: int = 2,
                        precision: str | None = None, tile=None, tile_overlap: int | None = None,
                        backend: str | None = None) -> dict:
    """Evaluate a checkpoint on a split (Table II protocol, or SSTNet's for sequences): writes ``predictions.json``, ``metrics.json``,
    ``pr_curve.png`` in ``out`` and returns the metrics dict. The false alarms are also split
    by background with the root's ``SkySeg`` masks (:mod:`irdet.metrics.background`; a note
    in place of the split when an image has no mask).

    A ``task: sequence`` checkpoint is evaluated by :func:`irdet.engine.sequence.evaluate_module`
    (SSTNet protocol; ``split`` None = its ``data.test_split``, ``data`` None = its training root).
    ``precision`` None = the checkpoint config's ``train.precision`` (resolved for the device,
    :func:`irdet.engine.precision.resolve_precision`). ``tile`` (h, w) / ``tile_overlap`` (pixels
    of the network input) override the checkpoint config's ``eval.tile`` / ``eval.tile_overlap``:
    tiled inference, :mod:`irdet.models.tiling` (irdet extension; ConfigError for bad values).
    ``backend``: :func:`load_model` (``onnxruntime``: the same data, decoding and metrics, the
    network run by ONNX Runtime; an ``.onnx`` checkpoint implies it).
    """
    module = load_model(checkpoint, backend)
    set_tiling(module, tile, tile_overlap)
    cfg = module.config
    precision = inference_precision(module, precision)
    if config_task(cfg) == "sequence":
        from irdet.engine.sequence import evaluate_module

        return evaluate_module(module, data, split, out, accelerator, batch_size, num_workers, precision=precision)
    split = split or "test_v2"
    root = resolve_data_root(data)
    dataset = DenseSIRST(root, split, sky_mask=None, transforms=test_transforms_from_cfg(cfg))
    gts, sizes = dataset.ground_truth()  # validate every annotation before spending time on inference
    preds = predict(module, dataset, batch_size or cfg["eval"]["batch_size"], accelerator, num_workers, precision=precision)
    dets = {p["image_id"]: (p["boxes"], p["scores"]) for p in preds}
    missing = set(dataset.ids) - set(dets)
    if missing:  # never drop an image silently
        raise RuntimeError(f"{len(missing)} images of {split} got no prediction pass: {sorted(missing)[:5]}")
    out = Path(out)
    save_results(out / "predictions.json", dets_to_results(dets))
    return _report(gts, sizes, dets, out, cfg["eval"]["pdfa_score_thr"], root)


def package(checkpoint, out, data: str | None = None, split: str | None = "test_v2", accelerator: str = "auto",
            num_workers: int = 2, evaluate: bool = True) -> tuple[Path, dict]:
    """Turn a training checkpoint into a float16 weights file and score the file itself.

    Writes ``out`` (``.pt``) with ``<stem>.yaml`` and ``<stem>.metrics.json`` beside it
    (:func:`irdet.engine.zoo.write_weights`). With ``evaluate``, the written weights are
    loaded back and evaluated on ``split`` (:func:`evaluate_checkpoint`, outputs in
    ``<stem>_eval/`` beside ``out``), and those metrics are stored in the file, so
    ``irdet evaluate`` on the packaged file reproduces them. Source: irdet extension.

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
        metrics = evaluate_checkpoint(out, data, split, out.with_name(out.stem + "_eval"), accelerator,
                                      num_workers=num_workers)
        metrics = {"split": split or module.config["data"]["test_split"],
                   **{k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}}
        zoo.write_weights(module, out, metrics, source=Path(checkpoint).name)  # the same float16 tensors
    return out, metrics


def evaluate_predictions(predictions, data: str | None = None, split: str | None = "test_v2", out: str | Path = "eval",
                         pdfa_score_thr: float = 0.5, ann=None) -> dict:
    """Evaluate a COCO-style results file (any method's predictions) on a split (false alarms
    also split by background, as :func:`evaluate_checkpoint`).

    With ``ann`` (a COCO annotation file of a sequence split), the file is evaluated with the
    moving-target protocol instead (:func:`irdet.engine.sequence.evaluate_predictions`).

    Raises:
        DataError: unreadable/malformed results file, or results for images not in the split
            (naming the file); bad annotation files (naming them).
    """
    if ann is not None:
        from irdet.engine.sequence import evaluate_predictions as evaluate_sequence_predictions

        return evaluate_sequence_predictions(predictions, ann, out, pdfa_score_thr, data)
    split = split or "test_v2"
    dets = load_results(predictions)
    dataset = DenseSIRST(resolve_data_root(data), split, sky_mask=None)
    unknown = sorted(set(dets) - set(dataset.ids))
    if unknown:
        raise DataError(predictions, f"{len(unknown)} image ids are not in split {split}: {', '.join(unknown[:5])}")
    gts, sizes = dataset.ground_truth()
    return _report(gts, sizes, dets, Path(out), pdfa_score_thr, dataset.root)


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
           tile=None, tile_overlap: int | None = None, backend: str | None = None, **sequence_options) -> Path:
    """Run a checkpoint on images (files or folders, any size and mode).

    Writes ``out/detections.json`` (results format, all kept detections, the xml's numbers),
    ``out/overlays/<image id>.png`` (boxes with score ≥ ``score_thr``; sky tinted for BAFE-Net)
    and ``out/summary.json`` ``{"images": [{"image_id", "path", "overlay"}], "skipped":
    [{"path", "reason"}]}``. Image ids are unique (:class:`~irdet.data.densesirst.ImageFolder`:
    ``dirA/frame.png`` → ``dirA/frame``, overlay ``overlays/dirA/frame.png``). Files that
    cannot be read (corrupt, not an image, a non-image file in a folder) are listed in
    ``skipped`` and the others are still processed (irdet extension). ``out`` must be empty
    unless ``overwrite`` (:func:`prepare_detect_out`). A ``task: sequence`` checkpoint takes
    one frame folder or video file instead (:func:`irdet.engine.sequence.detect_module`;
    ``sequence_options``: ``fps``, ``save_frames``, ``track``, ``track_radius``; no skipping
    there; ``track`` with a single-frame checkpoint is a ConfigError).

    Args:
        precision: Lightning precision string; None = the checkpoint config's
            ``train.precision``, resolved for the device (:func:`irdet.engine.precision.resolve_precision`).
        tile, tile_overlap: (h, w) and pixels of the network input, over the checkpoint
            config's ``eval.tile`` / ``eval.tile_overlap``: tiled inference
            (:mod:`irdet.models.tiling`, irdet extension; single-frame checkpoints only).
        backend: :func:`load_model` (``onnxruntime``: the network run by ONNX Runtime; an
            ``.onnx`` checkpoint implies it).

    Single-frame checkpoints run through the Python API (:meth:`irdet.api.Model.predict`,
    ``errors="skip"``), so a script gets the same detections as this command.

    Returns:
        the path of ``detections.json``.

    Raises:
        DataError: unreadable checkpoint, a missing input, inputs without any image file.
        ConfigError: ``out`` not empty and ``overwrite`` False; bad tile options.
    """
    module = load_model(checkpoint, backend)
    set_tiling(module, tile, tile_overlap)
    precision = inference_precision(module, precision)
    if config_task(module.config) == "sequence":
        from irdet.engine.sequence import detect_module

        out = prepare_detect_out(out, overwrite)
        return detect_module(module, inputs, out, score_thr, accelerator, precision=precision, **sequence_options)
    if sequence_options.get("track"):
        raise ConfigError("--track links detections across the frames of a video or frame folder: it needs a "
                          "sequence (task: sequence) checkpoint")
    from irdet.api import Model

    model = Model(module, accelerator, precision)
    dataset = model.open_inputs(inputs)  # missing inputs are refused before --out is touched
    out = prepare_detect_out(out, overwrite)
    results = model.predict(dataset, batch_size=batch_size, num_workers=num_workers, errors="skip", progress=True)
    save_results(out / "detections.json", results.to_results())
    images = []
    for r in tqdm(results, desc="overlays", unit="img"):
        overlay_path = Path("overlays") / f"{r.image_id}.png"
        r.save(out / overlay_path, score_thr)
        images.append({"image_id": r.image_id, "path": r.path, "overlay": overlay_path.as_posix()})
    atomic_write_json(out / "summary.json", {"images": images, "skipped": results.skipped})
    return out / "detections.json"
