"""The harder synthetic benchmark (irdet.data.synthesis.hardness through synthesize_sequences and
``irdet synthesize-sequences``) on real DenseSIRST backgrounds: static distractors, sky-border
and cloud-edge crossings, log-uniform SNR, held-out backgrounds. Skipped without the dataset
(failing under IRDET_REQUIRE_DATA=1) except the pure-numpy tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irdet.data.synthesis.hardness import cloud_edge_pixels, draw_snr, hardness_params, sky_border_pixels
from irdet.errors import ConfigError

BACKGROUNDS = ["Misc_56", "Misc_103", "S4_27"]  # as tests/data/test_sequence_synthesis.py: partly-sky images
SIZE = (160, 160)
N_SEQ, N_FRAMES = 4, 10
BASE = dict(split=BACKGROUNDS, size=SIZE, targets=(2, 3), snr=(1.0, 20.0), val_fraction=0.25, test_fraction=0.25,
            progress=False)
_CACHE: dict = {}


def _synth(densesirst, tmp_path_factory, name: str, **kw):
    """(out root, summary) of one synthesis per name, generated once per session."""
    if name not in _CACHE:
        from irdet.data.synthesis import synthesize_sequences

        out = tmp_path_factory.mktemp("hard") / name
        _CACHE[name] = (out, synthesize_sequences(densesirst, out, N_SEQ, N_FRAMES, 7, **{**BASE, **kw}))
    return _CACHE[name]


def _load(out: Path, split: str) -> dict:
    return json.loads((out / "annotations" / f"{split}.json").read_text())


def _grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _by_object(items, key):
    groups: dict = {}
    for a in items:
        groups.setdefault(a[key], []).append(a)
    return groups


def test_static_distractors_fixed_camera(densesirst, tmp_path_factory):
    """Without pan and jitter a distractor keeps one box in every frame; it is bright, target-like, of
    its recorded background kind, kept apart from the targets, and never annotated as a target."""
    out, summary = _synth(densesirst, tmp_path_factory, "still", pan=(0.0, 0.0), jitter=0.0, distractors=(2, 3))
    assert summary["distractors"] >= 2 * N_SEQ - summary["distractors_refused"] and summary["distractors"] > 0
    assert summary["distractor_boxes"] == summary["distractors"] * N_FRAMES
    seen = 0
    for split in summary["splits"]:
        d = _load(out, split)
        files = {im["id"]: im["file_name"] for im in d["images"]}
        assert len(d["distractor_objects"]) == summary["splits"][split]["distractors"]
        targets = _by_object(d["annotations"], "image_id")
        for did, obs in _by_object(d["distractors"], "distractor_id").items():
            assert len(obs) == N_FRAMES and len({tuple(a["bbox"]) for a in obs}) == 1  # static
            for a in obs:
                x, y, w, h = (int(v) for v in a["bbox"])
                assert 1.0 <= a["snr"] <= 20.0 and max(w, h) <= 7
                frame = _grey(out / "images" / files[a["image_id"]]).astype(float)
                mask = _grey(out / "masks" / files[a["image_id"]])
                sky = _grey(out / "sky" / files[a["image_id"]]) > 127
                assert not mask[y:y + h, x:x + w].any()  # not a target pixel
                assert (sky[y:y + h, x:x + w] == a["on_sky"]).all()  # the whole box on sky, or off sky
                ring = frame[max(0, y - 6):y + h + 6, max(0, x - 6):x + w + 6]
                assert frame[y:y + h, x:x + w].max() > np.median(ring)  # a bright blob
                for t in targets.get(a["image_id"], []):  # >= ring outer radius (6 px) from every target box
                    tx, ty, tw, th = t["bbox"]
                    gap = max(tx - (x + w), x - (tx + tw), ty - (y + h), y - (ty + th))
                    assert gap >= 6, (a, t)
                seen += 1
        # the loader keeps them out of the training boxes but hands them to the evaluator
        from irdet.data.datasets.sequences import SequenceDataset

        ds = SequenceDataset.from_layout(out, split, dataset="irdet", frames=3)
        boxes, _ = ds.ground_truth()
        assert sum(len(b) for b in boxes.values()) == len(d["annotations"])
        assert len(ds.coco_dict["distractors"]) == len(d["distractors"])
    assert seen == summary["distractor_boxes"]


def test_distractors_follow_the_camera_targets_move(densesirst, tmp_path_factory):
    """With pan + jitter, the distractors of a sequence move together (the camera's motion, up to the
    1 px of rounding), while targets move against them."""
    out, summary = _synth(densesirst, tmp_path_factory, "pan", pan=(0.8, 1.5), jitter=1.0, distractors=(2, 2),
                          distractor_sky=1.0)
    assert summary["params"]["distractor_sky"] == 1.0 and summary["params"]["jitter"] == 1.0
    checked = moved = 0
    for split in summary["splits"]:
        d = _load(out, split)
        seq_of = {im["id"]: (im["sequence"], im["frame"]) for im in d["images"]}
        per_seq: dict = {}
        for a in d["distractors"]:
            s, f = seq_of[a["image_id"]]
            per_seq.setdefault(s, {}).setdefault(a["distractor_id"], {})[f] = np.array(a["bbox"][:2])
        for s, objs in per_seq.items():
            assert all(o["on_sky"] for o in d["distractor_objects"] if o["sequence"] == s)
            if len(objs) < 2:
                continue
            a, b = list(objs.values())[:2]
            rel = np.array([a[f] - b[f] for f in range(N_FRAMES)])
            assert np.abs(rel - rel[0]).max() <= 1.0  # both fixed in the scene
            cam = np.array([a[f] for f in range(N_FRAMES)])
            moved += np.abs(np.diff(cam, axis=0)).max() > 0  # the camera moved them (not on an image just window-sized)
            for t in _by_object([x for x in d["annotations"] if seq_of[x["image_id"]][0] == s], "track_id").values():
                t = sorted(t, key=lambda x: seq_of[x["image_id"]][1])
                rel_t = np.array([np.array(x["bbox"][:2]) - a[seq_of[x["image_id"]][1]] for x in t])
                assert np.abs(rel_t - rel_t[0]).max() > 1.0  # targets move in the scene
            checked += 1
    assert checked >= 1 and moved >= 1


def test_border_and_cloud_edge_crossings(densesirst, tmp_path_factory):
    out, summary = _synth(densesirst, tmp_path_factory, "cross", cross_sky_border=0.5, cross_cloud_edge=0.5)
    kinds = summary["crossings"]
    assert kinds["sky_border"] > 0 and kinds["cloud_edge"] > 0 and kinds["none"] == kinds["unavailable"]
    assert summary["targets_refused"] == 0  # an impossible crossing falls back to an ordinary track
    for split in summary["splits"]:
        d = _load(out, split)
        files = {im["id"]: im["file_name"] for im in d["images"]}
        frame_of = {im["id"]: im["frame"] for im in d["images"]}
        tracks = {t["track_id"]: t for t in d["tracks"]}
        for tid, obs in _by_object(d["annotations"], "track_id").items():
            kind = tracks[tid]["crossing"]
            if kind == "none":
                continue
            assert 1 <= tracks[tid]["crossing_frame"] <= N_FRAMES - 2
            on_sky = []
            for a in obs:
                x, y, w, h = (int(v) for v in a["bbox"])
                sky = _grey(out / "sky" / files[a["image_id"]]) > 127
                assert a["sky_fraction"] == pytest.approx(sky[y:y + h, x:x + w].mean(), abs=1e-4)
                cx, cy = int(np.floor(x + w / 2)), int(np.floor(y + h / 2))
                on_sky.append(bool(sky[cy, cx]))
                if kind == "cloud_edge":
                    assert sky[y:y + h, x:x + w].all()  # cloud-edge tracks stay in sky
            if kind == "sky_border":
                assert any(on_sky) and not all(on_sky), (tid, on_sky)  # the centre crosses the sky border
            assert sorted(frame_of[a["image_id"]] for a in obs) == list(range(N_FRAMES))


def test_held_out_backgrounds_and_library_entries(densesirst, tmp_path_factory):
    """Distractors, like targets, are cut from the library entries of their own split's backgrounds."""
    from irdet.data.synthesis import library_for

    out, summary = _synth(densesirst, tmp_path_factory, "still", pan=(0.0, 0.0), jitter=0.0, distractors=(2, 3))
    lib = library_for(densesirst, BACKGROUNDS)
    names = {s: (out / "splits" / f"{s}.txt").read_text().split() for s in ("train", "val", "test")}
    used = {s: {summary["backgrounds_used"][q] for q in names[s]} for s in names}
    assert not (used["train"] & used["test"]) and not (used["val"] & used["test"]) and not (used["train"] & used["val"])
    for split in names:
        d = _load(out, split)
        sources = {lib.source_ids[o["library_index"]] for o in d["distractor_objects"] + d["tracks"]}
        assert sources <= used[split], (split, sources, used[split])


