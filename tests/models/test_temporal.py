"""Multi-frame detector (irdet.models.sequence_detector, irdet.models.temporal), sequence config hooks,
and the COCO evaluator (irdet.metrics.coco) against pycocotools and hand-computed numbers."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from irdet.config import DEFAULTS, load_config, merge
from irdet.data.coco import load_coco
from irdet.errors import ConfigError, DataError
from irdet.metrics.coco import ImageIndex, coco_evaluate, sstnet_prf
from irdet.models import build_sequence_detector
from irdet.models.build import build_fusion
from irdet.models.heads.fcos import FCOSHead
from irdet.models.temporal import IdentityFusion, TemporalFusion3D


pytestmark = pytest.mark.usefixtures("one_thread")


def _model_cfg(t=5, neck="fpn", **temporal):
    neck_cfg = {"type": neck, "out_channels": 16}
    if neck == "bpfpn":
        neck_cfg.update(shortcut="gils", dgr={"enabled": True})
    return merge(DEFAULTS["model"], {"head": {"seg_head": False, "feat_channels": 32, "stacked_convs": 1},
                                     "neck": neck_cfg, "temporal": {"num_frames": t, **temporal}})


# ------------------------------------------------------------------------------------ fusion
@pytest.mark.parametrize("t", [1, 5])
def test_fusion_shapes(t):
    torch.manual_seed(0)
    fusion = TemporalFusion3D(16, t, hidden=8)
    x = torch.randn(2, t, 16, 6, 7)
    assert fusion(x).shape == (2, 16, 6, 7)
    assert IdentityFusion()(x).equal(x[:, -1])
    with pytest.raises(ValueError, match="expects"):
        fusion(torch.randn(2, t + 1, 16, 6, 7))


def test_t1_reduces_to_a_per_frame_2d_block():
    """T = 1: every kt×3×3 Conv3d is the Conv2d of its centre temporal slice, collapse a 1×1 conv."""
    torch.manual_seed(0)
    f = TemporalFusion3D(16, 1, hidden=8, layers=2, kernel_t=3).eval()
    with torch.no_grad():  # non-trivial GroupNorm affine parameters
        for m in f.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    x = torch.randn(2, 1, 16, 5, 6)
    y = x[:, 0]
    conv, gn = f.reduce[0], f.reduce[1]
    y = F.relu(gn(F.conv2d(y, conv.weight[:, :, 0])))
    for k in range(0, len(f.temporal), 3):
        conv, gn = f.temporal[k], f.temporal[k + 1]
        y = F.relu(gn(F.conv2d(y, conv.weight[:, :, conv.kernel_size[0] // 2], padding=1)))
    conv, gn = f.collapse[0], f.collapse[1]
    y = F.relu(gn(F.conv2d(y, conv.weight[:, :, 0])))
    expected = x[:, 0] + f.norm(f.expand(y))
    torch.testing.assert_close(f(x), expected, rtol=1e-4, atol=1e-5)


def test_gradient_reaches_every_frame_but_not_other_clips():
    torch.manual_seed(0)
    f = TemporalFusion3D(16, 5, hidden=8)
    x = torch.randn(3, 5, 16, 6, 6, requires_grad=True)
    f(x)[0].square().sum().backward()
    per_frame = x.grad[0].abs().flatten(1).sum(1)
    assert (per_frame > 0).all(), per_frame  # all five frames of clip 0 (init_scale > 0: from step 0)
    assert x.grad[1:].abs().sum() == 0  # GroupNorm is per clip: clips never mix
    # the current frame also has the direct residual path
    assert per_frame[-1] > per_frame[:-1].max()


def test_build_fusion_validates():
    assert isinstance(build_fusion({"type": "none", "num_frames": 3}, 16), IdentityFusion)
    with pytest.raises(ConfigError, match="unknown model.temporal keys"):
        build_fusion({"frames": 3}, 16)
    with pytest.raises(ConfigError, match="type"):
        build_fusion({"type": "gru"}, 16)
    with pytest.raises(ConfigError, match="odd kernel_t"):
        build_fusion({"kernel_t": 2}, 16)


# ------------------------------------------------------------------------------------ detector
def _batch(n, t, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"video": torch.rand(n, t, 3, size, size, generator=g) * 255,
            "boxes": [torch.tensor([[10.0, 12.0, 14.0, 15.0]]), torch.zeros(0, 4)][:n],
            "labels": [torch.zeros(1, dtype=torch.long), torch.zeros(0, dtype=torch.long)][:n],
            "img_size": [(size, size)] * n, "orig_size": [(2 * size, size)] * n}


@pytest.mark.parametrize("t,neck", [(1, "fpn"), (5, "bpfpn")])
def test_sequence_detector_loss_and_predict(t, neck):
    torch.manual_seed(0)
    model = build_sequence_detector(_model_cfg(t, neck))
    assert model.head.strides == [8] and model.head.regress_ranges == [(-1.0, 1e8)]
    batch = _batch(2, t)
    out, _ = model(batch["video"])
    assert out["cls_scores"][0].shape == (2, 1, 8, 8) and len(out["cls_scores"]) == 1
    losses = model.loss(batch)
    assert set(losses) >= {"loss_cls", "loss_bbox", "loss_centerness", "loss"}
    assert ("loss_dgr" in losses) == (neck == "bpfpn")
    losses["loss"].backward()
    model.eval()
    dets, _ = model.predict(batch)
    assert len(dets) == 2 and dets[0]["boxes"].shape[1] == 4
    if len(dets[0]["boxes"]):  # rescaled to the original (2·size, size) frame
        assert float(dets[0]["boxes"][:, 3].max()) <= 128
    with pytest.raises(ValueError, match="T=3"):
        model(torch.zeros(1, 3, 3, 64, 64))


def test_identity_fusion_uses_only_the_current_frame():
    model = build_sequence_detector(_model_cfg(3, type="none")).eval()
    v = _batch(1, 3)["video"]
    v2 = v.clone()
    v2[:, :2] = 0  # change the history only
    torch.testing.assert_close(model(v)[0]["cls_scores"][0], model(v2)[0]["cls_scores"][0])


def test_cached_frame_features_equal_the_clip_forward():
    """irdet detect reuses per-frame maps across overlapping clips: same numbers as the clip batch."""
    torch.manual_seed(0)
    model = build_sequence_detector(_model_cfg(3, "bpfpn")).eval()
    frames = torch.rand(5, 3, 64, 64) * 255
    feats, _ = model.frame_features(frames)
    for cur in range(5):
        idx = [max(cur - k, 0) for k in (2, 1, 0)]
        clip_out, _ = model(frames[idx][None])
        cached = model.head_from_features(feats[idx][None])
        torch.testing.assert_close(clip_out["cls_scores"][0], cached["cls_scores"][0], rtol=1e-4, atol=1e-4)


def test_builder_errors():
    with pytest.raises(ConfigError, match="seg_head"):
        build_sequence_detector(merge(_model_cfg(), {"head": {"seg_head": True}}))
    with pytest.raises(ConfigError, match="P3"):
        build_sequence_detector(merge(_model_cfg(), {"neck": {"levels": ["P4", "P5"]}}))
    with pytest.raises(ConfigError, match="1 entry"):
        build_sequence_detector(merge(_model_cfg(), {"head": {"regress_ranges": [[-1, 64], [64, 1e8]]}}))


def test_level_p2_fuses_and_predicts_at_stride_4():
    torch.manual_seed(0)
    cfg = merge(_model_cfg(3, level="P2"), {"neck": {"levels": ["P2"], "in_levels": ["C2", "C3", "C4", "C5"]},
                                            "head": {"assigner": "nearest", "box_param": "offset"}})
    model = build_sequence_detector(cfg)
    assert model.level == "P2" and model.head.strides == [4]
    batch = _batch(2, 3)
    assert model.frame_features(batch["video"][:, -1])[0].shape == (2, 16, 16, 16)
    assert model(batch["video"])[0]["cls_scores"][0].shape == (2, 1, 16, 16)
    model.loss(batch)["loss"].backward()
    with pytest.raises(ConfigError, match="temporal.level must be one of"):
        build_sequence_detector(_model_cfg(level="P4"))
    with pytest.raises(ConfigError, match="must contain P2"):  # the neck outputs P3-P5 only
        build_sequence_detector(_model_cfg(level="P2"))
    with pytest.raises(ConfigError, match="history_grad must be true/false"):
        build_sequence_detector(_model_cfg(history_grad="no"))


@pytest.mark.parametrize("history_grad", [True, False])
def test_history_grad_switch(history_grad):
    """history_grad false: in training only the current frame's backbone + neck pass gets gradient
    (the history frames' pixels get none); fusion and head train; evaluation is unchanged."""
    torch.manual_seed(0)
    model = build_sequence_detector(_model_cfg(3, "bpfpn", history_grad=history_grad)).train()
    batch = _batch(2, 3)
    video = batch["video"].requires_grad_(True)
    losses = model.loss({**batch, "video": video})
    assert "loss_dgr" in losses
    losses["loss"].backward()
    past, current = video.grad[:, :2].abs().sum(), video.grad[:, -1].abs().sum()
    assert current > 0 and (past > 0) == history_grad
    fusion_grads = [p.grad for p in model.fusion.parameters() if p.requires_grad]
    assert fusion_grads and all(g is not None for g in fusion_grads)
    torch.manual_seed(0)
    reference = build_sequence_detector(_model_cfg(3, "bpfpn")).eval()
    model.load_state_dict(reference.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(batch["video"])[0]["cls_scores"][0],
                                   reference(batch["video"])[0]["cls_scores"][0])


@pytest.mark.parametrize("name,reaches", [("yolobp_r18_t5_synthetic", True), ("yolobp_r18_t5_synthetic_dgr_bottom_up", False)])
def test_dgr_reaches_the_level_the_head_reads(name, reaches):
    """The YOLO-BP config sends DGR's gradient into P3, the one level the head reads (and trains
    P3's output conv with it); the older bottom_up config over P3-P5 sends none there."""
    torch.manual_seed(0)
    model = build_sequence_detector(load_config(f"configs/sequences/{name}.yaml")["model"]).train()
    neck, p3 = model.neck, model.level_index
    p3_conv = neck.fpn.fpn.layer_blocks[0][0].weight  # C3 -> P3 output conv
    assert neck.levels[p3] == "P3" and (neck.dgr_trained_levels == ["P3"]) == reaches
    if reaches:  # only the levels in use are built: no P5 output conv
        assert list(neck.levels) == ["P3", "P4"] and isinstance(neck.fpn.fpn.layer_blocks[2], torch.nn.Identity)
    frames = torch.rand(2 * model.num_frames, 3, 64, 64) * 255
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    start = p3_conv.detach().clone()
    for _ in range(3):  # a few steps on loss_dgr alone
        opt.zero_grad()
        outs, losses = neck(model.backbone((frames - model.pixel_mean) / model.pixel_std))
        g_feat, g_conv = torch.autograd.grad(losses["loss_dgr"], [outs[p3], p3_conv], retain_graph=True, allow_unused=True)
        assert (g_feat is not None and g_feat.abs().sum() > 0) == reaches
        assert (g_conv is not None and g_conv.abs().sum() > 0) == reaches
        losses["loss_dgr"].backward()
        opt.step()
    assert (not torch.equal(p3_conv.detach(), start)) == reaches


# ------------------------------------------------------------------------------------ config hooks
def test_sequence_configs_resolve_and_single_frame_configs_are_unchanged():
    single = load_config("configs/fcos_r18_densesirst_cpu.yaml")
    assert "task" not in single and "sequence" not in single and "temporal" not in single["model"]
    assert "task" not in load_config("configs/fcos_r18_densesirst_cpu.yaml", ["task=detect"])
    for name in ("yolobp_r18_t5_synthetic", "yolofpn_r18_t5_synthetic", "yolobp_r18_t1_synthetic",
                 "yolofpn_r18_t1_synthetic", "yolobp_r18_irdst", "yolobp_r18_daub",
                 "yolobp_r18_t5_synthetic_dgr_bottom_up", "yolobp_r18_t1_synthetic_dgr_bottom_up"):
        cfg = load_config(f"configs/sequences/{name}.yaml")
        assert cfg["task"] == "sequence" and cfg["model"]["head"]["test"]["score_thr"] == 0.001
        assert cfg["model"]["head"]["test"]["nms_iou"] == 0.65
    t5 = load_config("configs/sequences/yolobp_r18_t5_synthetic.yaml")
    assert t5["model"]["temporal"]["num_frames"] == 5 and t5["model"]["neck"]["shortcut"] == "gils"
    assert load_config("configs/sequences/yolofpn_r18_t1_synthetic.yaml")["model"]["temporal"]["num_frames"] == 1
    with pytest.raises(ConfigError, match="task must be one of"):
        load_config("configs/fcos_r18_densesirst_cpu.yaml", ["task=video"])
    with pytest.raises(ConfigError, match="unknown config key 'sequence.layuot'"):
        load_config("configs/sequences/yolobp_r18_t5_synthetic.yaml", ["sequence.layuot=irdet"])
    with pytest.raises(ConfigError, match="unknown config key 'sequence'"):  # sequence keys need task: sequence
        load_config("configs/fcos_r18_densesirst_cpu.yaml", ["sequence.layout=irdet"])


# ------------------------------------------------------------------------------------ COCO evaluator
GT = {
    "images": [{"id": 1, "file_name": "seqA/0.png", "height": 64, "width": 64},
               {"id": 2, "file_name": "seqA/1.png", "height": 64, "width": 64},
               {"id": 3, "file_name": "seqA/2.png", "height": 64, "width": 64}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 4, 4], "area": 16, "iscrowd": 0},
                    {"id": 2, "image_id": 2, "category_id": 1, "bbox": [20, 20, 5, 5], "area": 25, "iscrowd": 0},
                    {"id": 3, "image_id": 2, "category_id": 1, "bbox": [40, 40, 3, 3], "area": 9, "iscrowd": 0}],
    "categories": [{"id": 1, "name": "target"}],
}
# ranked: TP (0.9), FP (0.8), TP (0.7), FP (0.6); the 3x3 target at (40, 40) is missed; frame 3 has no target
RESULTS = [{"image_id": 1, "bbox": [10, 10, 4, 4], "score": 0.9, "category_id": 1},
           {"image_id": 1, "bbox": [50, 50, 4, 4], "score": 0.8, "category_id": 1},
           {"image_id": 2, "bbox": [20, 20, 5, 5], "score": 0.7, "category_id": 1},
           {"image_id": 3, "bbox": [0, 0, 4, 4], "score": 0.6, "category_id": 1},
           {"image_id": 3, "bbox": [30, 0, 4, 4], "score": 0.0005, "category_id": 1}]  # below the 0.001 floor


