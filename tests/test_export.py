"""ONNX export and ONNX Runtime inference on real DenseSIRST images.

A tiny fast detector (P2, native resolution) is trained for a few steps and packaged as the
shipped default model in a temporary weights folder; ``irdet export`` with no checkpoint
exports it. Checked: the graph's raw outputs and metadata; parity with the PyTorch path
(every detection matched within 0.5 px and 1e-3 in score) on real images of several sizes,
through the Python API, ``irdet detect`` and ``irdet evaluate --backend onnxruntime`` (also
tiled); BAFE-Net at a fixed input size (sky head); a multi-frame model on a frame list and a
frame folder; float16 export; one-line errors.
"""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import torch

import irdet
from irdet.cli import main
from irdet.data.io import image_size, read_image
from irdet.engine import zoo
from irdet.engine.predict import load_checkpoint
from irdet.errors import ConfigError

from deploy_helpers import BAFENET_TINY, FAST_TINY, match_detections, sequence_checkpoint, train_tiny

pytestmark = pytest.mark.usefixtures("one_thread")

SAMPLE = zoo.WEIGHTS_DIR.parent / "sample" / "SIRSTdevkit" / "PNGImages"
#: 12 steps of DAdaptAdam at lr 20 without warm-up: scores spread well above the 0.05 threshold on the
#: sample images (on DenseSIRST test images they depend on the CPU's kernels: see shipped_export)
FAST_TRAIN = [*FAST_TINY, "train.warmup_iters=1", "train.lr=20"]

#: the shipped default model (absent until it is packaged; the module fixture redirects
#: zoo.WEIGHTS_DIR later, so the path is taken at import); tests reach it through shipped_export
SHIPPED = zoo.weights_path()


def _assert_parity(a, b, min_matched: int = 1) -> int:
    """Results of two backends (lists of irdet.Result) agree image by image; returns the matches."""
    assert [r.image_id for r in a] == [r.image_id for r in b]
    total = 0
    for x, y in zip(a, b):
        matched, problems = match_detections(x.boxes, x.scores, y.boxes, y.scores)
        assert not problems, (x.image_id, problems[:3])
        total += matched
    assert total >= min_matched
    return total


def _test_images(root, n: int, size=None) -> list[str]:
    ids = (root / "Splits" / "test_v2.txt").read_text().split()
    paths = [root / "PNGImages" / f"{i}.png" for i in ids]
    if size is not None:
        paths = [p for p in paths if image_size(p) == size]
    return [str(p) for p in paths[:n]]


@pytest.fixture(scope="module")
def shipped_export(tmp_path_factory):
    """``(weights .pt, its irdet export .onnx)`` of the shipped default model: trained weights, so
    the parity on real images does not depend on what a 12-step model learns on this CPU (the fp32
    kernels of an AVX2 and an AVX-512 CPU train different 12-step models; one scored every box of
    the test images under 0.005)."""
    if not SHIPPED.is_file():
        pytest.skip(f"no shipped default model yet ({SHIPPED})")
    out = tmp_path_factory.mktemp("shipped") / "default.onnx"
    assert main(["export", str(SHIPPED), "--out", str(out)]) == 0
    return SHIPPED, out


def _pytorch_fp32(weights, **kw):
    """The PyTorch backend in fp32, as the export (the shipped config's ``bf16-mixed`` runs bf16
    on a CPU with the instructions)."""
    return irdet.load(weights, precision="32-true", **kw)


@pytest.fixture(scope="module")
def default_model(small_root, tmp_path_factory):
    """``(weights .pt, its irdet export .onnx)``: a freshly trained tiny fast detector packaged as
    the shipped default model (``zoo.WEIGHTS_DIR`` redirected for this module) and exported by
    ``irdet export --out`` without a checkpoint."""
    tmp = tmp_path_factory.mktemp("deploy")
    ckpt = train_tiny(small_root, tmp / "fast", "fcos_r18_p2_light_native.yaml", FAST_TRAIN, steps=12)
    mp = pytest.MonkeyPatch()
    mp.setattr(zoo, "WEIGHTS_DIR", tmp / "weights")
    weights = zoo.write_weights(load_checkpoint(ckpt), zoo.weights_path(), source="last.ckpt")
    onnx_path = tmp / "fast.onnx"
    assert main(["export", "--out", str(onnx_path)]) == 0
    yield weights, onnx_path
    mp.undo()


