"""A tiny two-task MNIST run for tests that compare two ways of training."""

import csv
import dataclasses
import os

from mergan_tf import configs
from mergan_tf.run_dir import prepare_run_dir
from mergan_tf.trainer import Trainer


def train_two_tasks(method, data, run_dir, **train_changes):
    """Trains classes 0 and 1 for 3 iterations each at DIM 16 (seed 3, a scalar row every
    iteration) with `train_changes` to the preset's TrainConfig; returns the trainer and its
    logged scalars {(global_step, key): value}, without the perf/ timings."""
    cfg = configs.preset_config("mnist", method)
    cfg = configs.validate(cfg.replace(
        classes=(0, 1), out_dir=str(run_dir), seed=3,
        model=dataclasses.replace(cfg.model, dim=16),
        train=dataclasses.replace(cfg.train, iters=3, **train_changes),
        output=dataclasses.replace(cfg.output, sample_every=100, checkpoint_every=100, log_every=1)))
    prepare_run_dir(cfg)
    trainer = Trainer(cfg, data)
    trainer.train()
    with open(os.path.join(str(run_dir), "scalars.csv")) as f:
        scalars = {(r["global_step"], r["key"]): float(r["value"]) for r in csv.DictReader(f)
                   if not r["key"].startswith("perf/")}
    return trainer, scalars
