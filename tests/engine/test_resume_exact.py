"""``irdet train --resume`` is exact on the CPU (irdet.engine.resume, irdet.engine.checkpoints.LastCheckpoint):
a run interrupted mid-epoch and resumed ends with the weights of an uninterrupted run, bit for bit, on real
DenseSIRST images with BAG-CP, target-aware crops and flips, with 0 and 1 DataLoader workers."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures import TINY_TRAIN, small_densesirst
from irdet.cli import main
from irdet.engine.module import DetectorModule

FCOS = Path(__file__).resolve().parents[2] / "configs" / "fcos_r18_densesirst_cpu.yaml"
#: 6 trainval images in batches of 2: epoch 0 is steps 1-3, so step 2 is mid-epoch and step 4 in epoch 1;
#: BAG-CP with its own seed (the per-sample stream in the main process too) and 64x64 target-aware crops
AUGMENTED = [*TINY_TRAIN, "data.bagcp.enabled=true", "data.bagcp.seed=5", "data.crop=[64,64]"]

pytestmark = pytest.mark.usefixtures("one_thread", "random_loss_scale")


@pytest.fixture(scope="module", autouse=True)
def random_loss_scale():
    """Each step draws from the training process's torch, numpy and Python streams (as the exchange head or
    dropout would; the tiny FCOS draws nothing): a resume that did not restore them would change the weights."""
    original = DetectorModule.training_step

    def training_step(self, batch, batch_idx):
        scale = 1 + 0.1 * (float(torch.rand(())) + float(np.random.rand()) + random.random())
        return scale * original(self, batch, batch_idx)

    patch = pytest.MonkeyPatch()
    patch.setattr(DetectorModule, "training_step", training_step)
    yield
    patch.undo()


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    from conftest import DENSESIRST_ROOT, skip_or_fail_without

    real = skip_or_fail_without(DENSESIRST_ROOT, "DenseSIRST")
    return small_densesirst(real, tmp_path_factory.mktemp("ds") / "SIRSTdevkit")


def _train(root, run, steps, workers, *flags, extra=()) -> int:
    return main(["train", str(FCOS), "--data", str(root), "--out", str(run), *flags, "--set", *AUGMENTED,
                 f"data.num_workers={workers}", f"train.max_steps={steps}", *extra])


def _interrupted_at(monkeypatch, step: int) -> None:
    """Ctrl-C when training step ``step + 1`` starts (``last.ckpt`` then holds step ``step``)."""
    original = DetectorModule.training_step

    def training_step(self, batch, batch_idx):
        if self.global_step >= step:
            raise KeyboardInterrupt
        return original(self, batch, batch_idx)

    monkeypatch.setattr(DetectorModule, "training_step", training_step)


def _state(run) -> dict:
    return torch.load(Path(run) / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ, e.g. {differ[0]}: max |diff| " \
                       f"{float((a[differ[0]].float() - b[differ[0]].float()).abs().max()):.3g}"


@pytest.fixture(scope="module")
def uninterrupted(small_root, tmp_path_factory):
    """Final state of an uninterrupted 4-step run per worker count (computed once)."""
    done: dict[int, dict] = {}

    def get(workers: int) -> dict:
        if workers not in done:
            run = tmp_path_factory.mktemp(f"uninterrupted{workers}") / "run"
            assert _train(small_root, run, 4, workers) == 0
            done[workers] = _state(run)
        return done[workers]

    return get


@pytest.mark.parametrize("workers", [0, 1])
def test_interrupted_mid_epoch_and_resumed_equals_uninterrupted(small_root, tmp_path, monkeypatch, workers,
                                                                uninterrupted):
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        _interrupted_at(m, 2)
        assert _train(small_root, run, 4, workers) == 130
    mid = _state(run)
    assert mid["global_step"] == 2 and mid["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"] == 0
    assert _train(small_root, run, 4, workers, "--resume") == 0
    end, reference = _state(run), uninterrupted(workers)
    assert end["global_step"] == reference["global_step"] == 4
    _assert_same_weights(reference["state_dict"], end["state_dict"])
    assert end["loops"]["fit_loop"]["epoch_progress"] == reference["loops"]["fit_loop"]["epoch_progress"]


@pytest.mark.parametrize("workers", [0, 1])
def test_max_steps_extended_and_worker_count_changed_resumes_exactly(small_root, tmp_path, workers, uninterrupted):
    """max_steps 2 then --resume with max_steps 4 (the resume check compares only the model section),
    the first part with the other worker count: the sample stream depends on neither."""
    run = tmp_path / "run"
    assert _train(small_root, run, 2, 1 - workers) == 0
    assert _train(small_root, run, 4, workers, "--resume") == 0
    _assert_same_weights(uninterrupted(workers)["state_dict"], _state(run)["state_dict"])


def test_fresh_runs_do_not_depend_on_the_worker_count(uninterrupted):
    _assert_same_weights(uninterrupted(0)["state_dict"], uninterrupted(1)["state_dict"])


def test_checkpoint_of_an_older_irdet_resumes_with_a_notice(small_root, tmp_path, capsys, uninterrupted):
    """No random states and no loader position (an irdet before this change): it resumes, not exactly."""
    run = tmp_path / "run"
    assert _train(small_root, run, 2, 0) == 0
    last = run / "checkpoints" / "last.ckpt"
    old = torch.load(last, weights_only=False, map_location="cpu")
    old["callbacks"] = {k: v for k, v in old["callbacks"].items() if not k.startswith("RandomStates")}
    del old["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    torch.save(old, last)
    capsys.readouterr()
    assert _train(small_root, run, 4, 0, "--resume") == 0
    err = capsys.readouterr().err
    notice = [line for line in err.splitlines() if "older irdet" in line]
    assert len(notice) == 1 and "no random states and no data-loader position" in notice[0]
    assert notice[0].startswith(f"[irdet] {last}: ") and "not exactly" in notice[0]
    assert _state(run)["global_step"] == 4


def test_sequence_run_interrupted_mid_epoch_resumes_exactly(tmp_path, monkeypatch):
    """task: sequence (clips of 3 frames, flips and 32x32 crops): the same loader, the same exactness."""
    from test_sequence_e2e import CONFIG, TINY, _hand_built

    root = _hand_built(tmp_path / "seq")  # 12 training clips: 6 steps per epoch

    def train(run, *flags):
        return main(["train", str(CONFIG), "--data", str(root), "--out", str(run), *flags, "--set", *TINY,
                     "data.val_split=null", "data.crop=[32,32]", "train.max_steps=4",
                     "train.checkpoint_every_n_steps=1", "train.threads=1"])

    assert train(tmp_path / "a") == 0
    with monkeypatch.context() as m:
        _interrupted_at(m, 2)
        assert train(tmp_path / "b") == 130
    assert train(tmp_path / "b", "--resume") == 0
    _assert_same_weights(_state(tmp_path / "a")["state_dict"], _state(tmp_path / "b")["state_dict"])
