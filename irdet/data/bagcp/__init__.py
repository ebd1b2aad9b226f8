"""BAG-CP, Background-Aware Gaussian Copy-Paste (Xiao et al., arXiv 2407.20078, §III-B, §IV-C,
Eqs. 1–3, Table III), one concept per module:

* :mod:`~irdet.data.bagcp.library`: the target library (:class:`TargetLibrary`, ``.npz``);
* :mod:`~irdet.data.bagcp.extract`: cutting its entries out of a split's images and target
  masks (:func:`build_target_library`);
* :mod:`~irdet.data.bagcp.cache`: the cached library of a split (:func:`cached_target_library`);
* :mod:`~irdet.data.bagcp.gaussian`: the rotated Gaussian ``G``, Eq. (2)
  (:func:`~irdet.data.bagcp.gaussian.gaussian_exponent`) and Eq. (3)
  (:func:`~irdet.data.bagcp.gaussian.rotate`);
* :mod:`~irdet.data.bagcp.blend`: the paste, Eq. (1) (:func:`~irdet.data.bagcp.blend.blend`);
* :mod:`~irdet.data.bagcp.placement`: sky-aware regions and target positions;
* :mod:`~irdet.data.bagcp.sample`: what is read from and written into a sample dict;
* :mod:`~irdet.data.bagcp.transform`: the :class:`BAGCP` transform and its settings;
* :mod:`~irdet.data.bagcp.reference`: the authors' code's variant (:class:`ReferenceBAGCP`);
* :mod:`~irdet.data.bagcp.build`: the ``data.bagcp`` config section → transform
  (:func:`build_bagcp`, :func:`build_bagcp_transform`).
"""

from irdet.data.bagcp.build import BAGCP_VARIANTS, VARIANTS, build_bagcp, build_bagcp_transform
from irdet.data.bagcp.cache import LIBRARY_TARGET_MASK, cached_target_library, library_cache_path, source_fingerprint
from irdet.data.bagcp.extract import build_target_library, extract_targets
from irdet.data.bagcp.gaussian import gaussian_weights, gaussian_weights_batch
from irdet.data.bagcp.library import LIBRARY_FORMAT, TargetLibrary, area_resample, fit_size
from irdet.data.bagcp.reference import ReferenceBAGCP, build_reference_bagcp, source_scales
from irdet.data.bagcp.transform import BAGCP, STAT_KEYS, BAGCPSettings

__all__ = [
    "BAGCP", "BAGCPSettings", "STAT_KEYS", "build_bagcp", "build_bagcp_transform", "VARIANTS", "BAGCP_VARIANTS",
    "ReferenceBAGCP", "build_reference_bagcp", "source_scales",
    "TargetLibrary", "LIBRARY_FORMAT", "area_resample", "fit_size", "build_target_library", "extract_targets",
    "cached_target_library", "library_cache_path", "source_fingerprint", "LIBRARY_TARGET_MASK",
    "gaussian_weights", "gaussian_weights_batch",
]
