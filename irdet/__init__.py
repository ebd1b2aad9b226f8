"""irdet: infrared small target detection (BAFE-Net + BAG-CP + DenseSIRST, BP-FPN).

Python API (:mod:`irdet.api`, imported on first use so that ``import irdet`` and the CLI
start stay light)::

    import irdet
    model = irdet.load("default")          # or a .ckpt / .pt / .onnx path
    results = model.predict(["a.png", array, pil_image], score_thr=0.3)
"""

__version__ = "0.1.0"

__all__ = ["load", "Model", "Result", "Results", "__version__"]


def load(model=None, **options):
    """Load a detector: :func:`irdet.api.load` (``model``: ``"default"`` / None, or a ``.ckpt``,
    ``.pt`` or ``.onnx`` path; ``backend``, ``device``, ``precision``, ``tile``, ``tile_overlap``)."""
    from irdet.api import load as _load

    return _load(model, **options)


def __getattr__(name: str):
    if name in ("Model", "Result", "Results"):
        from irdet import api

        return getattr(api, name)
    raise AttributeError(f"module 'irdet' has no attribute {name!r}")
