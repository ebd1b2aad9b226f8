"""Every config keeps the run key (ablation hash of its resolved config) and the model state-dict
layout recorded before the package was restructured, so finished runs stay valid and old checkpoints load.

``tests/recorded/run_keys.json`` maps each config file to its key under the ``paper`` and ``cpu``
budgets and to a hash of its model's ``state_dict`` names and shapes. A config whose experiment
changes on purpose gets a new record (and new runs); one that changes by accident fails here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from irdet.config import config_task, load_config
from irdet.engine.ablate import budget_config, config_key

REPO = Path(__file__).resolve().parents[1]
RECORD = json.loads((REPO / "tests" / "recorded" / "run_keys.json").read_text())


@pytest.mark.parametrize("rel", sorted(RECORD))
def test_run_key_unchanged(rel):
    path = REPO / rel
    assert path.is_file(), f"{rel}: recorded config was removed or renamed"
    for budget in ("paper", "cpu"):
        assert config_key(budget_config(path, budget)) == RECORD[rel][f"key_{budget}"], (rel, budget)


def _state_dict_signature(cfg: dict) -> tuple[str, int]:
    if config_task(cfg) == "sequence":
        from irdet.models import build_sequence_detector as build
    else:
        from irdet.models import build_detector as build
    sd = build(cfg["model"]).state_dict()
    sig = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in sd.items())
    return hashlib.sha1(sig.encode()).hexdigest()[:12], len(sd)


@pytest.mark.usefixtures("one_thread")
def test_state_dict_layout_unchanged():
    changed = []
    for rel, rec in sorted(RECORD.items()):
        sig, n = _state_dict_signature(load_config(REPO / rel))
        if (sig, n) != (rec["state_dict"], rec["n_keys"]):
            changed.append(f"{rel}: {n} keys (recorded {rec['n_keys']})")
    assert not changed, "model layout changed (old checkpoints would not load):\n" + "\n".join(changed)
