"""DenseSIRST dataset over the official layout (GrokCV/DenseSIRST release).

Layout under ``root`` (``SIRSTdevkit``)::

    PNGImages/<id>.png                      image (L / RGB / RGBA / 16-bit all load)
    SIRST/BBox/<id>.xml                     Pascal-VOC boxes, one "Target" object per target
    SIRST/BinaryMask/<id>_pixels0.png       target mask, 255 = target
    SIRST/PaletteMask/<id>.png              target mask, index 1 = target
    SIRST/Point_label/<id>_pixels0.txt      one "col row" per target (0-based)
    SkySeg/PaletteMask/<id>.png             sky mask, index 1 = sky
    SkySeg/BinaryMask/<id>_pixels0.png      sky mask, 255 = sky
    Splits/<split>.txt                      image ids, one per line

Coordinate conventions are those of :mod:`irdet.data.io` (pixel-edge boxes, pixel-index
points).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from irdet.data.io import image_size, read_image, read_mask, read_points, read_voc_xml
from irdet.errors import DataError, DataFilesError

__all__ = ["DenseSIRST", "ImageFolder", "unique_image_ids", "resolve_data_root", "sample_root", "read_split",
           "IMAGE_SUFFIXES"]

#: Default data root, relative to the working directory (the layout of a checkout beside ``shared/``).
DEFAULT_DATA_ROOT = "../shared/data/DenseSIRST/SIRSTdevkit"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SKY_MASK_FILES = {"palette": "SkySeg/PaletteMask/{id}.png", "binary": "SkySeg/BinaryMask/{id}_pixels0.png"}
TARGET_MASK_FILES = {"palette": "SIRST/PaletteMask/{id}.png", "binary": "SIRST/BinaryMask/{id}_pixels0.png"}


def sample_root() -> Path:
    """Path of the DenseSIRST sample shipped inside the package (a few ``test_v2`` images)."""
    return Path(__file__).resolve().parent.parent / "sample" / "SIRSTdevkit"


def resolve_data_root(data: str | os.PathLike | None = None) -> Path:
    """Resolve the dataset root: ``data`` argument, else ``$IRDET_DATA``, else the default.

    ``data == "sample"`` selects the packaged sample. If nothing is given and the default
    path (``../shared/data/DenseSIRST/SIRSTdevkit``) does not exist, the packaged sample is
    used and a notice is printed.

    Raises:
        DataError: the chosen root does not exist or has no ``PNGImages`` folder.
    """
    if data is None:
        data = os.environ.get("IRDET_DATA") or None
    if data is None:
        root = Path(DEFAULT_DATA_ROOT)
        if not root.exists():
            print(f"[irdet] no dataset at {root} and no --data/IRDET_DATA given: using the packaged sample")
            root = sample_root()
    elif str(data) == "sample":
        root = sample_root()
    else:
        root = Path(data)
    if not root.is_dir():
        raise DataError(root, "dataset root not found (pass --data ROOT or set IRDET_DATA)")
    if not (root / "PNGImages").is_dir():
        raise DataError(root, "not a DenseSIRST-layout root: no PNGImages/ folder")
    return root


def read_split(root: Path, split: str) -> list[str]:
    """Image ids of ``Splits/<split>.txt`` (blank lines ignored, order kept).

    Raises:
        DataError: the split file is missing (the message lists the available splits) or empty.
    """
    path = Path(root) / "Splits" / f"{split}.txt"
    if not path.is_file():
        have = sorted(p.stem for p in (Path(root) / "Splits").glob("*.txt"))
        raise DataError(path, f"split not found (available: {', '.join(have) or 'none'})")
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise DataError(path, "split is empty")
    return ids


class DenseSIRST(Dataset):
    """DenseSIRST images with boxes, labels and (on request) sky mask, target mask and points.

    Args:
        root: dataset root (``SIRSTdevkit``); see :func:`resolve_data_root`.
        split: split name (``Splits/<split>.txt``) or an explicit sequence of image ids.
        sky_mask: ``"palette"`` (``SkySeg/PaletteMask/<id>.png``), ``"binary"``
            (``SkySeg/BinaryMask/<id>_pixels0.png``) or None to skip.
        target_mask: ``"palette"``, ``"binary"`` or None.
        points: also load ``SIRST/Point_label``.
        transforms: callable applied to the sample dict (e.g. a ``torchvision.transforms.v2``
            pipeline from :mod:`irdet.data.transforms`).

    Each item is a dict:

    * ``image``: ``tv_tensors.Image`` (3, H, W) float32 in [0, 255];
    * ``boxes``: ``tv_tensors.BoundingBoxes`` (N, 4) XYXY float32 pixel-edge coordinates
      (the xml's numbers as written: ``x1 = xmin, x2 = xmax``, :mod:`irdet.data.io`),
      ``canvas_size=(H, W)``;
    * ``labels``: int64 (N,), all 0 (the single class "Target");
    * ``sky_mask``: ``tv_tensors.Mask`` (H, W) uint8, 1 = sky, 0 = non-sky (255 = ignore,
      appears only after padding);
    * ``target_mask``: ``tv_tensors.Mask`` (H, W) uint8, 1 = target;
    * ``points``: ``tv_tensors.KeyPoints`` (M, 2) float32 ``(x, y)`` pixel indices (see io);
    * ``image_id``: str; ``orig_size``: (H, W) of the file.

    Raises (when an item is read):
        DataError: a missing/unreadable image, xml or mask, a degenerate box, or a mask whose
            size differs from the image, always naming the file.
    """

    def __init__(
        self,
        root,
        split: str | Sequence[str],
        *,
        sky_mask: str | None = "palette",
        target_mask: str | None = None,
        points: bool = False,
        transforms: Callable[[dict], dict] | None = None,
    ):
        self.root = Path(root)
        self.split = split if isinstance(split, str) else "custom"
        self.ids = read_split(self.root, split) if isinstance(split, str) else list(split)
        if sky_mask not in (None, *SKY_MASK_FILES):
            raise ValueError(f"sky_mask must be one of {list(SKY_MASK_FILES)} or None, got {sky_mask!r}")
        if target_mask not in (None, *TARGET_MASK_FILES):
            raise ValueError(f"target_mask must be one of {list(TARGET_MASK_FILES)} or None, got {target_mask!r}")
        self.sky_mask = sky_mask
        self.target_mask = target_mask
        self.points = points
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, image_id: str) -> Path:
        return self.root / "PNGImages" / f"{image_id}.png"

    def xml_path(self, image_id: str) -> Path:
        return self.root / "SIRST" / "BBox" / f"{image_id}.xml"

    def ground_truth(self) -> tuple[dict[str, np.ndarray], dict[str, tuple[int, int]]]:
        """Boxes of every image in original pixels, and image sizes, without decoding pixels.

        Returns:
            ``(boxes, sizes)``: id → (N, 4) float32 pixel-edge boxes, id → (H, W).

        Raises:
            DataError: a missing/unreadable image or xml, or a degenerate box.
        """
        boxes, sizes = {}, {}
        for image_id in self.ids:
            sizes[image_id] = image_size(self.image_path(image_id))
            boxes[image_id] = read_voc_xml(self.xml_path(image_id), image_size=sizes[image_id])[0]
        return boxes, sizes

    def mask_paths(self, image_id: str) -> list[Path]:
        """The mask files an item of ``image_id`` reads (sky and/or target mask, as configured).
        Source: irdet extension."""
        return [self.root / files[kind].format(id=image_id)
                for files, kind in ((SKY_MASK_FILES, self.sky_mask), (TARGET_MASK_FILES, self.target_mask)) if kind]

    def find_problems(self) -> list[DataError]:
        """Every bad file this dataset would read, found without decoding pixels.

        For each id: the image exists and PIL verifies it (header, whole file read, PNG chunk
        checksums; :func:`irdet.data.io.image_size` with ``verify``); the xml parses and its
        boxes are valid inside the image (:func:`irdet.data.io.read_voc_xml`); each configured
        mask exists, verifies and has the image's size; the point file parses when ``points``.
        Mask values (palette indices) are checked only when an item is read. About 1 s for
        the 767 images of ``trainval_v2`` with sky masks (page cache warm).

        Returns:
            one :class:`DataError` per bad file (empty when all are good).

        Source: irdet extension (a broken file is found before training, not an epoch in).
        """
        problems: list[DataError] = []

        def attempt(fn, *args):
            try:
                return fn(*args)
            except DataError as exc:
                problems.append(exc)
                return None

        for image_id in dict.fromkeys(self.ids):
            size = attempt(image_size, self.image_path(image_id), True)
            attempt(read_voc_xml, self.xml_path(image_id), size)
            for path in self.mask_paths(image_id):
                mask_size = attempt(image_size, path, True)
                if size and mask_size and mask_size != size:
                    problems.append(DataError(path, f"mask size {mask_size[1]}x{mask_size[0]} differs from image size "
                                                    f"{size[1]}x{size[0]}"))
            if self.points:
                attempt(read_points, self.root / "SIRST" / "Point_label" / f"{image_id}_pixels0.txt")
        return problems

    def check(self) -> None:
        """Check every file of the dataset up front (:meth:`find_problems`).

        Raises:
            DataFilesError: naming every bad file at once (first line: the count).

        Source: irdet extension.
        """
        problems = self.find_problems()
        if problems:
            raise DataFilesError(self.root, problems)

    def load_raw(self, index: int) -> dict:
        """Read item ``index`` without transforms (numpy arrays; see class docstring)."""
        image_id = self.ids[index]
        image = read_image(self.image_path(image_id))
        h, w = image.shape[:2]
        boxes, _ = read_voc_xml(self.xml_path(image_id), image_size=(h, w))
        raw = {"image_id": image_id, "image": image, "boxes": boxes}
        if self.sky_mask:
            raw["sky_mask"] = self._mask(SKY_MASK_FILES[self.sky_mask].format(id=image_id), (h, w))
        if self.target_mask:
            raw["target_mask"] = self._mask(TARGET_MASK_FILES[self.target_mask].format(id=image_id), (h, w))
        if self.points:
            raw["points"] = read_points(self.root / "SIRST" / "Point_label" / f"{image_id}_pixels0.txt")
        return raw

    def _mask(self, rel: str, size: tuple[int, int]) -> np.ndarray:
        path = self.root / rel
        mask = read_mask(path, palette="Palette" in rel)
        if mask.shape != size:
            raise DataError(path, f"mask size {mask.shape[1]}x{mask.shape[0]} differs from image size {size[1]}x{size[0]}")
        return mask

    def __getitem__(self, index: int) -> dict:
        sample = to_sample(self.load_raw(index))
        return self.transforms(sample) if self.transforms is not None else sample


def to_sample(raw: dict) -> dict:
    """Wrap a raw numpy item (see :meth:`DenseSIRST.load_raw`) into torchvision tv_tensors."""
    image = raw["image"]
    h, w = image.shape[:2]
    sample = {
        "image_id": raw["image_id"],
        "orig_size": (h, w),
        "image": tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1).contiguous()),
    }
    if "boxes" in raw:
        boxes = torch.from_numpy(np.asarray(raw["boxes"], dtype=np.float32).reshape(-1, 4))
        sample["boxes"] = tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w))
        sample["labels"] = torch.zeros(len(boxes), dtype=torch.int64)
    for key in ("sky_mask", "target_mask"):
        if key in raw:
            sample[key] = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(raw[key])))
    if "points" in raw:
        pts = torch.from_numpy(np.asarray(raw["points"], dtype=np.float32).reshape(-1, 2))
        sample["points"] = tv_tensors.KeyPoints(pts, canvas_size=(h, w))
    return sample


class ImageFolder(Dataset):
    """Images without annotations, for ``irdet detect``: files and/or folders (recursive).

    Every file gets its own ``image_id`` (irdet extension): its path relative to the common
    parent of the inputs (a folder input counts as itself, a file input as its folder),
    without suffix, ``/``-separated. One folder → ids relative to it (``x``, ``sub/y``);
    ``dirA/frame.png`` and ``dirB/frame.png`` → ``dirA/frame`` and ``dirB/frame``. Files whose
    ids would still coincide (``shot.png`` beside ``shot.jpg``) keep their suffix
    (``shot.png``, ``shot.jpg``); a file named twice (itself and inside a folder) is one item.
    Two inputs are never merged into one id.

    Bad files do not stop a batch (irdet extension). ``skipped`` lists ``(path, reason)`` for
    files in a folder without an image suffix (:data:`IMAGE_SUFFIXES`) and for folders without
    images. An item whose file cannot be read as an image (corrupt, truncated, text saved as
    ``.png``, an explicit non-image file) is a *skipped marker* ``{"image_id", "path",
    "skipped": reason}`` instead of a sample (transforms are not applied); :meth:`collate`
    batches the others and passes markers on in ``batch["skipped"]``, in the DataLoader's
    workers as in the main process.

    Items are dicts with ``image`` (3, H, W) float32 in [0, 255], ``image_id``, ``path`` (str)
    and ``orig_size`` (H, W); ``items`` is the list of ``(image_id, path)``.

    Raises:
        DataError: a path does not exist, or the inputs hold no image file at all (a single
            folder without images: ``"folder has no images"``).
    """

    def __init__(self, inputs: str | os.PathLike | Sequence[str | os.PathLike], transforms=None):
        if isinstance(inputs, (str, os.PathLike)):
            inputs = [inputs]
        files: list[tuple[Path, Path]] = []  # (file, the folder its id is relative to)
        self.skipped: list[tuple[Path, str]] = []
        for inp in inputs:
            p = Path(inp)
            if p.is_dir():
                found = sorted(f for f in p.rglob("*") if f.is_file())
                images = [f for f in found if f.suffix.lower() in IMAGE_SUFFIXES]
                self.skipped += [(f, f"not an image file (suffix {f.suffix or 'none'!r}; images: {', '.join(IMAGE_SUFFIXES)})")
                                 for f in found if f.suffix.lower() not in IMAGE_SUFFIXES]
                if not images:
                    self.skipped.append((p, f"folder has no images ({', '.join(IMAGE_SUFFIXES)})"))
                files += [(f, p) for f in images]
            elif p.is_file():
                files.append((p, p.parent))
            else:
                raise DataError(p, "file or folder not found")
        if not inputs:
            raise DataError("<inputs>", "no image files or folders given")
        if not files:  # every input is a folder without images: nothing to detect
            raise DataError(*next((q, r) for q, r in self.skipped if q.is_dir()))
        self.items: list[tuple[str, Path]] = unique_image_ids(files)
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        image_id, path = self.items[index]
        try:
            image = read_image(path)
        except DataError as exc:  # a skipped marker, batched by ImageFolder.collate
            return {"image_id": image_id, "path": str(path), "skipped": exc.problem}
        sample = to_sample({"image_id": image_id, "image": image})
        sample["path"] = str(path)
        return self.transforms(sample) if self.transforms is not None else sample

    @staticmethod
    def collate(samples: list[dict]) -> dict:
        """Batch items: :func:`irdet.data.transforms.collate` of the readable ones, plus
        ``skipped``: the markers ``{"image_id", "path", "skipped": reason}`` of the others (a
        batch may hold only markers: then ``image_id`` is empty and there is no ``images``).
        Source: irdet extension."""
        from irdet.data.transforms import collate

        good = [s for s in samples if "skipped" not in s]
        batch = collate(good) if good else {"image_id": [], "path": []}
        batch["skipped"] = [s for s in samples if "skipped" in s]
        return batch


def unique_image_ids(files: Sequence[tuple[Path, Path]]) -> list[tuple[str, Path]]:
    """``(image_id, file)`` for ``(file, folder)`` pairs, every id distinct (see :class:`ImageFolder`).

    Ids are ``/``-separated paths relative to the common parent of all ``folder`` s, without
    suffix; ids that coincide keep their suffix; ids still equal after that (``a.png`` vs the
    stem of ``a.png.jpg``) get ``~2``, ``~3``, ... The same file twice (same absolute path)
    is kept once. Order follows ``files``. Source: irdet extension.
    """
    seen_files: set[str] = set()
    kept: list[tuple[Path, str]] = []
    for f, folder in files:
        key = os.path.abspath(f)
        if key not in seen_files:
            seen_files.add(key)
            kept.append((f, os.path.abspath(folder)))
    base = os.path.commonpath([folder for _, folder in kept])
    rel = [Path(os.path.relpath(os.path.abspath(f), base)) for f, _ in kept]
    stems = [r.with_suffix("").as_posix() for r in rel]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    ids = [r.as_posix() if counts[s] > 1 else s for r, s in zip(rel, stems)]
    taken: set[str] = set()
    out = []
    for image_id, (f, _) in zip(ids, kept):
        unique, k = image_id, 1
        while unique in taken:
            k += 1
            unique = f"{image_id}~{k}"
        taken.add(unique)
        out.append((unique, f))
    return out
