"""Shared pytest helpers.

``require_data(path)``: the dataset-dependent tests call it with the path they need. When
the path is absent the test is skipped, unless the environment variable
``IRDET_REQUIRE_DATA=1`` is set (CI with the dataset mounted), in which case it fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: DenseSIRST root used by the tests: ``$IRDET_DATA``, else ``../shared/...`` beside the repository.
REPO_ROOT = Path(__file__).resolve().parents[1]
DENSESIRST_ROOT = Path(os.environ.get("IRDET_DATA") or REPO_ROOT.parent / "shared/data/DenseSIRST/SIRSTdevkit")


def data_required() -> bool:
    """True when ``IRDET_REQUIRE_DATA=1``: missing data is a failure, not a skip."""
    return os.environ.get("IRDET_REQUIRE_DATA", "") == "1"


def skip_or_fail_without(path, what: str = "dataset") -> Path:
    """Return ``path`` if it exists; otherwise skip the test (or fail under IRDET_REQUIRE_DATA=1)."""
    path = Path(path)
    if not path.exists():
        msg = f"{what} not found at {path}"
        if data_required():
            pytest.fail(f"{msg} (IRDET_REQUIRE_DATA=1)")
        pytest.skip(msg)
    return path


@pytest.fixture
def require_data():
    """Fixture giving :func:`skip_or_fail_without` (``require_data(path, what)`` -> Path)."""
    return skip_or_fail_without


@pytest.fixture
def densesirst() -> Path:
    """The DenseSIRST root (skips, or fails under IRDET_REQUIRE_DATA=1, when absent)."""
    return skip_or_fail_without(DENSESIRST_ROOT, "DenseSIRST")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Keep BAG-CP target libraries built by tests out of the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("IRDET_CACHE", str(tmp_path_factory.mktemp("irdet_cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module (on a shared 2-core machine OpenMP's second thread
    mostly waits); restored afterwards. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    """A linked DenseSIRST root with a few real images per split (:func:`fixtures.small_densesirst`),
    one per test module (skips, or fails under IRDET_REQUIRE_DATA=1, without the dataset)."""
    from fixtures import small_densesirst

    real = skip_or_fail_without(DENSESIRST_ROOT, "DenseSIRST")
    return small_densesirst(real, tmp_path_factory.mktemp("ds") / "SIRSTdevkit")
