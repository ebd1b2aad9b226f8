"""File readers and writers for infrared images and their annotations.

Conventions used everywhere in irdet (documented once, here):

* **Images** are returned as ``float32`` arrays of shape (H, W, 3) with values in [0, 255].
  8-bit L / LA / P images are replicated to three channels, RGB is kept, RGBA / LA drop
  alpha, and 16-bit (or 32-bit integer / float) images are linearly stretched from their
  own [min, max] to [0, 255] without quantisation (irdet extension: a raw 14-bit sensor
  frame would otherwise look black after a fixed ``/257`` scaling).
* **Boxes** are ``(N, 4)`` float32 ``(x1, y1, x2, y2)`` in *pixel-edge* coordinates of the
  original image: pixel column ``i`` (0-based) covers ``[i, i + 1)``. DenseSIRST's xml
  numbers are already of this kind: measured against the target masks, ``xmin`` is the
  first target column (0-based) and ``xmax`` the last column + 1 for 13,634 of the 13,655
  boxes (the other 21 reach one pixel past their mask on the right and bottom), so boxes
  are read as written: ``x1 = xmin, y1 = ymin, x2 = xmax, y2 = ymax``. (The
  reference code, MMDetection, subtracts 1 from all four numbers, which shifts every box one
  pixel up-left of its target; its VOC metric then measures widths as ``xmax − xmin + 1``.
  irdet's metric keeps that "+1" formula on the xml numbers, see :mod:`irdet.metrics.voc`, so
  the scores are the reference's.) Edge coordinates stay exact under torchvision's flips and
  resizes.
* **Points** are ``(N, 2)`` float32 ``(x, y)`` in *pixel-index* coordinates, as in the
  Point_label files (``col row``, 0-based): the centre of pixel column ``i`` is ``x = i``,
  i.e. pixel-edge ``x + 0.5``. This is torchvision's ``KeyPoints`` convention (its flip maps
  ``x → W − 1 − x`` exactly; its resize scales indices, which is exact to within
  0.5·|1 − scale| px).
* **Masks** are ``uint8`` arrays (H, W).

Every reader raises :class:`irdet.errors.DataError` naming the file when it is missing,
unreadable or inconsistent. Source: DenseSIRST official layout (GrokCV/DenseSIRST release).
"""

from __future__ import annotations

import json
import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from irdet.errors import DataError

__all__ = [
    "read_image",
    "image_array",
    "image_size",
    "read_voc_xml",
    "read_mask",
    "read_points",
    "read_json",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_save_image",
    "default_file_mode",
]


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"cannot read image ({exc.__class__.__name__}: {exc})") from None
    return img


def image_size(path, verify: bool = False) -> tuple[int, int]:
    """(H, W) of an image file, read from its header only.

    Args:
        path: image file.
        verify: also run PIL's ``Image.verify()``, which reads the whole file without
            decoding pixels and finds truncated files and (PNG) chunk checksum errors
            (irdet extension, used by :meth:`irdet.data.datasets.base.SingleFrameDataset.check`).

    Raises:
        DataError: missing or unreadable file (with ``verify``: truncated, corrupt, or of zero size).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        with Image.open(path) as img:
            w, h = img.size
            if verify:
                img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"cannot read image ({exc.__class__.__name__}: {exc})") from None
    if verify and (w == 0 or h == 0):
        raise DataError(path, "image has zero size")
    return h, w


def read_image(path) -> np.ndarray:
    """Read an image of any common mode as a (H, W, 3) float32 array in [0, 255].

    Args:
        path: image file (PNG, JPEG, BMP, TIFF, ...).

    Returns:
        ``np.ndarray`` (H, W, 3), float32, values in [0, 255] (see module docstring for how
        each mode is mapped).

    Raises:
        DataError: the file is missing, not an image, truncated, or has zero size.
    """
    path = Path(path)
    img = _open(path)
    if img.width == 0 or img.height == 0:
        raise DataError(path, "image has zero size")
    return image_array(img)


def image_array(img: Image.Image) -> np.ndarray:
    """A decoded PIL image as :func:`read_image` returns it: (H, W, 3) float32 in [0, 255]
    (16-bit / 32-bit / float modes min-max stretched, gray replicated, alpha dropped)."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        arr = np.repeat(arr[..., None].astype(np.float32), 3, axis=2)
    elif mode == "RGB":
        arr = np.asarray(img, dtype=np.float32)
    elif mode in ("L", "1"):
        arr = np.repeat(np.asarray(img.convert("L"), dtype=np.float32)[..., None], 3, axis=2)
    else:  # RGBA, LA, P, CMYK, YCbCr, ... -> RGB (alpha dropped)
        arr = np.asarray(img.convert("RGB"), dtype=np.float32)
    return np.ascontiguousarray(arr)


def _xml_int(obj: ET.Element, tag: str, path: Path, index: int) -> float:
    node = obj.find(f"bndbox/{tag}")
    if node is None or node.text is None:
        raise DataError(path, f"object {index} has no bndbox/{tag}")
    try:
        return float(node.text)
    except ValueError:
        raise DataError(path, f"object {index} bndbox/{tag} is not a number: {node.text!r}") from None


