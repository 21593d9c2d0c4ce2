"""The task arithmetic of a run: which classes each task learns, what has been learned by
the end of a task, snapshot numbers, replay sizes and the sample schedule.

Plain functions of the run's configuration and its task list (the classes of each task,
in order: one class per task for the sequential methods, every class in one task for
joint training; the method decides, see `mergan_tf.methods`). No TensorFlow here: the
trainer and the methods both call these, and neither needs the other for them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mergan_tf.configs import RunConfig

Tasks = Sequence[tuple[int, ...]]

# The release writes class grids at these iterations as well as every `sample_every`.
SAMPLE_ITERS = frozenset(2 ** k for k in range(15))


def sequential(classes: Sequence[int]) -> list[tuple[int, ...]]:
    """One class per task, in order (the sequential setting of the paper)."""
    return [(int(c),) for c in classes]


def joint(classes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every class in one task (joint training, release `joint.py`)."""
    return [tuple(int(c) for c in classes)]


def learned_classes(tasks: Tasks, task_index: int) -> tuple[int, ...]:
    """Classes learned by the end of task `task_index` (0-based), in task order."""
    return tuple(c for task in tasks[:task_index + 1] for c in task)


def snapshot_number(tasks: Tasks, task_index: int) -> int:
    """The snapshot name of a task: the number of classes learned by its end (the paper's
    "after task N"; equal to task_index + 1 for one class per task)."""
    return len(learned_classes(tasks, task_index))


def task_of_snapshot(tasks: Tasks, number: int) -> int | None:
    """The 0-based index of the task whose snapshot is `number`, or None."""
    for t in range(len(tasks)):
        if snapshot_number(tasks, t) == number:
            return t
    return None


def replay_size(cfg: RunConfig, task_index: int) -> int:
    """Replay samples of each previous class in one step of task `task_index` (0-based,
    > 0), over all replicas: batch // t (MNIST/SVHN, `method.reduce_batch`) or a full
    batch (LSUN). The trainer splits it across the replicas of a --strategy run."""
    batch = cfg.train.batch_size
    return batch // task_index if cfg.method.reduce_batch else batch


def replay_labels(tasks: Tasks, task_index: int, per_class: int) -> np.ndarray:
    """The replay labels of a step of task `task_index` (> 0): `per_class` of each class
    learned before it, in consecutive groups (one batch-norm group per class)."""
    return np.repeat(learned_classes(tasks, task_index - 1), per_class)


def should_sample(iteration: int, sample_every: int) -> bool:
    """The release's sample schedule: 1, 2, 4, ..., 16384 and every `sample_every`."""
    return iteration % sample_every == 0 or iteration in SAMPLE_ITERS
