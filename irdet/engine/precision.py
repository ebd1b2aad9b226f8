"""Which numeric precision actually runs: Lightning precision strings resolved for the device.

Lightning accepts ``train.precision`` values such as ``"32-true"``, ``"bf16-mixed"`` and
``"16-mixed"``; whether they pay off depends on the machine. On a CPU, bfloat16 autocast is
fast only with native bf16 instructions (x86 ``avx512_bf16`` / ``amx_bf16``, Arm ``bf16``);
without them PyTorch emulates bf16 and a step is many times *slower* than fp32 (measured on
an AVX2-only AMD EPYC, 1 thread, ResNet-18 forward + backward on 2×3×256×256: 0.55 s fp32,
16.3 s bf16 autocast). fp16 autocast is not supported on CPU at all (Lightning silently turns
``16-mixed`` into ``bf16-mixed`` there). :func:`resolve_precision` makes that choice explicit
and says it once.

Losses, assignment, decoding and metrics stay fp32 under mixed precision: the heads return
float32 outputs (:class:`irdet.models.heads.fcos.FCOSHead`, BAFE-Net's ``seg_logits``), so only
the network's convolutions run in the reduced precision. Source: irdet extension.
"""

from __future__ import annotations

import contextlib
import os
import sys
from functools import lru_cache
from pathlib import Path

import torch

from irdet.errors import ConfigError

__all__ = ["PRECISIONS", "resolve_precision", "cpu_has_bf16", "autocast_context"]

#: Lightning precision strings irdet knows; short aliases map to them.
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true")
_ALIASES = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed", "64": "64-true"}
#: x86 and Arm /proc/cpuinfo flags that mean native bfloat16 arithmetic
_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}
#: fallback messages already printed in this process
_said: set[str] = set()


@lru_cache(maxsize=1)
def _cpuinfo_has_bf16() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features") and _BF16_FLAGS & set(value.split()):
            return True
    return False


def cpu_has_bf16() -> bool:
    """True when this CPU has native bfloat16 instructions.

    ``$IRDET_CPU_BF16`` (``1`` / ``0``) overrides the probe (tests, or a machine whose
    ``/proc/cpuinfo`` is hidden); otherwise the flags of ``/proc/cpuinfo`` are read
    (``avx512_bf16``, ``amx_bf16``, Arm ``bf16``). No ``/proc/cpuinfo`` (macOS, Windows) → False.
    Source: irdet extension.
    """
    env = os.environ.get("IRDET_CPU_BF16", "").strip()
    if env in ("0", "1"):
        return env == "1"
    return _cpuinfo_has_bf16()


def _on_cpu(accelerator: str) -> bool:
    """True when Lightning's ``accelerator`` will run on the CPU (``auto`` without CUDA / MPS)."""
    accelerator = str(accelerator).lower()
    if accelerator == "cpu":
        return True
    if accelerator != "auto":
        return False
    mps = getattr(torch.backends, "mps", None)
    return not torch.cuda.is_available() and not (mps is not None and mps.is_available())


def _say_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        print(f"[irdet] {message}", file=sys.stderr)


def resolve_precision(requested: str, accelerator: str) -> str:
    """The Lightning precision string that will actually run for ``requested`` on ``accelerator``.

    On a GPU (or any non-CPU accelerator) the request is returned as is (aliases such as
    ``"32"`` / ``"bf16"`` / ``"16"`` normalised to ``"32-true"`` / ``"bf16-mixed"`` /
    ``"16-mixed"``). On a CPU (``accelerator="cpu"``, or ``"auto"`` without CUDA / MPS):

    * ``bf16-mixed`` / ``bf16-true`` stay when :func:`cpu_has_bf16`, else ``32-true``;
    * ``16-mixed`` / ``16-true`` become ``bf16-mixed`` / ``bf16-true`` when the CPU has bf16,
      else ``32-true`` (fp16 autocast does not exist on CPU);
    * ``32-true`` / ``64-true`` stay.

    Every change prints one line to stderr, once per process for the same change.

    Args:
        requested: a Lightning precision string (``train.precision``, ``--precision``).
        accelerator: Lightning accelerator (``auto``, ``cpu``, ``gpu``, ``cuda``, ...).

    Returns:
        one of :data:`PRECISIONS`.

    Raises:
        ConfigError: ``requested`` is not a known precision.

    Source: irdet extension.
    """
    value = _ALIASES.get(str(requested).strip(), str(requested).strip())
    if value not in PRECISIONS:
        raise ConfigError(f"unknown precision {requested!r} (choose from {', '.join(PRECISIONS)})")
    if not _on_cpu(accelerator) or value in ("32-true", "64-true"):
        return value
    bf16 = cpu_has_bf16()
    kind = value.split("-", 1)[1]  # "mixed" or "true"
    if value.startswith("bf16"):
        if bf16:
            return value
        resolved, why = "32-true", "this CPU has no bf16 instructions (avx512_bf16 / amx_bf16), so bf16 would be emulated and slow"
    else:  # 16-mixed / 16-true
        resolved = f"bf16-{kind}" if bf16 else "32-true"
        why = "fp16 autocast is not supported on CPU" + ("" if bf16 else " and this CPU has no bf16 instructions")
    _say_once(f"precision {value} -> {resolved} on CPU: {why} (IRDET_CPU_BF16=1 forces bf16)")
    return resolved


def autocast_context(precision: str, device_type: str):
    """Context manager running a hand-written inference loop in ``precision`` (already resolved).

    ``bf16-*`` → ``torch.autocast(device_type, torch.bfloat16)``, ``16-*`` →
    ``torch.autocast(device_type, torch.float16)``, anything else → no-op. The ``-true``
    variants run as autocast too (weights stay fp32): this is for loops outside Lightning, such
    as :func:`irdet.engine.tasks.sequence.clip_detections`. Source: irdet extension.
    """
    if precision.startswith("bf16"):
        return torch.autocast(device_type, dtype=torch.bfloat16)
    if precision.startswith("16"):
        return torch.autocast(device_type, dtype=torch.float16)
    return contextlib.nullcontext()
