"""The engine's tasks (irdet.engine.tasks): the registry, and the one clip rule shared by the
sequence dataset, the Python API's streaming and ``irdet detect``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from irdet.config import load_config
from irdet.data.collate import collate_clips
from irdet.data.io import read_image
from irdet.engine.module import DetectorModule
from irdet.engine.predict import Inference
from irdet.engine.tasks import TASKS, results_task, task_of
from irdet.engine.tasks.sequence import clip_detections, frames_of
from irdet.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SEQUENCE_TINY = ["model.temporal.num_frames=3", "model.temporal.hidden=8", "data.img_size=[64,64]",
                 "model.neck.out_channels=32", "model.head.feat_channels=32", "model.head.stacked_convs=1",
                 "data.num_workers=0"]

pytestmark = pytest.mark.usefixtures("one_thread")


def test_registry_gives_each_config_its_task():
    assert set(TASKS) == {"detect", "sequence"}
    single = load_config("fcos_r18_densesirst_cpu")
    multi = load_config(str(CONFIGS / "sequences" / "yolobp_r18_t5_synthetic.yaml"))
    assert task_of(single) is TASKS["detect"] and task_of(multi) is TASKS["sequence"]
    assert (task_of(single).monitor, task_of(multi).monitor) == ("val/mAP07", "val/AP50")
    assert task_of(single).input_key == "images" and task_of(multi).input_key == "video"
    with pytest.raises(ConfigError, match="task must be one of"):
        task_of({"task": "video"})
    # a results file: the sequence protocol with a COCO annotation file, the single-frame one without
    assert results_task(None) is TASKS["detect"] and results_task("test.json") is TASKS["sequence"]
    # a single-frame task neither streams nor tiles a sequence; the sequence task has no image list
    with pytest.raises(ConfigError, match="stream"):
        TASKS["detect"].stream(None, [])
    with pytest.raises(ConfigError, match="single-frame"):
        TASKS["sequence"].open_inputs(multi, [])


def _real_sequence(root: Path, densesirst: Path, frames: int = 5, size: int = 64) -> Path:
    """One sequence of ``frames`` 64x64 crops of a real DenseSIRST image, the window panning
    3 px right and 1 px down per frame, with a COCO annotation file (one box per frame)."""
    image_id = sorted((densesirst / "PNGImages").glob("*.png"))[0]
    full = read_image(image_id).astype(np.uint8)
    (root / "images" / "pan").mkdir(parents=True)
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "target"}]}
    from PIL import Image

    for n in range(frames):
        y, x = 40 + n, 60 + 3 * n
        Image.fromarray(full[y:y + size, x:x + size]).save(root / "images" / "pan" / f"{n}.png")
        coco["images"].append({"id": n + 1, "file_name": f"pan/{n}.png", "height": size, "width": size})
        coco["annotations"].append({"id": n + 1, "image_id": n + 1, "category_id": 1, "bbox": [20, 20, 4, 4],
                                    "area": 16, "iscrowd": 0})
    (root / "annotations").mkdir()
    (root / "annotations" / "test.json").write_text(json.dumps(coco))
    return root


def test_cost_of_a_native_resolution_row_is_counted_at_512():
    """``irdet ablate`` records params and MACs of every row; a native-resolution config
    (``data.img_size: null``) is counted at 512x512, as ``irdet flops`` reports it."""
    from irdet.models import build_detector
    from irdet.models.complexity import complexity

    cfg = load_config(str(CONFIGS / "fcos_r18_p2_light_native.yaml"))
    assert cfg["data"]["img_size"] is None
    cost = TASKS["detect"].cost(cfg)
    stats = complexity(build_detector(cfg["model"]), (512, 512))
    assert cost == {"params": stats["params"], "macs": stats["macs"]} and stats["img_size"] == [512, 512]
    assert 12.0e9 < cost["macs"] < 13.5e9


def test_streaming_uses_the_clips_of_the_dataset(densesirst, tmp_path):
    """Every frame's detections from the per-frame cache (what ``Model.stream`` and ``irdet detect``
    run) equal those of its clip as the dataset builds it (what training and evaluation run),
    first frames (clips padded with the first frame) included."""
    root = _real_sequence(tmp_path / "seq", densesirst)
    torch.manual_seed(0)
    cfg = load_config(str(CONFIGS / "sequences" / "yolobp_r18_t5_synthetic.yaml"), SEQUENCE_TINY)
    cfg["sequence"]["ann_files"] = {"test": "annotations/test.json"}
    module = DetectorModule(cfg).eval()
    task = task_of(cfg)
    dataset = task.open_split(cfg, root, "test")
    # the dataset's clip of frame t: t and its T - 1 predecessors, the first frame repeated at the start
    assert [dataset[i]["frame_ids"] for i in range(3)] == [["pan/0"] * 3, ["pan/0", "pan/0", "pan/1"],
                                                          ["pan/0", "pan/1", "pan/2"]]
    with torch.no_grad():
        by_clip = task.prediction_items(module, collate_clips([dataset[i] for i in range(len(dataset))]))
    source, total = frames_of(root / "images" / "pan")
    streamed = list(clip_detections(Inference(module, "cpu", "32-true"), source, total))
    assert [f for f, *_ in streamed] == [p["image_id"] for p in by_clip] == [f"pan/{n}" for n in range(5)]
    for (_, image, path, boxes, scores), item in zip(streamed, by_clip):
        assert image.shape == (64, 64, 3) and path.endswith(".png")
        assert len(scores) == len(item["scores"]) > 0  # the test threshold 0.001 keeps boxes of random weights
        np.testing.assert_allclose(scores, item["scores"], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(boxes, item["boxes"], atol=1e-3)