def test_export_holds_the_network_only_with_decoding_metadata(default_model, capsys):
    import onnx

    weights, onnx_path = default_model
    proto = onnx.load(str(onnx_path))
    onnx.checker.check_model(proto)
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    cfg = zoo.read_weights(weights)["config"]
    assert meta["irdet_format"] == "irdet-onnx/1" and meta["task"] == "detect" and meta["source"] == "default"
    assert meta["irdet_version"] == zoo._version() and meta["config"] == cfg
    assert meta["strides"] == [4] and meta["img_size"] is None and meta["pad_divisor"] == 32
    assert meta["dynamic_hw"] is True and meta["input_size"] is None and meta["hw_multiple"] == 32  # native: dynamic
    assert meta["pixel_mean"] == pytest.approx([123.675, 116.28, 103.53])
    assert meta["pixel_std"] == pytest.approx([58.395, 57.12, 57.375])
    assert (meta["score_thr"], meta["nms_iou"], meta["nms_pre"], meta["max_per_img"]) == (0.05, 0.5, 1000, 100)
    assert meta["outputs"] == ["cls_scores_0", "bbox_preds_0", "centernesses_0"] and meta["precision"] == "float32"
    assert [o.name for o in proto.graph.output] == meta["outputs"]
    (inp,) = proto.graph.input
    assert inp.name == "images"
    dims = inp.type.tensor_type.shape.dim
    assert dims[1].dim_value == 3 and all(d.dim_param for d in (dims[0], dims[2], dims[3]))  # N, H, W symbolic
    assert not {n.op_type for n in proto.graph.node} & {"NonMaxSuppression", "TopK"}  # decoding stays in irdet


def test_onnxruntime_matches_pytorch_on_real_images(shipped_export, densesirst):
    weights, onnx_path = shipped_export
    images = _test_images(densesirst, 4)  # 1918x1080, 640x512, 301x213, 1280x1024: native resolution
    pt, ox = _pytorch_fp32(weights), irdet.load(onnx_path)
    assert (pt.backend, ox.backend) == ("pytorch", "onnxruntime")
    a, b = pt.predict(images), ox.predict(images)
    matched = _assert_parity(a, b, min_matched=300)
    scores = np.concatenate([r.scores for r in a])
    assert scores.max() - scores.min() > 0.05  # not a degenerate all-equal case
    assert matched == sum(len(r) for r in a) == sum(len(r) for r in b)
    # the raw outputs agree too (decoding is one function, so parity is the network's)
    x = torch.from_numpy(read_image(images[1])).permute(2, 0, 1)[None]  # 640 x 512: no padding needed
    with torch.no_grad():
        ref, _ = pt.module.model(x)
    got, _ = ox.module.model(x)
    for key in ref:
        assert torch.allclose(ref[key][0], got[key][0], atol=1e-3, rtol=1e-4), key


def test_cli_detect_and_evaluate_with_onnxruntime(default_model, small_root, tmp_path, capsys):
    weights, onnx_path = default_model
    runs = {"pt": ["detect", str(SAMPLE)], "ox": ["detect", "--backend", "onnxruntime", str(onnx_path), str(SAMPLE)]}
    dets = {}
    for name, args in runs.items():
        assert main([*args, "--out", str(tmp_path / name), "--workers", "0"]) == 0
        dets[name] = json.loads((tmp_path / name / "detections.json").read_text())
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert len(summary["images"]) == len(list(SAMPLE.glob("*.png"))) and summary["skipped"] == []
    for image_id in {d["image_id"] for d in dets["pt"]} | {d["image_id"] for d in dets["ox"]}:
        a, b = ([d for d in dets[k] if d["image_id"] == image_id] for k in ("pt", "ox"))
        boxes = [np.array([[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in v)]).reshape(-1, 4) for v in (a, b)]
        _, problems = match_detections(boxes[0], [d["score"] for d in a], boxes[1], [d["score"] for d in b])
        assert not problems, (image_id, problems[:3])
    _assert_same_metrics(small_root, tmp_path, {"pt": [], "file": ["--backend", "onnxruntime", "--checkpoint",
                                                                    str(onnx_path)]})


def _assert_same_metrics(root, tmp_path, runs: dict) -> None:
    """``irdet evaluate`` with each run's extra arguments on ``root``'s test_v2: mAP07 and recall
    within 0.002 of the first run's."""
    metrics = {}
    for name, extra in runs.items():
        assert main(["evaluate", *extra, "--data", str(root), "--split", "test_v2", "--out", str(tmp_path / f"e_{name}"),
                     "--workers", "0"]) == 0
        metrics[name] = json.loads((tmp_path / f"e_{name}" / "metrics.json").read_text())
    first = metrics[next(iter(runs))]
    for name, m in metrics.items():
        assert abs(m["mAP07"] - first["mAP07"]) <= 0.002 and abs(m["recall"] - first["recall"]) <= 0.002, name


