"""The train/test pipelines keep image, boxes, masks and points aligned."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from irdet.data.datasets.base import to_sample
from irdet.data.datasets.densesirst import DenseSIRST
from irdet.data.collate import collate
from irdet.data.transforms import PadToMultiple, TargetAwareCrop, build_test_transforms, build_train_transforms


def _raster(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    m = torch.zeros(h, w, dtype=torch.uint8)
    for x1, y1, x2, y2 in boxes.round().int().tolist():
        m[y1:y2, x1:x2] = 1
    return m


def _synthetic(h=1024, w=1024):
    """Boxes at even pixel edges so a 2x downscale is exact; mask/image/points built from them."""
    boxes = np.array([[100, 200, 110, 206], [600, 300, 604, 304], [900, 50, 1000, 90], [10, 900, 30, 1000]], np.float32)
    image = np.zeros((h, w, 3), np.float32)
    target = np.zeros((h, w), np.uint8)
    for x1, y1, x2, y2 in boxes.astype(int):
        image[y1:y2, x1:x2] = 255
        target[y1:y2, x1:x2] = 1
    sky = np.zeros((h, w), np.uint8)
    sky[: h // 2] = 1
    points = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1) - 0.5  # pixel indices
    return to_sample({"image_id": "s", "image": image, "boxes": boxes, "sky_mask": sky, "target_mask": target, "points": points})


def _check_aligned(s):
    h, w = s["img_size"]
    boxes = s["boxes"]
    tm = s["target_mask"][:h, :w]
    assert torch.equal(_raster(boxes, h, w), tm.as_subclass(torch.Tensor))
    img = s["image"][0, :h, :w]
    assert torch.equal((img > 127).to(torch.uint8), tm.as_subclass(torch.Tensor))
    centres = torch.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
    pts = s["points"].as_subclass(torch.Tensor) + 0.5  # pixel index -> pixel-edge coordinates
    # torchvision resizes point indices by plain scaling: exact to 0.5 * |1 - scale| = 0.25 px here
    assert len(pts) == len(centres) and torch.allclose(pts.sort(0).values, centres.sort(0).values, atol=0.25)


def test_resize_flip_keeps_alignment():
    torch.manual_seed(0)
    s = build_train_transforms((512, 512), flip_prob=1.0)(_synthetic())
    assert s["image"].shape == (3, 512, 512)
    assert s["boxes"][0].tolist() == [512 - 55, 100, 512 - 50, 103]  # x' = W - x after the 2x downscale
    _check_aligned(s)
    # the sky (top half) stays on top, flipped left-right has no effect on it
    assert s["sky_mask"][:256].eq(1).all() and s["sky_mask"][256:].eq(0).all()


def test_crop_keeps_alignment_and_drops_outside_boxes():
    torch.manual_seed(3)
    pipeline = build_train_transforms((512, 512), flip_prob=0.5, crop=(128, 128), crop_p_target=1.0)
    for _ in range(10):
        s = pipeline(_synthetic())
        assert s["image"].shape == (3, 128, 128)
        assert len(s["boxes"]) >= 1  # target-aware: a box centre lies in the crop
        # clipped boxes still match the cropped mask
        h, w = s["img_size"]
        assert torch.equal(_raster(s["boxes"], h, w), s["target_mask"].as_subclass(torch.Tensor))


def test_pad_fills_sky_with_ignore():
    s = build_test_transforms((500, 300), keep_ratio=True)(_synthetic(1000, 600))
    # long edge 500 keeping aspect: 500 x 300 -> padded to 512 x 320
    assert s["img_size"] == (500, 300) and s["image"].shape == (3, 512, 320)
    pad = PadToMultiple(32)(_synthetic(100, 70))
    assert pad["image"].shape == (3, 128, 96)
    assert pad["sky_mask"][100:].eq(255).all() and pad["sky_mask"][:, 70:].eq(255).all()
    assert pad["target_mask"][100:].eq(0).all()
    assert pad["image"][:, 100:].eq(0).all()
    batch = collate([pad, PadToMultiple(32)(_synthetic(64, 64))])
    assert batch["images"].shape == (2, 3, 128, 96) and batch["sky_mask"][1, 64:].eq(255).all()


def test_target_aware_crop_centres_a_target():
    boxes = tv_tensors.BoundingBoxes(torch.tensor([[300.0, 300.0, 304.0, 304.0]]), format="XYXY", canvas_size=(512, 512))
    s = {"image": tv_tensors.Image(torch.zeros(3, 512, 512)), "boxes": boxes, "labels": torch.zeros(1, dtype=torch.long)}
    for seed in range(20):
        torch.manual_seed(seed)
        out = TargetAwareCrop((64, 64), p_target=1.0)(dict(s))
        b = out["boxes"][0]
        assert 0 < (b[0] + b[2]) / 2 < 64 and 0 < (b[1] + b[3]) / 2 < 64


def test_target_aware_crop_on_gt_ignores_pasted_boxes():
    # box 0: the image's own target; boxes 1-2: pasted by BAG-CP (num_gt_boxes = 1)
    xyxy = torch.tensor([[300.0, 300.0, 304.0, 304.0], [20.0, 20.0, 24.0, 24.0], [480.0, 30.0, 484.0, 34.0]])
    boxes = tv_tensors.BoundingBoxes(xyxy, format="XYXY", canvas_size=(512, 512))
    s = {"image": tv_tensors.Image(torch.zeros(3, 512, 512)), "boxes": boxes, "labels": torch.zeros(3, dtype=torch.long),
         "num_gt_boxes": 1}
    centred = {"all": set(), "gt": set()}
    for mode in centred:
        for seed in range(30):
            torch.manual_seed(seed)
            out = TargetAwareCrop((64, 64), p_target=1.0, centre_on=mode)(dict(s))
            b = out["boxes"]
            inside = ((b[:, 0] + b[:, 2]) / 2 > 0) & ((b[:, 0] + b[:, 2]) / 2 < 64) & ((b[:, 1] + b[:, 3]) / 2 > 0) & (
                (b[:, 1] + b[:, 3]) / 2 < 64)
            centred[mode] |= set(torch.nonzero(inside).flatten().tolist())
    assert centred["gt"] == {0} and centred["all"] == {0, 1, 2}
    # no own boxes: a uniform window, never one centred on a pasted box by choice
    torch.manual_seed(0)
    out = TargetAwareCrop((64, 64), p_target=1.0, centre_on="gt")({**s, "num_gt_boxes": 0})
    assert out["image"].shape[-2:] == (64, 64)
    with pytest.raises(ValueError, match="crop_on"):
        TargetAwareCrop((64, 64), centre_on="pasted")


def test_real_images_train_pipeline_alignment(densesirst):
    """On real DenseSIRST images every box keeps target pixels under it after resize/flip/crop."""
    torch.manual_seed(0)
    ds = DenseSIRST(densesirst, "test_v2", sky_mask="palette", target_mask="binary", points=True,
                    transforms=build_train_transforms((512, 512), crop=(256, 256)))
    for i in range(4):
        s = ds[i]
        assert s["image"].shape == (3, 256, 256) and s["sky_mask"].shape == (256, 256)
        for x1, y1, x2, y2 in s["boxes"].tolist():
            x1, y1 = int(np.floor(x1)), int(np.floor(y1))
            x2, y2 = int(np.ceil(x2)), int(np.ceil(y2))
            # nearest-neighbour mask resizing may thin a target by a pixel: look one pixel around
            region = s["target_mask"][max(y1 - 1, 0) : y2 + 1, max(x1 - 1, 0) : x2 + 1]
            assert region.sum() > 0


# ------------------------------------------------------------------ boxes under 1 px (data.tiny_boxes)
def test_keep_tiny_boxes_grows_them_to_their_centre_pixel():
    from irdet.data.transforms import KeepTinyBoxes

    boxes = torch.tensor([[10.2, 5.0, 10.6, 9.0],  # 0.4 px wide: -> column 10
                          [3.0, 7.7, 6.0, 8.1],  # 0.4 px high: -> row 7
                          [99.6, 99.8, 100.0, 100.0],  # at the corner: -> the last pixel
                          [50.0, 50.0, 50.0, 52.0],  # no extent (cut away by a crop): left to the sanitizer
                          [20.0, 20.0, 23.5, 24.0]], dtype=torch.float32)  # >= 1 px: unchanged
    s = {"image": tv_tensors.Image(torch.zeros(3, 100, 100)), "labels": torch.arange(5),
         "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(100, 100))}
    out = KeepTinyBoxes()(s)
    assert out["boxes"].tolist() == [[10, 5, 11, 9], [3, 7, 6, 8], [99, 99, 100, 100], [50, 50, 50, 52], [20, 20, 23.5, 24]]
    assert out["boxes"].canvas_size == (100, 100)
    from torchvision.transforms import v2

    kept = v2.SanitizeBoundingBoxes(min_size=1)(out)
    assert kept["labels"].tolist() == [0, 1, 2, 4]
    # another box format goes through XYXY and back
    cxcywh = v2.functional.convert_bounding_box_format(s["boxes"], new_format=tv_tensors.BoundingBoxFormat.CXCYWH)
    back = KeepTinyBoxes()({**s, "boxes": cxcywh})["boxes"]
    assert back.format == tv_tensors.BoundingBoxFormat.CXCYWH
    assert torch.allclose(v2.functional.convert_bounding_box_format(back, new_format=tv_tensors.BoundingBoxFormat.XYXY),
                          out["boxes"].as_subclass(torch.Tensor))
    with pytest.raises(ValueError, match="tiny_boxes"):
        build_train_transforms((64, 64), tiny_boxes="shrink")


#: trainval_v2 images (1918x1080) with 11 and 9 boxes under 1 px wide at 512x512
_TINY = ["20210725-S1-401", "20210725-S1-641"]


def test_real_tiny_boxes_are_kept_in_training(densesirst, tmp_path):
    """Real boxes that become narrower than 1 px at 512x512: with tiny_boxes=keep none is dropped
    (each covers the pixel its target centre falls in), with drop they are lost; a crop still drops
    only boxes left outside it."""
    from fixtures import link_dataset

    root = link_dataset(densesirst, tmp_path / "ds", {"trainval_v2": _TINY})
    raw = DenseSIRST(root, "trainval_v2", sky_mask=None)
    gts, sizes = raw.ground_truth()
    for i, image_id in enumerate(raw.ids):
        h, w = sizes[image_id]
        b = torch.as_tensor(gts[image_id])
        sx, sy = 512 / w, 512 / h
        tiny = ((b[:, 2] - b[:, 0]) * sx < 1) | ((b[:, 3] - b[:, 1]) * sy < 1)
        assert int(tiny.sum()) >= 9
        out = {}
        for mode in ("keep", "drop"):
            ds = DenseSIRST(root, "trainval_v2", sky_mask="palette",
                            transforms=build_train_transforms((512, 512), flip_prob=0.0, tiny_boxes=mode))
            out[mode] = ds[i]["boxes"].as_subclass(torch.Tensor)
        assert len(out["keep"]) == len(b) and len(out["drop"]) == len(b) - int(tiny.sum())
        scaled = b * torch.tensor([sx, sy, sx, sy])
        kept = out["keep"]
        widths, heights = kept[:, 2] - kept[:, 0], kept[:, 3] - kept[:, 1]
        assert (widths >= 1).all() and (heights >= 1).all()
        grown = tiny.nonzero().flatten()
        cx, cy = (scaled[grown, 0] + scaled[grown, 2]) / 2, (scaled[grown, 1] + scaled[grown, 3]) / 2
        assert ((kept[grown, 0] <= cx) & (cx <= kept[grown, 2]) & (kept[grown, 1] <= cy) & (cy <= kept[grown, 3])).all()
        assert torch.allclose(kept[~tiny], scaled[~tiny], atol=1e-3)  # the other boxes are untouched
    torch.manual_seed(0)
    ds = DenseSIRST(root, "trainval_v2", sky_mask="palette", transforms=build_train_transforms((512, 512), crop=(128, 128)))
    for _ in range(3):
        s = ds[0]
        bx = s["boxes"]
        assert ((bx[:, 2] - bx[:, 0]) >= 1).all() and (bx[:, 2] <= 128).all() and len(bx) < len(gts[raw.ids[0]])
