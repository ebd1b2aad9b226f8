"""Value checks of a resolved config: types derived from the defaults, plus a small table of rules.

:func:`irdet.config.load_config` calls :func:`check_values` after merging and overrides, so a
bad value stops the command in one line, before anything is written (irdet extension: without
it ``train.batch_size=0`` or ``data.crop=abc`` failed deep inside training, after the run
folder and its ``config.yaml`` were written).

* A key whose default is not None must hold a value of the default's kind: ``true``/``false``
  for a bool, an integer for an int, a number for a float (an integer is accepted), a string
  for a str, a list whose items are numbers (or strings) like the default's items, a mapping
  for a section. A string such as ``1e-3`` (which YAML 1.1, hence PyYAML, reads as a string)
  is converted to a float where a number is expected, also inside lists.
* :data:`RULES` holds the exceptions: keys whose default is None (``data.crop``), ranges
  (``train.batch_size >= 1``) and choices (``data.sky_mask``). A key in the table is checked by
  its rule instead of its default's type. New keys in :data:`irdet.config.DEFAULTS` are checked
  by type with no change here; add a rule only for a range, a choice or a None default.
* Keys inside free-form sections (``data.bagcp``) and the keys a model part declares beyond
  the defaults (e.g. BP-FPN's ``model.neck.shortcut``, :mod:`irdet.models.registry`) are checked
  when the defaults know them; their other values are checked by the module that reads them.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable

from irdet.errors import ConfigError
from irdet.models.heads.fcos import ASSIGNERS, BOX_PARAMS

__all__ = ["Rule", "RULES", "SKY_MASK_CHOICES", "PRECISION_CHOICES", "check_values", "rule_from_default"]

#: Sky-mask layouts of the DenseSIRST loader (``irdet.data.datasets.densesirst.SKY_MASK_FILES``; a test keeps them equal).
SKY_MASK_CHOICES = ("palette", "binary")
#: ``train.precision`` values: Lightning 2.x ``Trainer(precision=...)`` values
#: (``lightning.fabric.connector._PRECISION_INPUT``) that :func:`irdet.engine.precision.resolve_precision`
#: runs (not Lightning's ``transformer-engine`` ones); a test keeps the three in step.
PRECISION_CHOICES = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true", "32", "bf16", "16", "64",
                     32, 16, 64)

_EXP_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


class Rule:
    """What a config value must be: ``ok(value)`` and the words ``expected`` used in the error.

    ``a | b`` accepts what either accepts (``"a or b"``). Source: irdet extension.
    """

    def __init__(self, expected: str, ok: Callable[[Any], bool]):
        self.expected, self.ok = expected, ok

    def __or__(self, other: "Rule") -> "Rule":
        return Rule(f"{self.expected} or {other.expected}", lambda v: self.ok(v) or other.ok(v))


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return _is_int(v) or (isinstance(v, float) and math.isfinite(v))


def _bounds(lo, hi, lo_open: bool) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo:g}"
    return f" <= {hi:g}" if hi is not None else ""


def integer(lo: int | None = None, hi: int | None = None) -> Rule:
    """Rule: an integer (not a bool) in ``[lo, hi]`` (None: unbounded). Source: irdet extension."""
    return Rule("an integer" + _bounds(lo, hi, False),
                lambda v: _is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi))


def number(lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> Rule:
    """Rule: a finite int or float in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``). Source: irdet extension."""
    def ok(v):
        return _is_num(v) and (lo is None or (v > lo if lo_open else v >= lo)) and (hi is None or v <= hi)
    return Rule("a number" + _bounds(lo, hi, lo_open), ok)


def choice(*values) -> Rule:
    """Rule: one of ``values`` (compared by type too, so ``True`` is not ``1``). Source: irdet extension."""
    words = json.dumps(values[0]) if len(values) == 1 else "one of " + ", ".join(json.dumps(v) for v in values)
    return Rule(words, lambda v: any(type(v) is type(c) and v == c for c in values))


def _plural(expected: str) -> str:
    """``"an integer >= 0"`` → ``"integers >= 0"``."""
    words = expected.split(" ")
    words = words[1:] if words[0] in ("a", "an") else words
    return " ".join([words[0] + "s", *words[1:]])


def seq(item: Rule, length: int | None = None, what: str | None = None) -> Rule:
    """Rule: a list (or tuple) of ``length`` items (any length when None), each accepted by
    ``item``; ``what`` replaces the generated words. Source: irdet extension."""
    words = what or " ".join(["a list of", *([str(length)] if length else []), _plural(item.expected)])
    return Rule(words, lambda v: isinstance(v, (list, tuple)) and (length is None or len(v) == length)
                and all(item.ok(x) for x in v))


NULL = Rule("null", lambda v: v is None)
STRING = Rule("a string", lambda v: isinstance(v, str))
MAPPING = Rule("a mapping", lambda v: isinstance(v, dict))
SIZE = seq(integer(1), 2, "[h, w] with positive integers")
PROBABILITY = number(0, 1)
FRACTION = Rule("a fraction in [0, 1]", lambda v: isinstance(v, float) and 0 <= v <= 1)

#: Rules by dotted key (irdet extension); every other key is checked against its default's type.
RULES: dict[str, Rule] = {
    "model.pixel_mean": seq(number(), 3),
    "model.pixel_std": seq(number(0, lo_open=True), 3, "a list of 3 numbers > 0"),
    "model.backbone.weights": NULL | STRING,
    "model.backbone.frozen_stages": choice("auto") | integer(-1),
    "model.neck.out_channels": integer(1),
    "model.head.num_classes": integer(1),
    "model.head.regress_ranges": NULL | seq(seq(number(), 2), None, "a list of [lo, hi] number pairs"),
    "model.head.focal_alpha": PROBABILITY,
    "model.head.min_assign_size": number(0),
    "model.head.assign_radius": number(0, lo_open=True),
    "model.head.assigner": choice(*ASSIGNERS),
    "model.head.box_param": choice(*BOX_PARAMS),
    "model.head.test.nms_pre": integer(1),
    "model.head.test.score_thr": PROBABILITY,
    "model.head.test.nms_iou": PROBABILITY,
    "model.head.test.max_per_img": integer(1),
    "model.temporal.num_frames": integer(1),
    "model.temporal.hidden": NULL | integer(1),
    "data.root": NULL | STRING,
    "data.val_split": NULL | STRING,  # null: no validation
    "data.sky_mask": choice(*SKY_MASK_CHOICES),
    "data.img_size": NULL | SIZE,  # null: native resolution, no resize
    "data.crop": NULL | SIZE,
    "data.crop_on": choice("all", "gt"),
    "data.tiny_boxes": choice("keep", "drop"),
    "data.flip_prob": PROBABILITY,
    "data.crop_p_target": PROBABILITY,
    "data.pad_divisor": integer(1),
    "data.repeat": integer(1),
    "data.num_workers": integer(0),
    "data.bagcp.library": NULL | STRING,
    "train.batch_size": integer(1),
    "train.max_epochs": integer(1) | choice(-1),
    "train.max_steps": integer(1) | choice(-1),
    "train.lr": number(0, lo_open=True),
    "train.weight_decay": number(0),
    "train.warmup_iters": integer(0),
    "train.warmup_factor": number(0, 1, lo_open=True),
    "train.milestones": seq(number(0), None, "a list of numbers >= 0 (epochs)"),
    "train.gamma": number(0, lo_open=True),
    "train.val_interval": integer(1),
    "train.checkpoint_every_n_steps": integer(1),
    "train.precision": choice(*PRECISION_CHOICES),
    "train.devices": integer(-1) | STRING | seq(integer(0)),
    "train.num_nodes": integer(1),
    "train.log_every_n_steps": integer(1),
    "train.limit_train_batches": NULL | integer(0) | FRACTION,
    "train.limit_val_batches": NULL | integer(0) | FRACTION,
    "train.threads": NULL | integer(1),
    "eval.pdfa_score_thr": PROBABILITY,
    "eval.batch_size": integer(1),
    "eval.tile": NULL | SIZE,  # null: whole input; multiples of the model's stride are checked at inference
    "eval.tile_overlap": integer(0),
    "eval.tile_batch": integer(1),
    "sequence.image_dir": NULL | STRING,
    "sequence.context": choice("listed", "numbers"),
}


def rule_from_default(default) -> Rule | None:
    """The rule a default value implies (None for a None default: no check).

    bool → ``true``/``false``; int → integer; float → number; str → string; dict → mapping;
    list → a list of numbers (of strings) when the default's items all are, else any list.
    Source: irdet extension.
    """
    if default is None:
        return None
    if isinstance(default, bool):
        return Rule("true or false", lambda v: isinstance(v, bool))
    if isinstance(default, int):
        return integer()
    if isinstance(default, float):
        return number()
    if isinstance(default, str):
        return STRING
    if isinstance(default, dict):
        return MAPPING
    if isinstance(default, (list, tuple)):
        if default and all(_is_num(x) for x in default):
            return seq(number())
        if default and all(isinstance(x, str) for x in default):
            return seq(STRING)
        return Rule("a list", lambda v: isinstance(v, (list, tuple)))
    return None


def _exp_floats(value):
    """``value`` with every ``1e-3``-like string (also inside lists) replaced by its float."""
    if isinstance(value, str) and _EXP_FLOAT.fullmatch(value.strip()):
        return float(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_exp_floats(v) for v in value)
    return value


def _show(value) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_values(cfg: dict, ref: dict, prefix: tuple[str, ...] = ()) -> None:
    """Check every value of ``cfg`` that ``ref`` (the defaults) knows, in place.

    A value that is accepted only once its ``1e-3``-like strings are read as floats is
    replaced by that (YAML 1.1 reads ``1e-3``, without a dot, as a string); nothing else changes.

    Args:
        cfg: merged config (unknown keys already rejected by :func:`irdet.config.validate`).
        ref: the defaults ``cfg`` was merged onto (:data:`irdet.config.DEFAULTS`, with the
            sequence defaults for ``task: sequence``).
        prefix: key path of ``cfg`` inside the full config (recursion).

    Raises:
        ConfigError: ``"config key 'train.batch_size' = 0: expected an integer >= 1"``.

    Source: irdet extension.
    """
    for key, value in cfg.items():
        if key not in ref:
            continue  # unknown keys: rejected by validate(), or left to the module of a free-form section
        path = prefix + (key,)
        dotted = ".".join(path)
        rule = RULES.get(dotted) or rule_from_default(ref[key])
        if rule is None:
            continue
        if not rule.ok(value) and rule.ok(_exp_floats(value)):
            cfg[key] = value = _exp_floats(value)
        if not rule.ok(value):
            raise ConfigError(f"config key '{dotted}' = {_show(value)}: expected {rule.expected}")
        if isinstance(value, dict) and isinstance(ref[key], dict):
            check_values(value, ref[key], path)