@pytest.mark.slow
def test_evaluate_backend_onnxruntime_exports_in_memory(default_model, small_root, tmp_path):
    # the default model (a .pt) run by ONNX Runtime without an export step (about 30 s: one export)
    _assert_same_metrics(small_root, tmp_path, {"pt": [], "mem": ["--backend", "onnxruntime"]})


def test_tiled_inference_with_onnxruntime(shipped_export, densesirst):
    weights, onnx_path = shipped_export
    images = _test_images(densesirst, 1)  # 1918x1080: 4 x 8 tiles of 256 x 256
    a = _pytorch_fp32(weights, tile=(256, 256), tile_overlap=64).predict(images)
    b = irdet.load(onnx_path, tile=(256, 256), tile_overlap=64).predict(images)
    _assert_parity(a, b, min_matched=50)
    with pytest.raises(ConfigError, match="multiples of the model's stride"):
        irdet.load(onnx_path, tile=(100, 100))


@pytest.mark.slow
def test_inference_benchmark_runs(default_model, small_root, tmp_path, capsys):
    from fixtures import load_benchmark

    weights, _ = default_model
    bench = load_benchmark("bench_inference")
    assert bench.main([str(weights), "--data", str(small_root), "--images", "1", "--repeat", "1", "--warmup", "0",
                       "--threads", "1", "--sizes", "512", "--skip-bf16", "--out", str(tmp_path / "bench.md")]) == 0
    table = (tmp_path / "bench.md").read_text()
    assert "| pytorch fp32 | " in table and "| onnxruntime optimised | " in table
    rates = json.loads((tmp_path / "bench.json").read_text())["img_per_s"]
    assert set(rates) == {"pytorch fp32", "onnxruntime fp32", "onnxruntime optimised"}
    assert all(v["512"] > 0 for v in rates.values())


@pytest.mark.slow
def test_half_export_runs_on_onnxruntime(default_model, densesirst, tmp_path):
    weights, _ = default_model
    out = irdet.load(weights).export(tmp_path / "half.onnx", half=True)
    half = irdet.load(out)
    assert half.module.model.network.meta["precision"] == "float16"
    images = _test_images(densesirst, 2)
    a, b = irdet.load(weights).predict(images), half.predict(images)
    for x, y in zip(a, b):  # float16 arithmetic: the strongest detections agree loosely
        k = min(10, len(x), len(y))
        assert k > 0
        assert np.abs(np.sort(x.scores)[-k:] - np.sort(y.scores)[-k:]).max() < 0.02


def test_bafenet_fixed_size_export(small_root, densesirst, tmp_path):
    from irdet.deploy.export import export_onnx

    ckpt = train_tiny(small_root, tmp_path / "bafe", "bafenet_r18_densesirst_cpu.yaml",
                      [*BAFENET_TINY, "train.warmup_iters=1", "train.lr=20", "model.head.test.score_thr=0.001"], steps=6)
    module = load_checkpoint(ckpt)
    out = export_onnx(module, tmp_path / "bafe.onnx", optimize=False)
    ox = irdet.load(out)
    meta = ox.module.model.network.meta
    assert meta["input_size"] == [128, 128] and meta["dynamic_hw"] is False and meta["strides"] == [8, 16, 32]
    assert [k for k in meta["output_keys"]] == ["cls_scores", "bbox_preds", "centernesses", "seg_logits"]
    images = _test_images(densesirst, 3)
    a, b = irdet.load(ckpt).predict(images), ox.predict(images)
    _assert_parity(a, b, min_matched=100)
    for x, y in zip(a, b):  # the sky head's output too
        assert x.sky_prob.shape == y.sky_prob.shape == (16, 16)
        assert np.abs(x.sky_prob - y.sky_prob).max() < 1e-4
    with pytest.raises(ConfigError, match="does not fit the model"):
        ox.module.model(torch.zeros(1, 3, 96, 128))