def test_log_uniform_snr_and_bad_switches():
    rng = np.random.default_rng(0)
    draws = np.array([draw_snr(rng, (1.0, 20.0), "log-uniform") for _ in range(20000)])
    assert draws.min() >= 1.0 and draws.max() <= 20.0
    assert np.mean(draws < 2.0) == pytest.approx(np.log(2) / np.log(20), abs=0.015)  # 23 % dim vs 5 % uniform
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert draw_snr(a, (2.0, 9.0)) == float(b.uniform(2.0, 9.0))  # the default draw is the historic one
    off = hardness_params((1.0, 10.0))
    assert not off.crossing and not off.has_distractors
    for bad in (dict(snr_distribution="gauss"), dict(cross_sky_border=0.7, cross_cloud_edge=0.5),
                dict(distractors=(3, 1)), dict(distractors=(-1, 2)), dict(distractor_sky=2.0),
                dict(cross_cloud_edge="x")):
        with pytest.raises(ConfigError):
            hardness_params((1.0, 10.0), **bad)
    with pytest.raises(ConfigError, match="log-uniform"):
        hardness_params((0.0, 10.0), "log-uniform")


def test_border_and_edge_pixel_rules():
    sky = np.zeros((20, 20), bool)
    sky[:10] = True  # sky above row 10
    border = np.unravel_index(sky_border_pixels(sky), sky.shape)
    assert set(border[0]) == {9} and len(border[0]) == 20
    bg = np.full((20, 20), 50.0)
    bg[:, 10:] = 90.0  # a vertical cloud edge at column 10
    rows, cols = np.unravel_index(cloud_edge_pixels(bg, sky, 0.9, 3.0), sky.shape)
    assert set(cols) <= {8, 9, 10, 11} and set(rows) <= set(range(10)) and len(cols) > 0
    assert cloud_edge_pixels(np.full((20, 20), 50.0), sky).size == 0  # a flat sky has no edge


