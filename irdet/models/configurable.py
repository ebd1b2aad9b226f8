"""What a model part built from a config section declares: the keys it reads and their defaults.

Every class in the registries of :mod:`irdet.models.registry` (backbones, necks, heads, temporal
fusions) is a :class:`Configurable`. The config defaults (:data:`irdet.config.DEFAULTS`), the
validation of a section's keys (:func:`irdet.config.validate`), the builders
(:mod:`irdet.models.build`) and the run key's normalisation (:func:`irdet.engine.ablate.config_key`)
all read these declarations, so a part's schema lives in the part's own file.

Source: irdet extension (the MMDetection convention of a config section that names a registered
class which knows its own options, as a plain dict registry).
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = ["Configurable"]


class Configurable:
    """Mixin of a part built from one config section (no state, no ``__init__``).

    Class attributes:
        CONFIG: keys of the section the part reads, with the defaults that every resolved config
            holds (:data:`irdet.config.DEFAULTS` is assembled from them).
        OPTIONAL_CONFIG: further keys it reads when they are set; absent, the constructor's
            default applies. They are not written into resolved configs, so adding one leaves
            the run key of every earlier config unchanged.
    """

    CONFIG: ClassVar[dict[str, Any]] = {}
    OPTIONAL_CONFIG: ClassVar[dict[str, Any]] = {}

    @classmethod
    def config_keys(cls) -> dict[str, Any]:
        """Every key of the section this part reads → its default (``CONFIG`` and ``OPTIONAL_CONFIG``)."""
        return {**cls.CONFIG, **cls.OPTIONAL_CONFIG}

    @classmethod
    def inactive_config_keys(cls, cfg: dict) -> set[str]:
        """Keys of ``cfg`` this part declares but does not read with these settings (e.g. the
        exchange options of a BAFE head without exchange); none by default."""
        return set()

    @classmethod
    def from_config(cls, cfg: dict, **built):
        """The part from its section ``cfg`` (keys it does not declare are ignored: unknown keys are
        rejected before, by :func:`irdet.config.validate` and :func:`irdet.models.build.build_neck`)
        and the ``built`` arguments that come from other parts (e.g. ``in_channels``), which take
        precedence. Raises what the constructor raises (ConfigError for bad values)."""
        keys = cls.config_keys()
        return cls(**{**{k: v for k, v in cfg.items() if k in keys}, **built})
