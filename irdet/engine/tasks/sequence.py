"""``task: sequence``: clips of T frames for the multi-frame (moving-target) detector.

Data: :class:`irdet.data.datasets.sequences.SequenceDataset` in one of its layouts (``sequence.layout``:
``irdet`` synthetic sets, ``irdst``, ``daub``, ``itsdt``) or explicit ``sequence.ann_files``;
splits ``data.train_split`` / ``val_split`` / ``test_split``; clips of
``model.temporal.num_frames`` frames (:func:`irdet.data.datasets.sequences.clip_indices`: the current
frame and its T − 1 predecessors, the first frame repeated at the start);
:func:`irdet.data.transforms.clip_transforms` (resize to ``data.img_size``, flip
``data.flip_prob`` in training, pad to ``data.pad_divisor``); batches of
:func:`irdet.data.collate.collate_clips`.

Validation and evaluation: :func:`irdet.metrics.coco.coco_evaluate` (the SSTNet protocol:
COCO AP50 via pycocotools, P/R/F1, plus Pd/Fa), with the synthetic benchmarks' AP50 per SNR
bin and false alarms on static distractors (:mod:`irdet.metrics.synthetic`).

Inference on a frame folder, a video file (PyAV) or a list of frames (:func:`clip_detections`):
each frame goes through backbone + neck once and its stride-8 map is reused by the T clips
that contain it; ``irdet detect`` writes an annotated video (H.264 via PyAV, PNG frames when no
encoder is available), ``detections.json`` and, with ``--track``, ``tracks.json``.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torchvision import tv_tensors
from tqdm import tqdm

from irdet.data.coco import load_coco
from irdet.data.collate import collate_clips
from irdet.data.datasets.inputs import image_from, is_path
from irdet.data.datasets.sequences import SequenceDataset, clip_indices
from irdet.data.io import atomic_save_image, read_image
from irdet.data.transforms import clip_transforms
from irdet.data.video import FrameSource
from irdet.engine.detections import Results, make_result
from irdet.engine.tasks.base import EvalSet, Task
from irdet.errors import DataError, IrdetError
from irdet.metrics import dets_to_results, save_results
from irdet.metrics.coco import coco_evaluate, dets_to_coco_results, format_coco_table, write_coco_report
from irdet.metrics.synthetic import SNR_EDGES, format_synthetic_table, snr_key, synthetic_metrics
from irdet.models import build_sequence_detector
from irdet.visualize import VideoWriter, overlay

__all__ = ["SequenceTask", "resolve_sequence_root", "num_frames", "clip_detections", "frames_of"]


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


def _dataset(cfg: dict, root, split: str, transforms, **kw) -> SequenceDataset:
    """``sequence.ann_files[split]`` (a COCO json relative to ``root``) when given, else the
    layout ``sequence.layout`` (:meth:`SequenceDataset.from_layout`)."""
    s = cfg["sequence"]
    kw = {"context": s["context"], **kw}
    ann_files = s.get("ann_files") or {}
    if split in ann_files:
        return SequenceDataset(root, ann_files[split], s.get("image_dir"), num_frames(cfg), transforms, **kw)
    return SequenceDataset.from_layout(root, split, s["layout"], num_frames(cfg), transforms, **kw)


def _restrict(gt: dict, ids) -> dict:
    ids = set(ids)
    return {**gt, "images": [im for im in gt["images"] if im["id"] in ids],
            "annotations": [a for a in gt["annotations"] if a["image_id"] in ids]}


def frames_of(frames) -> tuple[Iterator[tuple[str, np.ndarray, str | None]], int | None]:
    """The frames of one sequence: ``(iterable of (frame_id, (H, W, 3) float32 image in [0, 255],
    path or None), frame count or None)``.

    Args:
        frames: a video file, a frame folder or an image (:class:`~irdet.data.video.FrameSource`:
            its ids), or a list of frames (paths and/or in-memory images; ids: file stems,
            ``frame_<i>`` for in-memory ones, ``~2`` ... appended to repeated names).

    Raises:
        DataError: an empty list, a missing / unreadable file (naming it), an in-memory frame
            that is not an image (``<input i>``).
    """
    if not isinstance(frames, (list, tuple)):
        src = FrameSource(frames)
        files = src.files
        if files is not None:
            return ((fid, img, str(f)) for (fid, img), f in zip(src, files)), len(files)
        return ((fid, img, None) for fid, img in src), src.num_frames
    if not frames:
        raise DataError("<frames>", "no frames given")
    ids: dict[str, int] = {}

    def frame_id(i, x):
        base = Path(x).stem if is_path(x) else f"frame_{i}"
        ids[base] = ids.get(base, 0) + 1
        return base if ids[base] == 1 else f"{base}~{ids[base]}"

    def gen():
        for i, x in enumerate(frames):
            if is_path(x):
                yield frame_id(i, x), read_image(x), str(x)
            else:
                yield frame_id(i, x), image_from(x, f"<input {i}>"), None

    return gen(), len(frames)


def clip_detections(inference, frames, total: int | None = None, desc: str = "detect", progress: bool = False):
    """Detections of every frame of one sequence, each frame the current frame of its clip.

    The clip of frame t is :func:`irdet.data.datasets.sequences.clip_indices` (t and its T − 1
    predecessors, the first frame repeated at the start), as in training and evaluation. Each
    frame is transformed as the test clips (:func:`irdet.data.transforms.clip_transforms`:
    resize, pad) and goes through backbone + neck once (``model.frame_features``); its map is
    cached for the T clips that contain it (identical to running the clips, the model being in
    eval mode; an ONNX model caches the frames and runs each clip).

    Args:
        inference: an :class:`~irdet.engine.predict.Inference` of a sequence model.
        frames: iterable of ``(frame_id, (H, W, 3) float32 image, path or None)``
            (:func:`frames_of`).

    Yields:
        ``(frame_id, image, path, boxes, scores)``: boxes (K, 4) float32 XYXY pixel-edge in
        original-frame pixels, scores (K,) float32, all the model keeps (its head's
        ``score_thr``).
    """
    cfg = inference.config
    model = inference.module.model
    t = model.num_frames
    transform = clip_transforms(cfg["data"]["img_size"], train=False, pad_divisor=int(cfg["data"]["pad_divisor"]))
    cache: deque = deque(maxlen=t)  # the maps of the last T frames
    amp = inference.amp()
    for position, (frame_id, image, path) in enumerate(tqdm(frames, total=total, desc=desc, unit="frame",
                                                             disable=not progress)):
        frame = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
        item = transform({"video": tv_tensors.Video(frame[None])})
        x = item["video"].as_subclass(torch.Tensor)
        with torch.no_grad(), amp:
            feat, _ = model.frame_features(x.to(inference.device))
            cache.append(feat[0])
            first = position - len(cache) + 1  # position of cache[0]
            clip = [cache[k - first] for k in clip_indices(position, t)]
            det = model.predict_features(torch.stack(clip)[None], [tuple(item["img_size"])], [image.shape[:2]])[0]
        yield frame_id, image, path, det["boxes"].float().cpu().numpy(), det["scores"].float().cpu().numpy()


class SequenceTask(Task):
    """Clips of T frames: see the module docstring.

    Prediction items: one per clip, ``image_id`` (current frame id), ``coco_id``, ``boxes``
    (K, 4) float32 pixel-edge in original-frame pixels, ``scores`` (K,), ``orig_size``,
    ``frame_ids``. A training run's module stores the absolute ``data.root``, so evaluating a
    checkpoint needs no ``--data`` (from any working directory).
    """

    name = "sequence"
    input_key = "video"
    input_layout = "N,T,3,H,W"
    val_key = "coco_id"
    monitor = "val/AP50"
    val_metrics = ("AP50", "AP50_95", "precision", "recall", "F1", "Pd", "Fa")
    val_prog_bar = ("AP50", "F1")
    val_log = {"sync_dist": False, "rank_zero_only": True}
    #: synthetic benchmarks add AP50 per SNR bin (SNR_EDGES) and the distractor columns ("–" elsewhere)
    synthetic_columns = (*(snr_key(lo, hi) for lo, hi in zip(SNR_EDGES, SNR_EDGES[1:])),
                         "distractor_fa_per_frame", "distractor_AP50_cost")
    result_metrics = ("AP50", "AP50_95", "precision", "recall", "F1", "Pd", "Fa", *synthetic_columns)
    table_columns = ("AP50", "precision", "recall", "F1", "Pd", "Fa", *synthetic_columns)
    unused_keys = (("data", "tiny_boxes"),)
    root_in_run_key = True  # which synthetic benchmark
    streams = True

    # ------------------------------------------------------------------ model
    def build_model(self, model_cfg: dict):
        return build_sequence_detector(model_cfg)

    def cost(self, cfg: dict) -> dict:
        """Parameters and MACs of one T-frame clip at ``data.img_size`` (the evaluation frame size)."""
        from irdet.models.complexity import complexity

        model = build_sequence_detector(cfg["model"])
        stats = complexity(model, cfg["data"]["img_size"], frames=model.num_frames)
        return {"params": stats["params"], "macs": stats["macs"]}

    def example_shape(self, model, batch: int, h: int, w: int) -> tuple[int, ...]:
        return (batch, int(model.num_frames), 3, h, w)

    # ------------------------------------------------------------------ data
    def resolve_root(self, cfg: dict, data) -> Path:
        return resolve_sequence_root(data, cfg)

    def training_config(self, cfg: dict, root: Path) -> dict:
        return {**cfg, "data": {**cfg["data"], "root": str(Path(root).resolve())}}

    def open_split(self, cfg: dict, root: Path, split: str, train: bool = False) -> SequenceDataset:
        """The split with the config's clip transforms; frames with targets only when
        ``sequence.train_skip_empty`` / ``eval_skip_empty``.

        Raises:
            DataError: missing annotation file / frames (naming the file).
        """
        d, s = cfg["data"], cfg["sequence"]
        skip_empty = s["train_skip_empty"] if train else s["eval_skip_empty"]
        tf = clip_transforms(d["img_size"], train=train, flip_prob=d["flip_prob"], pad_divisor=d["pad_divisor"],
                             crop=d["crop"], crop_p_target=d["crop_p_target"])
        return _dataset(cfg, root, split, tf, skip_empty=bool(skip_empty))

    collate = staticmethod(collate_clips)

    def split_images(self, cfg: dict, root: Path, split: str) -> set[str]:
        """Absolute frame paths (without extension) of the split (annotation JSON parsed, after
        the layout's split aliases; frame files not opened)."""
        ds = _dataset(cfg, Path(root), split, None, skip_empty=False, check_files=False)
        base = os.path.abspath(ds.image_dir)
        return {os.path.normpath(os.path.join(base, image_id)) for image_id in ds.image_ids}

    def selection_fix(self) -> str:
        return "select on a split that shares no frames with the training and test splits (--set data.val_split=NAME)"

    # ------------------------------------------------------------------ training
    def prediction_items(self, module, batch: dict) -> list[dict]:
        dets, _ = module.model.predict(batch)
        return [{
            "image_id": batch["image_id"][i],
            "coco_id": int(batch["coco_id"][i]),
            "boxes": det["boxes"].float().cpu().numpy(),
            "scores": det["scores"].float().cpu().numpy(),
            "orig_size": tuple(batch["orig_size"][i]),
            "frame_ids": list(batch["frame_ids"][i]),
        } for i, det in enumerate(dets)]

    def val_ground_truth(self, val_set):
        return load_coco(val_set.coco_dict, source="validation split")

    def validation_metrics(self, cfg: dict, truth, preds: dict, partial: bool) -> dict[str, float]:
        gt = _restrict(truth, preds) if partial else truth  # partial validation: only the frames seen
        cat = gt["categories"][0]["id"]
        m = coco_evaluate(gt, dets_to_coco_results(preds, cat), pdfa_score_thr=cfg["eval"]["pdfa_score_thr"])
        return {key: float(m[key]) for key in self.val_metrics}

    # ------------------------------------------------------------------ evaluation
    def eval_set(self, cfg: dict, root: Path, split: str | None) -> EvalSet:
        """``split`` (default ``data.test_split``) with its COCO ground truth (validated before
        any inference)."""
        split = split or cfg["data"]["test_split"]
        dataset = self.open_split(cfg, root, split)
        return EvalSet(dataset, load_coco(dataset.coco_dict, source=dataset.ann_path), root, split)

    def report(self, cfg: dict, ev: EvalSet, preds: list[dict], out: Path) -> dict:
        """The SSTNet protocol's metrics (:func:`irdet.metrics.coco.coco_evaluate`) plus those of
        :func:`irdet.metrics.synthetic.synthetic_metrics` (AP50 per SNR bin, false alarms on
        static distractors) where the annotations allow them, and ``split``;
        ``predictions.json`` holds COCO results (int ``image_id`` = COCO ids, directly usable
        with pycocotools' ``loadRes``)."""
        gt = ev.truth
        dets = {p["coco_id"]: (p["boxes"], p["scores"]) for p in preds}
        missing = {im["id"] for im in gt["images"]} - set(dets)
        if missing:  # never drop a frame silently
            raise RuntimeError(f"{len(missing)} frames of {ev.split} got no prediction pass: {sorted(missing)[:5]}")
        results = dets_to_coco_results(dets, gt["categories"][0]["id"])
        save_results(out / "predictions.json", results)
        metrics = coco_evaluate(gt, results, pdfa_score_thr=cfg["eval"]["pdfa_score_thr"])
        # per-SNR AP50, distractor FA and AP50 cost (the plain AP50 is not evaluated twice)
        metrics.update(synthetic_metrics(gt, results, cfg["eval"]["pdfa_score_thr"], ap50=metrics["AP50"]))
        metrics["split"] = ev.split
        write_coco_report(out, metrics)
        return metrics

    def evaluate_results(self, predictions, data, split: str | None, out: Path, pdfa_score_thr: float,
                         ann=None) -> dict:
        """A COCO results file against the COCO annotation file ``ann`` (``split`` unused).

        ``image_id`` in the results: COCO int ids or frame names (see :mod:`irdet.metrics.coco`).
        ``ann`` relative paths are tried as given, then under ``data``.

        Raises:
            DataError: unreadable / malformed annotation or results file, results for frames
                not in the annotation file (one line naming the file).
        """
        ann_path = Path(ann)
        if not ann_path.is_file() and data and (Path(data) / ann_path).is_file():
            ann_path = Path(data) / ann_path
        metrics = coco_evaluate(ann_path, predictions, pdfa_score_thr=pdfa_score_thr, results_source=predictions)
        metrics.update(synthetic_metrics(ann_path, predictions, pdfa_score_thr, ap50=metrics["AP50"]))
        write_coco_report(out, metrics)
        return metrics

    def format_metrics(self, metrics: dict) -> str:
        """The COCO table, then (synthetic benchmarks) AP50 per SNR bin and distractor false alarms."""
        return "\n".join(t for t in (format_coco_table(metrics), format_synthetic_table(metrics)) if t)

    # ------------------------------------------------------------------ inference
    def stream(self, inference, frames, score_thr: float | None = None, progress: bool = False):
        """:class:`~irdet.engine.detections.Result` of each frame of ``frames`` (:func:`frames_of`),
        as it is read (:func:`clip_detections`); each keeps its frame (in-memory and decoded
        frames as ``source``, files by ``path``)."""
        source, total = frames_of(frames)
        for index, (frame_id, image, path, boxes, scores) in enumerate(
                clip_detections(inference, source, total, "detect", progress)):
            item = {"image_id": frame_id, "boxes": boxes, "scores": scores, "orig_size": tuple(image.shape[:2]),
                    "path": path}
            yield make_result(item, score_thr, source=image if path is None else None, frame_index=index)

    def predict(self, inference, inputs, score_thr: float | None, batch_size: int, num_workers: int,
                errors: str, progress: bool) -> Results:
        """:meth:`stream` as a list (frames decoded from a video are not kept; ``batch_size``,
        ``num_workers`` and ``errors`` do not apply: frames are never skipped)."""
        video = not isinstance(inputs, (list, tuple))
        results = Results()
        for r in self.stream(inference, inputs, score_thr, progress):
            if video and r.path is None:  # a decoded video frame: not kept in a list of results
                r.source = None
            results.append(r)
        return results

    def open_detect_inputs(self, inference, inputs, **options) -> FrameSource:
        """One frame folder, image or video file (a list of one is accepted).

        Raises:
            IrdetError: more than one input. DataError: unreadable input (naming it).
        """
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 1:
                raise IrdetError(f"a sequence checkpoint takes one frame folder or video file, got {len(inputs)} inputs")
            inputs = inputs[0]
        return FrameSource(inputs)

    def detect(self, inference, inputs: FrameSource, out: Path, score_thr: float, batch_size: int = 1,
               num_workers: int = 0, fps: float | None = None, save_frames: bool = False, video: bool = True,
               track: bool = False, track_radius: float = 8.0) -> Path:
        """Detect targets in a frame folder or a video (:func:`clip_detections`). Writes:

        * ``out/detections.json``: results list ``[{"image_id": "<name>/<frame>", "bbox": [x, y,
          w, h], "score", "category_id": 1}, ...]`` of all kept detections (score ≥ the head's
          ``score_thr``, 0.001 in the sequence configs), original-frame pixels;
        * ``out/<name>.mp4``: the frames with boxes of score ≥ ``score_thr`` drawn (H.264 via
          PyAV, at ``fps``, else the video's rate, else 10); when no encoder is available, or
          with ``save_frames``, ``out/frames/<frame>.png`` as well;
        * with ``track``: ``out/tracks.json`` (:func:`irdet.tracking.save_tracks`: ByteTrack with
          centre-distance association of gate ``track_radius`` px, tracks started by detections
          of score ≥ ``score_thr``), and each drawn box labelled ``#<track id>`` in the video.

        ``batch_size`` and ``num_workers`` do not apply (frames are read in order in the main
        process).
        """
        from irdet.tracking import TrackLinker, save_tracks

        source = inputs
        dets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        linker = None
        if track:  # ByteTrack, centre-distance association (irdet.tracking)
            linker = TrackLinker(radius=track_radius, score_thr=score_thr, low_score_thr=min(0.1, score_thr))
        writer = None
        if video:
            try:
                writer = VideoWriter(out / f"{source.name or 'video'}.mp4", fps or source.fps or 10.0)
            except RuntimeError:
                writer = None
        save_frames = save_frames or writer is None
        frames = ((frame_id, image, None) for frame_id, image in source)
        ok = False
        try:
            for frame_id, image, _, boxes, scores in clip_detections(inference, frames, source.num_frames,
                                                                     f"detect {source.name}", True):
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
            save_tracks(out / "tracks.json", linker, list(dets), str(source.path))
        return path
