"""Continual-learning methods as small hook objects (SFT, RA, JTR).

The task loop lives in `mergan_tf.trainer`; a method only answers hooks. `before_task` and
`after_task` run eagerly between tasks; `generator_extra_loss` and `critic_extra_loss` run
inside the compiled steps and use tensor ops only. The mathematics is in `losses.py`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Optional

import tensorflow as tf

from mergan_tf import losses
from mergan_tf.configs import MethodConfig

if TYPE_CHECKING:  # pragma: no cover
    from mergan_tf.trainer import Trainer


@dataclasses.dataclass(frozen=True)
class ReplayBatch:
    """Replays of the previous classes for one step.

    Attributes:
      z: noise [t * n, z_dim], shared by Old and New (replay alignment needs the same z).
      labels: int32 [t * n], t consecutive groups of n, one previous class each.
      old: Old(z, c), the frozen replay generator's images (no gradient).
      num_classes: t, the number of previous classes; each is its own batch-norm group.
    """

    z: tf.Tensor
    labels: tf.Tensor
    old: tf.Tensor
    num_classes: int


class Method:
    """Sequential fine-tuning (SFT): no extra term. Base class of the other methods.

    Attributes:
      needs_replay: the trainer builds a ReplayBatch for every step after task 1.
    """

    name = "sft"
    needs_replay = False

    def __init__(self, config: MethodConfig):
        self.config = config

    def before_task(self, trainer: "Trainer", task_index: int) -> None:
        """Runs eagerly before the task's first iteration."""

    def after_task(self, trainer: "Trainer", task_index: int) -> None:
        """Runs eagerly after the task's snapshot is written."""

    def generator_extra_loss(self, generator, critic,
                             replay: Optional[ReplayBatch]) -> dict[str, tf.Tensor]:
        """Extra generator-loss terms, keyed by log name (tensor ops only)."""
        return {}

    def critic_extra_loss(self, generator, critic,
                          replay: Optional[ReplayBatch]) -> dict[str, tf.Tensor]:
        """Extra critic-loss terms, keyed by log name (tensor ops only)."""
        return {}


class ReplayMethod(Method):
    """A method that replays the previous generator (MeRGAN): restores and freezes it."""

    needs_replay = True

    def before_task(self, trainer: "Trainer", task_index: int) -> None:
        if task_index > 0:
            trainer.restore_replay_generator(task_index - 1)

    @staticmethod
    def new_replays(generator, replay: ReplayBatch) -> tf.Tensor:
        """New(z, c) for the replay batch's z and c, each class its own BN group."""
        return generator(replay.z, replay.labels, num_groups=replay.num_classes)


class ReplayAlignment(ReplayMethod):
    """MeRGAN-RA (paper section 3.2, Eq. 13): align New(z, c) with Old(z, c)."""

    name = "ra"

    def generator_extra_loss(self, generator, critic, replay):
        if replay is None:
            return {"loss/gen/replay_alignment": tf.constant(0.0)}
        new = self.new_replays(generator, replay)
        return {"loss/gen/replay_alignment": losses.replay_alignment_loss(
            replay.old, new, replay.num_classes, self.config.ra_factor,
            self.config.ra_divide_by_t)}


class JointTrainingWithReplay(ReplayMethod):
    """MeRGAN-JTR (paper section 3.1): Old replays as real, New replays as fake."""

    name = "jtr"

    def generator_extra_loss(self, generator, critic, replay):
        if replay is None:
            return {"loss/gen/jtr": tf.constant(0.0)}
        new_logits, new_class_logits = critic(self.new_replays(generator, replay))
        return {"loss/gen/jtr": losses.jtr_generator_loss(
            new_logits, new_class_logits, replay.labels, replay.num_classes,
            self.config.jtr_divide_by_t)}

    def critic_extra_loss(self, generator, critic, replay):
        if replay is None:
            return {"loss/critic/jtr": tf.constant(0.0)}
        new = tf.stop_gradient(self.new_replays(generator, replay))
        # The critic has no batch-dependent layer: one call on [old; new] equals two calls.
        logits, class_logits = critic(tf.concat([replay.old, new], axis=0))
        old_logits, new_logits = tf.split(logits, 2)
        old_class_logits, _ = tf.split(class_logits, 2)
        return {"loss/critic/jtr": losses.jtr_critic_loss(
            old_logits, new_logits, old_class_logits, replay.labels, replay.num_classes,
            self.config.jtr_divide_by_t)}


METHOD_CLASSES = {cls.name: cls for cls in (Method, ReplayAlignment, JointTrainingWithReplay)}


def make_method(config: MethodConfig) -> Method:
    """The method object for `config.name`."""
    if config.name not in METHOD_CLASSES:
        raise ValueError(f"unknown method {config.name!r}; choose one of {sorted(METHOD_CLASSES)}")
    return METHOD_CLASSES[config.name](config)
