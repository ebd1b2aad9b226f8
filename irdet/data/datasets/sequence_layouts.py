"""Moving-target dataset layouts (``sequence.layout``), as a registry: :data:`LAYOUTS` (name → layout).

A layout says where a split's COCO annotation file lies under a dataset root, which folder the
frames' ``file_name`` values are relative to, and where an optional split list is; adding a
layout is one :class:`SequenceLayout` entry. :meth:`irdet.data.datasets.sequences.SequenceDataset.from_layout`
opens a split through it. Split list files (the reference txt files, or irdet's
``splits/<split>.txt``) are matched against the frames by :func:`match_split_list`.

Public layout (SSTNet / Tridos, read from UESTC-nnLab/SSTNet and UESTC-nnLab/Tridos)
----------------------------------------------------------------------------------
IRDST, DAUB and ITSDT-15K are distributed as frame folders plus one COCO "instances" JSON
per split; the reference code (``vid_map_coco.py``, ``vid_map_{IRDST,ITSDT}.py``,
``utils_coco/coco_to_txt.py``) joins the dataset root with each image's ``file_name``::

    <root>/annotations/instances_train2017.json    COCO: images = frames, bbox [x, y, w, h]
    <root>/annotations/instances_test2017.json     (the "val" split of the training scripts)
    <root>/images/<...>/<sequence>/<frame>.bmp     frames numbered 0, 1, 2, ... (no zero padding)

* **DAUB**: ``file_name = "images/train/data5/0.bmp"`` / ``"images/test/data6/0.bmp"``
  (read in ``json/DAUB_instances_test2017.json`` of SSTNet): the train/test folder is part of
  the path, frames 256×256, image ids from 1, one category ``{"id": 1, "name": "target"}``,
  8×8 boxes.
* **IRDST** (real part): root ``IRDST/`` (SSTNet) or ``IRDST/real/`` (Tridos), frames
  ``images/<sequence number>/<frame>.bmp`` (SSTNet ``coco_train_IRDST.txt``), several
  targets per frame in places.
* **ITSDT-15K**: root ``ITSDT/``, frames ``images/<sequence number>/<frame>.bmp`` (Tridos
  ``dataset/coco_train_ITSDT.txt``); some frames carry no box.
* The reference txt files (``coco_train_DAUB.txt`` ...) are derived from the JSON
  (``coco_to_txt.py``): one line per frame, ``<absolute path> x1,y1,x2,y2,class ...`` with
  ``x2 = x + w``, class = category id − 1. They can be given as a split list: the first
  token of each line is matched against the frames' file names (boxes are ignored).

The ``"irdet"`` layout (irdet extension) is the one :func:`irdet.data.synthesis.synthesize_sequences`
writes: ``annotations/<split>.json``, frames under ``images/``, sequence names of the split in
``splits/<split>.txt``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from irdet.errors import DataError

__all__ = ["SequenceLayout", "LAYOUTS", "sequence_layout", "match_split_list"]


@dataclass(frozen=True)
class SequenceLayout:
    """Where a layout keeps a split's files, relative to the dataset root.

    Attributes:
        ann: annotation file candidates, tried in order (``{split}`` substituted).
        split_alias: split names also tried under another name (the public sets ship train
            and test JSONs only: ``"val"`` is read as ``"test"``).
        image_dir: folder the ``file_name`` values are relative to; None = found from the
            first frame (``<root>`` or ``<root>/images``).
        split_file: optional split list (``{split}`` substituted), used when it exists.
        subroots: folders under the root tried when the root itself has no annotation file
            (IRDST ships a ``real/`` part).
    """

    ann: tuple[str, ...]
    split_alias: dict = field(default_factory=dict)
    image_dir: str | None = None
    split_file: str | None = None
    subroots: tuple[str, ...] = ()

    def find(self, root: Path, split: str, name: str = "layout") -> tuple[Path, str, Path | None]:
        """``(base folder, annotation file relative to it, split list or None)`` of ``split``.

        Raises:
            DataError: no candidate annotation file exists (the message lists what was tried).
        """
        alias = self.split_alias.get(split, split)
        tried = []
        for base in [root] + [root / sub for sub in self.subroots]:
            for pattern in self.ann:
                for ann in dict.fromkeys([pattern.format(split=split), pattern.format(split=alias)]):
                    tried.append(base / ann)
                    if (base / ann).is_file():
                        split_file = base / self.split_file.format(split=split) if self.split_file else None
                        return base, ann, split_file if split_file is not None and split_file.is_file() else None
        raise DataError(tried[0],
                        f"no {name} annotation file for split {split!r} (tried: {', '.join(map(str, tried))})")


_COCO_ANN = ("annotations/instances_{split}2017.json", "annotations/instances_{split}.json", "annotations/{split}.json")

#: ``sequence.layout`` name → layout (module docstring).
LAYOUTS: dict[str, SequenceLayout] = {
    "daub": SequenceLayout(_COCO_ANN, {"val": "test"}),
    "irdst": SequenceLayout(_COCO_ANN, {"val": "test"}, subroots=("real",)),
    "itsdt": SequenceLayout(_COCO_ANN, {"val": "test"}),
    "irdet": SequenceLayout(("annotations/{split}.json",), image_dir="images", split_file="splits/{split}.txt"),
}


def sequence_layout(name: str) -> SequenceLayout:
    """The layout called ``name`` (case-insensitive).

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    key = str(name).lower()
    if key not in LAYOUTS:
        raise ValueError(f"dataset must be one of {sorted(LAYOUTS)}, got {name!r}")
    return LAYOUTS[key]


def match_split_list(path: Path, ann_path: Path, sequences: dict[str, list[int]], by_name: dict[str, int],
                     by_coco_id: dict[int, int]) -> set[int]:
    """Frames listed in a split list file.

    One entry per line (its first whitespace token; blank lines and ``#`` comments ignored),
    matched in this order as a sequence name, a frame's image id (``file_name`` without
    extension) or ``file_name``, a COCO image id, or a path ending with a ``file_name`` or a
    sequence name (the reference txt files: absolute path + boxes). irdet extension.

    Args:
        path: the split list. ann_path: the annotation file (named in errors).
        sequences: sequence name → frame indices. by_name: image id and file_name → frame
            index. by_coco_id: COCO image id → frame index.

    Returns:
        the frame indices listed.

    Raises:
        DataError(path, ...): a missing or empty list, or an entry that matches nothing (line number given).
    """
    if not path.is_file():
        raise DataError(path, "split list not found")
    keep: set[int] = set()
    n_entries = 0
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        tok = line.split()[0].replace("\\", "/")
        n_entries += 1
        if tok in sequences:
            keep.update(sequences[tok])
            continue
        if tok in by_name:
            keep.add(by_name[tok])
            continue
        if tok.isdigit() and int(tok) in by_coco_id:
            keep.add(by_coco_id[int(tok)])
            continue
        parts = tok.split("/")
        suffixes = ["/".join(parts[k:]) for k in range(1, len(parts))]  # longest first
        hit = next((by_name[sfx] for sfx in suffixes if sfx in by_name), None)
        if hit is not None:
            keep.add(hit)
            continue
        hit_seq = next((sfx for sfx in suffixes if sfx in sequences), None)
        if hit_seq is None:
            raise DataError(path,
                            f"line {n}: {tok!r} matches no sequence, image id, file name or COCO id of {ann_path}")
        keep.update(sequences[hit_seq])
    if n_entries == 0:
        raise DataError(path, "split list is empty")
    return keep
