"""DenseSIRST dataset over the official layout (GrokCV/DenseSIRST release): ``data.layout: densesirst``.

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

from irdet.data.datasets.base import SingleFrameDataset, attempt
from irdet.data.io import image_size, read_image, read_mask, read_points, read_voc_xml
from irdet.errors import DataError

__all__ = ["DenseSIRST", "resolve_data_root", "sample_root", "read_split", "DEFAULT_DATA_ROOT", "SKY_MASK_FILES",
           "TARGET_MASK_FILES"]

#: Default data root, relative to the working directory (the layout of a checkout beside ``shared/``).
DEFAULT_DATA_ROOT = "../shared/data/DenseSIRST/SIRSTdevkit"
SKY_MASK_FILES = {"palette": "SkySeg/PaletteMask/{id}.png", "binary": "SkySeg/BinaryMask/{id}_pixels0.png"}
TARGET_MASK_FILES = {"palette": "SIRST/PaletteMask/{id}.png", "binary": "SIRST/BinaryMask/{id}_pixels0.png"}


def sample_root() -> Path:
    """Path of the DenseSIRST sample shipped inside the package (a few ``test_v2`` images)."""
    return Path(__file__).resolve().parents[2] / "sample" / "SIRSTdevkit"


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


class DenseSIRST(SingleFrameDataset):
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

    name = "densesirst"
    has_sky_masks = True
    #: the root (:func:`resolve_data_root`) and a split's ids (:func:`read_split`) of this layout
    resolve_root = staticmethod(resolve_data_root)
    split_ids = staticmethod(read_split)

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
        for image_id in dict.fromkeys(self.ids):
            size = attempt(problems, image_size, self.image_path(image_id), True)
            attempt(problems, read_voc_xml, self.xml_path(image_id), size)
            for path in self.mask_paths(image_id):
                mask_size = attempt(problems, image_size, path, True)
                if size and mask_size and mask_size != size:
                    problems.append(DataError(path, f"mask size {mask_size[1]}x{mask_size[0]} differs from image size "
                                                    f"{size[1]}x{size[0]}"))
            if self.points:
                attempt(problems, read_points, self.root / "SIRST" / "Point_label" / f"{image_id}_pixels0.txt")
        return problems

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
