"""irdet: infrared small target detection (BAFE-Net + BAG-CP + DenseSIRST, BP-FPN)."""

__version__ = "0.1.0"
