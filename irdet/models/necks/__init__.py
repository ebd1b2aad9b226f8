"""Feature pyramid necks: :class:`FPN` (vanilla) and :class:`BPFPN` (BP-FPN: GILS + DGR, SPEC §5)."""

from irdet.models.necks.bpfpn import BPFPN
from irdet.models.necks.fpn import FPN

__all__ = ["FPN", "BPFPN"]
