"""Deployment: ONNX export (:mod:`irdet.deploy.export`) and ONNX Runtime inference
(:mod:`irdet.deploy.runtime`). Both need the ``export`` extra (``pip install "irdet[export]"``:
onnx, onnxscript, onnxruntime); the base install stays PyTorch-only and nothing here is
imported by ``import irdet``. Source: irdet extension.
"""

from __future__ import annotations

import importlib

from irdet.errors import IrdetError

__all__ = ["require"]


def require(*modules: str) -> list:
    """Import ``modules`` (e.g. ``"onnxruntime"``) and return them.

    Raises:
        IrdetError: one of them is not installed (one line: which, and the install command).
    """
    found, missing = [], []
    for name in modules:
        try:
            found.append(importlib.import_module(name))
        except ImportError:
            missing.append(name)
    if missing:
        raise IrdetError(f"ONNX export / ONNX Runtime inference needs the export extra ({', '.join(missing)} "
                         f"not installed): pip install \"irdet[export]\"")
    return found
