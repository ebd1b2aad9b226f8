"""The Python API (irdet.load / Model.predict / Result) on real DenseSIRST images: mixed inputs in
order, result fields and files, bad inputs, the default model, the CLI's use of the API, sequence
models on frame lists, folders and videos, and a light ``import irdet``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import irdet
from irdet.cli import main
from irdet.data.io import image_size, read_image
from irdet.engine import zoo
from irdet.engine.predict import load_checkpoint
from irdet.errors import ConfigError, DataError, IrdetError

from deploy_helpers import sequence_checkpoint
from fixtures import make_checkpoint, write_corrupt_png

pytestmark = pytest.mark.usefixtures("one_thread")

SAMPLE = zoo.WEIGHTS_DIR.parent / "sample" / "SIRSTdevkit" / "PNGImages"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny FCOS-R18 (64 x 64 input) keeping every box, so each image gets many detections."""
    return make_checkpoint(tmp_path_factory.mktemp("api") / "tiny.ckpt", ["model.head.test.score_thr=0.0"])


@pytest.fixture(scope="module")
def model(checkpoint):
    return irdet.load(checkpoint)


def _frames(root, n: int) -> list[str]:
    ids = (root / "Splits" / "test_v2.txt").read_text().split()
    paths = [root / "PNGImages" / f"{i}.png" for i in ids]
    return [str(p) for p in paths if image_size(p) == (512, 640)][:n]


def test_predict_takes_paths_arrays_tensors_and_pil_images_in_order(model, densesirst, tmp_path):
    path = _frames(densesirst, 1)[0]  # a gray 640 x 512 DenseSIRST image
    pil = Image.open(path)
    gray = np.asarray(pil)
    folder = tmp_path / "folder"
    folder.mkdir()
    for name in ("b.png", "a.png"):
        pil.save(folder / name)
    inputs = [path, gray, pil.convert("RGB"), torch.from_numpy(read_image(path)).permute(2, 0, 1), str(folder),
              gray[..., None]]
    results = model.predict(inputs)
    ids = [r.image_id for r in results]  # path ids are relative to the inputs' common parent (ImageFolder)
    assert ids[1:4] == ["input_1", "input_2", "input_3"] and ids[6] == "input_5"
    assert ids[0].endswith(Path(path).stem) and ids[4].endswith("folder/a") and ids[5].endswith("folder/b")
    assert [r.path is None for r in results] == [False, True, True, True, False, False, True]
    assert results.skipped == []
    first = results[0]
    assert first.orig_size == (512, 640) and first.boxes.shape == (len(first), 4) and first.boxes.dtype == np.float32
    assert len(first) > 10 and np.all(np.diff(first.scores) <= 0) and np.all((first.scores >= 0) & (first.scores <= 1))
    for r in results[1:]:  # the same pixels, however given: the same detections
        np.testing.assert_array_equal(r.boxes, first.boxes)
        np.testing.assert_array_equal(r.scores, first.scores)
    # a 16-bit image as an array and as a PNG file are stretched alike
    deep = (read_image(path)[..., 0].astype(np.uint16) * 200 + 7).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    a, b = model.predict([deep, str(tmp_path / "deep.png")])
    np.testing.assert_array_equal(a.boxes, b.boxes)


def test_result_fields_files_and_score_threshold(model, densesirst, tmp_path):
    path = _frames(densesirst, 1)[0]
    (full,) = model.predict(path)
    thr = float(np.median(full.scores))
    (kept,) = model(path, score_thr=thr)  # Model is callable
    assert 0 < len(kept) < len(full) and np.all(kept.scores >= thr)
    np.testing.assert_array_equal(kept.boxes, full.boxes[full.scores >= thr])
    overlay = kept.save(tmp_path / "out" / "overlay.png")
    assert Image.open(overlay).size == (640, 512) and Image.open(overlay).mode == "RGB"
    d = json.loads(kept.to_json())
    assert d["image_id"] == kept.image_id and d["orig_size"] == [512, 640] and d["path"] == path
    assert np.allclose(d["boxes"], kept.boxes) and np.allclose(d["scores"], kept.scores)
    (mem,) = model.predict(np.asarray(Image.open(path)))
    assert mem.save(tmp_path / "mem.png").is_file()  # in-memory inputs keep their image for save()
    results = model.predict([path])
    coco = results.to_results()
    assert len(coco) == len(results[0]) and set(coco[0]) == {"image_id", "bbox", "score", "category_id"}