def test_cli_flags(densesirst, tmp_path, capsys):
    from irdet.cli import main

    bg = tmp_path / "bg"
    bg.mkdir()
    for sub in ("PNGImages", "SIRST", "SkySeg"):
        (bg / sub).symlink_to(Path(densesirst).resolve() / sub)
    (bg / "Splits").mkdir()
    (bg / "Splits" / "few.txt").write_text("\n".join(BACKGROUNDS) + "\n")
    out = tmp_path / "syn"
    assert main(["synthesize-sequences", "--backgrounds", str(bg), "--out", str(out), "--sequences", "2", "--frames", "4",
                 "--split", "few", "--size", "96", "96", "--val-fraction", "0.5", "--snr", "1", "10",
                 "--snr-distribution", "log-uniform", "--pan", "0", "0.5", "--jitter", "1.5", "--cross-sky-border", "0.4",
                 "--cross-cloud-edge", "0.3", "--distractors", "1", "2", "--distractor-sky", "0.25"]) == 0
    assert "static distractors placed" in capsys.readouterr().out
    params = _load(out, "train")["info"]["params"]
    assert params["snr_distribution"] == "log-uniform" and params["jitter"] == 1.5 and params["pan"] == [0.0, 0.5]
    assert params["cross_sky_border"] == 0.4 and params["cross_cloud_edge"] == 0.3
    assert params["distractors"] == [1, 2] and params["distractor_sky"] == 0.25
    assert "distractors" in _load(out, "val")
    assert main(["synthesize-sequences", "--backgrounds", str(bg), "--out", str(tmp_path / "bad"), "--sequences", "1",
                 "--frames", "2", "--split", "few", "--cross-sky-border", "0.8", "--cross-cloud-edge", "0.8"]) == 2
    assert "cross_sky_border + cross_cloud_edge" in capsys.readouterr().err


def test_hard_switches_are_deterministic(densesirst, tmp_path):
    from irdet.data.synthesis import synthesize_sequences

    kw = {**BASE, "size": (96, 96), "snr_distribution": "log-uniform", "cross_sky_border": 0.5, "cross_cloud_edge": 0.5,
          "distractors": (1, 2), "jitter": 1.0}
    for name in ("a", "b"):
        synthesize_sequences(densesirst, tmp_path / name, 4, 4, 3, **kw)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
