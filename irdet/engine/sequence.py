"""Training, evaluation and detection for the multi-frame (``task: sequence``) detector.

The single-frame machinery is reused, not copied: :func:`irdet.engine.runner.train` builds the
trainer, checkpoints (``best.ckpt`` on ``val/AP50`` here, ``last.ckpt`` every N steps and at
epoch ends), CSV logs, resume and progress bars, and only asks this module for the
LightningModule / DataModule (:func:`build_sequence_training`); :class:`SequenceModule` is a
:class:`~irdet.engine.module.DetectorModule` with the model, the batch layout and the
validation metric swapped; prediction goes through :func:`irdet.engine.runner.predict`.

Data: :class:`irdet.data.sequences.SequenceDataset` in one of its
layouts (``sequence.layout``: ``irdet`` synthetic sets, ``irdst``, ``daub``, ``itsdt``) or
explicit ``sequence.ann_files``; splits ``data.train_split`` / ``val_split`` / ``test_split``;
clips of ``model.temporal.num_frames`` frames; :func:`irdet.data.sequences.clip_transforms`
(resize to ``data.img_size``, flip ``data.flip_prob`` in training, pad to ``data.pad_divisor``).

Evaluation: :func:`irdet.metrics.coco.coco_evaluate` (the SSTNet protocol: COCO AP50 via
pycocotools, P/R/F1, plus Pd/Fa). Detection: a frame folder or a video file (PyAV), clips slid
over the sequence with per-frame features cached (each frame goes through the backbone once),
an annotated video (H.264 via PyAV, PNG frames when no encoder is available) and
``detections.json``.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections import deque
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import ConcatDataset
from torchvision.transforms.v2 import functional as TF
from tqdm import tqdm

from irdet.data.io import default_file_mode
from irdet.engine.datamodule import DenseSIRSTDataModule
from irdet.engine.module import DetectorModule, gather_predictions
from irdet.engine.precision import autocast_context, resolve_precision
from irdet.errors import DataError, IrdetError
from irdet.metrics.coco import coco_evaluate, dets_to_coco_results, load_coco, write_coco_report
from irdet.metrics.synthetic import synthetic_metrics
from irdet.models.temporal import build_sequence_detector

__all__ = [
    "collate_clips",
    "resolve_sequence_root",
    "open_split",
    "SequenceDataModule",
    "SequenceModule",
    "build_sequence_training",
    "evaluate_module",
    "evaluate_predictions",
    "detect_module",
    "FrameSource",
    "VideoWriter",
    "available_video_codec",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: H.264 first (libx264 is in PyAV's wheels), then MPEG-4 part 2.
VIDEO_CODECS = ("libx264", "h264", "mpeg4")


# ---------------------------------------------------------------------------------------- data
def collate_clips(samples: list[dict]) -> dict:
    """Batch clip items of :class:`~irdet.data.sequences.SequenceDataset` (after clip transforms).

    Returns a dict with ``video`` (N, T, 3, Hmax, Wmax) float32 in [0, 255] (zero-padded at the
    bottom/right to the largest clip), lists ``boxes`` ((G_i, 4) float32 XYXY pixel-edge in
    input pixels), ``labels`` ((G_i,) int64), ``image_id`` (str), ``coco_id`` (int),
    ``frame_ids`` (list of T str), ``orig_size`` ((H, W) of the original frames),
    ``img_size`` ((h, w) after resizing, before padding; the video's size when absent), and
    ``track_ids`` when present.

    Raises:
        ValueError: clips of different T.
    """
    t = samples[0]["video"].shape[0]
    if any(s["video"].shape[0] != t for s in samples):
        raise ValueError(f"clips of different lengths in one batch: {[s['video'].shape[0] for s in samples]}")
    hmax = max(s["video"].shape[-2] for s in samples)
    wmax = max(s["video"].shape[-1] for s in samples)
    video = torch.zeros(len(samples), t, 3, hmax, wmax, dtype=torch.float32)
    for i, s in enumerate(samples):
        v = s["video"].as_subclass(torch.Tensor)
        video[i, :, :, : v.shape[-2], : v.shape[-1]] = v
    batch = {
        "video": video,
        "boxes": [s["boxes"].as_subclass(torch.Tensor).float().reshape(-1, 4) for s in samples],
        "labels": [s["labels"].as_subclass(torch.Tensor).long() for s in samples],
        "image_id": [s["image_id"] for s in samples],
        "coco_id": [int(s["coco_id"]) for s in samples],
        "frame_ids": [list(s["frame_ids"]) for s in samples],
        "orig_size": [tuple(int(v) for v in s["orig_size"]) for s in samples],
        "img_size": [tuple(int(v) for v in s.get("img_size", s["video"].shape[-2:])) for s in samples],
    }
    if all("track_ids" in s for s in samples):
        batch["track_ids"] = [s["track_ids"].as_subclass(torch.Tensor) for s in samples]
    return batch


def resolve_sequence_root(data, cfg: dict) -> Path:
    """Dataset root of a sequence run: ``data`` argument, else ``data.root`` of the config.

    Raises:
        DataError: no root given, or it does not exist.
    """
    root = data or cfg["data"].get("root")
    if not root:
        raise DataError("<data root>", "no dataset root for the sequence task: pass --data ROOT or set data.root")
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "dataset root not found (pass --data ROOT)")
    return root


def num_frames(cfg: dict) -> int:
    """T of a sequence config (``model.temporal.num_frames``)."""
    return int(cfg["model"]["temporal"]["num_frames"])


def open_split(cfg: dict, root, split: str, train: bool = False, skip_empty: bool | None = None):
    """A :class:`~irdet.data.sequences.SequenceDataset` for ``split`` with the config's clip transforms.

    ``sequence.ann_files[split]`` (a COCO json relative to ``root``) when given, else the
    layout ``sequence.layout`` (:meth:`SequenceDataset.from_layout`). ``skip_empty`` defaults
    to ``sequence.train_skip_empty`` / ``eval_skip_empty``.

    Raises:
        DataError: missing annotation file / frames (naming the file).
    """
    from irdet.data.sequences import SequenceDataset, clip_transforms

    d, s = cfg["data"], cfg["sequence"]
    if skip_empty is None:
        skip_empty = s["train_skip_empty"] if train else s["eval_skip_empty"]
    tf = clip_transforms(d["img_size"], train=train, flip_prob=d["flip_prob"], pad_divisor=d["pad_divisor"],
                         crop=d["crop"], crop_p_target=d["crop_p_target"])
    kw = {"context": s["context"], "skip_empty": bool(skip_empty)}
    ann_files = s.get("ann_files") or {}
    if split in ann_files:
        return SequenceDataset(root, ann_files[split], s.get("image_dir"), num_frames(cfg), tf, **kw)
    return SequenceDataset.from_layout(root, split, s["layout"], num_frames(cfg), tf, **kw)


class SequenceDataModule(DenseSIRSTDataModule):
    """Train on ``data.train_split`` (× ``data.repeat`` per epoch), validate on ``data.val_split``,
    test / predict on ``data.test_split``; batches from :func:`collate_clips` (loaders as
    :class:`~irdet.engine.datamodule.DenseSIRSTDataModule`).

    Args:
        cfg: a ``task: sequence`` config. root: the dataset root.
    """

    collate_fn = staticmethod(collate_clips)

    def setup(self, stage: str | None = None) -> None:
        d = self.cfg["data"]
        if stage in (None, "fit") and self.train_set is None:
            base = open_split(self.cfg, self.root, d["train_split"], train=True)
            self.train_set = ConcatDataset([base] * max(1, int(d["repeat"])))
        if stage in (None, "fit", "validate") and self.val_set is None and d["val_split"] is not None:  # null: no validation
            self.val_set = open_split(self.cfg, self.root, d["val_split"])
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = open_split(self.cfg, self.root, d["test_split"])


# ---------------------------------------------------------------------------------------- module
def _restrict(gt: dict, ids) -> dict:
    ids = set(ids)
    return {**gt, "images": [im for im in gt["images"] if im["id"] in ids],
            "annotations": [a for a in gt["annotations"] if a["image_id"] in ids]}


class SequenceModule(DetectorModule):
    """:class:`DetectorModule` for clips: a :class:`~irdet.models.temporal.SequenceDetector`,
    batches of :func:`collate_clips`, validation with the SSTNet protocol.

    Args:
        config: the full ``task: sequence`` config (saved in checkpoints; a checkpoint alone
            rebuilds the model).

    Logged: ``train/loss*``; after each validation ``val/AP50`` (the checkpoint monitor),
    ``val/AP50_95``, ``val/precision``, ``val/recall``, ``val/F1``, ``val/Pd``, ``val/Fa``.
    ``predict_step`` returns one dict per clip: ``image_id`` (current frame id), ``coco_id``,
    ``boxes`` (K, 4) float32 pixel-edge in original-frame pixels, ``scores`` (K,),
    ``orig_size``, ``frame_ids``.
    """

    build_model = staticmethod(build_sequence_detector)
    input_key = "video"

    def _predict(self, batch: dict) -> list[dict]:
        dets, _ = self.model.predict(batch)
        return [{
            "image_id": batch["image_id"][i],
            "coco_id": int(batch["coco_id"][i]),
            "boxes": det["boxes"].float().cpu().numpy(),
            "scores": det["scores"].float().cpu().numpy(),
            "orig_size": tuple(batch["orig_size"][i]),
            "frame_ids": list(batch["frame_ids"][i]),
        } for i, det in enumerate(dets)]

    val_key = "coco_id"

    def on_validation_epoch_end(self) -> None:
        preds = gather_predictions(self._val_preds)
        self._val_preds = {}
        if self.trainer.sanity_checking:
            return
        if self._val_ground_truth is None:
            self._val_ground_truth = load_coco(self.trainer.datamodule.val_set.coco_dict, source="validation split")
        gt = self._val_ground_truth
        if self.trainer.limit_val_batches not in (None, 1.0):  # partial validation: only the frames seen
            gt = _restrict(gt, preds)
        cat = gt["categories"][0]["id"]
        m = coco_evaluate(gt, dets_to_coco_results(preds, cat), pdfa_score_thr=self.config["eval"]["pdfa_score_thr"])
        for key in ("AP50", "AP50_95", "precision", "recall", "F1", "Pd", "Fa"):
            self.log(f"val/{key}", float(m[key]), prog_bar=key in ("AP50", "F1"), sync_dist=False, rank_zero_only=True)


def build_sequence_training(cfg: dict, data=None) -> tuple[SequenceModule, SequenceDataModule, str, Path]:
    """What :func:`irdet.engine.runner.train` needs for ``task: sequence``.

    Returns:
        ``(module, datamodule, monitor, root)``: ``monitor = "val/AP50"`` (``best.ckpt``);
        the module's stored config carries the absolute ``data.root``, so evaluating a
        checkpoint needs no ``--data`` (from any working directory).

    Raises:
        DataError: no/missing root; ConfigError: bad model config.
    """
    root = resolve_sequence_root(data, cfg)
    cfg = {**cfg, "data": {**cfg["data"], "root": str(root.resolve())}}
    return SequenceModule(cfg), SequenceDataModule(cfg, root), "val/AP50", root


# ---------------------------------------------------------------------------------------- evaluation
def evaluate_module(module: SequenceModule, data=None, split: str | None = None, out="eval", accelerator: str = "auto",
                    batch_size: int | None = None, num_workers: int = 2, precision: str | None = None) -> dict:
    """Evaluate a sequence checkpoint on a split with the SSTNet protocol.

    Writes ``out/predictions.json`` (COCO results, int ``image_id`` = COCO ids, directly usable
    with pycocotools' ``loadRes``), ``out/metrics.json`` and ``out/pr_curve.png``.

    Args:
        module: a loaded :class:`SequenceModule`. data: dataset root (default: the one it was
            trained on). split: split name (default ``data.test_split``). precision: Lightning
            precision string (default ``train.precision``; resolved for the device).

    Returns:
        the metrics dict of :func:`irdet.metrics.coco.coco_evaluate`, plus those of
        :func:`irdet.metrics.synthetic.synthetic_metrics` (AP50 per SNR bin, false alarms on
        static distractors) where the annotations allow them.

    Raises:
        DataError: bad root / annotation / frame files. RuntimeError: a frame got no prediction.
    """
    from irdet.engine.runner import predict

    cfg = module.config
    root = resolve_sequence_root(data, cfg)
    split = split or cfg["data"]["test_split"]
    dataset = open_split(cfg, root, split)
    gt = load_coco(dataset.coco_dict, source=dataset.ann_path)  # validate before spending time on inference
    preds = predict(module, dataset, batch_size or cfg["eval"]["batch_size"], accelerator, num_workers,
                    collate_fn=collate_clips, precision=precision or cfg["train"].get("precision") or "32-true")
    dets = {p["coco_id"]: (p["boxes"], p["scores"]) for p in preds}
    missing = {im["id"] for im in gt["images"]} - set(dets)
    if missing:  # never drop a frame silently
        raise RuntimeError(f"{len(missing)} frames of {split} got no prediction pass: {sorted(missing)[:5]}")
    results = dets_to_coco_results(dets, gt["categories"][0]["id"])
    out = Path(out)
    from irdet.metrics import save_results

    save_results(out / "predictions.json", results)
    metrics = coco_evaluate(gt, results, pdfa_score_thr=cfg["eval"]["pdfa_score_thr"])
    metrics.update(synthetic_metrics(gt, results, cfg["eval"]["pdfa_score_thr"]))  # per-SNR AP50, distractor FA
    metrics["split"] = split
    write_coco_report(out, metrics)
    return metrics


def evaluate_predictions(predictions, ann, out="eval", pdfa_score_thr: float = 0.5, data=None) -> dict:
    """Evaluate a COCO results file against a COCO annotation file (SSTNet protocol).

    ``image_id`` in the results: COCO int ids or frame names (see :mod:`irdet.metrics.coco`).
    ``ann`` relative paths are tried as given, then under ``data``. Writes ``metrics.json`` and
    ``pr_curve.png`` in ``out``; returns the metrics.

    Raises:
        DataError: unreadable / malformed annotation or results file, results for frames not in
            the annotation file (one line naming the file).
    """
    ann_path = Path(ann)
    if not ann_path.is_file() and data and (Path(data) / ann_path).is_file():
        ann_path = Path(data) / ann_path
    metrics = coco_evaluate(ann_path, predictions, pdfa_score_thr=pdfa_score_thr, results_source=predictions)
    metrics.update(synthetic_metrics(ann_path, predictions, pdfa_score_thr))  # per-SNR AP50, distractor FA
    write_coco_report(out, metrics)
    return metrics


# ---------------------------------------------------------------------------------------- detection
def _natural_key(name: str):
    """Sort key: digit runs compare as integers (``"9" < "10"``, ``"f2" < "f10"``)."""
    return [(0, int(tok), "") if tok.isdigit() else (1, 0, tok) for tok in re.split(r"(\d+)", name) if tok]


def available_video_codec() -> str | None:
    """The first encoder of :data:`VIDEO_CODECS` the installed PyAV provides (None if none)."""
    try:
        import av
    except ImportError:  # pragma: no cover - av is a dependency
        return None
    for name in VIDEO_CODECS:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - UnknownCodecError and friends
            continue
    return None


class FrameSource:
    """Frames of a sequence: a folder of images, one image, or a video file (PyAV).

    * folder: files with an image suffix directly inside it, sorted numerically by name
      (digit runs compare as integers: ``2.png`` before ``10.png``); frame ids
      ``"<folder name>/<file stem>"``;
    * image file: a one-frame sequence;
    * any other file: decoded with PyAV (first video stream); frame ids
      ``"<file stem>/<frame index>"`` (0-based).

    Iterating yields ``(frame_id, image)`` with image (H, W, 3) float32 in [0, 255]
    (:func:`irdet.data.io.read_image` conventions). ``fps`` is the video's average rate (None
    for images); ``num_frames`` the count if known.

    Raises:
        DataError (naming the path): not found, a folder without images, a file PyAV cannot
            open or that has no video stream, an unreadable frame.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.fps: float | None = None
        self.files: list[Path] | None = None
        if self.path.is_dir():
            files = [f for f in self.path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
            if not files:
                raise DataError(self.path, f"folder has no frames ({', '.join(IMAGE_SUFFIXES)})")
            self.files = sorted(files, key=lambda f: _natural_key(f.name))
            self.name = self.path.name
        elif self.path.is_file() and self.path.suffix.lower() in IMAGE_SUFFIXES:
            self.files = [self.path]
            self.name = self.path.parent.name
        elif self.path.is_file():
            self.name = self.path.stem
            self._probe_video()
        else:
            raise DataError(self.path, "file or folder not found")

    def _probe_video(self) -> None:
        import av

        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise DataError(self.path, "no video stream")
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
                self.fps = float(rate) if rate else None
                self._count = int(stream.frames) or None
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - any demuxer error means an unreadable file
            raise DataError(self.path, f"cannot read as a video ({exc.__class__.__name__}: {exc})") from None

    @property
    def num_frames(self) -> int | None:
        return len(self.files) if self.files is not None else self._count

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        if self.files is not None:
            from irdet.data.io import read_image

            for f in self.files:
                yield f"{self.name}/{f.stem}", read_image(f)
            return
        import av

        try:
            with av.open(str(self.path)) as container:
                for i, frame in enumerate(container.decode(video=0)):
                    yield f"{self.name}/{i}", frame.to_ndarray(format="rgb24").astype(np.float32)
        except Exception as exc:  # noqa: BLE001
            raise DataError(self.path, f"cannot decode the video ({exc.__class__.__name__}: {exc})") from None


class VideoWriter:
    """Write (H, W, 3) uint8 RGB frames to a video with PyAV, atomically (temp file + rename).

    Codec: ``codec`` or the first available of :data:`VIDEO_CODECS` (H.264 ``libx264``,
    ``yuv420p``, in an ``.mp4``). Odd frame sizes are padded by one black row/column (4:2:0
    needs even sizes). Use as a context manager; the file appears on a clean exit only, with
    the mode of a plain new file (:func:`irdet.data.io.default_file_mode`).

    Raises:
        RuntimeError: no encoder available (callers fall back to PNG frames).
    """

    def __init__(self, path, fps: float = 10.0, codec: str | None = None):
        import av

        self.path = Path(path)
        self.codec = codec or available_video_codec()
        if self.codec is None:
            raise RuntimeError("no video encoder in the installed PyAV")
        self.fps = fps
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=self.path.suffix)
        os.close(fd)
        os.chmod(self._tmp, default_file_mode())  # mkstemp's 0600 -> 0666 & ~umask, as a plain file
        self._av = av
        self._container = av.open(self._tmp, mode="w")
        self._stream = None

    def write(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if h % 2 or w % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))
        if self._stream is None:
            from fractions import Fraction

            self._stream = self._container.add_stream(self.codec, rate=Fraction(self.fps).limit_denominator(1000))
            self._stream.width, self._stream.height = frame.shape[1], frame.shape[0]
            self._stream.pix_fmt = "yuv420p"
        vf = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)

    def close(self, ok: bool = True) -> None:
        try:
            if ok and self._stream is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
            self._container.close()
            if ok and self._stream is not None:
                os.replace(self._tmp, self.path)
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(ok=exc_type is None)
        return False


