"""Reproduction of the paper's Table 1: train each method, evaluate, compare with the paper.

Runs live in `<out_root>/<method>`; a run that already finished with the same settings is
evaluated again without retraining.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Optional, Sequence

from mergan_tf import configs, snapshots
from mergan_tf.data import ImageData
from mergan_tf.evaluation import protocol
from mergan_tf.trainer import Trainer, prepare_run_dir

# Table 1 of the paper: mean accuracy (%) over learned classes after 5 and 10 tasks.
PAPER_TABLE1 = {
    ("mnist", 5): {"jt": 97.66, "sft": 19.87, "ewc": 70.62, "dgr": 90.39, "jtr": 97.93, "ra": 98.19},
    ("mnist", 10): {"jt": 96.92, "sft": 10.06, "ewc": 77.03, "dgr": 85.40, "jtr": 97.00, "ra": 97.01},
    ("svhn", 5): {"jt": 85.30, "sft": 19.35, "ewc": 39.84, "dgr": 61.29, "jtr": 80.90, "ra": 76.05},
    ("svhn", 10): {"jt": 84.82, "sft": 10.10, "ewc": 33.02, "dgr": 47.28, "jtr": 66.50, "ra": 66.78},
}
COLUMN_ORDER = ("jt", "sft", "ewc", "dgr", "jtr", "ra")


def method_config(dataset: str, method: str, tasks: int, iters: int, out_root: str,
                  data_dir: Optional[str], seed: int = 0, mixed_precision: str = "none",
                  **output) -> configs.RunConfig:
    """The run of one method; JT trains its single joint task for `tasks * iters`
    iterations, as the release gives joint training ten times the per-task count.
    `mixed_precision` is "none" (float32, the release) or "bf16" (see TrainConfig)."""
    cfg = configs.preset_config(dataset, method)
    return configs.validate(cfg.replace(
        classes=cfg.classes[:tasks], seed=seed, out_dir=os.path.join(out_root, method),
        data=dataclasses.replace(cfg.data, data_dir=data_dir),
        train=dataclasses.replace(cfg.train, iters=iters * tasks if method == "jt" else iters,
                                  mixed_precision=mixed_precision),
        output=dataclasses.replace(cfg.output, **output)))


def is_finished(cfg: configs.RunConfig) -> bool:
    """The run directory holds a finished run that trained exactly as `cfg` would.

    Output settings (grid/checkpoint/log frequency, run directory) do not change the
    trained weights and are not compared.
    """
    path = os.path.join(cfg.out_dir, "config.json")
    if not os.path.exists(path):
        return False
    with open(path) as f:
        saved = configs.RunConfig.from_dict(json.load(f))
    saved = saved.replace(data=dataclasses.replace(saved.data, resolved_source=None),
                          output=cfg.output, out_dir=cfg.out_dir)
    return saved == cfg and len(cfg.classes) in snapshots.list_snapshots(cfg.out_dir)


def train_if_needed(cfg: configs.RunConfig, data: ImageData, log=print) -> float:
    """Trains the run unless it is finished; returns the training seconds (0 if skipped)."""
    if is_finished(cfg):
        log(f"{cfg.method.name}: finished run found in {cfg.out_dir}, not retraining")
        return 0.0
    prepare_run_dir(cfg, overwrite=True)
    start = time.time()
    run_cfg = cfg.replace(data=dataclasses.replace(cfg.data, resolved_source=data.source))
    Trainer(run_cfg, data).train()
    return time.time() - start


def reproduce(dataset: str, methods: Sequence[str], tasks: int, iters: int, out_root: str,
              data: ImageData, data_dir: Optional[str], batches: int = 100, seed: int = 0,
              classifier_dir: Optional[str] = None, log=print, mixed_precision: str = "none",
              **output) -> dict:
    """Trains (or reuses) and evaluates every method; returns per-method results."""
    results = {}
    for method in methods:
        cfg = method_config(dataset, method, tasks, iters, out_root, data_dir, seed,
                            mixed_precision, **output)
        seconds = train_if_needed(cfg, data, log)
        ev = protocol.evaluate_run(cfg.out_dir, after_tasks=[tasks], classifier_dir=classifier_dir,
                                   batches=batches, seed=seed)
        acc = ev["tasks"][str(tasks)]["accuracy"]
        results[method] = {"mean": acc["mean"], "per_class": acc["per_class"],
                           "train_seconds": seconds, "evaluator": ev["evaluator"]}
        log(f"{method}: mean accuracy {acc['mean']:.2f}% after {tasks} tasks "
            f"(trained {seconds:.0f} s)")
    return results


def markdown_table(results: dict, dataset: str, tasks: int, iters: int,
                   mixed_precision: str = "none") -> str:
    """This run's mean accuracies beside the paper's Table 1 row."""
    methods = [m for m in COLUMN_ORDER if m in results] + [m for m in results if m not in COLUMN_ORDER]
    paper = PAPER_TABLE1.get((dataset, tasks), {})
    evaluator = next(iter(results.values()))["evaluator"] if results else {}
    head = "| | " + " | ".join(m.upper() for m in methods) + " |"
    precision = "" if mixed_precision == "none" else f", {mixed_precision} matmuls"
    lines = [f"Mean accuracy (%) over the {tasks} learned classes, {dataset}, {iters} iterations "
             f"per task{precision}; evaluator {evaluator.get('arch')} with real test accuracy "
             f"{evaluator.get('test_accuracy', float('nan')):.2f}%.", "",
             head, "|---|" + "---|" * len(methods),
             "| this run | " + " | ".join(f"{results[m]['mean']:.2f}" for m in methods) + " |",
             "| paper (Table 1) | " + " | ".join(
                 f"{paper[m]:.2f}" if m in paper else "-" for m in methods) + " |"]
    return "\n".join(lines)


def result_line(results: dict) -> str:
    """The machine-readable last line: RESULT method=acc,..."""
    return "RESULT " + ",".join(f"{m}={r['mean']:.2f}" for m, r in results.items())
