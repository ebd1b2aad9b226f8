"""irdet.engine.checkpoints: atomic checkpoint writes (a run SIGKILLed while saving keeps its last.ckpt),
stale temp files, and one-line errors for checkpoints that cannot be resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fixtures import TINY_TRAIN
from irdet.cli import main
from irdet.engine.checkpoints import atomic_torch_save, check_resume_weights, remove_stale_temp_files, temp_path
from irdet.errors import DataError

FCOS = Path(__file__).resolve().parents[2] / "configs" / "fcos_r18_densesirst_cpu.yaml"

pytestmark = pytest.mark.usefixtures("one_thread")


def _args(root, run, *flags, steps=1, extra=()):
    return ["train", str(FCOS), "--data", str(root), "--out", str(run), *flags, "--set", *TINY_TRAIN,
            f"train.max_steps={steps}", *extra]


# ------------------------------------------------------------------ atomic writes
def test_atomic_save_replaces_whole_files_with_umask_modes(tmp_path):
    path = tmp_path / "c" / "last.ckpt"
    old = os.umask(0o027)
    try:
        atomic_torch_save({"a": torch.ones(3)}, path)
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o640 and torch.load(path)["a"].sum() == 3
    os.umask(0o022)
    try:
        atomic_torch_save({"a": torch.zeros(2)}, path)
        assert (path.stat().st_mode & 0o777) == 0o644
    finally:
        os.umask(old)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        atomic_torch_save({"a": Unpicklable()}, path)
    assert torch.load(path)["a"].shape == (2,)  # the previous checkpoint is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temp file left


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".last.ckpt.tmp-{dead.pid}"
    live = tmp_path / f".last.ckpt.tmp-{os.getppid()}"  # another live process: still writing
    own = temp_path(tmp_path / "best.ckpt")
    for p in (stale, live, own, tmp_path / "last.ckpt"):
        p.write_bytes(b"x")
    assert sorted(remove_stale_temp_files(tmp_path)) == sorted([stale, own])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "last.ckpt"])


#: runs ``irdet train`` with torch.save slowed down from the HANG_AT_SAVE-th call on: half the
#: bytes written, a marker file, then a long sleep (the test SIGKILLs the process meanwhile)
HANG_HELPER = """
import io, os, sys, time
import torch

real_save, calls = torch.save, [0]

def hanging_save(obj, f, *args, **kwargs):
    calls[0] += 1
    if calls[0] < int(os.environ["HANG_AT_SAVE"]) or not hasattr(f, "write"):
        return real_save(obj, f, *args, **kwargs)
    buf = io.BytesIO()
    real_save(obj, buf, *args, **kwargs)
    f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
    f.flush()
    with open(os.environ["HANG_MARKER"], "w") as m:
        m.write(str(os.getpid()))
    time.sleep(600)

torch.save = hanging_save
from irdet.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_while_saving_keeps_last_and_resume_continues(small_root, tmp_path):
    run, marker, helper = tmp_path / "run", tmp_path / "hanging", tmp_path / "hang_helper.py"
    helper.write_text(HANG_HELPER)
    env = {**os.environ, "HANG_AT_SAVE": "2", "HANG_MARKER": str(marker), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(helper), *_args(small_root, run, steps=3)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the second checkpoint save never started"
            time.sleep(0.2)
        tmp = run / "checkpoints" / f".last.ckpt.tmp-{proc.pid}"
        assert tmp.is_file()  # irdet's writer is the one Lightning used: the temp file sits beside last.ckpt
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False, map_location="cpu")["global_step"] == 1  # the step-1 file, whole
    assert (last.stat().st_mode & 0o777) == (0o666 & ~_umask())

    assert main(_args(small_root, run, "--resume", steps=3)) == 0
    assert torch.load(last, weights_only=False, map_location="cpu")["global_step"] == 3
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]  # the killed run's temp file is gone


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask



# ------------------------------------------------------------------ best.ckpt across a resume
#: one validation per epoch on val_v2 (disjoint from train_v2), best.ckpt on val/mAP07
VALIDATED = ["data.train_split=train_v2", "data.val_split=val_v2", "train.val_interval=1"]
BEST_KEY = ("ModelCheckpoint{'monitor': 'val/mAP07', 'mode': 'max', 'every_n_train_steps': 0, 'every_n_epochs': 1, "
            "'train_time_interval': None}")


def _set_record(path, score):
    """Rewrite the best.ckpt record stored in the checkpoint ``path`` (None: no record, as in a
    last.ckpt written before best.ckpt was)."""
    state = torch.load(path, weights_only=False, map_location="cpu")
    rec = state["callbacks"][BEST_KEY]
    best = str(Path(path).parent.resolve() / "best.ckpt")
    if score is None:
        rec.update(best_model_score=None, best_model_path="", best_k_models={}, kth_best_model_path="",
                   kth_value=torch.tensor(-torch.inf))
    else:
        rec.update(best_model_score=torch.tensor(score), best_model_path=best, best_k_models={best: torch.tensor(score)},
                   kth_best_model_path=best, kth_value=torch.tensor(score))
    torch.save(state, path)


def _epoch(path) -> int:
    return torch.load(path, weights_only=False, map_location="cpu")["epoch"]


