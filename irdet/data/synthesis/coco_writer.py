"""Writing a synthetic moving-target dataset in irdet's sequence layout: frames, masks, COCO files, split lists.

Layout (read by ``SequenceDataset.from_layout(out_dir, split, dataset="irdet")``,
:mod:`irdet.data.datasets.sequence_layouts`)::

    out_dir/images/<seq>/<frame>.png      8-bit grey frames, frames numbered 0 .. F−1 (no padding)
    out_dir/masks/<seq>/<frame>.png       target mask, 255 = target pixel (0 elsewhere)
    out_dir/sky/<seq>/<frame>.png         sky mask of the frame, 255 = sky
    out_dir/annotations/<split>.json      COCO: images (file_name "<seq>/<frame>.png", plus
                                          "sequence", "frame"), annotations (bbox [x, y, w, h]
                                          pixel-edge, "track_id", "snr"), categories
                                          [{"id": 1, "name": "target"}], "tracks" (per track:
                                          sequence, snr, size, library entry, motion)
    out_dir/splits/<split>.txt            sequence names of the split

With static distractors the COCO file also lists ``"distractors"`` (per-frame boxes:
``id``, ``image_id``, ``bbox``, ``distractor_id``, ``snr``, ``on_sky``) and
``"distractor_objects"`` (one per distractor), apart from the targets. COCO image, annotation,
track and distractor ids count from 1 over the whole dataset (all splits). Every file is
written atomically. Source: the SSTNet / Tridos public layout (COCO JSON + frame folders);
the extra keys are irdet's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from irdet.data.io import atomic_save_image, atomic_write_json
from irdet.data.synthesis.common import write_lines

__all__ = ["SPLITS", "CATEGORY", "SequenceCocoWriter"]

#: Output split names (train sequences first, then val, then test).
SPLITS = ("train", "val", "test")
#: The single COCO category written (as DAUB's JSON).
CATEGORY = {"id": 1, "name": "target", "supercategory": "none"}


class SequenceCocoWriter:
    """Collects the COCO entries of every split while the frames are written, then writes the
    annotation files and split lists (module docstring).

    Args:
        out: output root (its sub-folders are created).
        crossing: annotations carry ``sky_fraction`` (tracks built to cross borders).
        distractors: the COCO files list the distractors.
    """

    def __init__(self, out: Path, crossing: bool = False, distractors: bool = False):
        self.out = Path(out)
        self.crossing = crossing
        self.distractors = distractors
        self.coco = {name: {"images": [], "annotations": [], "tracks": [], "distractors": [], "distractor_objects": []}
                     for name in SPLITS}
        self.sequences: dict[str, list[str]] = {name: [] for name in SPLITS}
        self.image_id = self.ann_id = self.track_id = self.distractor_id = 0
        for sub in ("images", "masks", "sky", "annotations", "splits"):
            (self.out / sub).mkdir(parents=True, exist_ok=True)

    def add_sequence(self, split: str, seq: str) -> None:
        """Start sequence ``seq`` of ``split``."""
        self.sequences[split].append(seq)

    def add_distractor_object(self, split: str, seq: str, info: dict) -> int:
        """Record one static distractor of ``seq``; returns its ``distractor_id``."""
        self.distractor_id += 1
        self.coco[split]["distractor_objects"].append({"distractor_id": self.distractor_id, "sequence": seq, **info})
        return self.distractor_id

    def add_track(self, split: str, seq: str, snr: float, size_wh, nominal_size: int, library_index: int,
                  gaussian: dict, motion: dict) -> int:
        """Record one target track of ``seq``; returns its ``track_id``."""
        self.track_id += 1
        self.coco[split]["tracks"].append({
            "track_id": self.track_id, "sequence": seq, "snr": snr, "size": [int(size_wh[0]), int(size_wh[1])],
            "nominal_size": nominal_size, "library_index": library_index, "gaussian": gaussian, **motion,
        })
        return self.track_id

    def add_image(self, split: str, seq: str, frame: int, size) -> int:
        """Record frame ``frame`` of ``seq`` ((H, W) = ``size``); returns its COCO image id."""
        self.image_id += 1
        self.coco[split]["images"].append({
            "id": self.image_id, "file_name": f"{seq}/{frame}.png", "height": size[0], "width": size[1],
            "sequence": seq, "frame": frame,
        })
        return self.image_id

    def add_box(self, split: str, image_id: int, bbox: list, track_id: int, snr: float,
                sky_fraction: float | None = None) -> None:
        """One target box ``[x, y, w, h]`` (pixel-edge) of a frame; ``sky_fraction`` is written
        when the writer was made with ``crossing``."""
        self.ann_id += 1
        ann = {"id": self.ann_id, "image_id": image_id, "category_id": CATEGORY["id"], "bbox": bbox,
               "area": float(bbox[2] * bbox[3]), "iscrowd": 0, "track_id": track_id, "snr": round(snr, 4)}
        if self.crossing:
            ann["sky_fraction"] = round(float(sky_fraction), 4)
        self.coco[split]["annotations"].append(ann)

    def add_distractor_box(self, split: str, image_id: int, bbox: list, distractor_id: int, snr: float,
                           on_sky: bool) -> None:
        """One distractor box ``[x, y, w, h]`` of a frame (never a target)."""
        boxes = self.coco[split]["distractors"]
        boxes.append({"id": len(boxes) + 1, "image_id": image_id, "bbox": bbox, "distractor_id": distractor_id,
                      "snr": round(snr, 4), "on_sky": on_sky})

    def write_frame(self, seq: str, frame: int, image: np.ndarray, mask: np.ndarray, sky: np.ndarray) -> None:
        """Write a frame (float grey levels, rounded and clipped to 8 bits), its target mask
        (uint8, 255 = target) and sky mask ((H, W) bool)."""
        img8 = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        atomic_save_image(self.out / "images" / seq / f"{frame}.png", img8)
        atomic_save_image(self.out / "masks" / seq / f"{frame}.png", mask)
        atomic_save_image(self.out / "sky" / seq / f"{frame}.png", sky.astype(np.uint8) * 255)

    def write(self, info: dict, params: dict) -> dict:
        """Write ``annotations/<split>.json`` (``"info"``: ``info`` plus ``"split"`` and
        ``"params"``) and ``splits/<split>.txt`` of every split that has sequences.

        Returns:
            split → ``sequences``, ``frames``, ``boxes``, ``tracks`` (and ``distractors``,
            ``distractor_boxes`` with distractors).
        """
        counts = {}
        for name in SPLITS:
            if not self.sequences[name]:
                continue
            c = self.coco[name]
            doc = {"info": {**info, "split": name, "params": params}, "images": c["images"],
                   "annotations": c["annotations"], "categories": [dict(CATEGORY)], "tracks": c["tracks"]}
            if self.distractors:  # static distractors: annotated apart, never targets
                doc["distractors"] = c["distractors"]
                doc["distractor_objects"] = c["distractor_objects"]
            atomic_write_json(self.out / "annotations" / f"{name}.json", doc, indent=None)
            write_lines(self.out / "splits" / f"{name}.txt", self.sequences[name])
            counts[name] = {"sequences": len(self.sequences[name]), "frames": len(c["images"]),
                            "boxes": len(c["annotations"]), "tracks": len(c["tracks"])}
            if self.distractors:
                counts[name]["distractors"] = len(c["distractor_objects"])
                counts[name]["distractor_boxes"] = len(c["distractors"])
        return counts

    @property
    def distractor_boxes(self) -> int:
        """Distractor boxes of all splits."""
        return sum(len(c["distractors"]) for c in self.coco.values())
