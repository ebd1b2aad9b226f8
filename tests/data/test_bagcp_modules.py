"""The pieces of the ``irdet.data.bagcp`` package on their own: Eq. (3) (``rotate``), Eq. (2)
(``gaussian_exponent``), Eq. (1) (``blend``), the ``data.bagcp`` schema (``BAGCPSettings``),
the variant registry, and the package's import layers (no cycles, nothing reaching up)."""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import numpy as np
import pytest

import irdet.data.bagcp as bagcp_pkg
from irdet.data.bagcp import BAGCP, BAGCP_VARIANTS, VARIANTS, BAGCPSettings, TargetLibrary, build_bagcp
from irdet.data.bagcp.blend import blend
from irdet.data.bagcp.gaussian import gaussian_exponent, rotate
from irdet.data.bagcp.reference import ReferenceBAGCP
from irdet.data.bagcp.transform import SECTION_KEYS
from irdet.errors import ConfigError

PKG = Path(bagcp_pkg.__file__).parent


def test_rotate_is_eq3_about_the_centre():
    xr, yr = rotate(1.0, 0.0, 0.0, 0.0, 90.0)
    assert xr == pytest.approx(0.0, abs=1e-12) and yr == pytest.approx(1.0)
    xr, yr = rotate(np.array([1.0, 2.0]), np.array([1.0, 1.0]), 1.0, 1.0, 30.0)  # about the centre (1, 1)
    assert xr[0] == 0.0 and yr[0] == 0.0
    assert xr[1] == pytest.approx(math.sqrt(3) / 2) and yr[1] == pytest.approx(0.5)
    u = np.linspace(-1, 1, 5)[None, :]
    v = np.linspace(-1, 1, 4)[:, None]
    a = rotate(u, v, 0.1, -0.2, 37.0)
    b = rotate(u, v, 0.1, -0.2, np.full((1, 1), 37.0))  # array angle: numpy cos / sin, same rotation
    assert a[0].shape == (4, 5)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-15)
    r = np.hypot(u - 0.1, v + 0.2)
    np.testing.assert_allclose(np.hypot(*a), r, atol=1e-12)  # a rotation keeps distances


def test_gaussian_exponent_is_eq2():
    q = gaussian_exponent(np.array([0.0, 0.3, 0.0]), np.array([0.0, 0.0, 0.6]), 0.3**2, 0.6**2)
    np.testing.assert_allclose(q, [0.0, 0.5, 0.5])  # one sigma away: G = exp(-1/2)
    assert np.exp(-q).max() == 1.0


def test_blend_is_eq1_inside_the_footprint_only():
    canvas = np.full((3, 6, 6), 100.0, np.float32)
    b = np.array([[10.0, 20.0], [30.0, 200.0]], np.float32)
    f = np.array([[True, False], [False, True]])
    g = np.array([[1.0, 0.5], [0.5, 0.25]], np.float32)
    blend(canvas, 2, 3, b, 0.5, g, footprint=f, value_range=(0.0, 120.0))
    assert (canvas[:, 2, 3] == 105.0).all()  # T_back + B * lam * G = 100 + 10 * 0.5 * 1
    assert (canvas[:, 3, 4] == 120.0).all()  # 100 + 200 * 0.5 * 0.25 = 125, clipped to 120
    changed = (canvas != 100.0).any(axis=0)
    assert changed.sum() == 2 and changed[2, 3] and changed[3, 4]
    hard = np.full((1, 4, 4), 50.0, np.float32)
    blend(hard, 0, 0, b, 0.5, None, value_range=(0.0, 255.0))  # no Gaussian: lam = G = 1, whole box
    np.testing.assert_array_equal(hard[0, :2, :2], 50.0 + b)
    assert (hard[0, 2:, :] == 50.0).all() and (hard[0, :, 2:] == 50.0).all()


