"""BAG-CP from the ``data.bagcp`` config section: the variant registry, :func:`build_bagcp` and
:func:`build_bagcp_transform` (the training transform with its target library).

``data.bagcp`` keys: ``enabled`` (default True), ``library`` (path of a saved target library or
null), ``variant`` (a name of :data:`VARIANTS`, default ``paper``) and the parameters of
:class:`~irdet.data.bagcp.transform.BAGCPSettings` (the Table III switches ``copy_paste``,
``cluster``, ``gaussian``, ``background_aware`` and the paper's numbers); lists are accepted
for pairs. The run configuration's defaults of the section are in :mod:`irdet.config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

from irdet.data.bagcp.cache import cached_target_library
from irdet.data.bagcp.library import TargetLibrary
from irdet.data.bagcp.reference import build_reference_bagcp
from irdet.data.bagcp.transform import BAGCP, SECTION_KEYS, BAGCPSettings
from irdet.errors import ConfigError

__all__ = ["build_bagcp", "build_bagcp_transform", "VARIANTS", "BAGCP_VARIANTS"]

_SWITCHES = frozenset(BAGCPSettings.SWITCHES)
_PARAMS = frozenset(BAGCPSettings.names()) - _SWITCHES


def _build_paper(cfg: Mapping, library: TargetLibrary, *, img_size: Sequence[int] | None = None,
                 keep_ratio: bool = False) -> BAGCP:
    """:class:`BAGCP` (the paper's reading) from a ``data.bagcp`` dict; the training resize
    is not read (targets are shrunk to fit ``max_target_size`` whatever the resolution)."""
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k in _PARAMS}
    switches = {k: bool(cfg[k]) for k in _SWITCHES if k in cfg}
    try:
        return BAGCP(library, **switches, **kwargs)
    except ValueError as exc:
        raise ConfigError(f"bagcp: {exc}") from None


#: ``data.bagcp.variant`` → builder ``(cfg, library, *, img_size, keep_ratio) -> transform``:
#: ``paper`` the paper's reading (:class:`~irdet.data.bagcp.transform.BAGCP`), ``reference`` the
#: authors' code (:class:`~irdet.data.bagcp.reference.ReferenceBAGCP`)
VARIANTS: dict[str, Callable[..., BAGCP]] = {"paper": _build_paper, "reference": build_reference_bagcp}
BAGCP_VARIANTS = tuple(VARIANTS)


def build_bagcp(cfg: Mapping | None, library: TargetLibrary | None = None, *,
                img_size: Sequence[int] | None = None, keep_ratio: bool = False) -> BAGCP | None:
    """Build the BAG-CP transform of a ``data.bagcp`` dict, or None when it is disabled.

    Args:
        cfg: the dict (None → None); keys as the module docstring says.
        library: an already built/loaded library; takes precedence over ``cfg["library"]``.
        img_size, keep_ratio: the training resize (``data.img_size`` (H, W) or None,
            ``data.keep_ratio``); the reference variant scales its targets by it (None =
            native resolution).

    Returns:
        the transform, or None when ``enabled`` or ``copy_paste`` is false (Table III row a).

    Raises:
        ConfigError: unknown key or variant, bad value, or no library available while enabled.
        DataError: the library file is missing or corrupt.
    """
    if cfg is None:
        return None
    cfg = dict(cfg)
    variant = cfg.get("variant", "paper")
    if variant not in VARIANTS:
        raise ConfigError(f"bagcp: variant must be one of {list(BAGCP_VARIANTS)}, got {variant!r}")
    allowed = _PARAMS | _SWITCHES | set(SECTION_KEYS)
    unknown = set(cfg) - allowed
    if unknown:
        raise ConfigError(f"bagcp: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    if not cfg.get("enabled", True) or not cfg.get("copy_paste", True):
        return None
    if library is None:
        path = cfg.get("library")
        if not path:
            raise ConfigError(
                "bagcp: enabled but no target library (set bagcp.library to a file built by build_target_library)"
            )
        library = TargetLibrary.load(path)
    return VARIANTS[variant](cfg, library, img_size=img_size, keep_ratio=keep_ratio)


def build_bagcp_transform(cfg: dict, root: Path) -> BAGCP | None:
    """The training BAG-CP transform of a run config (None when ``data.bagcp`` is disabled).

    The target library is ``data.bagcp.library`` when given, else built from the training
    split's boxes once and cached (:func:`~irdet.data.bagcp.cache.cached_target_library`:
    rebuilt when the split file or its images/annotations changed).

    Args:
        cfg: the full run config (``data.bagcp``, ``data.train_split``, ``data.img_size``,
            ``data.keep_ratio`` are read).
        root: the dataset root (DenseSIRST layout).

    Raises:
        ConfigError, DataError: as :func:`build_bagcp` and
            :func:`~irdet.data.bagcp.cache.cached_target_library`.
    """
    bcfg = dict(cfg["data"].get("bagcp") or {})
    if not bcfg.get("enabled", False) or not bcfg.get("copy_paste", True):
        return None
    lib_path = bcfg.get("library")
    split = cfg["data"]["train_split"]
    if lib_path:
        library = TargetLibrary.load(lib_path)
    else:
        library = cached_target_library(root, split, progress=True)
    return build_bagcp(bcfg, library, img_size=cfg["data"]["img_size"], keep_ratio=cfg["data"]["keep_ratio"])
