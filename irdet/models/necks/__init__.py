"""Feature pyramid necks: :class:`FPN` (vanilla) and BP-FPN (GILS + DGR)."""

from irdet.models.necks.fpn import FPN

__all__ = ["FPN"]