def test_best_checkpoint_keeps_its_record_across_resumes(small_root, tmp_path):
    run = tmp_path / "run"
    ckpts = run / "checkpoints"
    assert main(_args(small_root, run, steps=-1, extra=[*VALIDATED, "train.max_epochs=1"])) == 0
    last, best = (torch.load(ckpts / n, weights_only=False, map_location="cpu")["callbacks"][BEST_KEY]
                  for n in ("last.ckpt", "best.ckpt"))
    assert last["best_model_path"] == best["best_model_path"] == str(ckpts.resolve() / "best.ckpt")
    assert float(last["best_model_score"]) == float(best["best_model_score"])  # last.ckpt follows best.ckpt

    # killed between the two saves: last.ckpt knows no best.ckpt; the file's own (unbeatable) score is kept
    _set_record(ckpts / "last.ckpt", None)
    _set_record(ckpts / "best.ckpt", 2.0)
    assert main(_args(small_root, run, "--resume", steps=-1, extra=[*VALIDATED, "train.max_epochs=2"])) == 0
    assert sorted(p.name for p in ckpts.iterdir()) == ["best.ckpt", "last.ckpt"]  # no best-v1.ckpt
    assert _epoch(ckpts / "best.ckpt") == 0
    assert float(torch.load(ckpts / "last.ckpt", weights_only=False)["callbacks"][BEST_KEY]["best_model_score"]) == 2.0

    # a stale record in last.ckpt (higher than the file's score): the file's score decides, and is beaten
    _set_record(ckpts / "last.ckpt", 2.0)
    _set_record(ckpts / "best.ckpt", -1.0)
    assert main(_args(small_root, run, "--resume", steps=-1, extra=[*VALIDATED, "train.max_epochs=3"])) == 0
    assert _epoch(ckpts / "best.ckpt") == 2 and sorted(p.name for p in ckpts.iterdir()) == ["best.ckpt", "last.ckpt"]


def test_resume_refuses_an_unreadable_best_checkpoint(small_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_args(small_root, run, steps=-1, extra=[*VALIDATED, "train.max_epochs=1"])) == 0
    best = run / "checkpoints" / "best.ckpt"
    best.write_bytes(best.read_bytes()[: 1 << 12])
    capsys.readouterr()
    assert main(_args(small_root, run, "--resume", steps=-1, extra=[*VALIDATED, "train.max_epochs=2"])) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"irdet: error: {best}: not a readable checkpoint") and "Traceback" not in err
    assert _epoch(run / "checkpoints" / "last.ckpt") == 0  # nothing trained

# ------------------------------------------------------------------ checkpoints that cannot be resumed
@pytest.fixture(scope="module")
def trained_run(small_root, tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main(_args(small_root, run)) == 0
    return run


def _resume_error(capsys, root, run, ckpt, extra=()) -> str:
    capsys.readouterr()
    assert main(_args(root, run, "--resume", str(ckpt), steps=2, extra=extra)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"irdet: error: {ckpt}: ") and "\n" not in err and "Traceback" not in err
    return err


def test_resume_refuses_corrupt_and_foreign_files(small_root, trained_run, tmp_path, capsys):
    last = trained_run / "checkpoints" / "last.ckpt"
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(last.read_bytes()[: 1 << 16])
    assert "not a readable checkpoint" in _resume_error(capsys, small_root, trained_run, truncated)
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint\nsecond line\n")
    assert "not a readable checkpoint (UnpicklingError" in _resume_error(capsys, small_root, trained_run, text)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.randn(4, 4), "epoch": 3}, foreign)
    assert "not an irdet training checkpoint" in _resume_error(capsys, small_root, trained_run, foreign)
    weights_only = tmp_path / "weights.ckpt"
    state = torch.load(last, weights_only=False, map_location="cpu")
    torch.save({k: state[k] for k in ("state_dict", "hyper_parameters")}, weights_only)
    assert "holds no training state to resume" in _resume_error(capsys, small_root, trained_run, weights_only)
    assert sorted(p.name for p in (trained_run / "logs").iterdir()) == ["version_0"]  # nothing started


def test_resume_refuses_another_architecture(small_root, trained_run, capsys):
    last = trained_run / "checkpoints" / "last.ckpt"
    err = _resume_error(capsys, small_root, trained_run, last, extra=["model.head.feat_channels=48"])
    assert "the checkpoint's model differs from the config's: model.head.feat_channels is 32 in the checkpoint, 48" in err
    config = (trained_run / "config.yaml").read_text()
    assert "feat_channels: 32" in config  # the run's config.yaml is not rewritten by a refused resume


def test_weights_are_checked_against_the_model(tmp_path):
    module = torch.nn.Sequential(torch.nn.Linear(3, 4))
    good = {"state_dict": torch.nn.Sequential(torch.nn.Linear(3, 4)).state_dict()}
    check_resume_weights("x.ckpt", good, module)
    with pytest.raises(DataError, match=r"x.ckpt: .*0.weight has shape \(5, 3\) in the checkpoint, \(4, 3\) in the model"):
        check_resume_weights("x.ckpt", {"state_dict": torch.nn.Sequential(torch.nn.Linear(3, 5)).state_dict()}, module)
    with pytest.raises(DataError, match=r"1 parameters missing \(e.g. 0.bias\)"):
        check_resume_weights("x.ckpt", {"state_dict": {"0.weight": torch.zeros(4, 3)}}, module)
