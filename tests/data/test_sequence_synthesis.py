"""Synthetic moving-target sequences (irdet.data.synthesis.sequences) on real DenseSIRST backgrounds.

Three real images (one partly-sky image smaller than the window, two partly-sky larger ones)
are the backgrounds; the target library is built from the same three images. The tests are
skipped without the dataset (failing instead under IRDET_REQUIRE_DATA=1).
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irdet.data.synthesis.sequences import print_summary, synthesize_sequences
from irdet.data.datasets.sequences import SequenceDataset
from irdet.errors import ConfigError, DataError

#: trainval_v2 images: 159x241 with 23 % sky (enlarged to cover the window), 230x364 with 36 %
#: sky, 512x640 with 61 % sky.
BACKGROUNDS = ["Misc_56", "Misc_103", "S4_27"]
SIZE = (160, 160)
ARGS = dict(split=BACKGROUNDS, size=SIZE, targets=(2, 3), snr=(1.0, 10.0), pan=(0.5, 2.0), jitter=0.5,
            val_fraction=0.25, progress=False)
N_SEQ, N_FRAMES, SEED = 4, 10, 3
_CACHE: dict = {}


@pytest.fixture
def synth(densesirst, tmp_path_factory):
    """(output root, summary) of one small synthesis, generated once per session."""
    if "out" not in _CACHE:
        out = tmp_path_factory.mktemp("seqsynth") / "out"
        _CACHE["summary"] = synthesize_sequences(densesirst, out, N_SEQ, N_FRAMES, SEED, **ARGS)
        _CACHE["out"] = out
    return _CACHE["out"], _CACHE["summary"]


def _load(out: Path, split: str) -> dict:
    return json.loads((out / "annotations" / f"{split}.json").read_text())


def _grey(path: Path) -> np.ndarray:
    img = Image.open(path)
    assert img.mode == "L", path
    return np.asarray(img)


def test_targets_in_sky_and_masks_match_boxes(synth):
    out, summary = synth
    n_boxes = 0
    for split in summary["splits"]:
        d = _load(out, split)
        by_image = collections.defaultdict(list)
        for a in d["annotations"]:
            by_image[a["image_id"]].append(a)
        for im in d["images"]:
            sky = _grey(out / "sky" / im["file_name"]) > 127
            mask = _grey(out / "masks" / im["file_name"]) > 127
            assert sky.shape == mask.shape == (im["height"], im["width"]) == SIZE
            covered = np.zeros_like(mask)
            for a in by_image[im["id"]]:
                x, y, w, h = (int(v) for v in a["bbox"])
                assert [x, y, w, h] == a["bbox"] and w >= 1 and h >= 1 and max(w, h) <= 7
                assert 0 <= x and 0 <= y and x + w <= SIZE[1] and y + h <= SIZE[0]
                assert sky[y : y + h, x : x + w].all(), (im["file_name"], a["bbox"])  # whole box in sky
                m = mask[y : y + h, x : x + w]
                assert m[0].any() and m[-1].any() and m[:, 0].any() and m[:, -1].any()  # box tight on the mask
                covered[y : y + h, x : x + w] = True
                n_boxes += 1
            assert not (mask & ~covered).any()  # no target pixel outside the boxes
    assert n_boxes == summary["boxes"] > 0


def test_trajectories_are_continuous_with_consistent_track_ids(synth):
    out, summary = synth
    seen_tracks = set()
    for split in summary["splits"]:
        d = _load(out, split)
        frame_of = {im["id"]: (im["sequence"], im["frame"]) for im in d["images"]}
        tracks = collections.defaultdict(list)
        for a in d["annotations"]:
            tracks[a["track_id"]].append((frame_of[a["image_id"]], a["bbox"]))
        assert set(tracks) == {t["track_id"] for t in d["tracks"]}
        assert not seen_tracks & set(tracks)  # unique across splits
        seen_tracks |= set(tracks)
        for tid, obs in tracks.items():
            obs.sort()
            seqs = {s for (s, _), _ in obs}
            assert len(seqs) == 1  # one track, one sequence
            assert [f for (_, f), _ in obs] == list(range(N_FRAMES))  # present once in every frame
            sizes = {(b[2], b[3]) for _, b in obs}
            assert len(sizes) == 1  # constant appearance
            centres = np.array([[b[0] + b[2] / 2, b[1] + b[3] / 2] for _, b in obs])
            step = np.linalg.norm(np.diff(centres, axis=0), axis=1)
            assert step.max() <= summary["max_displacement"] + 1e-6, (tid, step.max())
    assert len(seen_tracks) == summary["targets"]


def test_output_loads_and_agrees_with_summary(synth):
    out, summary = synth
    assert summary["sequences"] == N_SEQ and summary["frames"] == N_SEQ * N_FRAMES
    assert summary["targets"] + summary["targets_refused"] == summary["targets_requested"]
    assert sum(summary["snr_histogram"]["counts"]) == summary["targets"]
    assert summary["splits"]["train"]["sequences"] == 3 and summary["splits"]["val"]["sequences"] == 1
    written = json.loads((out / "summary.json").read_text())
    assert written == {k: v for k, v in summary.items() if k not in ("seconds", "out_dir")}
    # train and val use disjoint backgrounds
    names = {split: (out / "splits" / f"{split}.txt").read_text().split() for split in ("train", "val")}
    used = {split: {summary["backgrounds_used"][q] for q in names[split]} for split in names}
    assert not used["train"] & used["val"] and used["train"] | used["val"] <= set(BACKGROUNDS)
    text = print_summary(summary)
    assert "SNR histogram" in text and str(summary["targets"]) in text
    total_boxes = 0
    for split, counts in summary["splits"].items():
        ds = SequenceDataset.from_layout(out, split, dataset="irdet", frames=5)
        assert len(ds) == counts["frames"] == counts["sequences"] * N_FRAMES
        assert sorted(ds.sequences) == names[split]
        assert all(len(v) == N_FRAMES for v in ds.sequences.values())
        boxes, sizes = ds.ground_truth()
        assert sum(len(b) for b in boxes.values()) == counts["boxes"]
        assert set(sizes.values()) == {SIZE}
        total_boxes += counts["boxes"]
        d = _load(out, split)
        assert len(d["tracks"]) == counts["tracks"]
        snrs = [t["snr"] for t in d["tracks"]]
        assert all(1.0 <= s <= 10.0 for s in snrs)
        item = ds[ds.index_of(f"{names[split][0]}/{N_FRAMES - 1}")]
        assert item["video"].shape == (5, 3, *SIZE)
        assert item["frame_ids"] == [f"{names[split][0]}/{f}" for f in range(N_FRAMES - 5, N_FRAMES)]
        assert len(item["track_ids"]) == len(item["boxes"]) == len(boxes[item["image_id"]])
        assert float(item["video"].min()) >= 0 and float(item["video"].max()) <= 255
    assert total_boxes == summary["boxes"] == N_FRAMES * summary["targets"]


def test_same_seed_gives_identical_files(synth, densesirst, tmp_path):
    out, _ = synth
    again = tmp_path / "again"
    synthesize_sequences(densesirst, again, N_SEQ, N_FRAMES, SEED, **ARGS)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert len(files) == 3 * N_SEQ * N_FRAMES + 2 * 2 + 1
    for rel in files:
        assert (out / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = synthesize_sequences(densesirst, tmp_path / "other", 1, 2, SEED + 1, **ARGS)
    assert other["frames"] == 2
    assert (tmp_path / "other/images/seq0000/0.png").read_bytes() != (out / "images/seq0000/0.png").read_bytes()


def test_snr_is_peak_contrast_over_ring_std(densesirst, tmp_path):
    """Fixed SNR 6 on a grey full-sky background: measured peak / ring std is about 6."""
    summary = synthesize_sequences(
        densesirst, tmp_path / "snr", 1, 6, 0, split=["Misc_23"], size=(128, 128), targets=(4, 4), snr=(6.0, 6.0),
        target_size=(3, 5), noise=(3.0, 3.0), column_noise=(0.0, 0.0), val_fraction=0.0, progress=False,
    )
    assert summary["targets"] >= 2
    d = json.loads((tmp_path / "snr/annotations/train.json").read_text())
    ratios = []
    files = {im["id"]: im["file_name"] for im in d["images"]}
    for a in d["annotations"]:
        frame = _grey(tmp_path / "snr/images" / files[a["image_id"]]).astype(np.float64)
        mask = _grey(tmp_path / "snr/masks" / files[a["image_id"]]) > 127
        x, y, w, h = (int(v) for v in a["bbox"])
        ring = np.zeros(frame.shape, bool)
        ring[max(0, y - 6) : y + h + 6, max(0, x - 6) : x + w + 6] = True
        ring[max(0, y - 2) : y + h + 2, max(0, x - 2) : x + w + 2] = False
        ring &= ~mask
        peak = frame[y : y + h, x : x + w][mask[y : y + h, x : x + w]].max() - frame[ring].mean()
        ratios.append(peak / frame[ring].std())
    assert 4.5 < float(np.median(ratios)) < 7.5, ratios


def test_bad_arguments(densesirst, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(DataError, match="not empty"):
        synthesize_sequences(densesirst, tmp_path / "full", 1, 2, 0, **ARGS)
    for bad in (dict(snr=(5.0, 1.0)), dict(targets=(-1, 2)), dict(size=(4, 4)), dict(target_size=(2, 400))):
        with pytest.raises(ConfigError):
            synthesize_sequences(densesirst, tmp_path / "x", 1, 2, 0, **{**ARGS, **bad})
    with pytest.raises(DataError, match="Splits"):
        synthesize_sequences(densesirst, tmp_path / "y", 1, 2, 0, **{**ARGS, "split": "no_such_split"})


def test_held_out_test_split_has_its_own_backgrounds(densesirst, tmp_path):
    summary = synthesize_sequences(densesirst, tmp_path / "o", 4, 3, 5, **{**ARGS, "test_fraction": 0.25})
    assert {k: v["sequences"] for k, v in summary["splits"].items()} == {"train": 2, "val": 1, "test": 1}
    names = {s: (tmp_path / "o" / "splits" / f"{s}.txt").read_text().split() for s in ("train", "val", "test")}
    used = {s: {summary["backgrounds_used"][q] for q in names[s]} for s in names}
    assert not (used["train"] & used["val"]) and not (used["train"] & used["test"]) and not (used["val"] & used["test"])
    ds = SequenceDataset.from_layout(tmp_path / "o", "test", dataset="irdet", frames=2)
    assert len(ds) == 3
    with pytest.raises(ConfigError, match="sum < 1"):
        synthesize_sequences(densesirst, tmp_path / "p", 4, 3, 5, **{**ARGS, "val_fraction": 0.5, "test_fraction": 0.5})