def test_settings_hold_the_paper_numbers_and_check_values():
    s = BAGCPSettings()
    assert (s.regions, s.region_size, s.targets_per_region, s.max_target_size, s.gap) == ((1, 3), 20, (8, 12), 5, (1, 2))
    assert (s.lam, s.rho, s.sigma, s.theta) == ((0.5, 1.0), (0.0, 0.2), (0.3, 0.6), (-90.0, 90.0))
    assert all(getattr(s, k) is True for k in BAGCPSettings.SWITCHES)
    assert BAGCPSettings(gap=[2, 3], region_size=24.0).gap == (2, 3)
    for bad in ({"region_size": 0}, {"gap": [3, 1]}, {"prob": 1.5}, {"box_margin": (1, 2)}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            BAGCPSettings(**bad)
    lib = TargetLibrary([np.ones((2, 2), np.float32)])
    with pytest.raises(TypeError, match="regionz"):
        BAGCP(lib, regionz=(1, 2))
    bag = BAGCP(lib, gap=[2, 2])
    assert bag.gap == (2, 2) and bag.region_size == 20  # the settings are the transform's attributes
    with pytest.raises(ConfigError, match="regionz") as err:
        build_bagcp({"regionz": 1}, lib)
    allowed = set(re.search(r"allowed: \[(.*)\]", str(err.value)).group(1).replace("'", "").split(", "))
    assert allowed == set(BAGCPSettings.names()) | set(SECTION_KEYS)


def test_variant_registry_builds_each_variant():
    assert BAGCP_VARIANTS == ("paper", "reference") == tuple(VARIANTS)
    apps = [np.full((3, 3), 30.0, np.float32), np.full((2, 4), 20.0, np.float32)]
    lib = TargetLibrary(apps, patches=[a + 100.0 for a in apps], source_ids=["a", "a"])
    assert type(build_bagcp({"variant": "paper", "seed": 0}, lib)) is BAGCP
    ref = build_bagcp({"variant": "reference", "seed": 0}, lib)  # native resolution: scale 1
    assert type(ref) is ReferenceBAGCP and (ref.source_scale == 1.0).all()
    with pytest.raises(ConfigError, match="paper"):
        build_bagcp({"variant": "official"}, lib)
    assert build_bagcp({"variant": "reference", "enabled": False}, lib) is None


def _imports(path: Path) -> set[str]:
    """Every module a file imports (top level and inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_package_imports_have_no_cycle_and_do_not_reach_up():
    modules = {p.stem: p for p in PKG.glob("*.py") if p.stem != "__init__"}
    imports = {m: _imports(p) for m, p in modules.items()}
    graph = {m: {i.rsplit(".", 1)[1] for i in imp if i.startswith("irdet.data.bagcp.")} for m, imp in imports.items()}
    assert all(deps <= set(modules) for deps in graph.values())
    assert not any("irdet.data.bagcp" in imp for imp in imports.values())  # never the package's own __init__
    order, left = [], dict(graph)
    while left:  # topological order: a cycle leaves modules that all import one another
        ready = sorted(m for m, deps in left.items() if deps <= set(order))
        assert ready, f"import cycle among {sorted(left)}"
        order += ready
        for m in ready:
            del left[m]
    for leaf in ("gaussian", "blend", "sample", "library"):
        assert not graph[leaf], f"{leaf} should import no other BAG-CP module"
    upper = ("irdet.engine", "irdet.models", "irdet.cli", "irdet.visualize", "irdet.api", "irdet.deploy")
    for m, imp in imports.items():
        assert not [i for i in imp if i.startswith(upper)], f"{m} imports a layer above the data"


def test_each_paper_equation_is_one_function():
    """Eqs. (1), (2), (3) of the paper: each implemented by exactly one function whose
    docstring's Source line cites it (functions of several equations cite "Eqs.")."""
    cited = {n: [] for n in (1, 2, 3)}
    for p in PKG.glob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef):
                doc = ast.get_docstring(node) or ""
                source = " ".join(line for line in doc.splitlines() if line.strip().startswith("Source:"))
                for n in cited:
                    if re.search(rf"\bEq\. \({n}\)", source):
                        cited[n].append(f"{p.stem}.{node.name}")
    assert cited == {1: ["blend.blend"], 2: ["gaussian.gaussian_exponent"], 3: ["gaussian.rotate"]}
