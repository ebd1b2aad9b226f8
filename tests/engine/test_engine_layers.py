"""The engine's import structure: layers without cycles, nothing reaching up, no import dodging one.

Read from the source with ``ast`` (every import statement, at module level or inside a
function), so the test is fast and checks what the code says, not what one run happened to
import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "irdet"

#: the engine and what sits on it, lowest first: a module may import only modules listed before it
ORDER = [
    # foundations: no task, no model file
    "irdet.engine.optim", "irdet.engine.precision", "irdet.engine.resume", "irdet.engine.rundir",
    "irdet.engine.checkpoints", "irdet.engine.detections",
    # the tasks (model, data, metrics, inference of each kind of input)
    "irdet.engine.tasks.base", "irdet.engine.tasks.detect", "irdet.engine.tasks.sequence", "irdet.engine.tasks",
    # task-independent Lightning parts and the split rule
    "irdet.engine.module", "irdet.engine.datamodule", "irdet.engine.selection",
    # model files: packaged weights, ONNX export and runtime
    "irdet.engine.zoo", "irdet.deploy", "irdet.deploy.export", "irdet.deploy.runtime",
    # loading and running a model
    "irdet.engine.predict",
    # the jobs
    "irdet.engine.train", "irdet.engine.evaluate", "irdet.engine.detect", "irdet.engine.package", "irdet.engine.ablate",
    # faces
    "irdet.api", "irdet.cli",
]
#: the layered modules that may import engine modules inside functions (start-up time of the CLI only)
LAZY_OK = {"irdet.cli"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(path: Path, known: dict[str, Path]) -> list[tuple[str, bool]]:
    """``(imported irdet module, at module level)`` of every import statement of ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from irdet.engine import zoo`` imports the module irdet.engine.zoo
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module for a in node.names]
        for name in names:
            if name.startswith("irdet"):
                out.append((name, id(node) in top))
    return out


def test_every_engine_module_has_its_layer():
    known = _modules()
    engine = {m for m in known if m.startswith(("irdet.engine", "irdet.deploy"))} - {"irdet.engine"}
    assert engine <= set(ORDER), f"place these modules in ORDER: {sorted(engine - set(ORDER))}"


@pytest.mark.parametrize("module", ORDER)
def test_no_module_imports_one_above_it(module):
    known = _modules()
    rank = {m: i for i, m in enumerate(ORDER)}
    for name, at_top in _imports(known[module], known):
        if name not in rank or name == module:
            continue
        assert rank[name] < rank[module], f"{module} imports {name}, which sits above it"
        if module not in LAZY_OK:
            assert at_top, f"{module} imports {name} inside a function: import it at the top"


def test_data_models_metrics_and_pictures_do_not_import_the_engine():
    known = _modules()
    below = [m for m in known if m.startswith(("irdet.data", "irdet.models", "irdet.metrics", "irdet.visualize"))
             or m in ("irdet.tracking", "irdet.config", "irdet.errors")]
    for module in below:
        for name, _ in _imports(known[module], known):
            assert not name.startswith(("irdet.engine", "irdet.deploy", "irdet.api", "irdet.cli")), \
                f"{module} imports {name}"
