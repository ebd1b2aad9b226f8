"""Run a table of configs (train → evaluate on the test split) and write a markdown table.

``irdet ablate TABLE --budget {cpu,paper}``: the rows of ``TABLE`` are the YAML files
``configs/ablations/<TABLE>_*.yaml`` (e.g. ``table3`` → ``table3_a.yaml`` … ``table3_f.yaml``)
or, if TABLE is a folder, every YAML file in it. Each row file may carry ``description``
and ``paper`` (the paper's numbers for that row) beside the usual config keys.

Budgets: ``paper`` runs the row as written; ``cpu`` overlays ``configs/budgets/cpu.yaml``
(the CPU budget shared by every ``_cpu`` config).

Runs are stored by the hash of their resolved config (without names, descriptions, paper
numbers and thread/worker counts), so identical rows of different tables (e.g. Table III a
and Table IV a), and a ``_cpu`` config identical to a row, are trained once. Finished runs
(``result.json`` present) are never re-run; an interrupted run resumes from its
``last.ckpt`` (one killed before its first checkpoint starts again). A run being trained by
another process (lock file) is skipped. The evaluated checkpoint is ``best.ckpt`` when the
row has a ``data.val_split``, else ``last.ckpt`` (no honest selection split); ``result.json`` records which.

Seeds (``--seeds 0 1 2``): every row runs once per seed (``train.seed``, part of the run key),
and each measured cell is the mean ± sample standard deviation over the seeds finished so far
(``n`` column); a note under the table says that a difference between two rows counts only
when it exceeds twice the larger of their standard deviations. Without ``--seeds`` a row is
one run at its config's seed, as before.

``task: sequence`` rows (e.g. ``irdet ablate configs/sequences --budget paper --rows
yolofpn_r18_t1_synthetic yolobp_r18_t5_synthetic``) train the multi-frame detector and report
the SSTNet protocol (AP50, P, R, F1, Pd, Fa) and parameters; their ``data.root`` (which
synthetic benchmark) is part of the run key. Files whose name starts with ``_`` (bases) are
never rows.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import statistics
from pathlib import Path

from irdet.config import config_task, load_config
from irdet.data.io import atomic_write_bytes, atomic_write_json
from irdet.engine.checkpoints import read_checkpoint_file
from irdet.engine.evaluate import evaluate_checkpoint
from irdet.engine.tasks import TASKS, task_of
from irdet.engine.train import train
from irdet.errors import ConfigError
from irdet.models import unused_head_keys

__all__ = ["table_rows", "config_key", "run_row", "ablate", "format_markdown"]

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
_IGNORED = (("name",), ("description",), ("paper",), ("train", "threads"), ("data", "num_workers"), ("data", "root"))
# settings added after runs were measured: hashed only when set away from this default, so
# the keys (and finished runs) of every earlier row stay valid
_LATER_DEFAULTS = {("data", "crop_on"): "all", ("model", "head", "reference_blocks"): False,
                   ("eval", "tile"): None, ("eval", "tile_overlap"): 32, ("eval", "tile_batch"): 4,
                   ("data", "bagcp", "variant"): "paper",
                   # a changed default: runs measured before it dropped boxes under 1 px, so their keys are
                   # those of tiny_boxes=drop, and rows at today's default (keep) get new keys and run again
                   ("data", "tiny_boxes"): "drop",
                   ("data", "layout"): "densesirst", ("model", "temporal", "level"): "P3",
                   ("model", "temporal", "history_grad"): True, ("model", "head", "seg_stop_grad"): False}


def table_rows(table: str, configs_dir: Path = REPO_CONFIGS) -> list[Path]:
    """Row config files of ``table`` (see module docstring).

    Raises:
        ConfigError: no row files found.
    """
    folder = Path(table)
    rows = sorted(folder.glob("*.yaml")) if folder.is_dir() else sorted((configs_dir / "ablations").glob(f"{table}_*.yaml"))
    rows = [r for r in rows if not r.name.startswith("_")]
    if not rows:
        raise ConfigError(f"no configs for table {table!r} (looked for {configs_dir / 'ablations'}/{table}_*.yaml or a folder)")
    return rows


def config_key(cfg: dict) -> str:
    """10-hex-digit hash of a resolved config, ignoring names, notes and thread/worker counts.

    Settings of switched-off parts are normalised away (a disabled BAG-CP, the BAFE keys of
    an FCOS head, the exchange keys without exchange), so equal experiments get equal keys.
    """
    c = copy.deepcopy(cfg)
    task = task_of(c)  # keys its runs do not read are never hashed; data.root is for tasks whose root is the benchmark
    ignored = tuple(p for p in _IGNORED if p != ("data", "root") or not task.root_in_run_key) + task.unused_keys
    for path in ignored + tuple(p for p, v in _LATER_DEFAULTS.items() if _get(c, p) == v):
        node = c
        for part in path[:-1]:
            node = node.get(part, {})
        node.pop(path[-1], None)
    bagcp = c["data"].get("bagcp") or {}
    if not bagcp.get("enabled", False) or not bagcp.get("copy_paste", True):
        c["data"]["bagcp"] = {"enabled": False}
    head = c["model"]["head"]
    unused = unused_head_keys(head)  # e.g. the BAFE-Net keys of an FCOS head, the exchange keys without exchange
    c["model"]["head"] = {k: v for k, v in head.items() if k not in unused}
    return hashlib.sha1(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _get(cfg: dict, path: tuple):
    for part in path:
        if not isinstance(cfg, dict) or part not in cfg:
            return None
        cfg = cfg[part]
    return cfg


def budget_config(row: Path, budget: str, overrides=(), configs_dir: Path = REPO_CONFIGS) -> dict:
    """A row's config under ``budget`` (``paper``: as written; other: + ``configs/budgets/<budget>.yaml``)."""
    if budget == "paper":
        return load_config(row, overrides)
    overlay = configs_dir / "budgets" / f"{budget}.yaml"
    if not overlay.is_file():
        raise ConfigError(f"{overlay}: budget file not found")
    return load_config([row, overlay], overrides)


