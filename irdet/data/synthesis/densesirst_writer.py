"""Writing one image of a DenseSIRST-layout dataset: image, Pascal-VOC xml, target masks, point labels.

The files of an image ``<id>`` under the output root (the official DenseSIRST layout)::

    PNGImages/<id>.png                   8-bit; L for grey / 16-bit sources (:data:`GREY_MODES`), else RGB
    SIRST/BBox/<id>.xml                  the boxes (VOC numbering, below)
    SIRST/BinaryMask/<id>_pixels0.png    target mask, 255 = target
    SIRST/PaletteMask/<id>.png           target mask, palette index 1 = target
    SIRST/Point_label/<id>_pixels0.txt   "col row" per target, 0-based
    SkySeg/{PaletteMask,BinaryMask}/...  copied unchanged from the source

VOC numbering is the inverse of :func:`irdet.data.io.read_voc_xml`: a pixel-edge box
``(x1, y1, x2, y2)`` is written ``xmin = x1, ymin = y1, xmax = x2, ymax = y2`` with the present
reader, which reads the xml's numbers as written (the offsets are read off the reader itself,
:func:`voc_offsets`, so the writer stays its inverse if that convention changes). Every file
is written atomically. Source: DenseSIRST layout; the writer is irdet's.
"""

from __future__ import annotations

import functools
import io
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

from irdet.data.io import atomic_save_image, atomic_write_bytes, read_voc_xml

__all__ = ["GREY_MODES", "OUTPUT_FOLDERS", "voc_offsets", "write_voc_xml", "palette_png", "write_image_files"]

#: PIL modes written back as 8-bit L (grey content).
GREY_MODES = ("L", "1", "LA", "I;16", "I;16B", "I;16L", "I;16N", "I", "F")

#: Folders of the layout created under the output root.
OUTPUT_FOLDERS = ("PNGImages", "SIRST/BBox", "SIRST/BinaryMask", "SIRST/PaletteMask", "SIRST/Point_label",
                  "SkySeg/PaletteMask", "SkySeg/BinaryMask", "Splits")


@functools.lru_cache(maxsize=1)
def voc_offsets() -> tuple[float, float]:
    """(a, b) such that :func:`irdet.data.io.read_voc_xml` reads ``xmin``/``xmax`` as
    ``x1 = xmin - a`` and ``x2 = xmax - b`` (today (0, 0): the numbers as written); probed on a
    temporary file."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "probe.xml"
        p.write_text(
            "<annotation><object><name>Target</name><bndbox><xmin>10</xmin><ymin>10</ymin>"
            "<xmax>20</xmax><ymax>20</ymax></bndbox></object></annotation>"
        )
        (x1, _, x2, _), = read_voc_xml(p)[0].tolist()
    return 10.0 - x1, 20.0 - x2


def write_voc_xml(path, image_id: str, size: tuple[int, int], depth: int, boxes: np.ndarray) -> None:
    """Write pixel-edge boxes as a DenseSIRST/Pascal-VOC xml, the inverse of
    :func:`irdet.data.io.read_voc_xml` (today ``xmin = x1``, ``xmax = x2``; see :func:`voc_offsets`).

    Args:
        path: output xml.
        image_id: the ``<filename>`` value.
        size: (H, W) of the image.
        depth: 1 for grey images, 3 for colour.
        boxes: (N, 4) pixel-edge boxes with integer coordinates (rounded otherwise).
    """
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = image_id
    sz = ET.SubElement(root, "size")
    ET.SubElement(sz, "width").text = str(int(size[1]))
    ET.SubElement(sz, "height").text = str(int(size[0]))
    ET.SubElement(sz, "depth").text = str(int(depth))
    a, b = voc_offsets()
    for x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 4):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = "Target"
        bb = ET.SubElement(obj, "bndbox")
        for tag, v in (("xmin", x1 + a), ("ymin", y1 + a), ("xmax", x2 + b), ("ymax", y2 + b)):
            ET.SubElement(bb, tag).text = str(int(round(v)))
    ET.indent(root, space="  ")
    atomic_write_bytes(path, ET.tostring(root, encoding="unicode").encode() + b"\n")


def palette_png(mask01: np.ndarray) -> bytes:
    """PNG bytes of a (H, W) 0/1 mask as a palette image (index 0 black, 1 red)."""
    img = Image.fromarray(mask01.astype(np.uint8), mode="P")
    img.putpalette([0, 0, 0, 255, 0, 0])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_image_files(out: Path, src: Path, image_id: str, image: np.ndarray, grey: bool, boxes: np.ndarray,
                      target_mask: np.ndarray, points: np.ndarray) -> None:
    """Write every file of one image (module docstring) and copy its sky masks from ``src``.

    Args:
        out: output root. src: source root (``SkySeg/`` files copied when present).
        image_id: the image's id.
        image: (H, W, 3) float image, grey levels in [0, 255] (rounded and clipped to 8 bits).
        grey: write an L image (channel 0) with xml depth 1, else RGB with depth 3.
        boxes: (N, 4) pixel-edge boxes. target_mask: (H, W), > 0 = target. points: (N, 2)
            (col, row) target points, rounded to integers.
    """
    h, w = image.shape[:2]
    img8 = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    if grey:
        img8 = img8[..., 0]
    atomic_save_image(out / "PNGImages" / f"{image_id}.png", img8)
    write_voc_xml(out / "SIRST" / "BBox" / f"{image_id}.xml", image_id, (h, w), 1 if grey else 3, boxes)
    tmask = (target_mask > 0).astype(np.uint8)
    atomic_save_image(out / "SIRST" / "BinaryMask" / f"{image_id}_pixels0.png", tmask * 255)
    atomic_write_bytes(out / "SIRST" / "PaletteMask" / f"{image_id}.png", palette_png(tmask))
    lines = "".join(f"{int(round(x))} {int(round(y))}\n" for x, y in points)
    atomic_write_bytes(out / "SIRST" / "Point_label" / f"{image_id}_pixels0.txt", lines.encode())
    for sub in ("SkySeg/PaletteMask", "SkySeg/BinaryMask"):
        folder = src / sub
        if folder.is_dir():
            for name in (f"{image_id}.png", f"{image_id}_pixels0.png", f"{image_id}.xml"):
                f = folder / name
                if f.is_file():
                    atomic_write_bytes(out / sub / name, f.read_bytes())
