"""irdet ablate: row discovery, config keys, resumability, de-duplication, markdown output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from irdet.config import load_config
from irdet.engine import ablate as ab
from irdet.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_every_table_row_loads_and_builds():
    from irdet.models import build_detector

    counts = {t: len(ab.table_rows(t)) for t in ("table3", "table4", "table5", "table6", "table7", "table8", "table9")}
    assert counts == {"table3": 7, "table4": 4, "table5": 4, "table6": 4, "table7": 3, "table8": 9, "table9": 4}
    for t in counts:
        for row in ab.table_rows(t):
            cfg = ab.budget_config(row, "cpu")
            assert cfg["paper"]["mAP07"] > 0 and cfg["description"]
            assert cfg["data"]["crop"] == [256, 256] and cfg["train"]["max_epochs"] == 4
    build_detector(ab.budget_config(CONFIGS / "ablations" / "table6_c.yaml", "cpu")["model"])


def test_identical_experiments_share_a_key():
    key = lambda p: ab.config_key(ab.budget_config(CONFIGS / "ablations" / p, "cpu"))  # noqa: E731
    assert key("table3_a.yaml") == key("table4_a.yaml")
    assert len({key(f"table{t}.yaml") for t in ("5_d", "6_a", "7_c", "8_a", "9_a")}) == 1
    assert key("table5_d.yaml") == ab.config_key(load_config(CONFIGS / "bafenet_r18_densesirst_cpu.yaml"))
    assert key("table3_f.yaml") == ab.config_key(load_config(CONFIGS / "fcos_r18_densesirst_cpu.yaml"))
    assert key("table3_a.yaml") != key("table3_b.yaml") != key("table3_f.yaml")
    # thread counts and notes do not change the experiment
    cfg = load_config(CONFIGS / "fcos_r18_densesirst_cpu.yaml", ["train.threads=1", "description=x"])
    assert ab.config_key(cfg) == key("table3_f.yaml")
    # a setting added later keeps earlier keys at its default and changes them away from it
    assert ab.config_key(load_config(CONFIGS / "fcos_r18_densesirst_cpu.yaml", ["data.crop_on=all"])) == key("table3_f.yaml")
    assert ab.config_key(load_config(CONFIGS / "fcos_r18_densesirst_cpu.yaml", ["data.crop_on=gt"])) != key("table3_f.yaml")
    # BAG-CP's variant: paper is the default; the reference variant is another experiment
    assert ab.config_key(load_config(CONFIGS / "fcos_r18_densesirst_cpu.yaml", ["data.bagcp.variant=paper"])) == key("table3_f.yaml")
    # the reference head's blocks: off = every earlier key; on = another experiment, with or without the exchange
    bafe = CONFIGS / "bafenet_r18_densesirst_cpu.yaml"
    on = ab.config_key(load_config(bafe, ["model.head.reference_blocks=true"]))
    assert ab.config_key(load_config(bafe, ["model.head.reference_blocks=false"])) == key("table5_d.yaml") != on
    assert on == ab.config_key(load_config(CONFIGS / "bafenet_r18_refhead_densesirst_cpu.yaml", ["model.head.scorer=ste"]))
    assert key("table4_b.yaml") != ab.config_key(ab.budget_config(CONFIGS / "ablations" / "table4_b.yaml", "cpu",
                                                                 ["model.head.reference_blocks=true"]))
    assert key("table3_f_reference.yaml") != key("table3_f.yaml")


def test_tiny_boxes_default_changed_the_keys_of_single_frame_rows_only():
    """Runs measured before boxes under 1 px were kept have the keys of tiny_boxes=drop; today's
    default (keep) gives new keys; sequence rows (which never read the setting) keep theirs."""
    row = CONFIGS / "ablations" / "table3_f.yaml"
    drop = ab.config_key(ab.budget_config(row, "cpu", ["data.tiny_boxes=drop"]))
    assert ab.config_key(ab.budget_config(row, "cpu")) != drop
    cfg = ab.budget_config(row, "cpu", ["data.tiny_boxes=drop"])
    cfg["data"].pop("tiny_boxes")  # a config resolved before the setting existed
    assert ab.config_key(cfg) == drop
    seq = CONFIGS / "sequences" / "yolobp_r18_t5_synthetic.yaml"
    assert ab.config_key(ab.budget_config(seq, "paper")) == ab.config_key(ab.budget_config(seq, "paper", ["data.tiny_boxes=drop"]))


def test_unknown_table_and_budget():
    with pytest.raises(ConfigError, match="no configs for table"):
        ab.table_rows("table42")
    with pytest.raises(ConfigError, match="budget file not found"):
        ab.budget_config(CONFIGS / "ablations" / "table3_a.yaml", "gpu-week")


def test_ablate_runs_each_experiment_once_and_resumes(tmp_path, monkeypatch):
    rows = tmp_path / "mytable"
    rows.mkdir()
    base = (CONFIGS / "fcos_r18_densesirst_cpu.yaml").resolve()
    for name, extra in (("a", ""), ("b", "model: {head: {center_sampling: true}}\n"), ("c", "")):
        (rows / f"mytable_{name}.yaml").write_text(f"_base_: {base}\ndescription: row {name}\npaper: {{mAP07: 0.2}}\n{extra}")
    calls = []

    def fake_train(cfg, data=None, out=None, resume=None, overwrite=False):
        calls.append(("train", cfg["name"], resume))
        (Path(out) / "checkpoints").mkdir(parents=True, exist_ok=True)
        (Path(out) / "checkpoints" / "last.ckpt").write_bytes(b"x")
        return Path(out)

    def fake_eval(ckpt, data, split, out):
        calls.append(("eval", Path(ckpt).name))
        return {"mAP07": 0.1, "mAP12": 0.09, "recall": 0.2, "AP75": 0.01, "Pd": 0.3, "Fa": 1e-5}

    monkeypatch.setattr(ab, "train", fake_train)
    monkeypatch.setattr(ab, "evaluate_checkpoint", fake_eval)
    md = ab.ablate(str(rows), "paper", out=tmp_path / "out")
    text = md.read_text()
    assert text.count("| mytable_") == 3 and "0.100" in text and "row b" in text
    # rows a and c are the same experiment: trained once
    assert [c for c in calls if c[0] == "train"] == [("train", "mytable_a", None), ("train", "mytable_b", None)]
    summary = json.loads((tmp_path / "out" / "paper" / "mytable.json").read_text())
    assert summary[0]["key"] == summary[2]["key"] != summary[1]["key"]
    # a second call re-runs nothing
    calls.clear()
    ab.ablate(str(rows), "paper", out=tmp_path / "out")
    assert calls == []
    # an interrupted run (checkpoint, no result) resumes from last.ckpt
    key_b = summary[1]["key"]
    (tmp_path / "out" / "paper" / "runs" / key_b / "result.json").unlink()
    ab.ablate(str(rows), "paper", out=tmp_path / "out", rows=["b"])
    assert calls[0] == ("train", "mytable_b", True)


def test_ablate_runs_sequence_rows_with_their_protocol(tmp_path, monkeypatch):
    rows = tmp_path / "seq"
    rows.mkdir()
    for name in ("yolofpn_r18_t1_synthetic", "yolobp_r18_t5_synthetic"):
        (rows / f"{name}.yaml").write_text(f"_base_: {(CONFIGS / 'sequences' / name).resolve()}.yaml\n")
    (rows / "_base_note.yaml").write_text("description: a base, not a row\n")
    metrics = {"AP50": 0.42, "AP50_95": 0.2, "precision": 0.5, "recall": 0.6, "F1": 0.545, "Pd": 0.61, "Fa": 2e-5}
    trained = []

    def fake_train(cfg, data=None, out=None, resume=None, overwrite=False):
        trained.append(cfg["model"]["temporal"]["num_frames"])
        (Path(out) / "checkpoints").mkdir(parents=True, exist_ok=True)
        (Path(out) / "checkpoints" / "best.ckpt").write_bytes(b"x")
        return Path(out)

    monkeypatch.setattr(ab, "train", fake_train)
    monkeypatch.setattr(ab, "evaluate_checkpoint", lambda ckpt, data, split, out: metrics)
    assert [r.stem for r in ab.table_rows(str(rows))] == ["yolobp_r18_t5_synthetic", "yolofpn_r18_t1_synthetic"]
    text = ab.ablate(str(rows), "paper", out=tmp_path / "out", overrides=["data.root=bench_a"]).read_text()
    assert sorted(trained) == [1, 5]
    assert "| AP50 | precision | recall | F1 | Pd | Fa |" in text and "| 0.420 | 0.500 | 0.600 | 0.545 | 0.610 | 2.00e-05 |" in text
    results = {r["result"]["config"]: r["result"] for r in json.loads((tmp_path / "out" / "paper" / "seq.json").read_text())}
    res = results["yolobp_r18_t5_synthetic"]
    assert res["params"] > 1e6 and res["split"] == "test"
    # MACs of one clip: the T = 5 row runs the backbone on five frames, the T = 1 row on one
    assert results["yolobp_r18_t5_synthetic"]["macs"] > 3 * results["yolofpn_r18_t1_synthetic"]["macs"] > 0
    # another synthetic benchmark is another experiment
    cfg = ab.budget_config(rows / "yolobp_r18_t5_synthetic.yaml", "paper", ["data.root=bench_a"])
    assert ab.config_key(cfg) != ab.config_key(ab.budget_config(rows / "yolobp_r18_t5_synthetic.yaml", "paper", ["data.root=bench_b"]))
    # single-frame and sequence rows do not share a table
    (rows / "fcos.yaml").write_text(f"_base_: {(CONFIGS / 'fcos_r18_densesirst_cpu.yaml').resolve()}\n")
    with pytest.raises(ConfigError, match="mix single-frame and sequence"):
        ab.ablate(str(rows), "paper", out=tmp_path / "out", dry_run=True)


def test_lock_skips_a_run_held_by_a_live_process(tmp_path):
    import os

    lock = ab._Lock(tmp_path / "r" / ".lock")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / ".lock").write_text(str(os.getpid()))
    assert lock.acquire() is False
    (tmp_path / "r" / ".lock").write_text("999999999")  # dead process: taken over
    assert lock.acquire() is True
    lock.release()
    assert not (tmp_path / "r" / ".lock").exists()


def test_run_row_keeps_last_without_a_val_split_and_restarts_a_killed_start(densesirst, tmp_path):
    """Real training: a killed start (config.yaml + logs, no checkpoint) is started again, not refused,
    and with data.val_split null the last checkpoint is evaluated (a stray best.ckpt is ignored)."""
    from fixtures import TINY_TRAIN, small_densesirst

    root = small_densesirst(densesirst, tmp_path / "SIRSTdevkit")
    cfg = load_config(CONFIGS / "fcos_r18_densesirst_cpu.yaml", [*TINY_TRAIN, "train.max_steps=1"])
    run = tmp_path / "runs" / ab.config_key(cfg)
    (run / "logs" / "version_0").mkdir(parents=True)
    (run / "logs" / "version_0" / "metrics.csv").write_text("step\n")
    (run / "config.yaml").write_text("name: killed\n")
    res = ab.run_row(cfg, tmp_path / "runs", str(root))
    assert res["checkpoint"] == "last" and res["split"] == "test_v2" and 0.0 <= res["mAP07"] <= 1.0
    assert (res["checkpoint_epoch"], res["checkpoint_step"]) == (0, 1)  # the evaluated file's own position
    assert sorted(p.name for p in (run / "logs").iterdir()) == ["version_0"]
    assert "name: fcos_r18_densesirst_cpu" in (run / "config.yaml").read_text()
    # an unfinished run resumes its last.ckpt; a best.ckpt in the folder is not what a row without val split reports
    (run / "result.json").unlink()
    (run / "checkpoints" / "best.ckpt").write_bytes(b"not used")
    assert ab.run_row(cfg, tmp_path / "runs", str(root))["checkpoint"] == "last"


def test_ablate_seeds_report_mean_and_std(tmp_path, monkeypatch):
    rows = tmp_path / "st"
    rows.mkdir()
    base = (CONFIGS / "fcos_r18_densesirst_cpu.yaml").resolve()
    for name in ("a", "b"):
        (rows / f"st_{name}.yaml").write_text(f"_base_: {base}\ndescription: row {name}\n"
                                              + ("model: {head: {center_sampling: true}}\n" if name == "b" else ""))
    trained = []

    def fake_train(cfg, data=None, out=None, resume=None, overwrite=False):
        trained.append((cfg["name"], cfg["train"]["seed"]))
        (Path(out) / "checkpoints").mkdir(parents=True, exist_ok=True)
        (Path(out) / "checkpoints" / "last.ckpt").write_text(str(cfg["train"]["seed"]))
        return Path(out)

    def fake_eval(ckpt, data, split, out):  # mAP07 0.1 / 0.2 / 0.3 for seeds 0 / 1 / 2
        seed = int(Path(ckpt).read_text())
        return {"mAP07": 0.1 * (seed + 1), "mAP12": 0.05, "recall": 0.2, "AP75": 0.01, "Pd": 0.3, "Fa": 1e-5}

    monkeypatch.setattr(ab, "train", fake_train)
    monkeypatch.setattr(ab, "evaluate_checkpoint", fake_eval)
    md = ab.ablate(str(rows), "paper", out=tmp_path / "out", seeds=[0, 1, 2], rows=["a"])
    assert md.name == "st_seeds.md" and sorted(trained) == [("st_a", 0), ("st_a", 1), ("st_a", 2)]
    text = md.read_text()
    assert "| st_a | row a | 3/3 | 0.200 ± 0.100 | 0.200 ± 0.000 | 0.050 ± 0.000 |" in text  # mAP07: mean ± sample std of 0.1-0.3
    assert "twice the larger of their two standard deviations" in text
    text = ab.ablate(str(rows), "paper", out=tmp_path / "out", seeds=[0, 1, 2], dry_run=True).read_text()
    assert "| st_a | row a | 3/3 |" in text and "| st_b | row b | 0/3 | not run |" in text
    summary = json.loads((tmp_path / "out" / "paper" / "st_seeds.json").read_text())
    assert len(set(summary[0]["keys"])) == 3 and [r["mAP07"] for r in summary[0]["results"]] == pytest.approx([0.1, 0.2, 0.3])
    # the seed runs are ordinary runs: seed 0 of row a is the row at its config's seed 0
    trained.clear()
    ab.ablate(str(rows), "paper", out=tmp_path / "out", rows=["a"])
    assert trained == []
    with pytest.raises(ConfigError, match="distinct seeds"):
        ab.ablate(str(rows), "paper", out=tmp_path / "out", seeds=[1, 1])
