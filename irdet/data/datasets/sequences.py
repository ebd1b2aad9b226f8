"""Moving-target clips over a COCO-format dataset: :class:`SequenceDataset` and clip indexing.

Where a split's files lie is a layout's business (:mod:`irdet.data.datasets.sequence_layouts`:
the SSTNet / Tridos public layout of IRDST, DAUB and ITSDT-15K, and irdet's synthetic sets);
the annotation file is read and checked by :func:`irdet.data.coco.load_coco`. The clip rule of
the reference loaders (``dataloader_for_{DAUB,IRDST,ITSDT}.py`` of SSTNet / Tridos): the
current frame ``n`` and frames ``n−1 … n−T+1`` of the same folder, each clamped at 0
(``max(n − k, 0)``), ordered oldest → current; only the current frame's boxes are used; T = 5
(Tridos uses 8 for ITSDT). The evaluation iterates over the frames that have annotations
(``cocoGt.imgToAnns``).

irdet reading (this module)
---------------------------
* ``file_name`` is ``<sequence>/<frame number>.<ext>``: the **sequence** is the folder part
  (``"images/test/data6"`` for DAUB, ``"seq0003"`` for irdet's synthetic sets), the frame
  number is the integer stem (``"12"``, ``"0012"``); frames are ordered by that integer,
  never lexically (frame 10 comes after frame 9). Frames directly under the image folder form
  one sequence named ``""``.
* The file of a frame is ``<root>/<image_dir>/<file_name>``; ``image_dir=None`` picks, from
  the first frame, ``<root>`` (public layout: ``file_name`` starts with ``images/``) or
  ``<root>/images`` (``file_name`` relative to the image folder).
* Boxes: COCO ``bbox [x, y, w, h]`` → XYXY pixel-edge ``(x, y, x + w, y + h)`` (the COCO
  convention *is* pixel-edge: ``x`` is the left edge of the first covered column), float32,
  not clipped; ``w <= 0`` or ``h <= 0`` is reported as an error, never dropped. ``iscrowd = 1``
  annotations are COCO "ignore" regions: they stay in :attr:`SequenceDataset.coco` (the
  evaluator ignores them) and are left out of the training boxes.
* Labels: COCO category ids mapped to ``0 .. K−1`` in sorted id order
  (:attr:`SequenceDataset.categories`).
* Context frames (``context="listed"``, default): the T−1 frames *listed in the JSON* before
  the current one in its sequence, clamped at the first listed frame (repeated). With
  consecutive numbering this is the reference's ``max(n − k, 0)``. ``context="numbers"``
  reproduces the reference literally: frame numbers ``max(n − k, 0)`` read from disk even when
  the JSON does not list them (same extension and zero padding as the current frame).
* Every frame listed in ``images`` (after the split filter) is a "current" frame once, with
  zero or more boxes; ``skip_empty=True`` keeps only frames with at least one box, as the
  reference evaluation does.

Source: SSTNet/Tridos public code for the folder/JSON/clip rules; the split list files,
``context`` and ``skip_empty`` are irdet extensions. Conventions of :mod:`irdet.data.io`
(pixel-edge boxes, images float32 in [0, 255], :class:`~irdet.errors.DataError` naming the file).
"""

from __future__ import annotations

import collections
import contextlib
import io
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from irdet.data.coco import load_coco
from irdet.data.datasets.sequence_layouts import match_split_list, sequence_layout
from irdet.data.io import image_size, read_image
from irdet.errors import DataError

__all__ = ["SequenceDataset", "parse_frame_name", "clip_indices"]


def parse_frame_name(file_name: str) -> tuple[str, int, str]:
    """Split a COCO ``file_name`` into (sequence, frame number, extension).

    ``"images/test/data6/12.bmp"`` → ``("images/test/data6", 12, ".bmp")``; ``"7.png"`` →
    ``("", 7, ".png")``. Backslashes are read as ``/``.

    Raises:
        ValueError: the stem is not a non-negative integer.
    """
    p = PurePosixPath(str(file_name).replace("\\", "/"))
    stem = p.stem
    if not stem.isdigit():
        raise ValueError(f"file_name {file_name!r} is not '<sequence>/<frame number>.<ext>' (stem {stem!r})")
    seq = p.parent.as_posix()
    return ("" if seq == "." else seq), int(stem), p.suffix


