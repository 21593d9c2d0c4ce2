"""Where EWC's penalty holds the generator during a task, and where it lets it move.

For the task T of a run, compares the generator of the snapshot after task T with the
weights it started from (the snapshot after task T - 1, EWC's anchor) over three groups of
weights: the shared ones (the linear layer and the transposed convolutions, used by every
class), the conditional batch-norm rows of the classes learned before T, and the rows of
T's new class. Per group: its share of the Fisher's mass, how far the group moved
(||theta_T - anchor|| / ||anchor||) and the penalty it pays at the end of the task
(lambda / 2 * sum F (theta_T - anchor)^2, `losses.ewc_penalty`). A run without a Fisher
(SFT) gets the movement only. This measures why no lambda both learns and remembers
(results/ewc_sweep).
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from mergan_tf import layers, snapshots

SHARED, EARLIER, NEW = "shared", "earlier classes' BN rows", "new class's BN rows"
GROUPS = (SHARED, EARLIER, NEW)


@dataclasses.dataclass
class GroupStats:
    group: str
    size: int  # weights in the group
    moved: float  # ||theta_T - anchor|| / ||anchor|| over the group
    fisher_share: float | None  # percent of the Fisher's total mass
    fisher_mean: float | None
    fisher_top90: float | None  # percent of the group's weights holding 90% of its Fisher mass
    penalty: float | None  # lambda / 2 * sum F (theta_T - anchor)^2


@dataclasses.dataclass
class Anatomy:
    run_dir: str
    task: int
    method: str
    ewc_lambda: float | None
    new_classes: list[int]
    earlier_classes: list[int]
    groups: dict[str, GroupStats]
    accuracy_new: float | None  # mean over the new classes after task T (eval.json), percent
    accuracy_earlier: float | None  # mean over the earlier classes


def _group_masks(generator, earlier: list[int], new: list[int]) -> list[dict[str, np.ndarray]]:
    """Per trainable variable of `generator`, {group: boolean mask of its entries}."""
    bn_tables = {id(w) for layer in generator._flatten_layers()
                 if isinstance(layer, layers.ConditionalBatchNorm)
                 for w in (layer.gamma, layer.beta)}
    masks = []
    for var in generator.trainable_variables:
        shape = tuple(var.shape)
        if id(var) not in bn_tables:
            masks.append({SHARED: np.ones(shape, bool)})
            continue
        rows = {}
        for group, classes in ((EARLIER, earlier), (NEW, new)):
            mask = np.zeros(shape, bool)
            mask[classes] = True
            rows[group] = mask
        masks.append(rows)
    return masks


def _top_fraction(values: np.ndarray, mass: float) -> float | None:
    """Percent of the entries that, largest first, hold `mass` of the total (None: all zero)."""
    total = values.sum()
    if total <= 0:
        return None
    cumulative = np.cumsum(np.sort(values)[::-1])
    return 100.0 * (int(np.searchsorted(cumulative, mass * total)) + 1) / values.size


def _accuracies(run_dir: str, task: int, new: list[int], earlier: list[int]):
    path = os.path.join(run_dir, "eval.json")
    if not os.path.exists(path):
        return None, None
    with open(path) as f:
        per_class = json.load(f).get("tasks", {}).get(str(task), {}).get(
            "accuracy", {}).get("per_class")
    if not per_class:
        return None, None

    def mean(classes):
        return float(np.mean([per_class[str(c)] for c in classes])) if classes else None
    return mean(new), mean(earlier)


def _group_stats(group: str, parts, weights, anchors, fisher, ewc_lambda) -> GroupStats:
    """The statistics of the entries `parts` [(variable index, mask)] of one group."""
    delta = np.concatenate([(weights[i] - anchors[i])[m] for i, m in parts]).astype(np.float64)
    anchor = np.concatenate([anchors[i][m] for i, m in parts]).astype(np.float64)
    moved = float(np.linalg.norm(delta) / max(np.linalg.norm(anchor), 1e-30))
    if fisher is None:
        return GroupStats(group, int(delta.size), moved, None, None, None, None)
    f = np.concatenate([fisher[i][m] for i, m in parts]).astype(np.float64)
    total = sum(float(x.sum()) for x in fisher)
    share = 100.0 * float(f.sum()) / total if total > 0 else 0.0
    penalty = 0.5 * ewc_lambda * float(np.sum(f * delta ** 2))
    return GroupStats(group, int(delta.size), moved, share, float(f.mean()),
                      _top_fraction(f, 0.9), penalty)


def task_anatomy(run_dir: str, task: int | None = None) -> Anatomy:
    """The anatomy of task `task` (1-based; default the run's last snapshot, at least 2)."""
    done = snapshots.list_snapshots(run_dir)
    task = task if task is not None else (max(done) if done else 0)
    if task < 2 or task not in done or task - 1 not in done:
        raise ValueError(f"{run_dir}: the anatomy of task {task} needs the snapshots after "
                         f"tasks {task - 1} and {task}; the run has {done or 'none'}")
    cfg = snapshots.load_run_config(run_dir)
    before, info_before = snapshots.load_generator(run_dir, task - 1)
    after, info_after = snapshots.load_generator(run_dir, task)
    earlier = sorted(int(c) for c in info_before["classes"])
    new = sorted(set(int(c) for c in info_after["classes"]) - set(earlier))
    anchors = [v.numpy() for v in before.trainable_variables]
    fisher = None
    if cfg.method.name == "ewc":
        fisher_vars = [tf.Variable(tf.zeros_like(v)) for v in before.trainable_variables]
        anchor_vars = [tf.Variable(tf.zeros_like(v)) for v in before.trainable_variables]
        snapshots.restore_into(run_dir, task - 1, ewc_fisher=fisher_vars, ewc_anchor=anchor_vars)
        fisher = [v.numpy() for v in fisher_vars]
        anchors = [v.numpy() for v in anchor_vars]  # EWC's own (equal to `before`'s weights)
    weights = [v.numpy() for v in after.trainable_variables]
    masks = _group_masks(after, earlier, new)
    ewc_lambda = float(cfg.method.ewc_lambda) if fisher is not None else None
    groups = {}
    for group in GROUPS:
        parts = [(i, m[group]) for i, m in enumerate(masks) if group in m and m[group].any()]
        if parts:
            groups[group] = _group_stats(group, parts, weights, anchors, fisher, ewc_lambda)
    acc_new, acc_earlier = _accuracies(run_dir, task, new, earlier)
    return Anatomy(run_dir, task, cfg.method.name, ewc_lambda, new, earlier, groups,
                   acc_new, acc_earlier)


def _fmt(value, spec: str, unit: str = "") -> str:
    return "-" if value is None else format(value, spec) + unit


def format_table(anatomies: list[Anatomy]) -> str:
    """One markdown row per run: lambda, the accuracies, and per group moved / Fisher share
    / penalty; then, for EWC runs, the share of the shared weights that holds 90% of their
    Fisher mass."""
    lines = ["| run | lambda | new class (%) | earlier classes (%) | "
             + " | ".join(f"{g}: moved, Fisher share, penalty" for g in GROUPS)
             + " | shared weights holding 90% of their Fisher |",
             "|---" * (5 + len(GROUPS)) + "|"]
    for a in anatomies:
        cells = [os.path.basename(os.path.normpath(a.run_dir)), _fmt(a.ewc_lambda, ".0e"),
                 _fmt(a.accuracy_new, ".2f"), _fmt(a.accuracy_earlier, ".2f")]
        for g in GROUPS:
            s = a.groups.get(g)
            cells.append("-" if s is None else f"{s.moved:.3f}, {_fmt(s.fisher_share, '.2f', '%')}, "
                         f"{_fmt(s.penalty, '.3g')}")
        shared = a.groups.get(SHARED)
        cells.append(_fmt(shared.fisher_top90 if shared else None, ".2f", "%"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