def _prepare(image: np.ndarray, img_size, pad_divisor: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(H, W, 3) [0, 255] → (3, H', W') resized to ``img_size`` (stretch, antialiased bilinear, as
    :func:`irdet.data.sequences.clip_transforms`) and zero-padded to a multiple of ``pad_divisor``;
    also returns (h, w) before padding."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
    if img_size is not None:
        x = TF.resize(x, [int(img_size[0]), int(img_size[1])], antialias=True)
    h, w = x.shape[-2:]
    ph = math.ceil(h / pad_divisor) * pad_divisor - h
    pw = math.ceil(w / pad_divisor) * pad_divisor - w
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph))
    return x, (h, w)


def detect_module(module: SequenceModule, inputs, out="detections", score_thr: float = 0.3, accelerator: str = "auto",
                  fps: float | None = None, save_frames: bool = False, video: bool = True,
                  precision: str = "32-true", track: bool = False, track_radius: float = 8.0) -> Path:
    """Detect targets in a frame folder or a video with a sequence checkpoint.

    Each frame is the current frame of a clip of its T − 1 predecessors (clamped at the first
    frame, as in training); every frame goes through backbone + neck once and its stride-8 map
    is reused by the T clips that contain it (identical to running the clips, since the model
    is in eval mode). Writes:

    * ``out/detections.json``: results list ``[{"image_id": "<name>/<frame>", "bbox": [x, y,
      w, h], "score", "category_id": 1}, ...]`` of all kept detections (score ≥ the head's
      ``score_thr``, 0.001 in the sequence configs), original-frame pixels;
    * ``out/<name>.mp4``: the frames with boxes of score ≥ ``score_thr`` drawn (H.264 via PyAV,
      at ``fps``, else the video's rate, else 10); when no encoder is available, or with
      ``save_frames``, ``out/frames/<frame>.png`` as well;
    * with ``track``: ``out/tracks.json`` (:func:`irdet.tracking.save_tracks`: ByteTrack with
      centre-distance association of gate ``track_radius`` px, tracks started by detections
      of score ≥ ``score_thr``), and each drawn box labelled ``#<track id>`` in the video.

    Args:
        inputs: one path (a list of one is accepted): frame folder, image, or video file.
        precision: Lightning precision string, resolved for the device
            (:func:`irdet.engine.precision.resolve_precision`) and run as autocast
            (:func:`~irdet.engine.precision.autocast_context`); decoding stays fp32.

    Returns:
        the path of ``detections.json``.

    Raises:
        IrdetError: more than one input. DataError: unreadable input (naming it).
    """
    from irdet.data.io import atomic_save_image
    from irdet.metrics import dets_to_results, save_results
    from irdet.visualize import overlay

    if isinstance(inputs, (list, tuple)):
        if len(inputs) != 1:
            raise IrdetError(f"a sequence checkpoint takes one frame folder or video file, got {len(inputs)} inputs")
        inputs = inputs[0]
    source = FrameSource(inputs)
    cfg = module.config
    device = torch.device("cuda" if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu")
    model = module.model.to(device).eval()
    amp = autocast_context(resolve_precision(precision, device.type), device.type)
    t = model.num_frames
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    history: deque = deque(maxlen=t)
    dets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    linker = None
    if track:  # ByteTrack, centre-distance association (irdet.tracking)
        from irdet.tracking import TrackLinker

        linker = TrackLinker(radius=track_radius, score_thr=score_thr, low_score_thr=min(0.1, score_thr))
    writer = None
    if video:
        try:
            writer = VideoWriter(out / f"{source.name or 'video'}.mp4", fps or source.fps or 10.0)
        except RuntimeError:
            writer = None
    save_frames = save_frames or writer is None
    ok = False
    try:
        for frame_id, image in tqdm(source, total=source.num_frames, desc=f"detect {source.name}", unit="frame"):
            x, img_size = _prepare(image, cfg["data"]["img_size"], int(cfg["data"]["pad_divisor"]))
            orig = image.shape[:2]
            with torch.no_grad(), amp:
                feat, _ = model.frame_features(x[None].to(device))
                history.append(feat[0])
                clip = [history[0]] * (t - len(history)) + list(history)
                det = model.predict_features(torch.stack(clip)[None], [img_size], [orig])[0]
            boxes = det["boxes"].float().cpu().numpy()
            scores = det["scores"].float().cpu().numpy()
            dets[frame_id] = (boxes, scores)
            keep = scores >= score_thr
            ids = linker.update(boxes, scores) if linker is not None else None  # track ids, -1 = none yet
            labels = None if ids is None else [f"#{i}" if i > 0 else "" for i in ids[keep]]
            drawn = overlay(image, boxes[keep], labels=labels)
            if writer is not None:
                writer.write(drawn)
            if save_frames:
                atomic_save_image(out / "frames" / f"{frame_id.rsplit('/', 1)[-1]}.png", drawn)
        ok = True
    finally:
        if writer is not None:
            writer.close(ok=ok)
    path = out / "detections.json"
    save_results(path, dets_to_results(dets))
    if linker is not None:
        from irdet.tracking import save_tracks

        save_tracks(out / "tracks.json", linker, list(dets), str(source.path))
    return path
