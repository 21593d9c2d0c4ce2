"""EWC for GANs (paper Eq. 9, Seff et al. 2017) and its diagonal Fisher estimate.

The penalty is `losses.ewc_penalty`; this module holds the method's hooks and the Fisher
information of the generator they estimate after each task.

The paper does not spell out its Fisher. This implementation uses the empirical diagonal
Fisher of the generator's own objective: the mean, over generated samples of every learned
class, of the squared per-sample gradient of `-D(G(z, c)) + CE(C(G(z, c)), c)` with respect
to each generator weight. Samples are generated one class per batch (the conditional batch
norm uses batch statistics, as during training); the per-sample gradient of sample i keeps
the rest of its batch as the batch-norm context.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from mergan_tf import losses, tasks
from mergan_tf.configs import MethodConfig
from mergan_tf.methods.base import Method, TrainingRun


def make_fisher_fn(generator, critic):
    """A compiled `fn(z [b, z_dim], labels [b]) -> [sum over the batch of squared
    per-sample gradients]`, one tensor per generator trainable variable."""
    params = generator.trainable_variables

    @tf.function
    def batch_squared_gradients(z, labels):
        with tf.GradientTape() as tape:
            fake_logits, fake_class_logits = critic(generator(z, labels))
            per_sample = losses.generator_sample_losses(fake_logits, fake_class_logits, labels)
        jacobians = tape.jacobian(per_sample, params)  # each [b, *param.shape]
        return [tf.reduce_sum(tf.square(j), axis=0) for j in jacobians]

    return batch_squared_gradients


def estimate_fisher(generator, critic, classes: Sequence[int], num_samples: int,
                    rng: tf.random.Generator, batch_size: int = 16,
                    fisher_fn=None) -> list[tf.Tensor]:
    """Mean squared per-sample gradient over `num_samples` generated samples, spread
    equally over `classes` (at least one batch per class)."""
    fisher_fn = fisher_fn or make_fisher_fn(generator, critic)
    batches_per_class = max(1, -(-num_samples // (batch_size * len(classes))))
    total = [tf.zeros_like(p) for p in generator.trainable_variables]
    count = 0
    for c in classes:
        labels = tf.fill([batch_size], tf.constant(int(c), tf.int32))
        for _ in range(batches_per_class):
            z = rng.normal([batch_size, generator.z_dim])
            total = [t + s for t, s in zip(total, fisher_fn(z, labels))]
            count += batch_size
    return [t / count for t in total]


class ElasticWeightConsolidation(Method):
    """EWC: a quadratic penalty that keeps the generator near its weights at the end of the
    previous task, weighted by a diagonal Fisher estimated after each task
    (`estimate_fisher`)."""

    name = "ewc"

    def __init__(self, config: MethodConfig):
        super().__init__(config)
        self.fisher: list[tf.Variable] = []
        self.anchor: list[tf.Variable] = []
        self._fisher_fn = None

    def setup(self, trainer: TrainingRun) -> None:
        params = trainer.generator.trainable_variables
        self.fisher = [tf.Variable(tf.zeros_like(p), trainable=False, name="ewc_fisher") for p in params]
        self.anchor = [tf.Variable(p, trainable=False, name="ewc_anchor") for p in params]

    def checkpoint_objects(self) -> dict:
        return {"ewc_fisher": self.fisher, "ewc_anchor": self.anchor}

    def generator_extra_loss(self, generator, critic, replay):
        # Zero on task 1: the Fisher is still all zeros.
        return {"loss/gen/ewc": losses.ewc_penalty(generator.trainable_variables, self.anchor,
                                                   self.fisher, self.config.ewc_lambda)}

    def after_task(self, trainer: TrainingRun, task_index: int) -> None:
        if self._fisher_fn is None:
            self._fisher_fn = make_fisher_fn(trainer.generator, trainer.critic)
        fisher = estimate_fisher(trainer.generator, trainer.critic,
                                 tasks.learned_classes(trainer.tasks, task_index),
                                 self.config.ewc_samples, trainer.rng, fisher_fn=self._fisher_fn)
        for var, new in zip(self.fisher, fisher):
            var.assign(var + new if self.config.ewc_accumulate else new)
        for var, param in zip(self.anchor, trainer.generator.trainable_variables):
            var.assign(param)
