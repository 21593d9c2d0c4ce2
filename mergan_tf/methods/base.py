"""The hook contract of a continual-learning method, and sequential fine-tuning (SFT).

The task loop lives in `mergan_tf.trainer`; a method only answers hooks. `before_task` and
`after_task` run eagerly between tasks; `generator_extra_loss` and `critic_extra_loss` run
inside the compiled steps and use tensor ops only. The mathematics is in `losses.py`.

The hooks that need the run receive the trainer that calls them, typed here as
`TrainingRun`: the public members a method may read. Methods never import the trainer.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Protocol, Sequence

import keras
import tensorflow as tf

from mergan_tf import sampling, tasks
from mergan_tf.configs import MethodConfig, RunConfig


class TrainingRun(Protocol):
    """What a method's hooks read of the trainer that calls them.

    Attributes:
      cfg: the run's resolved configuration.
      run_dir: the run directory (snapshots are read from it).
      tasks: the classes of each task, as `Method.tasks` split them.
      generator, critic: the models in training.
      replay_generator: the frozen copy of a previous snapshot that replays use.
      rng: the run's `tf.random.Generator` (checkpointed with the run).
      sample: `sample(z, labels)`, the compiled sampler of the generator in training.
    """

    cfg: RunConfig
    run_dir: str
    tasks: list[tuple[int, ...]]
    generator: keras.Model
    critic: keras.Model
    replay_generator: keras.Model
    rng: tf.random.Generator
    sample: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

    def restore_replay_generator(self, task_index: int) -> None:
        """Loads the snapshot written at the end of task `task_index` (0-based), frozen."""


@dataclasses.dataclass(frozen=True)
class ReplayBatch:
    """Replays of the previous classes for one step.

    Attributes:
      z: noise [t * n, z_dim], shared by Old and New (replay alignment needs the same z).
      labels: int32 [t * n], t consecutive groups of n, one previous class each.
      old: Old(z, c), the frozen replay generator's images (no gradient), or None in a step
        whose losses do not read it (see `Method.old_in_generator_update`).
      num_classes: t, the number of previous classes; each is its own batch-norm group.
      new: New(z, c) without gradient, made ahead for a critic update whose losses read it
        (`Method.new_in_critic_update`), or None (the method makes it when it needs it).
    """

    z: tf.Tensor
    labels: tf.Tensor
    old: Optional[tf.Tensor]
    num_classes: int
    new: Optional[tf.Tensor] = None


class Method:
    """Sequential fine-tuning (SFT): no extra term. Base class of the other methods.

    Attributes:
      needs_replay: the trainer builds a ReplayBatch for every step after task 1.
    """

    name = "sft"
    needs_replay = False
    conditional = True  # the generator takes a class (False: DGR's unconditional one)
    # Whether the generator / critic update's losses read Old(z, c): a step that does not
    # still draws the replay noise (same random stream) but builds no Old forward.
    old_in_generator_update = False
    old_in_critic_update = False
    # Whether the critic update's losses read New(z, c) of the replays without gradient:
    # the trainer then makes it for all of an iteration's critic updates at once.
    new_in_critic_update = False

    def __init__(self, config: MethodConfig):
        self.config = config

    @property
    def batch_regime(self) -> str:
        """How the generator is sampled ("class" or "mixed", see `mergan_tf.sampling`)."""
        return sampling.regime_of(self.name)

    def tasks(self, classes: Sequence[int]) -> list[tuple[int, ...]]:
        """The classes of each task: one class per task (the sequential setting)."""
        return tasks.sequential(classes)

    def setup(self, trainer: TrainingRun) -> None:
        """Runs once when the trainer is built: create any state to checkpoint."""

    def checkpoint_objects(self) -> dict:
        """Trackable method state saved in task snapshots and training checkpoints."""
        return {}

    def before_task(self, trainer: TrainingRun, task_index: int) -> None:
        """Runs eagerly before the task's first iteration."""

    def build_updates(self, trainer: TrainingRun, task_index: int, g_opt, d_opt):
        """The task's (generator_update, critic_update); None: the trainer's own, which
        call `generator_extra_loss` / `critic_extra_loss`."""
        return None

    def sampler(self, trainer: TrainingRun):
        """`sample_fn(z, labels)` for sample grids and the forgetting monitor."""
        return trainer.sample

    def after_task(self, trainer: TrainingRun, task_index: int) -> None:
        """Runs eagerly after the task's last iteration, before its snapshot is written
        (so state computed here is saved with the snapshot)."""

    def generator_extra_loss(self, generator, critic,
                             replay: Optional[ReplayBatch]) -> dict[str, tf.Tensor]:
        """Extra generator-loss terms, keyed by log name (tensor ops only)."""
        return {}

    def critic_extra_loss(self, generator, critic,
                          replay: Optional[ReplayBatch]) -> dict[str, tf.Tensor]:
        """Extra critic-loss terms, keyed by log name (tensor ops only)."""
        return {}