def clip_indices(position: int, frames: int) -> list[int]:
    """Positions (in a sequence's ordered frame list) of the clip ending at ``position``.

    Oldest → current, clamped at 0: ``clip_indices(1, 4) == [0, 0, 0, 1]``.
    """
    return [max(position - k, 0) for k in range(frames - 1, -1, -1)]


class SequenceDataset(Dataset):
    """Clips of T frames over a COCO-format moving-target dataset (SSTNet/Tridos public layout).

    Args:
        root: dataset root (the folder the reference code calls ``dataset_img_path``).
        ann_file: COCO JSON of one split, absolute or relative to ``root``.
        image_dir: folder the ``file_name`` values are relative to (absolute or relative to
            ``root``); None = auto (``root`` or ``root/images``, see the module docstring).
        frames: clip length T ≥ 1 (T = 1: single-frame clips).
        transforms: callable applied to the item dict (e.g. :func:`irdet.data.transforms.clip_transforms`).
        split_file: optional text file restricting the current frames (entries matched as
            :func:`irdet.data.datasets.sequence_layouts.match_split_list` says). Context frames
            still come from the whole sequence. irdet extension.
        context: ``"listed"`` (default) or ``"numbers"``, see the module docstring.
        skip_empty: keep only current frames with at least one (non-crowd) box.
        check_files: check at construction that every listed frame file exists.

    Items (dicts; ``T`` = ``frames``):

    * ``video``: ``tv_tensors.Video`` (T, 3, H, W) float32 in [0, 255], oldest → current
      (index T−1 = current frame);
    * ``boxes``: ``tv_tensors.BoundingBoxes`` (N, 4) XYXY pixel-edge boxes of the current
      frame, ``canvas_size=(H, W)``;
    * ``labels``: int64 (N,) 0-based class indices;
    * ``image_id``: str, the current frame's ``file_name`` without extension (``"seq01/12"``);
    * ``coco_id``: int, the current frame's COCO image id;
    * ``frame_ids``: list of the T frames' image ids (clamping repeats included);
    * ``orig_size``: (H, W) of the frames;
    * ``track_ids``: int64 (N,), only when the annotation file has ``track_id`` on its
      annotations (−1 for an annotation without one).

    Attributes:
        sequences: sequence name → ordered image ids of its listed frames (sequences that
            have at least one current frame).
        categories: COCO category dicts sorted by id; label ``k`` is ``categories[k]``.
        num_classes: ``len(categories)``.
        has_track_ids: whether items carry ``track_ids``.

    Raises:
        DataError (naming the file): missing or malformed annotation file (the rules of
            :func:`irdet.data.coco.load_coco`, with file names required and boxes of
            ``w > 0``, ``h > 0``), a non-numeric frame stem, frame numbers listed twice in a
            sequence, frames of one sequence declared with different sizes, a missing frame
            file (construction), an unreadable frame or one whose size differs from its
            sequence (when read), an unknown or empty split list.
    """

    def __init__(
        self,
        root,
        ann_file,
        image_dir=None,
        frames: int = 5,
        transforms: Callable[[dict], dict] | None = None,
        split_file=None,
        *,
        context: str = "listed",
        skip_empty: bool = False,
        check_files: bool = True,
    ):
        if int(frames) != frames or frames < 1:
            raise ValueError(f"frames must be a positive integer, got {frames!r}")
        if context not in ("listed", "numbers"):
            raise ValueError(f"context must be 'listed' or 'numbers', got {context!r}")
        self.root = Path(root)
        self.ann_path = Path(ann_file) if Path(ann_file).is_absolute() else self.root / ann_file
        self.frames = int(frames)
        self.transforms = transforms
        self.context = context
        self.skip_empty = bool(skip_empty)
        self._parse(load_coco(self.ann_path, require_sizes=False, require_file_names=True, positive_boxes=True))
        self.image_dir = self._resolve_image_dir(image_dir)
        self._check_sizes()
        if check_files:
            for f in range(len(self._frames)):
                p = self.frame_path(f)
                if not p.is_file():
                    raise DataError(p, f"frame file not found (listed in {self.ann_path})")
        items = list(range(len(self._frames)))
        items.sort(key=lambda i: (self._frames[i]["seq"], self._frames[i]["num"]))
        self.split_file = None if split_file is None else Path(split_file)
        if self.split_file is not None:
            by_name = {}
            for i, fr in enumerate(self._frames):
                by_name[fr["file_name"]] = i
                by_name[fr["image_id"]] = i
            keep = match_split_list(self.split_file, self.ann_path, self._seq_frames, by_name, self._by_coco_id)
            items = [i for i in items if i in keep]
        if self.skip_empty:
            items = [i for i in items if len(self._frames[i]["boxes"])]
        self._items = items
        seqs = sorted({self._frames[i]["seq"] for i in items})
        self.sequences: dict[str, list[str]] = {
            s: [self._frames[i]["image_id"] for i in self._seq_frames[s]] for s in seqs
        }
        self._coco = None
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._cache_size = 2 * self.frames

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_layout(
        cls,
        root,
        split: str,
        dataset: str = "irdst",
        frames: int = 5,
        transforms: Callable[[dict], dict] | None = None,
        **kwargs,
    ) -> "SequenceDataset":
        """Open a split of a dataset in one of the layouts of
        :data:`irdet.data.datasets.sequence_layouts.LAYOUTS`.

        Args:
            root: dataset root (``DAUB/``, ``IRDST/`` or ``IRDST/real/``, ``ITSDT/``, or an
                irdet synthetic set).
            split: ``"train"`` / ``"test"`` (``"val"`` is read as ``"test"`` for the public
                sets, which ship train and test JSONs only); for ``"irdet"`` any split
                written by :func:`irdet.data.synthesis.synthesize_sequences`.
            dataset: ``"irdst"``, ``"daub"``, ``"itsdt"`` or ``"irdet"``.
            frames, transforms, **kwargs: as :class:`SequenceDataset` (``split_file`` given
                here overrides the layout's).

        Raises:
            DataError: root or annotation file not found (the message lists what was tried).
            ValueError: unknown ``dataset``.
        """
        layout = sequence_layout(dataset)
        root = Path(root)
        if not root.is_dir():
            raise DataError(root, "dataset root not found")
        base, ann, layout_split_file = layout.find(root, split, str(dataset).lower())
        split_file = kwargs.pop("split_file", None)
        if split_file is None:
            split_file = layout_split_file
        return cls(base, ann, layout.image_dir, frames, transforms, split_file, **kwargs)

    def _parse(self, data: dict) -> None:
        """Frame records, sequences and labels of a normalised annotation set."""
        p = self.ann_path
        self._data = data
        frames: list[dict] = []
        by_id: dict[int, int] = {}
        seq_nums: dict[tuple[str, int], int] = {}
        for im in data["images"]:
            cid, fn = im["id"], im["file_name"]
            try:
                seq, num, ext = parse_frame_name(fn)
            except ValueError as exc:
                raise DataError(p, f"image {cid}: {exc}") from None
            if (seq, num) in seq_nums:
                other = frames[seq_nums[(seq, num)]]["file_name"]
                raise DataError(
                    p, f"image {cid}: frame number {num} of sequence {seq!r} is listed twice ({fn!r}, {other!r})"
                )
            h, w = im.get("height"), im.get("width")
            fn_posix = fn.replace("\\", "/")
            seq_nums[(seq, num)] = len(frames)
            by_id[cid] = len(frames)
            frames.append({
                "coco_id": cid, "file_name": fn_posix, "image_id": fn_posix[: len(fn_posix) - len(ext)],
                "seq": seq, "num": num, "ext": ext, "size": None if h is None else (h, w),
                "boxes": [], "labels": [], "tracks": [],
            })
        self.categories = sorted((dict(c) for c in data["categories"]), key=lambda c: c["id"])
        self.num_classes = len(self.categories)
        label_of = {c["id"]: k for k, c in enumerate(self.categories)}
        self.has_track_ids = any("track_id" in a for a in data["annotations"])
        for a in data["annotations"]:
            if a["iscrowd"]:
                continue  # COCO ignore region: kept in .coco only
            x, y, w, h = a["bbox"]
            fr = frames[by_id[a["image_id"]]]
            fr["boxes"].append((x, y, x + w, y + h))
            fr["labels"].append(label_of[a["category_id"]])
            fr["tracks"].append(a.get("track_id", -1))
        for fr in frames:
            fr["boxes"] = np.asarray(fr["boxes"], np.float32).reshape(-1, 4)
            fr["labels"] = np.asarray(fr["labels"], np.int64)
            fr["tracks"] = np.asarray(fr["tracks"], np.int64)
        self._frames = frames
        self._by_coco_id = by_id
        seq_frames: dict[str, list[int]] = collections.defaultdict(list)
        for i, fr in enumerate(frames):
            seq_frames[fr["seq"]].append(i)
        for s in seq_frames:
            seq_frames[s].sort(key=lambda i: frames[i]["num"])
        self._seq_frames = dict(seq_frames)
        self._pos = {i: k for s, lst in self._seq_frames.items() for k, i in enumerate(lst)}

    def _resolve_image_dir(self, image_dir) -> Path:
        if image_dir is not None:
            d = Path(image_dir)
            return d if d.is_absolute() else self.root / d
        if not self._frames:
            return self.root
        first = self._frames[0]["file_name"]
        for cand in (self.root, self.root / "images"):
            if (cand / first).is_file():
                return cand
        return self.root

    def _check_sizes(self) -> None:
        for s, lst in self._seq_frames.items():
            ref = None
            for i in lst:
                fr = self._frames[i]
                if fr["size"] is None:
                    continue
                if ref is None:
                    ref = fr
                elif fr["size"] != ref["size"]:
                    (h, w), (rh, rw) = fr["size"], ref["size"]
                    raise DataError(
                        self.frame_path(i),
                        f"frame size {w}x{h} (declared in {self.ann_path}) differs from the size {rw}x{rh} of "
                        f"{ref['file_name']}, another frame of sequence {s!r}",
                    )

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self._items)

    def frame_path(self, frame: int) -> Path:
        """File of the listed frame with internal index ``frame``."""
        return self.image_dir / self._frames[frame]["file_name"]

    @property
    def image_ids(self) -> list[str]:
        """Image ids of the current frames, in item order."""
        return [self._frames[i]["image_id"] for i in self._items]

    def index_of(self, image_id: str) -> int:
        """Item index of the current frame ``image_id`` (KeyError if absent)."""
        if not hasattr(self, "_item_of"):
            self._item_of = {self._frames[i]["image_id"]: k for k, i in enumerate(self._items)}
        return self._item_of[image_id]

    def clip_frames(self, index: int) -> list[tuple[str, Path]]:
        """(image id, file) of the T frames of item ``index``, oldest → current."""
        cur = self._items[index]
        fr = self._frames[cur]
        lst = self._seq_frames[fr["seq"]]
        if self.context == "listed":
            pos = clip_indices(self._pos[cur], self.frames)
            return [(self._frames[lst[k]]["image_id"], self.frame_path(lst[k])) for k in pos]
        by_num = {self._frames[i]["num"]: i for i in lst}
        stem = PurePosixPath(fr["file_name"]).stem
        width = len(stem) if stem.startswith("0") and len(stem) > 1 else 0
        out = []
        for n in clip_indices(fr["num"], self.frames):  # the same clip rule, on frame numbers
            if n in by_num:
                i = by_num[n]
                out.append((self._frames[i]["image_id"], self.frame_path(i)))
            else:
                prefix = f"{fr['seq']}/" if fr["seq"] else ""
                image_id = f"{prefix}{n:0{width}d}"
                out.append((image_id, self.image_dir / f"{image_id}{fr['ext']}"))
        return out

    def _read(self, path: Path) -> np.ndarray:
        key = str(path)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        arr = read_image(path)
        self._cache[key] = arr
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return arr

    def load_raw(self, index: int) -> dict:
        """Item ``index`` without transforms and without tv_tensor wrapping: ``video`` is a
        (T, H, W, 3) float32 numpy array, ``boxes`` (N, 4) float32, ``labels`` (N,) int64."""
        cur = self._items[index]
        fr = self._frames[cur]
        clip = self.clip_frames(index)
        arrays = [self._read(p) for _, p in clip]
        h, w = arrays[-1].shape[:2]
        cur_path = clip[-1][1]
        if fr["size"] is not None and fr["size"] != (h, w):
            dh, dw = fr["size"]
            raise DataError(cur_path, f"image size {w}x{h} differs from the size {dw}x{dh} declared in {self.ann_path}")
        for (_, p), a in zip(clip, arrays):
            if a.shape[:2] != (h, w):
                raise DataError(
                    p, f"frame size {a.shape[1]}x{a.shape[0]} differs from {w}x{h} of the current frame {cur_path}"
                )
        raw = {
            "video": np.stack(arrays),
            "boxes": fr["boxes"].copy(),
            "labels": fr["labels"].copy(),
            "image_id": fr["image_id"],
            "coco_id": fr["coco_id"],
            "frame_ids": [i for i, _ in clip],
            "orig_size": (h, w),
        }
        if self.has_track_ids:
            raw["track_ids"] = fr["tracks"].copy()
        return raw

    def __getitem__(self, index: int) -> dict:
        raw = self.load_raw(index)
        h, w = raw["orig_size"]
        video = torch.from_numpy(raw["video"]).permute(0, 3, 1, 2).contiguous()
        item = {
            "video": tv_tensors.Video(video),
            "boxes": tv_tensors.BoundingBoxes(torch.from_numpy(raw["boxes"]), format="XYXY", canvas_size=(h, w)),
            "labels": torch.from_numpy(raw["labels"]),
            "image_id": raw["image_id"],
            "coco_id": raw["coco_id"],
            "frame_ids": raw["frame_ids"],
            "orig_size": (h, w),
        }
        if "track_ids" in raw:
            item["track_ids"] = torch.from_numpy(raw["track_ids"])
        return self.transforms(item) if self.transforms is not None else item

    # ------------------------------------------------------------------ evaluation helpers
    def ground_truth(self) -> tuple[dict[str, np.ndarray], dict[str, tuple[int, int]]]:
        """Boxes and sizes of every current frame without decoding pixels.

        Returns:
            ``(boxes, sizes)``: image id → (N, 4) float32 XYXY pixel-edge boxes (crowd
            annotations left out), image id → (H, W) (from the JSON's height/width, else the
            file header).

        Raises:
            DataError: a frame without declared size whose file is missing or unreadable.
        """
        boxes, sizes = {}, {}
        for i in self._items:
            fr = self._frames[i]
            boxes[fr["image_id"]] = fr["boxes"].copy()
            sizes[fr["image_id"]] = fr["size"] if fr["size"] is not None else image_size(self.frame_path(i))
        return boxes, sizes

    @property
    def coco_dict(self) -> dict:
        """COCO dict restricted to the current frames (images, their annotations incl. crowd, as
        normalised by :func:`irdet.data.coco.load_coco`, categories, and ``distractors`` when the
        file has them); ``height``/``width`` filled from the file headers where the JSON lacks them."""
        keep = {self._frames[i]["coco_id"]: i for i in self._items}
        images = []
        for im in self._data["images"]:
            if im["id"] in keep:
                im = dict(im)
                if im.get("height") is None or im.get("width") is None:
                    im["height"], im["width"] = image_size(self.frame_path(keep[im["id"]]))
                images.append(im)
        anns = [a for a in self._data["annotations"] if a["image_id"] in keep]
        out = {"images": images, "annotations": anns, "categories": self.categories}
        if "distractors" in self._data:  # static distractors of irdet synthetic sets (not targets)
            out["distractors"] = [a for a in self._data["distractors"] or [] if a.get("image_id") in keep]
        return out

    @property
    def coco(self):
        """``pycocotools.coco.COCO`` over :attr:`coco_dict` (built once, quietly)."""
        if self._coco is None:
            from pycocotools.coco import COCO

            c = COCO()
            c.dataset = self.coco_dict
            with contextlib.redirect_stdout(io.StringIO()):
                c.createIndex()
            self._coco = c
        return self._coco

    def __repr__(self) -> str:
        return (
            f"SequenceDataset({self.ann_path}, {len(self)} frames in {len(self.sequences)} sequences, "
            f"T={self.frames}, {self.num_classes} classes)"
        )
