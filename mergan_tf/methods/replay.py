"""The MeRGAN methods: replay of the frozen previous generator, aligned (RA) or joint (JTR).

Paper section 3: before each task the snapshot of the previous one is restored into the
replay generator Old and frozen; every step replays Old(z, c) for the classes learned so
far (`ReplayBatch`, built by the trainer).
"""

from __future__ import annotations

import tensorflow as tf

from mergan_tf import distribute, losses
from mergan_tf.methods.base import Method, ReplayBatch, TrainingRun


class ReplayMethod(Method):
    """A method that replays the previous generator (MeRGAN): restores and freezes it."""

    needs_replay = True

    def before_task(self, trainer: TrainingRun, task_index: int) -> None:
        if task_index > 0:
            trainer.restore_replay_generator(task_index - 1)

    @staticmethod
    def new_replays(generator, replay: ReplayBatch) -> tf.Tensor:
        """New(z, c) for the replay batch's z and c, each class its own BN group."""
        return generator(replay.z, replay.labels, num_groups=replay.num_classes)


class ReplayAlignment(ReplayMethod):
    """MeRGAN-RA (paper section 3.2, Eq. 13): align New(z, c) with Old(z, c)."""

    name = "ra"
    old_in_generator_update = True

    def generator_extra_loss(self, generator, critic, replay):
        if replay is None:
            return {"loss/gen/replay_alignment": tf.constant(0.0)}
        new = self.new_replays(generator, replay)
        # A sum over the replays: with R replicas each holds 1/R of them, so R times its
        # share is its estimate of the whole (the replicas' estimates are averaged).
        loss = losses.replay_alignment_loss(replay.old, new, replay.num_classes,
                                            self.config.ra_factor, self.config.ra_divide_by_t)
        return {"loss/gen/replay_alignment": distribute.num_replicas_in_sync() * loss}


class JointTrainingWithReplay(ReplayMethod):
    """MeRGAN-JTR (paper section 3.1): Old replays as real, New replays as fake."""

    name = "jtr"
    old_in_critic_update = True
    new_in_critic_update = True

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
        new = replay.new if replay.new is not None else tf.stop_gradient(
            self.new_replays(generator, replay))
        # The critic has no batch-dependent layer: one call on [old; new] equals two calls.
        logits, class_logits = critic(tf.concat([replay.old, new], axis=0))
        old_logits, new_logits = tf.split(logits, 2)
        old_class_logits, _ = tf.split(class_logits, 2)
        return {"loss/critic/jtr": losses.jtr_critic_loss(
            old_logits, new_logits, old_class_logits, replay.labels, replay.num_classes,
            self.config.jtr_divide_by_t)}
