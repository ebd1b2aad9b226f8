"""The one reader of COCO detection annotation sets: checked and normalised, or a one-line error naming the file.

:func:`load_coco` reads a COCO "instances" annotation set (a JSON file, a dict or a
``pycocotools.coco.COCO`` object) for both of its users: the moving-target clips
(:class:`irdet.data.datasets.sequences.SequenceDataset`) and their evaluation
(:mod:`irdet.metrics.coco`, pycocotools). What the two need differently is said by three
switches; everything else is one set of rules.

Rules (COCO data format, cocodataset.org; ``track_id`` is an irdet key)
-----------------------------------------------------------------------
* Top level: an object with an ``images`` list; ``annotations`` and ``categories`` are lists
  when present (absent or null: empty). Other keys (``info``, irdet's ``tracks`` and
  ``distractors``) pass through unchanged.
* ``images``: objects with a unique integer ``id``; ``file_name`` a string (required with
  ``require_file_names``, else ``str(id)`` when absent); ``height`` and ``width`` positive
  integers (required with ``require_sizes``, else both absent/null or both valid).
* ``categories``: objects with a unique integer ``id``. None declared: derived from the
  annotations' ``category_id`` values (sorted), named ``str(id)``; ``[{"id": 1, "name": "1"}]``
  when there are no annotations either.
* ``annotations``: objects with the integer ``image_id`` of a listed image and ``bbox``
  ``[x, y, w, h]`` of 4 finite numbers, in pixels, pixel-edge (``x`` is the left edge of the
  first covered column, so the box is ``(x, y, x + w, y + h)``); ``w, h >= 0``, or ``> 0`` with
  ``positive_boxes`` (a training box must cover something). ``category_id``: a declared
  category (default: the first declared category, else 1); ``track_id``, when present, an
  integer. Defaults filled in: ``iscrowd`` 0, ``area`` ``w · h``, ``id`` (a non-integer or
  missing id gets the next free integer after the largest one in the file).

Errors: :class:`~irdet.errors.DataError` whose path is the file (or ``source``) and whose message
names the entry (``images[3]``, ``annotation 17 (seq01/4.png)``) and the rule broken.
Source: COCO data format; the switches, ``track_id`` and the error messages are irdet's.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from pathlib import Path

from irdet.data.io import read_json
from irdet.errors import DataError

__all__ = ["load_coco", "finite_number"]


def finite_number(value, source, where: str) -> float:
    """``value`` as a float.

    Raises:
        DataError(source, ...): ``value`` is a bool, not an int / float, NaN or infinite
            (the message starts with ``where``).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise DataError(source, f"{where} is not a finite number ({value!r})")
    return float(value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read(ann, source) -> tuple[dict, object]:
    """(a private copy of the annotation set, the name for errors)."""
    if hasattr(ann, "dataset") and isinstance(getattr(ann, "dataset"), dict):
        return copy.deepcopy(ann.dataset), source or "<COCO object>"
    if isinstance(ann, Mapping):
        return copy.deepcopy(dict(ann)), source or "<coco>"
    path = Path(ann)
    return read_json(path, "annotation file"), source or path


def _check_lists(data, source) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(source, "not a COCO annotation file (no 'images' list)")
    for key in ("annotations", "categories"):
        if data.get(key) is None:
            data[key] = []
        elif not isinstance(data[key], list):
            raise DataError(source, f"'{key}' must be a list, got {type(data[key]).__name__}")


def _check_images(images: list, source, require_sizes: bool, require_file_names: bool) -> dict[int, str]:
    """COCO image id → file_name, after checking every image (module docstring)."""
    names: dict[int, str] = {}
    for k, img in enumerate(images):
        if not isinstance(img, dict) or "id" not in img:
            raise DataError(source, f"images[{k}] has no 'id'")
        cid = img["id"]
        if not _is_int(cid):
            raise DataError(source, f"images[{k}]: id must be an integer, got {cid!r}")
        if "file_name" not in img:
            if require_file_names:
                raise DataError(source, f"images[{k}] (id {cid}) has no 'file_name'")
            img["file_name"] = str(cid)
        fn = img["file_name"]
        if not isinstance(fn, str):
            raise DataError(source, f"images[{k}] (id {cid}): file_name must be a string, got {fn!r}")
        if cid in names:
            raise DataError(source, f"duplicate image id {cid} ({names[cid]!r} and {fn!r})")
        if require_sizes or img.get("height") is not None or img.get("width") is not None:
            for key in ("height", "width"):
                v = img.get(key)
                if not (_is_int(v) and v > 0):
                    raise DataError(source, f"image {cid} ({fn}): '{key}' must be a positive integer, got {v!r}")
        names[cid] = fn
    return names


def _declared_categories(cats: list, source) -> list[int]:
    """Ids of the declared categories, in file order."""
    for k, c in enumerate(cats):
        if not isinstance(c, dict) or not _is_int(c.get("id")):
            raise DataError(source, f"categories[{k}] has no integer 'id'")
    ids = [c["id"] for c in cats]
    if len(set(ids)) != len(ids):
        raise DataError(source, f"duplicate category ids {sorted(ids)}")
    return ids


def _check_annotation(a: dict, where: str, source, names: dict, declared: set, default_cat: int,
                      positive_boxes: bool) -> None:
    """Check one annotation and fill its ``bbox`` (floats), ``category_id``, ``iscrowd`` and ``area`` in place."""
    for key in ("image_id", "bbox"):
        if key not in a:
            raise DataError(source, f"{where} has no '{key}'")
    iid = a["image_id"]
    if not _is_int(iid) or iid not in names:
        raise DataError(source, f"{where} refers to unknown image id {iid!r}")
    where = f"{where} ({names[iid]})"
    bbox = a["bbox"]
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise DataError(source, f"{where}: bbox must be [x, y, w, h], got {bbox!r}")
    bbox = [finite_number(v, source, f"{where}: bbox[{i}]") for i, v in enumerate(bbox)]
    if bbox[2] < 0 or bbox[3] < 0:
        raise DataError(source, f"{where}: bbox has negative width or height {bbox}")
    if positive_boxes and (bbox[2] == 0 or bbox[3] == 0):
        raise DataError(source, f"{where}: degenerate bbox {bbox} (width and height must be > 0)")
    a["bbox"] = bbox
    cat = a.setdefault("category_id", default_cat)
    if not _is_int(cat) or (declared and cat not in declared):
        raise DataError(source, f"{where}: unknown category_id {cat!r}")
    if "track_id" in a and not _is_int(a["track_id"]):
        raise DataError(source, f"{where}: track_id must be an integer, got {a['track_id']!r}")
    a.setdefault("iscrowd", 0)
    a.setdefault("area", bbox[2] * bbox[3])


def load_coco(ann, source=None, *, require_sizes: bool = True, require_file_names: bool = False,
              positive_boxes: bool = False) -> dict:
    """Read, check and normalise a COCO detection annotation set (rules in the module docstring).

    Args:
        ann: path of a COCO JSON file, a COCO dict, or a ``pycocotools.coco.COCO`` object
            (never modified: the result is a new dict).
        source: name used in error messages (default: the path, ``"<coco>"`` for a dict,
            ``"<COCO object>"``).
        require_sizes: every image must declare ``height`` / ``width`` (evaluation: Pd / Fa
            need the frame size); False: optional (the clips read it from the files).
        require_file_names: every image must have a ``file_name`` (clips: it is the frame's
            path); False: ``str(id)`` when absent.
        positive_boxes: boxes must have ``w > 0`` and ``h > 0`` (training boxes); False:
            ``w, h >= 0``.

    Returns:
        the annotation set with ``images`` (int ``id``, str ``file_name``, sizes as given),
        ``annotations`` (int ``id``, ``image_id``, ``bbox`` of 4 floats, ``category_id``,
        ``iscrowd``, ``area``), ``categories`` (declared or derived) and every other top-level
        key of the input.

    Raises:
        DataError(source, ...): a missing / unreadable / invalid JSON file, or an entry that
            breaks a rule (the message names the entry and the rule).
    """
    data, source = _read(ann, source)
    _check_lists(data, source)
    names = _check_images(data["images"], source, require_sizes, require_file_names)
    declared_ids = _declared_categories(data["categories"], source)
    declared, default_cat = set(declared_ids), (declared_ids[0] if declared_ids else 1)
    anns = data["annotations"]
    next_id = max([a["id"] for a in anns if isinstance(a, dict) and _is_int(a.get("id"))] + [0]) + 1
    for k, a in enumerate(anns):
        if not isinstance(a, dict):
            raise DataError(source, f"annotations[{k}] is not an object")
        where = f"annotation {a['id']}" if _is_int(a.get("id")) else f"annotations[{k}]"
        _check_annotation(a, where, source, names, declared, default_cat, positive_boxes)
        if not _is_int(a.get("id")):
            a["id"] = next_id
            next_id += 1
    if not declared_ids:
        data["categories"] = [{"id": c, "name": str(c)} for c in sorted({a["category_id"] for a in anns}) or [1]]
    return data
