"""``irdet detect`` on image files: bad files are skipped (exit 3) and listed, every input keeps its own id
and overlay, a used --out folder needs --overwrite (irdet.engine.detect.detect, irdet.data.datasets.inputs.ImageFolder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures import make_checkpoint, write_corrupt_png
from irdet.cli import main
from irdet.data.datasets.inputs import ImageFolder, unique_image_ids

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt")


def _image(path: Path, seed: int = 0, size=(48, 64)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, size, dtype=np.uint8)).save(path)
    return path


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def _skipped_lines(err: str) -> list[str]:
    return [line[line.index("irdet: skipped "):] for line in err.splitlines() if "irdet: skipped " in line]


@pytest.mark.parametrize("workers", [0, 2])
def test_bad_files_are_skipped_and_listed(checkpoint, tmp_path, capsys, workers):
    folder = tmp_path / "imgs"
    good = [_image(folder / "a.png", 1), _image(folder / "sub" / "b.png", 2)]
    corrupt = write_corrupt_png(folder / "corrupt.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / "text.png").write_text("text saved as .png")
    out = tmp_path / "det"
    assert main(["detect", str(checkpoint), str(folder), "--out", str(out), "--workers", str(workers)]) == 3
    err = capsys.readouterr().err
    skipped = {Path(item["path"]).name: item["reason"] for item in _summary(out)["skipped"]}
    assert sorted(skipped) == ["corrupt.png", "notes.txt", "text.png"]
    assert "not an image file" in skipped["notes.txt"] and "cannot read image" in skipped["text.png"]
    assert "unrecognized data stream" in skipped["corrupt.png"]
    lines = _skipped_lines(err)
    assert len(lines) == 3 and any(str(corrupt) in line for line in lines)
    assert "Traceback" not in err
    # the good images are processed; detections.json stays a results list that `irdet evaluate --predictions` reads
    assert [im["image_id"] for im in _summary(out)["images"]] == ["a", "sub/b"]
    assert sorted(p.relative_to(out / "overlays").as_posix() for p in (out / "overlays").rglob("*.png")) == ["a.png", "sub/b.png"]
    results = json.loads((out / "detections.json").read_text())
    assert isinstance(results, list) and all({"image_id", "bbox", "score"} <= set(r) for r in results)
    assert {r["image_id"] for r in results} <= {"a", "sub/b"}
    assert all(p.is_file() for p in good)


def test_explicit_non_image_file_is_skipped(checkpoint, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    good = _image(tmp_path / "a.png")
    out = tmp_path / "det"
    assert main(["detect", str(checkpoint), str(notes), str(good), "--out", str(out), "--workers", "0"]) == 3
    assert _skipped_lines(capsys.readouterr().err) == [f"irdet: skipped {notes}: " + _summary(out)["skipped"][0]["reason"]]
    assert [im["image_id"] for im in _summary(out)["images"]] == ["a"]


def test_same_names_are_never_collapsed(checkpoint, tmp_path):
    a = _image(tmp_path / "dirA" / "frame.png", 1)
    b = _image(tmp_path / "dirB" / "frame.png", 2)
    shots = tmp_path / "shots"
    _image(shots / "shot.png", 3)
    Image.open(a).convert("RGB").save(shots / "shot.jpg")
    out = tmp_path / "det"
    assert main(["detect", str(checkpoint), str(tmp_path / "dirA"), str(b), str(shots), "--out", str(out),
                 "--workers", "0"]) == 0
    images = {im["image_id"]: im for im in _summary(out)["images"]}
    assert sorted(images) == ["dirA/frame", "dirB/frame", "shots/shot.jpg", "shots/shot.png"]
    overlays = sorted(p.relative_to(out).as_posix() for p in (out / "overlays").rglob("*.png"))
    assert overlays == sorted(im["overlay"] for im in images.values()) == [
        "overlays/dirA/frame.png", "overlays/dirB/frame.png", "overlays/shots/shot.jpg.png", "overlays/shots/shot.png.png"]
    assert images["dirB/frame"]["path"] == str(b)


def test_unique_image_ids(tmp_path):
    d = tmp_path
    one = [(d / "x" / "a.png", d / "x"), (d / "x" / "s" / "b.png", d / "x")]
    assert unique_image_ids(one) == [("a", one[0][0]), ("s/b", one[1][0])]  # one folder: ids relative to it
    assert [i for i, _ in unique_image_ids([(d / "a" / "f.png", d / "a"), (d / "b" / "f.png", d / "b")])] == ["a/f", "b/f"]
    assert [i for i, _ in unique_image_ids([(d / "shot.png", d), (d / "shot.jpg", d)])] == ["shot.png", "shot.jpg"]
    assert [i for i, _ in unique_image_ids([(d / "a.png", d), (d / "a.png", d)])] == ["a"]  # the same file once
    assert [i for i, _ in unique_image_ids([(d / "a.png", d), (d / "a.jpg", d), (d / "a.png.bmp", d)])] == \
        ["a.png", "a.jpg", "a.png~2"]
    _image(d / "imgs" / "x.png")
    (d / "imgs" / "readme.md").write_text("#")
    ds = ImageFolder([d / "imgs", d / "imgs" / "x.png"])
    assert [i for i, _ in ds.items] == ["x"] and [p.name for p, _ in ds.skipped] == ["readme.md"]


def test_used_out_folder_needs_overwrite(checkpoint, tmp_path, capsys):
    img = _image(tmp_path / "in" / "a.png")
    out = tmp_path / "det"
    stale = out / "overlays" / "old.png"
    _image(stale)
    assert main(["detect", str(checkpoint), str(img), "--out", str(out), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "output folder is not empty (overlays/)" in err and "--overwrite" in err
    assert stale.is_file() and not (out / "detections.json").exists()
    (out / "notes.txt").write_text("mine")
    assert main(["detect", str(checkpoint), str(img), "--out", str(out), "--workers", "0", "--overwrite"]) == 0
    assert not stale.exists() and (out / "overlays" / "a.png").is_file() and (out / "notes.txt").read_text() == "mine"
    assert main(["detect", str(checkpoint), str(img), "--out", str(out), "--workers", "0", "--overwrite"]) == 0
