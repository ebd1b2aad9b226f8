"""irdet.engine.precision: which precision runs on this machine, said once; bf16 prediction stays close to fp32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from irdet.engine import precision as P
from irdet.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def fresh(monkeypatch):
    """No fallback message said yet in this process."""
    monkeypatch.setattr(P, "_said", set())
    return monkeypatch


def _lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("[irdet] precision")]


def test_bf16_falls_back_without_bf16_instructions(fresh, capsys):
    fresh.setenv("IRDET_CPU_BF16", "0")
    assert not P.cpu_has_bf16()
    assert P.resolve_precision("bf16-mixed", "cpu") == "32-true"
    assert P.resolve_precision("bf16-mixed", "cpu") == "32-true"
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == 1 and "bf16-mixed -> 32-true" in lines[0] and "IRDET_CPU_BF16" in lines[0]
    assert P.resolve_precision("16-mixed", "cpu") == "32-true"
    assert len(_lines(capsys.readouterr().err)) == 1  # its own message, once


def test_fp16_on_a_bf16_cpu_becomes_bf16(fresh, capsys):
    fresh.setenv("IRDET_CPU_BF16", "1")
    assert P.resolve_precision("16-mixed", "cpu") == "bf16-mixed"
    assert P.resolve_precision("16-mixed", "cpu") == "bf16-mixed"
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == 1 and "16-mixed -> bf16-mixed" in lines[0]


def test_passthrough_and_aliases(fresh, capsys):
    fresh.setenv("IRDET_CPU_BF16", "1")
    assert P.resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    assert P.resolve_precision("32-true", "cpu") == "32-true"
    assert P.resolve_precision("32", "cpu") == "32-true"
    assert P.resolve_precision("bf16", "cpu") == "bf16-mixed"
    fresh.setenv("IRDET_CPU_BF16", "0")
    assert P.resolve_precision("16-mixed", "gpu") == "16-mixed"  # not a CPU run: Lightning decides
    assert P.resolve_precision("bf16-mixed", "cuda") == "bf16-mixed"
    assert _lines(capsys.readouterr().err) == []
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        P.resolve_precision("fp8", "cpu")


def test_auto_accelerator_without_cuda_is_a_cpu_run(fresh, capsys):
    fresh.setenv("IRDET_CPU_BF16", "0")
    fresh.setattr(torch.cuda, "is_available", lambda: False)
    assert P.resolve_precision("bf16-mixed", "auto") == "32-true"


def test_training_uses_the_resolved_precision(fresh):
    from irdet.engine.train import _trainer_kwargs

    fresh.setenv("IRDET_CPU_BF16", "0")
    t = {"accelerator": "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto", "precision": "bf16-mixed"}
    assert _trainer_kwargs(t)["precision"] == "32-true"


@pytest.mark.parametrize("config", ["fcos_r18_densesirst_cpu", "bafenet_r18_densesirst_cpu"])
def test_head_outputs_are_float32_under_autocast(config):
    from fixtures import TINY_FCOS
    from irdet.config import load_config
    from irdet.engine.module import DetectorModule

    torch.manual_seed(0)
    module = DetectorModule(load_config(config, TINY_FCOS)).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = module.model(torch.rand(1, 3, 64, 64) * 255)
    assert {t.dtype for maps in out.values() for t in maps} == {torch.float32}


def test_bf16_prediction_on_a_real_image_is_close_to_fp32(fresh):
    """A tiny FCOS-R18 trained from scratch for 10 steps on a packaged DenseSIRST image: bf16-mixed
    prediction (forced; emulated where the CPU lacks bf16) gives float32, finite boxes close to fp32's."""
    from fixtures import TINY_FCOS
    from irdet.config import load_config
    from irdet.data.datasets.densesirst import DenseSIRST, sample_root
    from irdet.data.collate import collate
    from irdet.engine.tasks.detect import test_transforms_from_cfg
    from irdet.engine.module import DetectorModule
    from irdet.engine.predict import predict

    cfg = load_config("fcos_r18_densesirst_cpu", [*TINY_FCOS, "data.img_size=[256,256]"])
    torch.manual_seed(0)
    module = DetectorModule(cfg)
    dataset = DenseSIRST(sample_root(), "test_v2", sky_mask=None, transforms=test_transforms_from_cfg(cfg))
    k = dataset.ids.index("S20210527_S7_3")  # an 18x18 target among small ones
    one = torch.utils.data.Subset(dataset, [k])
    batch = collate([dataset[k]])
    opt = torch.optim.Adam(module.model.parameters(), 2e-3)
    module.train()
    for _ in range(10):
        loss = module.model.loss(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    module.eval()
    fresh.setenv("IRDET_CPU_BF16", "1")
    (fp32,) = predict(module, one, 1, "cpu", 0, precision="32-true")
    (bf16,) = predict(module, one, 1, "cpu", 0, precision="bf16-mixed")
    assert bf16["boxes"].dtype == bf16["scores"].dtype == np.float32
    assert np.isfinite(bf16["boxes"]).all() and np.isfinite(bf16["scores"]).all()
    assert len(fp32["scores"]) >= 3
    for box, score in zip(fp32["boxes"][:3], fp32["scores"][:3]):  # the best fp32 boxes are found in bf16 too
        k = np.abs(bf16["boxes"] - box).max(1).argmin()
        assert np.abs(bf16["boxes"][k] - box).max() < 1.0
        assert bf16["scores"][k] == pytest.approx(score, rel=0.05, abs=0.0005)
