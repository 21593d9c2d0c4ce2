"""The optimizer of every run: TF's fused Adam kernel does Keras's Adam step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mergan_tf import optimizers
from mergan_tf.configs import TrainConfig


def _train(optimizer, steps: int = 25):
    """Weights of a small model (a dense kernel and bias, an embedding whose gradient is
    IndexedSlices) after `steps` updates on fixed random gradients, and the moments."""
    rng = np.random.default_rng(0)
    weights = [keras.Variable(rng.normal(size=shape).astype(np.float32), name=f"w{i}")
               for i, shape in enumerate([(7, 5), (5,), (10, 3)])]

    @tf.function
    def step(g0, g1, rows, values):
        optimizer.apply_gradients(zip(
            [g0, g1, tf.IndexedSlices(values, rows, tf.constant([10, 3], tf.int64))], weights))

    for _ in range(steps):
        rows = tf.constant(rng.choice(10, size=4, replace=False), tf.int64)
        step(tf.constant(rng.normal(size=(7, 5)), tf.float32), tf.constant(rng.normal(size=5), tf.float32),
             rows, tf.constant(rng.normal(size=(4, 3)), tf.float32))
    moments = [v.numpy() for v in optimizer.variables[1:]]
    return [w.numpy() for w in weights], moments


@pytest.mark.parametrize("beta1", [0.0, 0.5])
def test_fused_adam_is_keras_adam(beta1):
    # The release's settings (lr 1e-4, beta1 0, beta2 0.9) and a beta1 that keeps momentum.
    settings = dict(learning_rate=1e-4, beta_1=beta1, beta_2=0.9, epsilon=1e-8)
    ours, our_moments = _train(optimizers.ReplicaMeanAdam(**settings))
    keras_adam, keras_moments = _train(keras.optimizers.Adam(**settings))
    start, _ = _train(keras.optimizers.SGD(learning_rate=0.0))
    # The same steps to float rounding (the kernel rounds in another order): within 1e-4
    # of how far each weight moved (25 steps of about lr). A step count off by one, a
    # moment decayed with the wrong beta or a missing bias correction would be off by
    # more than 10% of it.
    for a, b, w0 in zip(ours, keras_adam, start):
        moved = np.abs(b - w0).max()
        assert moved > 1e-4
        assert np.abs(a - b).max() <= 1e-4 * moved
    assert len(our_moments) == len(keras_moments)
    for a, b in zip(our_moments, keras_moments):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-12)


def test_make_optimizer_uses_the_run_settings():
    train = TrainConfig()
    opt = optimizers.make_optimizer(train)
    assert isinstance(opt, optimizers.ReplicaMeanAdam)
    assert float(opt.learning_rate) == pytest.approx(train.learning_rate)
    assert (opt.beta_1, opt.beta_2, opt.epsilon) == (train.beta1, train.beta2, train.epsilon)
