"""Ultralytics YOLO-txt single-frame datasets: ``data.layout: yolo_txt``.

Layout under ``root`` (Ultralytics' detection dataset format)::

    images/<split>/**/<name>.png|jpg|...    images of a split (any folder depth)
    labels/<split>/**/<name>.txt            one line per box: "class cx cy w h"
    data.yaml                               optional: train: / val: / test: entries
    <split>.txt                             optional: a list of image paths, one per line

**Which images a split holds** (first rule that applies):

1. ``data.yaml`` at the root has an entry ``<split>:`` (Ultralytics' ``train`` / ``val`` /
   ``test``, or any other name): a folder (every image below it), a ``.txt`` list file, or a
   list of these. Relative entries are taken against the yaml's ``path:`` when that folder
   exists (absolute, or relative to the yaml's folder), else against the root;
2. the folder ``images/<split>/`` (every image below it);
3. the list file ``<split>.txt`` at the root.

A list file holds one image path per line (blank lines ignored); relative lines are taken
against the list file's folder (Ultralytics does so for ``./`` lines; irdet for all relative
lines, which covers the ``images/train/a.jpg`` lines of CVAT's and Roboflow's exports).
Images are the files with the suffixes of :data:`YOLO_IMAGE_SUFFIXES`, in sorted path order.

**Label file of an image** (Ultralytics' rule): the image path with its last ``images``
folder replaced by ``labels`` and its suffix by ``.txt`` (``images/train/a.jpg`` →
``labels/train/a.txt``; an image path without an ``images`` folder has its label beside it).
A missing or empty label file is an image without targets (Ultralytics' background images).

**Boxes.** A label line is ``class cx cy w h``: an integer class ≥ 0 and the box centre and
size normalised by the image width W and height H, each in [0, 1] (Ultralytics' convention).
irdet's boxes are pixel-edge XYXY (:mod:`irdet.data.io`: column ``i`` covers ``[i, i + 1)``),
and the normalised numbers measure the same continuous coordinate, so
``x1 = (cx − w/2)·W``, ``x2 = (cx + w/2)·W``, ``y1 = (cy − h/2)·H``, ``y2 = (cy + h/2)·H``
(:func:`yolo_to_xyxy`, the exact inverse of Ultralytics' own xyxy → normalised xywh), clipped
to the image. irdet detects one class ("Target"): every class id becomes label 0.

**Image ids** are the image paths relative to ``root/images`` (else to ``root``, else
absolute), ``/``-separated, without suffix: ``images/test/a.png`` → ``test/a``. Two images
of a split with one id (``a.png`` beside ``a.jpg``: both would read ``a.txt``) are an error.

The layout has no sky or target masks: BAFE-Net's segmentation head (``model.head.seg_head``),
BAG-CP (``data.bagcp.enabled``) and a sky / non-sky split of the false alarms need them, and a
config asking for them is refused (:meth:`YoloTxt.check_config`). Source: Ultralytics YOLO
dataset format; irdet extension.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import yaml

from irdet.data.datasets.base import SingleFrameDataset, attempt
from irdet.data.io import image_size, read_image
from irdet.errors import ConfigError, DataError

__all__ = ["YoloTxt", "read_yolo_labels", "yolo_to_xyxy", "label_path", "split_files", "YOLO_IMAGE_SUFFIXES"]

#: image suffixes of a YOLO-txt split (Ultralytics' common ones that PIL reads)
YOLO_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: the optional dataset description at the root
DATA_YAML = "data.yaml"


def _mask_switches(cfg: dict) -> list[str]:
    """The config switches that are on and need sky masks."""
    on = []
    if (cfg.get("model", {}).get("head") or {}).get("seg_head", False):
        on.append("model.head.seg_head=false (BAFE-Net's sky segmentation head)")
    if (cfg.get("data", {}).get("bagcp") or {}).get("enabled", False):
        on.append("data.bagcp.enabled=false (BAG-CP)")
    return on


def _no_masks(kind: str, switches: Sequence[str]) -> ConfigError:
    """The refusal of a config (or a call) that asks a YOLO-txt dataset for ``kind`` masks."""
    return ConfigError(f"data.layout yolo_txt has no {kind} masks: set {' and '.join(switches)}, or use a "
                       f"DenseSIRST-layout dataset (data.layout densesirst)")


def yolo_to_xyxy(cxcywh: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Normalised YOLO boxes → pixel-edge XYXY boxes of an image of ``size``.

    Args:
        cxcywh: (N, 4) ``(cx, cy, w, h)`` normalised by the image width / height (Ultralytics).
        size: (H, W) of the image in pixels.

    Returns:
        (N, 4) float64 ``(x1, y1, x2, y2)`` in pixel-edge coordinates (see the module
        docstring), clipped to ``[0, W] × [0, H]``.

    Source: Ultralytics YOLO label convention; irdet's pixel-edge reading of it.
    """
    h, w = size
    b = np.asarray(cxcywh, dtype=np.float64).reshape(-1, 4)
    half_w, half_h = b[:, 2] / 2, b[:, 3] / 2
    out = np.stack([(b[:, 0] - half_w) * w, (b[:, 1] - half_h) * h, (b[:, 0] + half_w) * w, (b[:, 1] + half_h) * h], 1)
    np.clip(out[:, 0::2], 0, w, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, h, out=out[:, 1::2])
    return out


