"""irdet.engine.rundir through ``irdet train``: a run directory holding a run is refused without
--resume / --overwrite, and a start that fails before its first checkpoint leaves nothing behind."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import pytest
import torch

from fixtures import TINY_TRAIN
from irdet.cli import main
from irdet.engine.module import DetectorModule

FCOS = Path(__file__).resolve().parents[2] / "configs" / "fcos_r18_densesirst_cpu.yaml"

pytestmark = pytest.mark.usefixtures("one_thread")


def _train(root, run, *flags, steps=1):
    return main(["train", str(FCOS), "--data", str(root), "--out", str(run), *flags, "--set", *TINY_TRAIN,
                 f"train.max_steps={steps}"])


def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def test_second_train_is_refused_unless_resume_or_overwrite(small_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(small_root, run) == 0
    last, config = run / "checkpoints" / "last.ckpt", run / "config.yaml"
    before = (_digest(last), config.read_text())
    capsys.readouterr()
    assert _train(small_root, run) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"irdet: error: {run}: already holds a run (config.yaml, checkpoints, logs)")
    assert "--resume" in err and "--overwrite" in err and "\n" not in err
    assert (_digest(last), config.read_text()) == before
    assert sorted(p.name for p in (run / "logs").iterdir()) == ["version_0"]
    assert _train(small_root, run, "--resume", "--overwrite") == 2
    assert "not both" in capsys.readouterr().err

    # --overwrite: the old run is deleted first; a fresh run (one log version, no -v1 checkpoints)
    (run / "notes.txt").write_text("kept")
    assert _train(small_root, run, "--overwrite", steps=2) == 0
    assert torch.load(last, weights_only=False, map_location="cpu")["global_step"] == 2
    assert sorted(p.name for p in (run / "logs").iterdir()) == ["version_0"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]
    assert (run / "notes.txt").read_text() == "kept"  # not a run file: untouched


_TRAINING_STEP = DetectorModule.training_step


def _failing_step(at_step: int, error=RuntimeError):
    def step(self, batch, batch_idx):
        if self.global_step >= at_step:
            raise error("boom")
        return _TRAINING_STEP(self, batch, batch_idx)

    return step


def test_failure_before_the_first_checkpoint_removes_the_run(small_root, tmp_path, monkeypatch):
    monkeypatch.setattr(DetectorModule, "training_step", _failing_step(0))
    run = tmp_path / "new" / "run"
    with pytest.raises(RuntimeError, match="boom"):
        _train(small_root, run)
    assert not run.exists()
    # a folder that existed before (an ablation's lock in it): only the run's own files go
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / ".lock").write_text("1")
    with pytest.raises(RuntimeError, match="boom"):
        _train(small_root, kept)
    assert sorted(p.name for p in kept.iterdir()) == [".lock"]
    # after a checkpoint everything stays, for --resume
    monkeypatch.setattr(DetectorModule, "training_step", _failing_step(1))
    with pytest.raises(RuntimeError, match="boom"):
        _train(small_root, run, steps=3)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")["global_step"] == 1
    assert (run / "config.yaml").is_file()


def test_ctrl_c_exits_130_and_keeps_what_can_be_resumed(small_root, tmp_path, monkeypatch, capsys):
    """Lightning turns Ctrl-C into sys.exit(1); irdet train gives exit status 130 and its resume hint."""
    monkeypatch.setattr(DetectorModule, "training_step", _failing_step(0, KeyboardInterrupt))
    run = tmp_path / "run"
    assert _train(small_root, run) == 130
    assert "interrupted" in capsys.readouterr().err and not run.exists()
    monkeypatch.setattr(DetectorModule, "training_step", _failing_step(1, KeyboardInterrupt))
    assert _train(small_root, run, steps=3) == 130
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")["global_step"] == 1
    monkeypatch.setattr(DetectorModule, "training_step", _TRAINING_STEP)
    assert _train(small_root, run, "--resume", steps=2) == 0
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")["global_step"] == 2


def _lost_worker(at_step: int, sigterm: bool):
    """A DataLoader worker lost at ``at_step``. With ``sigterm``, what ``kill -TERM -PGID`` does to a
    training with workers: the main process gets the signal (Lightning's handler notes it) and the next
    batch fails because the worker died of it."""
    def step(self, batch, batch_idx):
        if self.global_step >= at_step:
            if sigterm:
                os.kill(os.getpid(), signal.SIGTERM)
            raise RuntimeError("DataLoader worker (pid(s) 4242) exited unexpectedly")
        return _TRAINING_STEP(self, batch, batch_idx)

    return step


def test_sigterm_to_the_process_group_exits_130_without_a_traceback(small_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(DetectorModule, "training_step", _lost_worker(1, sigterm=True))
    run = tmp_path / "run"
    assert _train(small_root, run, steps=3) == 130
    assert "interrupted" in capsys.readouterr().err
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")["global_step"] == 1
    # a lost worker without SIGTERM stays an error
    monkeypatch.setattr(DetectorModule, "training_step", _lost_worker(0, sigterm=False))
    with pytest.raises(RuntimeError, match="DataLoader worker"):
        _train(small_root, tmp_path / "other")