def test_bad_inputs_raise_naming_the_file_or_are_skipped(model, tmp_path):
    good = str(SAMPLE / "Misc_53.png")
    corrupt = write_corrupt_png(tmp_path / "broken.png")
    with pytest.raises(DataError, match="missing.png: file or folder not found"):
        model.predict([good, str(tmp_path / "missing.png")])
    with pytest.raises(DataError, match="broken.png: cannot read image"):
        model.predict([good, str(corrupt)])
    results = model.predict([good, str(corrupt)], errors="skip")
    assert len(results) == 1 and results[0].path == good
    assert results.skipped == [{"path": str(corrupt), "reason": results.skipped[0]["reason"]}]
    with pytest.raises(DataError, match=r"<input 1>: array of shape \(4, 5, 7\) is not an image"):
        model.predict([good, np.zeros((4, 5, 7), np.uint8)])
    with pytest.raises(DataError, match="<input 0>: not an image: dict"):
        model.predict([{}])
    with pytest.raises(DataError, match="non-finite"):
        model.predict(np.full((8, 8), np.nan, np.float32))
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    Image.open(good).save(folder / "x.png")
    results = model.predict(str(folder))  # a non-image file inside a folder is listed, not raised
    assert [r.image_id for r in results] == ["x"] and "notes.txt" in results.skipped[0]["path"]
    with pytest.raises(ConfigError, match="errors must be one of"):
        model.predict(good, errors="ignore")
    with pytest.raises(ConfigError, match="export format must be 'onnx'"):
        model.export(tmp_path / "m.tflite", format="tflite")
    with pytest.raises(ConfigError, match="stream"):
        next(model.stream([good]))


def test_cli_detect_writes_what_the_api_returns(model, checkpoint, tmp_path):
    assert main(["detect", str(checkpoint), str(SAMPLE), "--out", str(tmp_path / "det"), "--workers", "0"]) == 0
    written = json.loads((tmp_path / "det" / "detections.json").read_text())
    assert written == model.predict(str(SAMPLE)).to_results()


def test_default_model(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "weights")
    with pytest.raises(DataError, match="no shipped default model yet"):
        irdet.load("default")
    zoo.write_weights(load_checkpoint(checkpoint), zoo.weights_path())
    m = irdet.load()  # None and "default" are the shipped model
    assert m.backend == "pytorch" and m.task == "detect" and m.source == "default"
    (r,) = m.predict(str(SAMPLE / "Misc_53.png"))
    assert r.orig_size == (290, 390) and len(r) > 0


def test_sequence_models_take_frame_lists_folders_and_videos(densesirst, tmp_path):
    from irdet.visualize.video import VideoWriter

    ckpt = sequence_checkpoint(tmp_path / "seq.ckpt")
    m = irdet.load(ckpt)
    assert m.task == "sequence"
    frames = _frames(densesirst, 4)
    listed = m.predict(frames)
    assert [r.frame_index for r in listed] == [0, 1, 2, 3] and all(len(r) > 0 for r in listed)
    arrays = m.predict([np.asarray(Image.open(f)) for f in frames])
    assert [r.image_id for r in arrays] == [f"frame_{i}" for i in range(4)]
    for a, b in zip(listed, arrays):
        np.testing.assert_array_equal(a.boxes, b.boxes)
    streamed = list(m.stream(frames))
    np.testing.assert_array_equal(streamed[3].scores, listed[3].scores)
    # a frame folder: the same detections as the list, and as irdet detect writes them
    folder = tmp_path / "clip"
    folder.mkdir()
    for i, f in enumerate(frames):
        Image.open(f).save(folder / f"{i}.png")
    in_folder = m.predict(str(folder))
    assert [r.image_id for r in in_folder] == [f"clip/{i}" for i in range(4)]
    for a, b in zip(listed, in_folder):
        np.testing.assert_array_equal(a.boxes, b.boxes)
    assert main(["detect", str(ckpt), str(folder), "--out", str(tmp_path / "det")]) == 0
    assert json.loads((tmp_path / "det" / "detections.json").read_text()) == in_folder.to_results()
    # a video file: per-frame results; the list does not keep decoded frames, the stream does
    video = tmp_path / "flight.mp4"
    with VideoWriter(video, fps=5) as w:
        for f in frames:
            w.write(np.asarray(Image.open(f).convert("RGB")))
    results = m.predict(str(video))
    assert [r.image_id for r in results] == [f"flight/{i}" for i in range(4)] and results[0].path is None
    with pytest.raises(IrdetError, match="not kept"):
        results[0].save(tmp_path / "f0.png")
    first = next(m.stream(str(video)))
    assert first.save(tmp_path / "f0.png").is_file() and first.image().shape == (512, 640, 3)
    with pytest.raises(DataError, match="<input 1>"):
        m.predict([frames[0], np.zeros((2, 2, 9))])


def test_import_irdet_stays_light():
    code = ("import sys, irdet, irdet.cli; assert callable(irdet.load); "
            "print(sorted(m for m in ('torch', 'lightning', 'onnxruntime', 'irdet.api') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert irdet.Model is irdet.api.Model and irdet.Result is irdet.api.Result
