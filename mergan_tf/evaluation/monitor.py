"""Forgetting during training (paper Figure 6): per-class accuracy at regular iterations.

Every `eval_every` iterations the trainer asks the monitor to classify a small fixed sample
of every learned class with the evaluator; the accuracies go to TensorBoard
(`forgetting/class_<c>`) and to `forgetting.csv` (global_step, task, iteration, class,
accuracy in percent), which `scripts/plot_forgetting.py` draws.
"""

from __future__ import annotations

import csv
import os
from typing import Callable, Sequence

import numpy as np
from absl import logging

from mergan_tf import sampling
from mergan_tf.data import lsun
from mergan_tf.evaluation import classifiers, evaluators
from mergan_tf.run_dir import FORGETTING


class ForgettingMonitor:
    """Classifies a fixed sample of every learned class and logs the accuracies.

    Args:
      evaluator: a classifier from `evaluators.load_evaluator` (images -> logits).
      run_dir: where forgetting.csv is appended.
      samples_per_class: images per class at every measurement (one BN batch per class).
      z_dim: noise size.
      seed: seeds the fixed noise, the same for every class and every measurement.
      label_map: the evaluator's id of each generator label (LSUN [0, 1, 8, 6]); None for
        the identity.
      regime: the batch regime of the run ("class": one batch per class; "mixed": JT's
        batches of every learned class, see `mergan_tf.sampling`).
    """

    def __init__(self, evaluator, run_dir: str, samples_per_class: int = 64, z_dim: int = 128,
                 seed: int = 1234, label_map=None, regime: str = sampling.CLASS):
        self.evaluator = evaluator
        self.label_map = label_map
        self.regime = sampling.check_regime(regime)
        self.path = os.path.join(run_dir, FORGETTING)
        self.z = np.random.RandomState(seed).randn(samples_per_class, z_dim).astype(np.float32)

    def measure(self, sample_fn: Callable, classes: Sequence[int]) -> dict[int, float]:
        """Percent of each class's fixed sample that the evaluator assigns to that class."""
        accuracy = {}
        for c, images in sampling.sample_same_noise(sample_fn, self.z, classes, self.regime).items():
            predicted = classifiers.predict_labels(self.evaluator, images)
            target = int(c) if self.label_map is None else int(self.label_map[int(c)])
            accuracy[int(c)] = float(100.0 * np.mean(predicted == target))
        return accuracy

    def __call__(self, sample_fn, classes, step: int, task: int, iteration: int, log=None):
        accuracy = self.measure(sample_fn, classes)
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["global_step", "task", "iteration", "class", "accuracy"])
            for c, acc in accuracy.items():
                writer.writerow([step, task, iteration, c, f"{acc:.2f}"])
        if log is not None:
            log.scalars(step, task, iteration, {f"forgetting/class_{c}": a for c, a in accuracy.items()})
        return accuracy


def forgetting_monitor(cfg) -> "ForgettingMonitor | None":
    """The monitor a RunConfig asks for (None when eval_every is 0).

    Raises:
      classifiers.EvaluatorError: the evaluator is missing or below its accuracy floor.
    """
    if not cfg.output.eval_every:
        return None
    directory = cfg.output.evaluator_dir or classifiers.default_dir(cfg.data.dataset)
    # A directory, or release:PREFIX for the release's pretrained classifier.
    evaluator, meta = evaluators.load_evaluator(
        directory, min_accuracy=cfg.output.evaluator_min_accuracy, dataset=cfg.data.dataset)
    logging.info("forgetting monitor: %s", evaluators.describe_evaluator(directory, meta))
    label_map = lsun.evaluator_ids(cfg.data.categories) if cfg.data.dataset == "lsun" else None
    return ForgettingMonitor(evaluator, cfg.out_dir, cfg.output.eval_samples_per_class,
                             cfg.model.z_dim, seed=(cfg.seed + 1234) % 2 ** 32, label_map=label_map,
                             regime=sampling.regime_of(cfg.method.name))


def read_forgetting_csv(run_dir: str) -> list[dict]:
    """Rows of a run's forgetting.csv with numeric fields."""
    path = os.path.join(run_dir, FORGETTING)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: train with --eval_every N (and an evaluator) to record forgetting")
    with open(path) as f:
        return [{"global_step": int(r["global_step"]), "task": int(r["task"]),
                 "iteration": int(r["iteration"]), "class": int(r["class"]),
                 "accuracy": float(r["accuracy"])} for r in csv.DictReader(f)]