def read_yolo_labels(path, size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a YOLO label file.

    Args:
        path: the ``.txt`` label file; missing = no targets.
        size: (H, W) of the image; None returns the normalised ``(cx, cy, w, h)`` instead.

    Returns:
        ``(boxes, classes)``: (N, 4) float32 pixel-edge XYXY boxes (:func:`yolo_to_xyxy`;
        normalised ``cx cy w h`` without ``size``) and (N,) int64 class ids. N may be 0.

    Raises:
        DataError: naming the file and line: not 5 fields, a field that is not a finite
            number, a class that is not an integer ≥ 0, a coordinate outside [0, 1], or a
            width / height of 0; an unreadable file.

    Source: Ultralytics YOLO label format.
    """
    path = Path(path)
    if not path.is_file():
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read label file ({exc.__class__.__name__}: {exc})") from None
    rows, classes = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise DataError(path, f"line {n}: expected 5 fields 'class cx cy w h', got {len(fields)}: {line.strip()!r}")
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise DataError(path, f"line {n}: not numbers: {line.strip()!r}") from None
        if not all(math.isfinite(v) for v in values):
            raise DataError(path, f"line {n}: not finite numbers: {line.strip()!r}")
        cls, cx, cy, bw, bh = values
        if cls < 0 or not cls.is_integer():
            raise DataError(path, f"line {n}: class {fields[0]!r} is not an integer >= 0")
        if not all(0.0 <= v <= 1.0 for v in (cx, cy, bw, bh)):
            raise DataError(path, f"line {n}: cx cy w h must be normalised to [0, 1], got {' '.join(fields[1:])}")
        if bw <= 0 or bh <= 0:
            raise DataError(path, f"line {n}: box of zero width or height ({' '.join(fields[1:])})")
        rows.append((cx, cy, bw, bh))
        classes.append(int(cls))
    cxcywh = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    boxes = cxcywh if size is None else yolo_to_xyxy(cxcywh, size)
    return boxes.astype(np.float32), np.asarray(classes, dtype=np.int64)


def label_path(image: str | os.PathLike) -> Path:
    """The label file of an image: its last ``images`` folder → ``labels``, suffix → ``.txt``
    (without an ``images`` folder: beside the image). Source: Ultralytics' rule."""
    parts = list(Path(image).parts)
    at = [i for i, part in enumerate(parts[:-1]) if part == "images"]
    if at:
        parts[at[-1]] = "labels"
    return Path(*parts).with_suffix(".txt")


def _folder_images(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in YOLO_IMAGE_SUFFIXES)


def _list_file_images(path: Path) -> list[Path]:
    """The images a list file names (relative lines against its folder)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read image list ({exc.__class__.__name__}: {exc})") from None
    files = []
    for n, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry:
            continue
        if Path(entry).suffix.lower() not in YOLO_IMAGE_SUFFIXES:
            raise DataError(path, f"line {n}: {entry!r} is not an image file ({', '.join(YOLO_IMAGE_SUFFIXES)})")
        f = Path(entry)
        files.append(f if f.is_absolute() else path.parent / f)
    return files


def _entry_images(entry: Path, source: Path, split: str) -> list[Path]:
    if entry.is_dir():
        return _folder_images(entry)
    if entry.is_file() and entry.suffix.lower() == ".txt":
        return _list_file_images(entry)
    raise DataError(source, f"{split}: {entry} is neither a folder nor a .txt list of images")


def _data_yaml(root: Path) -> tuple[dict, Path]:
    """``data.yaml`` of the root (empty when absent) and the folder its relative entries are taken against."""
    path = root / DATA_YAML
    if not path.is_file():
        return {}, root
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DataError(path, f"cannot read dataset yaml ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from None
    if spec is None:
        return {}, root
    if not isinstance(spec, dict):
        raise DataError(path, f"expected a mapping (train: / val: / test: entries), got {type(spec).__name__}")
    base = spec.get("path")
    if isinstance(base, str) and base:
        base = Path(base) if Path(base).is_absolute() else root / base
        if base.is_dir():
            return spec, base
    return spec, root


def split_files(root: str | os.PathLike, split: str) -> list[Path]:
    """Image files of ``split`` (rules in the module docstring), duplicates dropped, order kept.

    Raises:
        DataError: the split is found nowhere (the message lists the splits there are), is
            empty, or a ``data.yaml`` / list file is unreadable or names what is not an image
            folder, list or file.
    """
    root = Path(root)
    spec, base = _data_yaml(root)
    entries = spec.get(split)
    if entries is not None:
        source = root / DATA_YAML
        entries = entries if isinstance(entries, list) else [entries]
        files = []
        for e in entries:
            if not isinstance(e, str):
                raise DataError(source, f"{split}: expected a folder or list file path, got {e!r}")
            files += _entry_images(Path(e) if Path(e).is_absolute() else base / e, source, split)
    elif (root / "images" / split).is_dir():
        source, files = root / "images" / split, _folder_images(root / "images" / split)
    elif (root / f"{split}.txt").is_file():
        source = root / f"{split}.txt"
        files = _list_file_images(source)
    else:
        have = {k for k, v in spec.items() if k not in ("path", "download") and v and
                (isinstance(v, str) or isinstance(v, list) and all(isinstance(e, str) for e in v))}
        have |= {p.name for p in (root / "images").iterdir() if p.is_dir()} if (root / "images").is_dir() else set()
        have |= {p.stem for p in root.glob("*.txt")}
        raise DataError(root, f"split {split!r} not found: no {split}: entry in {DATA_YAML}, no images/{split}/ folder, "
                              f"no {split}.txt (available: {', '.join(sorted(have)) or 'none'})")
    files = list(dict.fromkeys(Path(os.path.normpath(os.path.abspath(f))) for f in files))
    if not files:
        raise DataError(source, f"split {split!r} has no images ({', '.join(YOLO_IMAGE_SUFFIXES)})")
    return files


def image_id(root: Path, file: Path) -> str:
    """Id of an image file: its path relative to ``root/images``, else ``root``, else absolute,
    ``/``-separated, without suffix (module docstring). Source: irdet extension."""
    f = os.path.abspath(file)
    for base in (root / "images", root):
        b = os.path.abspath(base)
        if f.startswith(b.rstrip(os.sep) + os.sep):
            return Path(os.path.relpath(f, b)).with_suffix("").as_posix()
    return Path(f).with_suffix("").as_posix()


def _items(root: Path, files: Sequence[Path]) -> list[tuple[str, Path]]:
    """``(image id, file)`` per file; raises DataError when two files share an id."""
    seen: dict[str, Path] = {}
    for f in files:
        i = image_id(root, f)
        if i in seen:
            raise DataError(f, f"image id {i!r} is also {seen[i]}: both would read labels {label_path(f)}; rename one")
        seen[i] = f
    return list(seen.items())


class YoloTxt(SingleFrameDataset):
    """A YOLO-txt dataset split (layout, boxes and ids: the module docstring).

    Args:
        root: dataset root (:meth:`resolve_root`).
        split: split name (:func:`split_files`) or an explicit sequence of image ids (each
            found as ``root/images/<id><suffix>``, else ``root/<id><suffix>``).
        sky_mask, target_mask: must be None (the layout has no masks).
        transforms: callable applied to the sample dict.

    Items are the dicts of :func:`~irdet.data.datasets.base.to_sample`: ``image`` (3, H, W)
    float32 in [0, 255], ``boxes`` (N, 4) XYXY pixel-edge, ``labels`` (N,) int64 all 0,
    ``image_id``, ``orig_size`` (H, W).

    Raises:
        ConfigError: a sky or target mask asked for.
        DataError: a missing or empty split, two images with one id, an id without an image
            file; when an item is read: a missing / broken image or a malformed label line
            (naming the file and line).

    Source: Ultralytics YOLO dataset format; irdet extension.
    """

    name = "yolo_txt"
    has_sky_masks = False

    def __init__(self, root, split: str | Sequence[str], *, sky_mask: str | None = None, target_mask: str | None = None,
                 transforms: Callable[[dict], dict] | None = None):
        if sky_mask is not None:
            raise _no_masks("sky", ["model.head.seg_head=false (BAFE-Net's sky segmentation head)",
                                    "data.bagcp.enabled=false (BAG-CP)"])
        if target_mask is not None:
            raise _no_masks("target", ["data.bagcp.enabled=false (BAG-CP's target library is cut out with them)"])
        self.root = Path(root)
        self.split = split if isinstance(split, str) else "custom"
        files = split_files(self.root, split) if isinstance(split, str) else [self._file_of(i) for i in split]
        self.items = _items(self.root, files)
        self.ids = [i for i, _ in self.items]
        self._files = dict(self.items)
        self.transforms = transforms

    @classmethod
    def resolve_root(cls, data: str | os.PathLike | None = None) -> Path:
        """``data``, else ``$IRDET_DATA``: a folder with ``images/`` or ``data.yaml``.

        Raises:
            ConfigError: no root given, or ``sample`` (the packaged sample is DenseSIRST).
            DataError: the root does not exist or has neither ``images/`` nor ``data.yaml``.
        """
        data = data if data is not None else os.environ.get("IRDET_DATA") or None
        if data is None or str(data) == "sample":
            raise ConfigError("data.layout yolo_txt needs its dataset root: pass --data ROOT (or set data.root or "
                              "$IRDET_DATA)" + ("; the packaged sample is DenseSIRST-layout" if data else ""))
        root = Path(data)
        if not root.is_dir():
            raise DataError(root, "dataset root not found (pass --data ROOT or set IRDET_DATA)")
        if not (root / "images").is_dir() and not (root / DATA_YAML).is_file():
            raise DataError(root, f"not a YOLO-txt root: no images/ folder and no {DATA_YAML}")
        return root

    @classmethod
    def split_ids(cls, root: str | os.PathLike, split: str) -> list[str]:
        """Image ids of ``split`` (:func:`split_files`, :func:`image_id`); DataError as those."""
        return [i for i, _ in _items(Path(root), split_files(root, split))]

    @classmethod
    def check_config(cls, cfg: dict) -> None:
        """Refuse BAFE-Net's seg head (``model.head.seg_head``) and BAG-CP (``data.bagcp.enabled``):
        both need sky masks (a key absent from ``cfg`` counts as off).

        Raises:
            ConfigError: naming the switches that are on and how to turn them off.
        """
        switches = _mask_switches(cfg)
        if switches:
            raise _no_masks("sky", switches)

    def _file_of(self, image_id: str) -> Path:
        for base in (self.root / "images", self.root):
            for suffix in YOLO_IMAGE_SUFFIXES:
                if (base / f"{image_id}{suffix}").is_file():
                    return base / f"{image_id}{suffix}"
        raise DataError(self.root / "images" / image_id, f"image not found (suffixes {', '.join(YOLO_IMAGE_SUFFIXES)})")

    def image_path(self, image_id: str) -> Path:
        """The image file of ``image_id`` (KeyError for an id not in the dataset)."""
        return self._files[image_id]

    def ground_truth(self) -> tuple[dict[str, np.ndarray], dict[str, tuple[int, int]]]:
        """Boxes (N, 4) float32 pixel-edge XYXY and (H, W) of every image, from the image headers
        and label files (no pixel decoded). Raises DataError as :func:`read_yolo_labels`, or for
        a missing / unreadable image."""
        boxes, sizes = {}, {}
        for i, f in self.items:
            sizes[i] = image_size(f)
            boxes[i] = read_yolo_labels(label_path(f), sizes[i])[0]
        return boxes, sizes

    def find_problems(self) -> list[DataError]:
        """Every bad file: each image exists and PIL verifies it (:func:`irdet.data.io.image_size`
        with ``verify``), each label file present parses (:func:`read_yolo_labels`). One
        DataError per bad file. Source: irdet extension."""
        problems: list[DataError] = []
        for _, f in self.items:
            attempt(problems, image_size, f, True)
            attempt(problems, read_yolo_labels, label_path(f))
        return problems

    def load_raw(self, index: int) -> dict:
        """Item ``index`` without transforms: ``image_id``, ``image`` (H, W, 3) float32 in
        [0, 255], ``boxes`` (N, 4) float32 pixel-edge XYXY."""
        image_id, f = self.items[index]
        image = read_image(f)
        boxes, _ = read_yolo_labels(label_path(f), image.shape[:2])
        return {"image_id": image_id, "image": image, "boxes": boxes}