class _Lock:
    """Exclusive lock file (``O_EXCL``); a lock of a dead process is taken over."""

    def __init__(self, path: Path):
        self.path = path
        self.held = False

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().strip() or 0)
                    os.kill(pid, 0)
                    return False  # alive
                except (ValueError, ProcessLookupError, FileNotFoundError):
                    self.path.unlink(missing_ok=True)
                    continue
                except PermissionError:
                    return False
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            self.held = True
            return True
        return False

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def run_row(cfg: dict, runs_dir: Path, data: str | None = None, split: str | None = None) -> dict | None:
    """Train (or resume) and evaluate one config; returns its ``result.json`` content
    (``checkpoint``: ``best`` when selected on ``data.val_split``, ``last`` without one;
    ``checkpoint_epoch`` / ``checkpoint_step``: Lightning's 0-based epoch index and global step
    stored in the evaluated file, so the selection can be checked against the logged curve).

    Returns None when another process holds the run's lock.
    """
    key = config_key(cfg)
    run = runs_dir / key
    result_file = run / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    lock = _Lock(run / ".lock")
    if not lock.acquire():
        return None
    try:
        last = run / "checkpoints" / "last.ckpt"
        # no last.ckpt: a start killed before its first checkpoint may have left config.yaml / logs: start again
        train(cfg, data=data, out=run, resume=True if last.is_file() else None, overwrite=not last.is_file())
        best = run / "checkpoints" / "best.ckpt"
        use_best = cfg["data"]["val_split"] is not None and best.is_file()  # no val split: the last checkpoint
        split = split or cfg["data"]["test_split"]
        scored = best if use_best else last
        metrics = evaluate_checkpoint(scored, data, split, run / f"eval_{split}")
        stored = _position(scored)
        task = task_of(cfg)  # its metrics (single-frame: VOC, Table II protocol; sequence: SSTNet protocol) and cost
        # a metric the split cannot give (no SNR labels, no distractors) is kept as None ("–" in the table)
        result = {"key": key, "config": cfg["name"], "split": split, "checkpoint": "best" if use_best else "last",
                  "checkpoint_epoch": stored.get("epoch"), "checkpoint_step": stored.get("global_step"),
                  **{k: metrics.get(k) for k in task.result_metrics}, **task.cost(cfg)}
        atomic_write_json(result_file, result)
        return result
    finally:
        lock.release()


def _position(ckpt: Path) -> dict:
    """``epoch`` and ``global_step`` stored in ``ckpt`` (empty when the file, already scored by
    :func:`evaluate_checkpoint`, holds none: a weights-only file)."""
    try:
        state = read_checkpoint_file(ckpt)
    except Exception:  # noqa: BLE001 - the evaluation read it; the position is informative only
        return {}
    return state if isinstance(state, dict) else {}


def _number(v, nd=3) -> str:
    return "–" if v is None else (f"{v:.2e}" if abs(v) and abs(v) < 1e-3 else f"{v:.{nd}f}")


def _mean_std(values: list[float]) -> str:
    """``mean ± sample std`` of ``values`` (just the value for one)."""
    if len(values) == 1:
        return _number(values[0])
    return f"{_number(statistics.mean(values))} ± {_number(statistics.stdev(values))}"  # exact sums: equal values give 0