def read_voc_xml(path, image_size: tuple[int, int] | None = None) -> tuple[np.ndarray, list[str]]:
    """Read a Pascal-VOC xml into pixel-edge boxes.

    Args:
        path: the xml file (DenseSIRST ``SIRST/BBox/<id>.xml``).
        image_size: optional (H, W) of the image, used to check that boxes lie inside it.

    Returns:
        ``(boxes, names)``: boxes (N, 4) float32 ``(x1, y1, x2, y2)`` in pixel-edge
        coordinates, the xml's numbers as written (``x1 = xmin``, ``x2 = xmax``, see module
        docstring) and the object names (DenseSIRST: all ``"Target"``). N may be 0.

    Raises:
        DataError: missing or malformed file, a missing/non-numeric coordinate, a
            degenerate box (``xmax <= xmin`` or ``ymax <= ymin``: a zero width or height is
            degenerate too), or, when ``image_size`` is given, a box outside the image
            (``xmin < 0``, ``ymin < 0``, ``xmax > W`` or ``ymax > H``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DataError(path, f"malformed xml ({exc})") from None
    boxes, names = [], []
    for k, obj in enumerate(root.iter("object")):
        xmin, ymin, xmax, ymax = (_xml_int(obj, t, path, k) for t in ("xmin", "ymin", "xmax", "ymax"))
        if xmax <= xmin or ymax <= ymin:
            raise DataError(
                path, f"object {k} is a degenerate box (xmin={xmin:g}, ymin={ymin:g}, xmax={xmax:g}, ymax={ymax:g})"
            )
        if image_size is not None:
            h, w = image_size
            if xmin < 0 or ymin < 0 or xmax > w or ymax > h:
                raise DataError(
                    path,
                    f"object {k} ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) lies outside the {w}x{h} image",
                )
        boxes.append((xmin, ymin, xmax, ymax))
        name = obj.findtext("name")
        names.append(name if name is not None else "Target")
    arr = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return arr, names


def read_mask(path, *, palette: bool) -> np.ndarray:
    """Read a segmentation mask as a (H, W) uint8 array of class indices {0, 1}.

    Args:
        path: mask PNG.
        palette: True for an indexed (``P``) mask whose index 1 is the foreground
            (DenseSIRST ``PaletteMask``); False for a binary mask where 255 (any value > 127)
            is the foreground (``BinaryMask``). A palette file given with ``palette=False`` (or
            the reverse) is still read correctly from its mode.

    Returns:
        ``np.ndarray`` (H, W) uint8 with 1 = foreground (sky, or target), 0 = background.

    Raises:
        DataError: missing/unreadable file, or index values other than 0/1 in a palette mask.
    """
    path = Path(path)
    img = _open(path)
    if img.mode == "P" or (palette and img.mode == "L" and np.asarray(img).max() <= 1):
        arr = np.asarray(img, dtype=np.uint8)
        if arr.size and arr.max() > 1:
            raise DataError(path, f"palette mask has index values {sorted(np.unique(arr).tolist())[:8]}, expected 0/1")
        return arr.copy()
    arr = np.asarray(img.convert("L"), dtype=np.uint8)
    return (arr > 127).astype(np.uint8)


def read_points(path) -> np.ndarray:
    """Read a DenseSIRST ``Point_label`` text file (one ``col row`` per line, 0-based).

    Returns:
        ``(N, 2)`` float32 ``(x, y)`` pixel-index coordinates (``col, row``).

    Raises:
        DataError: missing file or a line that is not two numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    pts = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.replace(",", " ").split()
        if not parts:
            continue
        try:
            x, y = (float(v) for v in parts[:2])
        except ValueError:
            raise DataError(path, f"line {n} is not 'x y': {line!r}") from None
        if len(parts) != 2:
            raise DataError(path, f"line {n} is not 'x y': {line!r}")
        pts.append((x, y))
    return np.asarray(pts, dtype=np.float32).reshape(-1, 2)


def read_json(path, what: str = "file"):
    """Parse a JSON file.

    Raises:
        DataError: naming ``path``: missing (``"<what> not found"``), unreadable, or invalid
            JSON (with line and column).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{what} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read {what} ({exc.__class__.__name__}: {exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc (macOS, Windows, old kernels): set and restore
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """Permission bits a plain ``open(path, "w")`` would give a new file: ``0o666 & ~umask``.

    ``tempfile.mkstemp`` creates its files with mode 0600 whatever the umask; the atomic
    writers here (and :class:`irdet.visualize.video.VideoWriter`) chmod their temp file to
    this mode so results are as readable as any other file (0644 under umask 022).
    Source: irdet extension.
    """
    return 0o666 & ~_umask()


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + ``os.replace``).

    The file gets :func:`default_file_mode` (not mkstemp's 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, default_file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path, obj, indent: int | None = 2) -> None:
    """Serialise ``obj`` as JSON and write it atomically to ``path``."""
    atomic_write_bytes(path, (json.dumps(obj, indent=indent) + "\n").encode())


def atomic_save_image(path, array: np.ndarray) -> None:
    """Save a (H, W) or (H, W, 3) uint8 array as an image file atomically (format from suffix)."""
    import io

    path = Path(path)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
    atomic_write_bytes(path, buf.getvalue())
