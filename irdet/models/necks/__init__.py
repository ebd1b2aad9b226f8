"""Feature pyramid necks: :class:`FPN` (vanilla) and :class:`BPFPN` (BP-FPN: GILS + DGR, irdet's reading of Zhang et al., arXiv 2511.13013)."""

from irdet.models.necks.bpfpn import BPFPN
from irdet.models.necks.fpn import FPN

__all__ = ["FPN", "BPFPN"]
