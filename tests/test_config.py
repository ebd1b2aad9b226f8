"""Config loading (irdet.config) and value checks (irdet.config_values): every shipped config
loads; bad values fail in one line, naming the key, the value and what is expected, through
``--set`` and inside a YAML file alike, before the run folder is created."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

from irdet import cli
from irdet.config import DEFAULTS, SEQUENCE_DEFAULTS, load_config, merge
from irdet.config_values import PRECISION_CHOICES, RULES, SKY_MASK_CHOICES
from irdet.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
CPU = REPO / "configs" / "fcos_r18_densesirst_cpu.yaml"

#: (key, value as YAML text, the words of the error)
BAD = [
    ("train.max_epochs", "abc", "config key 'train.max_epochs' = \"abc\": expected an integer >= 1 or -1"),
    ("train.lr", "abc", "config key 'train.lr' = \"abc\": expected a number > 0"),
    ("train.batch_size", "0", "config key 'train.batch_size' = 0: expected an integer >= 1"),
    ("data.img_size", "512", "config key 'data.img_size' = 512: expected null or [h, w] with positive integers"),
    ("data.crop", "abc", "config key 'data.crop' = \"abc\": expected null or [h, w] with positive integers"),
    ("model", "3", "config key 'model' = 3: expected a mapping"),
    ("data.sky_mask", "rainbow", "config key 'data.sky_mask' = \"rainbow\": expected one of \"palette\", \"binary\""),
]


def _nested(key: str, text: str) -> dict:
    out: dict = yaml.safe_load(text)
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def test_every_shipped_config_loads():
    paths = sorted((REPO / "configs").rglob("*.yaml"))
    assert len(paths) > 50
    for path in paths:
        load_config(path)  # raises ConfigError on any bad value


@pytest.mark.parametrize("key,text,message", BAD, ids=[b[0] for b in BAD])
def test_bad_value_via_set(key, text, message):
    with pytest.raises(ConfigError) as info:
        load_config(CPU, [f"{key}={text}"])
    assert str(info.value) == message


@pytest.mark.parametrize("key,text,message", BAD, ids=[b[0] for b in BAD])
def test_bad_value_in_yaml_file(key, text, message, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"_base_": str(CPU), **_nested(key, text)}))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == message


@pytest.mark.parametrize("sets", [
    ["train.lr=0"], ["train.lr=-1"], ["train.max_epochs=0"], ["train.max_epochs=2.5"], ["train.num_nodes=0"],
    ["data.num_workers=-1"], ["data.flip_prob=1.5"], ["data.crop_p_target=-0.1"], ["data.crop=[256]"],
    ["data.crop=[0, 256]"], ["data.img_size=[512, 512.5]"], ["data.crop_on=boxes"], ["data.root=3"],
    ["train.precision=fp16"], ["train.threads=0"], ["train.limit_train_batches=1.5"], ["train.limit_val_batches=abc"],
    ["model.backbone.weights=3"], ["model.head.regress_ranges=[1, 2]"], ["model.head.seg_head=1"],
    ["data.bagcp.enabled=maybe"], ["model.neck.levels=P3"], ["eval.pdfa_score_thr=2"], ["name=[]"],
    ["train.milestones=[a]"], ["task=sequence", "sequence.context=random"], ["task=sequence", "model.temporal.hidden=0"],
    ["task=sequence", "sequence.train_skip_empty=no way"],
])
def test_more_bad_values(sets):
    with pytest.raises(ConfigError, match=r"^config key '[a-z_.]+' = .+: expected .+$"):
        load_config(CPU, sets)


@pytest.mark.parametrize("sets", [
    ["train.max_epochs=-1"], ["train.lr=1"], ["data.img_size=null"], ["data.img_size=[480, 640]"], ["data.crop=null"],
    ["data.sky_mask=binary"], ["train.precision=16"], ["train.precision=bf16-mixed"], ["train.threads=1"],
    ["train.limit_train_batches=0.25"], ["train.limit_val_batches=3"], ["train.devices=[0, 1]"], ["train.devices=auto"],
    ["model.backbone.weights=/tmp/resnet18.pth"], ["model.backbone.frozen_stages=1"],
    ["model.head.regress_ranges=[[-1, 64], [64, 100000000.0]]"], ["data.val_split=null"], ["data.val_split=val_v2"],
    ["task=sequence", "model.temporal.hidden=16", "sequence.ann_files={train: a.json}"],
])
def test_good_values_load(sets):
    load_config(CPU, sets)


def test_exponent_strings_are_read_as_numbers():
    """YAML 1.1 (PyYAML) reads ``1e-3`` as a string; where a number is expected it becomes one."""
    cfg = load_config(CPU, ["train.lr=1e-3", "train.weight_decay=5e-2", "model.head.regress_ranges=[[-1, 64], [64, 1e8]]"])
    assert cfg["train"]["lr"] == 0.001 and cfg["train"]["weight_decay"] == 0.05
    assert cfg["model"]["head"]["regress_ranges"] == [[-1, 64], [64, 1e8]]
    assert load_config(CPU, ["description=1e3"])["description"] == "1e3"  # a string key keeps its string


def test_unknown_keys_still_raise_first():
    with pytest.raises(ConfigError, match="unknown config key 'train.batchsize' \\(did you mean 'batch_size'\\?\\)"):
        load_config(CPU, ["train.batchsize=0"])


def test_rules_name_existing_keys_and_choices_match_their_sources():
    """The table has no stale entries; its choices are the loader's and Lightning's."""
    ref = merge(DEFAULTS, SEQUENCE_DEFAULTS)
    for dotted in RULES:
        node = ref
        for part in dotted.split("."):
            assert isinstance(node, dict) and part in node, f"RULES key {dotted!r} is not a config key"
            node = node[part]
    from irdet.data.datasets.densesirst import SKY_MASK_FILES

    assert set(SKY_MASK_CHOICES) == set(SKY_MASK_FILES)
    from lightning.fabric.connector import _PRECISION_INPUT

    lightning = {v for part in typing.get_args(_PRECISION_INPUT) for v in typing.get_args(part)}
    assert set(PRECISION_CHOICES) <= lightning
    assert lightning - set(PRECISION_CHOICES) == {"transformer-engine", "transformer-engine-float16"}
    from irdet.engine.precision import PRECISIONS, resolve_precision

    assert set(PRECISIONS) <= set(PRECISION_CHOICES)
    for value in PRECISION_CHOICES:
        assert resolve_precision(value, "gpu") in PRECISIONS  # accepted by the training path


def test_defaults_pass_their_own_checks():
    load_config(None)
    load_config(None, ["task=sequence"])


@pytest.mark.parametrize("key,text,message", BAD[2:4], ids=[b[0] for b in BAD[2:4]])
def test_cli_prints_one_line_and_writes_nothing(key, text, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", str(CPU), "--set", f"{key}={text}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"irdet: error: {message}\n"
    assert not out.exists()


def test_cli_subprocess_exit_code_and_no_traceback(tmp_path):
    out = tmp_path / "x"
    proc = subprocess.run([sys.executable, "-m", "irdet.cli", "train", str(CPU), "--set", "train.batch_size=0",
                           "--out", str(out)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["irdet: error: config key 'train.batch_size' = 0: expected an integer >= 1"]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not out.exists()
