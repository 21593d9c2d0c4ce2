"""The optimizer of every run: Keras Adam stepping with the replicas' mean gradient.

The release uses Adam (TF1 defaults, re-created at every task); `make_optimizer` builds it
from the run's `TrainConfig`. On several replicas (`--strategy`, see `mergan_tf.distribute`)
every replica's loss is its estimate of the global-batch loss, so the update must use the
MEAN of the replicas' gradients (`ReplicaMean`); on one replica it is exactly Keras's Adam.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from mergan_tf.configs import TrainConfig
from mergan_tf.distribute import num_replicas_in_sync


def make_optimizer(train: TrainConfig) -> keras.optimizers.Optimizer:
    """A fresh Adam of the run's settings (learning rate, beta1, beta2, epsilon)."""
    # Keras Adam on one device; with replicas, it steps with their mean gradient.
    return ReplicaMeanAdam(learning_rate=train.learning_rate, beta_1=train.beta1,
                           beta_2=train.beta2, epsilon=train.epsilon)


class ReplicaMean:
    """Mixin for a Keras optimizer: step with the MEAN of the replicas' gradients.

    Keras sums the replicas' gradients; every replica's loss here is its estimate of the
    global-batch loss (a mean over its shard), so the mean of their gradients is the
    gradient of the global-batch loss (a sum would scale it by the replica count).
    Dividing each replica's gradient by the replica count before Keras sums them is the
    same as `tf.nn.compute_average_loss` with the global batch size. On one replica the
    optimizer is exactly the Keras one.
    """

    def apply(self, grads, trainable_variables=None):
        replicas = num_replicas_in_sync()
        if replicas > 1:
            grads = [_divide(g, replicas) for g in grads]
        return super().apply(grads, trainable_variables)

    def _all_reduce_sum_gradients(self, grads_and_vars):
        """Keras's sum of the gradients over the replicas; on one replica, the gradients.

        Keras all-reduces even on a single replica (TF's default strategy), where the sum
        is the identity. That all-reduce is a `tf.custom_gradient`, which in a traced
        function registers its gradient function in TF's global gradient registry under a
        new name, for good: the registry then keeps the whole trace (FuncGraph, tensors,
        closures) alive after the `tf.function` is dropped, i.e. every task's step leaked
        (about 50-70 MiB per task). Skipping the identity all-reduce avoids that and
        leaves every value unchanged.
        """
        if num_replicas_in_sync() == 1:
            return list(grads_and_vars)
        return super()._all_reduce_sum_gradients(grads_and_vars)


class ReplicaMeanAdam(ReplicaMean, keras.optimizers.Adam):
    """`keras.optimizers.Adam` stepping with the replicas' mean gradient, each variable's
    step in TensorFlow's fused kernel.

    Keras's `Adam.update_step` builds about 15 ops per variable (casts, powers, the moment
    updates, the step); an outer iteration's six updates made about 900 of them. TF's
    `ResourceApplyAdam` computes the same formula in one op: alpha = lr sqrt(1 - b2^t) /
    (1 - b1^t), m += (g - m)(1 - b1), v += (g^2 - v)(1 - b2), var -= m alpha / (sqrt(v) +
    eps), with t = iterations + 1 (tests/test_optimizers.py: the same weights and moments
    as Keras's Adam, to float rounding). The slot variables are Keras's own, so
    checkpoints are unchanged. AMSGrad (not used here) keeps Keras's step.
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].handle,
            v=self._velocities[index].handle, beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype),
            beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(tf.convert_to_tensor(gradient), dtype))


def _divide(grad, denominator: int):
    """grad / denominator for a dense gradient, IndexedSlices (tf.gather) or None."""
    if grad is None:
        return None
    if isinstance(grad, tf.IndexedSlices):
        return tf.IndexedSlices(grad.values / denominator, grad.indices, grad.dense_shape)
    return grad / denominator