def test_sequence_model_export(densesirst, tmp_path):
    from irdet.deploy.export import export_onnx

    ckpt = sequence_checkpoint(tmp_path / "seq.ckpt")
    out = export_onnx(load_checkpoint(ckpt), tmp_path / "seq.onnx")  # optimised: unoptimised bias-free Conv3d fails in ORT
    pt, ox = irdet.load(ckpt), irdet.load(out)
    meta = ox.module.model.network.meta
    assert meta["task"] == "sequence" and meta["num_frames"] == 3 and meta["input_layout"] == "N,T,3,H,W"
    frames = _test_images(densesirst, 4, size=(512, 640))
    a, b = pt.predict(frames), ox.predict(frames)
    assert [r.frame_index for r in b] == [0, 1, 2, 3]
    _assert_parity(a, b, min_matched=200)
    # irdet detect on a frame folder: the PyTorch checkpoint and the ONNX file write the same detections
    folder = tmp_path / "clip"
    folder.mkdir()
    for i, f in enumerate(frames):
        shutil.copy(f, folder / f"{i}.png")
    dets = {}
    for name, model in (("pt", ckpt), ("ox", out)):
        assert main(["detect", str(model), str(folder), "--out", str(tmp_path / name)]) == 0
        dets[name] = json.loads((tmp_path / name / "detections.json").read_text())
    assert {d["image_id"] for d in dets["pt"]} == {d["image_id"] for d in dets["ox"]} == {f"clip/{i}" for i in range(4)}
    for frame in range(4):
        a, b = ([d for d in dets[k] if d["image_id"] == f"clip/{frame}"] for k in ("pt", "ox"))
        boxes = [np.array([[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in v)]).reshape(-1, 4) for v in (a, b)]
        _, problems = match_detections(boxes[0], [d["score"] for d in a], boxes[1], [d["score"] for d in b])
        assert not problems, (frame, problems[:3])


def test_export_and_backend_errors_are_one_line(default_model, tmp_path, capsys, monkeypatch):
    import onnx
    from onnx import TensorProto, helper

    weights, onnx_path = default_model
    image = str(SAMPLE / "Misc_53.png")

    def error(args) -> str:
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("irdet: error:") and "\n" not in err, err
        return err

    assert "must end in .onnx" in error(["export", str(weights), "--out", str(tmp_path / "m.txt")])
    assert "already an ONNX model" in error(["export", str(onnx_path), "--out", str(tmp_path / "m2.onnx")])
    assert "runs with the onnxruntime backend only" in error(["detect", "--backend", "pytorch", str(onnx_path), image,
                                                             "--out", str(tmp_path / "d1")])
    assert "precision it was exported in" in error(["detect", str(onnx_path), image, "--precision", "bf16-mixed",
                                                    "--out", str(tmp_path / "d2")])
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x01garbage")
    assert "corrupt.onnx: not a readable ONNX model" in error(["detect", str(corrupt), image, "--out", str(tmp_path / "d3")])
    foreign = tmp_path / "foreign.onnx"  # a valid ONNX model, not an irdet export
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(foreign))
    assert "foreign.onnx: not an irdet ONNX model" in error(["evaluate", "--checkpoint", str(foreign)])
    assert "--backend goes with a checkpoint" in error(["evaluate", "--predictions", str(foreign), "--backend",
                                                        "onnxruntime"])
    assert not (tmp_path / "d1").exists() and not (tmp_path / "d3").exists()
    # without the export extra: one line with the install command
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    err = error(["detect", str(onnx_path), image, "--out", str(tmp_path / "d4")])
    assert "pip install \"irdet[export]\"" in err and "onnxruntime" in err
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    assert "pip install" in error(["export", str(weights), "--out", str(tmp_path / "m3.onnx")])


def test_shipped_default_model_exports_and_matches_pytorch(shipped_export):
    weights, out = shipped_export
    images = [str(SAMPLE / "Misc_199.png"), str(SAMPLE / "Misc_53.png")]  # the two smallest sample images
    # the trained model finds the clusters of both images (100 kept detections each at the default threshold)
    _assert_parity(_pytorch_fp32(weights).predict(images), irdet.load(out).predict(images), min_matched=50)


@pytest.mark.slow
def test_shipped_default_model_test_v2_map_with_onnxruntime(shipped_export, densesirst, tmp_path):
    # test_v2 (255 images, native resolution) through both backends: mAP07 within 0.002
    weights, out = shipped_export
    _assert_same_metrics(densesirst, tmp_path, {"pt": ["--checkpoint", str(weights)], "ox": ["--checkpoint", str(out)]})
    stored = zoo.read_weights(weights)["metrics"]
    if "mAP07" in stored:
        ox = json.loads((tmp_path / "e_ox" / "metrics.json").read_text())
        assert abs(ox["mAP07"] - stored["mAP07"]) <= 0.002
