"""Helpers of the deployment tests (ONNX export, ONNX Runtime, Python API): tiny models, parity matching.

``train_tiny`` runs a few real training steps on real DenseSIRST images through ``irdet
train``; ``sequence_checkpoint`` writes a randomly initialised tiny multi-frame detector (no
sequence dataset needed: its test threshold 0.001 keeps detections with spread scores).
"""

from __future__ import annotations

from pathlib import Path

from fixtures import make_checkpoint

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

#: the fast detector (P2, light head, nearest assignment, offset boxes, native resolution), shrunk
FAST_TINY = ["data.crop=[128,128]", "data.bagcp.enabled=false", "model.neck.out_channels=32",
             "model.head.feat_channels=32", "model.head.stacked_convs=1", "data.num_workers=0", "train.threads=1",
             "train.precision=32-true", "train.checkpoint_every_n_steps=100", "train.log_every_n_steps=1",
             "data.repeat=1"]
#: BAFE-Net at a fixed 128x128 input (sky head, cross-task exchange)
BAFENET_TINY = ["data.img_size=[128,128]", "data.crop=null", "data.bagcp.enabled=false", "model.neck.out_channels=32",
                "model.head.feat_channels=32", "model.head.stacked_convs=1", "model.head.adapter_hidden=16",
                "data.num_workers=0", "train.threads=1", "train.checkpoint_every_n_steps=100",
                "train.log_every_n_steps=1", "data.repeat=1"]
#: a T = 3 multi-frame detector (BP-FPN, 3D-conv fusion) at 128x128
SEQUENCE_TINY = ["model.temporal.num_frames=3", "model.temporal.hidden=8", "data.img_size=[128,128]",
                 "model.neck.out_channels=32", "model.head.feat_channels=32", "model.head.stacked_convs=1"]


def train_tiny(root: Path, out: Path, config: str, overrides=(), steps: int = 6) -> Path:
    """``irdet train CONFIG --data ROOT --out OUT`` for ``steps`` steps; returns ``last.ckpt``."""
    from irdet.cli import main

    args = ["train", str(CONFIGS / config), "--data", str(root), "--out", str(out), "--set",
            f"train.max_steps={steps}", "train.max_epochs=100", *overrides]
    assert main(args) == 0
    ckpt = out / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    return ckpt


def sequence_checkpoint(path: Path, overrides=()) -> Path:
    """A randomly initialised tiny ``task: sequence`` checkpoint (:data:`SEQUENCE_TINY`)."""
    import torch

    from irdet.config import load_config
    from irdet.engine.module import DetectorModule

    torch.manual_seed(0)
    cfg = load_config(str(CONFIGS / "sequences" / "yolobp_r18_t5_synthetic.yaml"), [*SEQUENCE_TINY, *overrides])
    return make_checkpoint(path, module=DetectorModule(cfg))


#: the parity tolerances of the ONNX Runtime backend against PyTorch (per matched detection)
BOX_TOL_PX = 0.5
SCORE_TOL = 1e-3
#: two detections whose scores differ by less than this are tied: rounding may swap which one a
#: backend keeps (NMS between overlapping ties, the ``max_per_img`` cut); far below SCORE_TOL
TIE = 1e-5


def match_detections(a_boxes, a_scores, b_boxes, b_scores) -> tuple[int, list[str]]:
    """Match two detection lists of one image (boxes (K, 4) pixels, scores (K,)) one to one.

    Greedy in descending score: a detection of ``a`` matches the best-scoring unmatched one of
    ``b`` whose box is within :data:`BOX_TOL_PX` on every coordinate and whose score is within
    :data:`SCORE_TOL`. Left-over detections must pair up across the lists as ties (scores
    within :data:`TIE`): the two backends kept different members of a tie. Returns
    ``(matched, problems)``; ``problems`` lists what is left unexplained (empty = parity).
    """
    import numpy as np

    a_boxes, b_boxes = np.asarray(a_boxes).reshape(-1, 4), np.asarray(b_boxes).reshape(-1, 4)
    a_scores, b_scores = np.asarray(a_scores).reshape(-1), np.asarray(b_scores).reshape(-1)
    free = np.ones(len(b_scores), bool)
    left_a = []
    for i in np.argsort(-a_scores, kind="stable"):
        ok = free & (np.abs(b_boxes - a_boxes[i]).max(1) <= BOX_TOL_PX) & (np.abs(b_scores - a_scores[i]) <= SCORE_TOL)
        if ok.any():
            free[np.flatnonzero(ok)[np.argmax(b_scores[ok])]] = False
        else:
            left_a.append(i)
    left_b = list(np.flatnonzero(free))
    problems = []
    for i in left_a:
        ties = [j for j in left_b if abs(b_scores[j] - a_scores[i]) <= TIE]
        if ties:
            left_b.remove(ties[0])
        else:
            problems.append(f"a[{i}] box {a_boxes[i].round(2).tolist()} score {a_scores[i]:.6f} has no match")
    problems += [f"b[{j}] box {b_boxes[j].round(2).tolist()} score {b_scores[j]:.6f} has no match" for j in left_b]
    return len(a_scores) - len(left_a), problems