def _pycocotools(gt, results):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = copy.deepcopy(gt)
        cg.createIndex()
        ev = COCOeval(cg, cg.loadRes(copy.deepcopy(results)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def test_coco_evaluator_agrees_with_pycocotools_and_hand_numbers(tmp_path):
    ann = tmp_path / "gt.json"
    ann.write_text(json.dumps(GT))
    m = coco_evaluate(ann, RESULTS)
    ev = _pycocotools(GT, [r for r in RESULTS if r["score"] >= 0.001])
    assert m["AP50"] == pytest.approx(ev.stats[1], abs=1e-12)
    assert m["AP50_95"] == pytest.approx(ev.stats[0], abs=1e-12)
    # hand computation, 101-point interpolation: precision 1 for recall thresholds 0..0.33 (34 points),
    # 2/3 for 0.34..0.66 (33 points), 0 above recall 2/3 -> AP50 = (34 + 33 * 2/3) / 101
    assert m["AP50"] == pytest.approx(56 / 101, abs=1e-9)
    # SSTNet P/R/F1: R = 2/3, P = mean of the first int(R * 100) = 66 interpolated precisions
    p = (34 + 32 * 2 / 3) / 66
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx(p)
    assert m["F1"] == pytest.approx(2 * p * (2 / 3) / (p + 2 / 3))
    # plain counts at score >= 0.5: TP 2, FP 2 over 3 targets
    assert (m["precision_at_thr"], m["recall_at_thr"]) == (pytest.approx(0.5), pytest.approx(2 / 3))
    assert m["Pd"] == pytest.approx(2 / 3) and m["fa_per_image"] == pytest.approx(2 / 3)
    assert m["num_images"] == 3 and m["num_gts"] == 3 and m["num_dets"] == 4 and m["num_dets_below_score_thr"] == 1
    assert m["images_without_targets"] == 1 and m["images_without_detections"] == 0
    assert len(m["pr"]["recall"]) == len(m["pr"]["precision"]) == 101
    json.dumps(m)  # JSON-ready


def test_sstnet_prf_edge_cases():
    assert sstnet_prf(np.full(101, -1.0), -1.0) == (0.0, 0.0, 0.0)  # no targets
    assert sstnet_prf(np.ones(101), 0.005) == (0.0, 0.005, 0.0)  # int(0.5) = 0 thresholds below R
    p, r, f1 = sstnet_prf(np.ones(101), 1.0)
    assert (p, r, f1) == (1.0, 1.0, 1.0)


def test_results_ids_by_name_and_errors(tmp_path):
    gt_with_prefix = copy.deepcopy(GT)
    for im in gt_with_prefix["images"]:
        im["file_name"] = "images/test/" + im["file_name"].replace("seqA", "dataA")
    by_name = [dict(r, image_id=k) for r, k in zip(RESULTS, ["dataA/0", "images/test/dataA/0.bmp".replace(".bmp", ".png"),
                                                              "test/dataA/1", 3, 3])]
    assert coco_evaluate(gt_with_prefix, by_name)["AP50"] == pytest.approx(56 / 101)
    index = ImageIndex(load_coco(gt_with_prefix))
    assert index.resolve("dataA/2") == 3 and index.resolve("images/test/dataA/2") == 3 and index.resolve(2) == 2
    assert index.resolve("2") is None and index.resolve("A/2") is None and index.resolve(True) is None
    # results for a frame that is not in the annotation file: a DataError naming the file, never dropped
    bad = tmp_path / "preds.json"
    bad.write_text(json.dumps(RESULTS + [{"image_id": "seqB/0", "bbox": [1, 1, 2, 2], "score": 0.5}]))
    with pytest.raises(DataError, match="preds.json: 1 detections have image ids that match no image.*seqB/0"):
        coco_evaluate(GT, bad)
    bad.write_text('[{"image_id": 1, "bbox": [1, 1, -2, 2], "score": 0.5}]')
    with pytest.raises(DataError, match="negative width"):
        coco_evaluate(GT, bad)
    bad.write_text("{not json")
    with pytest.raises(DataError, match="invalid JSON"):
        coco_evaluate(GT, bad)
    with pytest.raises(DataError, match="annotation file not found"):
        coco_evaluate(tmp_path / "missing.json", [])
    # no detections at all: AP 0, every frame counted
    m = coco_evaluate(GT, [])
    assert m["AP50"] == 0.0 and m["recall"] == 0.0 and m["images_without_detections"] == 3
