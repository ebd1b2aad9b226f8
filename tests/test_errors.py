"""irdet.errors: one-line errors whatever the DataLoader worker count (evaluate, train), and pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from fixtures import TINY_FCOS, make_checkpoint, make_dataset, write_corrupt_png
from irdet.cli import main
from irdet.errors import ConfigError, DataError, IrdetError

pytestmark = pytest.mark.usefixtures("one_thread")


def _reraised(exc: Exception) -> Exception:
    """``exc`` after torch's DataLoader round trip (ExceptionWrapper in the worker, reraise in the main process)."""
    from torch._utils import ExceptionWrapper

    try:
        raise exc
    except Exception:  # noqa: BLE001
        wrapper = ExceptionWrapper(where="in DataLoader worker process 1")
    with pytest.raises(type(exc)) as info:
        wrapper.reraise()
    return info.value


def test_errors_survive_the_worker_round_trip_and_pickle():
    exc = DataError("/data/PNGImages/a.png", "cannot read image (OSError: broken data stream)")
    back = _reraised(exc)
    assert type(back) is DataError and str(back) == str(exc)
    assert (back.path, back.problem) == (exc.path, exc.problem)
    assert str(_reraised(ConfigError("train.lr: expected a number"))) == "train.lr: expected a number"
    assert str(_reraised(IrdetError("plain"))) == "plain"
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is DataError and str(again) == str(exc) and again.path == exc.path


@pytest.fixture(scope="module")
def corrupt_root(tmp_path_factory):
    """A DenseSIRST-layout root (split test_v2 = trainval_v2) whose second image passes header
    checks but fails when its pixels are decoded (in a DataLoader worker when there are workers)."""
    rng = np.random.default_rng(0)
    images = {f"img{i}": (rng.integers(0, 255, (64, 64), dtype=np.uint8), [(20, 20, 28, 28)]) for i in range(2)}
    root = make_dataset(tmp_path_factory.mktemp("ds") / "SIRSTdevkit", images, split="test_v2")
    (root / "Splits" / "trainval_v2.txt").write_text("img0\nimg1\n")
    write_corrupt_png(root / "PNGImages" / "img1.png")
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt")


def _one_error_line(err: str, name: str) -> str:
    assert "Traceback" not in err and "Caught DataError" not in err
    # a progress bar may share the line (tqdm ends without a newline): keep what follows it
    lines = [line[line.index("irdet: error:"):] for line in err.splitlines() if "irdet: error:" in line]
    assert len(lines) == 1 and name in lines[0], err[-2000:]
    return lines[0]


@pytest.mark.parametrize("workers", [0, 2])
def test_evaluate_corrupt_image_is_one_line(corrupt_root, checkpoint, tmp_path, capsys, workers):
    code = main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(corrupt_root), "--split", "test_v2",
                 "--out", str(tmp_path / "eval"), "--workers", str(workers)])
    line = _one_error_line(capsys.readouterr().err, "img1.png")
    assert code == 2
    assert line == f"irdet: error: {corrupt_root / 'PNGImages' / 'img1.png'}: cannot read image " \
                   f"(OSError: unrecognized data stream contents when reading image file)"


@pytest.mark.parametrize("workers", [0, 2])
def test_train_corrupt_image_is_one_line(corrupt_root, tmp_path, capsys, workers):
    code = main(["train", "fcos_r18_densesirst_cpu", "--data", str(corrupt_root), "--out", str(tmp_path / "run"),
                 "--set", *TINY_FCOS, f"data.num_workers={workers}", "train.max_steps=1", "data.crop=null",
                 "train.threads=1"])
    _one_error_line(capsys.readouterr().err, "img1.png")
    assert code == 2
