"""irdet.engine.selection: which splits may select best.ckpt (never on training or test images), and data.val_split null end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fixtures import TINY_TRAIN, small_densesirst
from irdet.cli import main
from irdet.config import load_config
from irdet.engine.selection import check_selection
from irdet.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FCOS = CONFIGS / "fcos_r18_densesirst_cpu.yaml"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    from conftest import DENSESIRST_ROOT, skip_or_fail_without

    real = skip_or_fail_without(DENSESIRST_ROOT, "DenseSIRST")
    return small_densesirst(real, tmp_path_factory.mktemp("ds") / "SIRSTdevkit")


def test_trainval_with_val_v2_is_refused_on_the_real_splits(densesirst):
    cfg = load_config(FCOS, ["data.val_split=val_v2"])  # train_split trainval_v2 (the paper protocol)
    with pytest.raises(ConfigError) as err:
        check_selection(cfg, densesirst)
    msg = str(err.value)
    assert "'val_v2' shares 256 of its 256 images with data.train_split 'trainval_v2'" in msg
    assert "data.train_split=train_v2" in msg and "data.val_split=null" in msg and "\n" not in msg


def test_train_v2_with_val_v2_and_the_defaults_are_accepted(densesirst):
    check_selection(load_config(FCOS, ["data.train_split=train_v2", "data.val_split=val_v2"]), densesirst)
    check_selection(load_config(FCOS), densesirst)  # val_split null: last.ckpt, nothing to check


def test_every_single_frame_config_is_accepted(densesirst):
    from irdet.engine import ablate

    paths = sorted(CONFIGS.glob("*.yaml")) + sorted((CONFIGS / "bpfpn").glob("*.yaml"))
    for path in paths:
        check_selection(load_config(path), densesirst)
    for table in ("table3", "table4", "table5", "table6", "table7", "table8", "table9"):
        for row in ablate.table_rows(table):
            check_selection(ablate.budget_config(row, "cpu"), densesirst)


def test_val_equal_to_test_is_refused(densesirst):
    cfg = load_config(FCOS, ["data.train_split=train_v2", "data.val_split=test_v2"])
    with pytest.raises(ConfigError, match=r"data.val_split and data.test_split are both 'test_v2' \(256 images\)"):
        check_selection(cfg, densesirst)


def _coco_split(path: Path, names: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [{"id": i + 1, "file_name": n, "height": 8, "width": 8} for i, n in enumerate(names)]
    path.write_text(json.dumps({"images": images, "annotations": [], "categories": [{"id": 1, "name": "target"}]}))


def test_sequence_configs_select_on_neither_test_nor_train(tmp_path):
    """IRDST layout (train / test JSONs only; 'val' is read as 'test'): the public-set configs keep last.ckpt."""
    root = tmp_path / "IRDST"
    _coco_split(root / "annotations" / "instances_train2017.json", [f"images/{s}/{n}.bmp" for s in (1, 2) for n in range(3)])
    _coco_split(root / "annotations" / "instances_test2017.json", [f"images/3/{n}.bmp" for n in range(4)])
    irdst = CONFIGS / "sequences" / "yolobp_r18_irdst.yaml"
    check_selection(load_config(irdst), root)  # val_split null
    assert load_config(CONFIGS / "sequences" / "yolobp_r18_daub.yaml")["data"]["val_split"] is None
    with pytest.raises(ConfigError, match=r"data.val_split and data.test_split are both 'test' \(4 images\).*"
                                          r"select on a split that shares no frames"):
        check_selection(load_config(irdst, ["data.val_split=test"]), root)
    with pytest.raises(ConfigError, match=r"'val' shares 4 of its 4 images with data.test_split 'test'"):
        check_selection(load_config(irdst, ["data.val_split=val"]), root)  # the alias: same JSON as test
    with pytest.raises(ConfigError, match=r"'train' shares 6 of its 6 images with data.train_split 'train'"):
        check_selection(load_config(irdst, ["data.val_split=train"]), root)
    # explicit annotation files: frames compared by file, not by split name
    _coco_split(root / "held.json", [f"images/2/{n}.bmp" for n in range(3)])
    cfg = load_config(irdst, ["data.val_split=held", "sequence.ann_files={held: held.json}"])
    with pytest.raises(ConfigError, match=r"'held' shares 3 of its 3 images with data.train_split 'train'"):
        check_selection(cfg, root)


def test_refused_config_writes_nothing(small_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(FCOS), "--data", str(small_root), "--out", str(run), "--set", "data.val_split=val_v2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("irdet: error: data.val_split 'val_v2' shares 2 of its 2 images with data.train_split 'trainval_v2'")
    assert "\n" not in err and not run.exists()


def test_val_split_null_trains_without_validation_and_keeps_last(small_root, tmp_path):
    run = tmp_path / "run"
    assert main(["train", str(FCOS), "--data", str(small_root), "--out", str(run), "--set", *TINY_TRAIN,
                 "train.max_epochs=1", "train.val_interval=1"]) == 0
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt"]
    state = torch.load(ckpts / "last.ckpt", weights_only=False, map_location="cpu")
    assert state["global_step"] == 3 and state["hyper_parameters"]["config"]["data"]["val_split"] is None  # 6 images, batch 2
    checkpointers = [key for key in state["callbacks"] if "Checkpoint{" in key]
    assert len(checkpointers) == 1 and checkpointers[0].startswith("LastCheckpoint{'monitor': None")  # no best.ckpt one
    header = (run / "logs" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    assert "train/loss" in header and "val/" not in header
    assert "train/dadapt_d" in header  # DAdaptAdam's step-size estimate d is logged beside the losses