def format_markdown(table: str, budget: str, rows: list[tuple[Path, dict, dict | None]],
                    seeds: list[int] | None = None) -> str:
    """Markdown table of measured rows beside the paper's numbers (the columns of the rows' task:
    :attr:`irdet.engine.tasks.Task.table_columns` and ``paper_columns``).

    ``rows``: ``(row file, config, result)``, or with ``seeds`` ``(row file, config, [result or
    None per seed])``: cells are then mean ± sample std over the finished seeds, with an ``n``
    column (finished / asked) and the two-standard-deviation note under the table.
    """
    task = task_of(rows[0][1]) if rows else TASKS["detect"]
    cols = task.table_columns
    paper = [header for header, _ in task.paper_columns]
    head = ("row", "description", *(("n",) if seeds else ()), *cols, "params (M)", "GMACs", *paper, "run")
    title = f"### {table} (budget: {budget}" + (f", seeds {' '.join(map(str, seeds))})" if seeds else ")")
    lines = [title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for path, cfg, res in rows:
        p = cfg.get("paper") or {}
        done = [r for r in res if r is not None] if seeds else ([res] if res is not None else [])
        if not done:
            measured = ["not run"] + ["–"] * (len(cols) + 1)
        else:
            macs = done[0].get("macs")
            measured = [_mean_std([r[c] for r in done]) if all(r.get(c) is not None for r in done) else "–"
                        for c in cols] + [f"{done[0]['params'] / 1e6:.2f}", "–" if macs is None else f"{macs / 1e9:.2f}"]
        keys = " ".join(r["key"] for r in done) if seeds else (done[0]["key"] if done else config_key(cfg))
        n = (f"{len(done)}/{len(seeds)}",) if seeds else ()
        cells = [path.stem, cfg.get("description", ""), *n, *measured, *(_number(p.get(k)) for _, k in task.paper_columns),
                 keys or "–"]
        lines.append("| " + " | ".join(cells) + " |")
    if seeds:
        lines += ["", "Mean ± sample standard deviation over the finished seeds (n). A difference between two rows "
                      "counts only when it exceeds twice the larger of their two standard deviations."]
    return "\n".join(lines) + "\n"


def ablate(table: str, budget: str = "cpu", data: str | None = None, out: str | Path = "runs/ablations",
           overrides=(), rows: list[str] | None = None, dry_run: bool = False, seeds: list[int] | None = None) -> Path:
    """Train and evaluate every row of ``table`` not yet done; write ``<out>/<budget>/<table>.md``.

    Args:
        rows: optional subset of row names (file stems or their suffix after ``<table>_``).
        dry_run: only (re)write the table from finished runs.
        seeds: run every row once per seed (``train.seed``) and report mean ± std (see the module
            docstring; the file is then ``<table>_seeds.md``); None = one run per row.

    Returns:
        the markdown file.

    Raises:
        ConfigError: no rows, an unknown budget, or rows that mix single-frame and sequence configs.
    """
    out = Path(out) / budget
    runs_dir = out / "runs"
    if seeds is not None and (not seeds or len(set(seeds)) != len(seeds)):
        raise ConfigError(f"--seeds needs distinct seeds, got {seeds}")
    selected = []
    for path in table_rows(table):
        short = path.stem.split("_", 1)[-1]
        if rows and path.stem not in rows and short not in rows:
            continue
        per_seed = [budget_config(path, budget, [*overrides, f"train.seed={s}"]) for s in seeds] if seeds else \
            [budget_config(path, budget, overrides)]
        selected.append((path, per_seed))
    tasks = {config_task(cfgs[0]) for _, cfgs in selected}
    if len(tasks) > 1:
        raise ConfigError(f"{table}: rows mix single-frame and sequence configs; choose rows of one kind with --rows")
    results = []
    for path, cfgs in selected:
        row_results = []
        for cfg in cfgs:
            done = runs_dir / config_key(cfg) / "result.json"
            res = json.loads(done.read_text()) if done.is_file() else None
            if res is None and not dry_run:
                seed = f" seed {cfg['train']['seed']}" if seeds else ""
                print(f"[ablate] {table}: row {path.stem}{seed} -> run {config_key(cfg)}")
                res = run_row(cfg, runs_dir, data)
                if res is None:
                    print(f"[ablate] run {config_key(cfg)} is being trained by another process: skipped")
            row_results.append(res)
        results.append((path, cfgs[0], row_results if seeds else row_results[0]))
    name = Path(table).name + ("_seeds" if seeds else "")
    md = out / f"{name}.md"
    atomic_write_bytes(md, format_markdown(Path(table).name, budget, results, seeds).encode())
    if seeds:
        summary = [{"row": p.stem, "seeds": list(seeds), "keys": [config_key(c) for c in cfgs], "results": r}
                   for (p, cfgs), (_, _, r) in zip(selected, results)]
    else:
        summary = [{"row": p.stem, "key": config_key(c), "result": r} for p, c, r in results]
    atomic_write_json(out / f"{name}.json", summary)
    return md
