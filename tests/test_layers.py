"""ConditionalBatchNorm against numpy, grouped statistics, and the release's initialisers."""

import math

import numpy as np
import pytest
import tensorflow as tf

from mergan_tf import layers


def numpy_cbn(x, labels, gamma, beta, eps=1e-5):
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    shape = (-1,) + (1,) * (x.ndim - 2) + (x.shape[-1],)
    return (x - mean) / np.sqrt(var + eps) * gamma[labels].reshape(shape) + beta[labels].reshape(shape)


def make_layer(channels, num_classes=10, seed=0):
    rs = np.random.RandomState(seed)
    layer = layers.ConditionalBatchNorm(num_classes)
    layer.build((None, 4, 4, channels))
    gamma = rs.uniform(0.5, 2.0, (num_classes, channels)).astype(np.float32)
    beta = rs.normal(size=(num_classes, channels)).astype(np.float32)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    return layer, gamma, beta


def test_conditional_bn_matches_numpy_with_assigned_tables():
    layer, gamma, beta = make_layer(3)
    rs = np.random.RandomState(1)
    x = rs.normal(2.0, 3.0, (8, 4, 4, 3)).astype(np.float32)
    labels = np.array([0, 3, 3, 9, 1, 0, 2, 5], np.int32)
    got = layer(x, labels).numpy()
    np.testing.assert_allclose(got, numpy_cbn(x.astype(np.float64), labels, gamma, beta), atol=2e-5)


def test_conditional_bn_2d_input_and_initial_tables_are_plain_bn():
    layer = layers.ConditionalBatchNorm(10)
    x = np.random.RandomState(2).normal(size=(16, 5)).astype(np.float32)
    got = layer(x, np.zeros(16, np.int32)).numpy()
    np.testing.assert_allclose(got.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(got.std(0), 1, atol=1e-3)


def test_conditional_bn_uses_batch_statistics_when_sampling():
    """The release never uses moving averages: the same image changes with its batch."""
    layer, _, _ = make_layer(2)
    rs = np.random.RandomState(3)
    a = rs.normal(size=(4, 4, 4, 2)).astype(np.float32)
    b = np.concatenate([a[:1], rs.normal(5.0, 1.0, (3, 4, 4, 2)).astype(np.float32)])
    labels = np.zeros(4, np.int32)
    assert not np.allclose(layer(a, labels).numpy()[0], layer(b, labels).numpy()[0])
    assert not layer.non_trainable_weights


def test_grouped_statistics_equal_separate_calls():
    layer, _, _ = make_layer(3)
    rs = np.random.RandomState(4)
    x = rs.normal(size=(12, 4, 4, 3)).astype(np.float32) * np.repeat([1.0, 4.0, 0.5], 4)[:, None, None, None]
    labels = np.repeat([2, 7, 4], 4).astype(np.int32)
    grouped = layer(x, labels, num_groups=3).numpy()
    separate = np.concatenate([layer(x[i:i + 4], labels[i:i + 4]).numpy() for i in (0, 4, 8)])
    np.testing.assert_allclose(grouped, separate, atol=1e-5)


def test_labels_of_wrong_rank_or_range_are_rejected():
    layer, _, _ = make_layer(2)
    x = np.zeros((2, 4, 4, 2), np.float32)
    with pytest.raises(ValueError, match="rank 1"):
        layer(x, np.zeros((2, 1), np.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_classes"):
        layer(x, np.array([0, 10], np.int32))


def test_get_config_round_trip():
    layer = layers.ConditionalBatchNorm(7, epsilon=1e-3, name="cbn")
    clone = layers.ConditionalBatchNorm.from_config(layer.get_config())
    assert (clone.num_classes, clone.epsilon, clone.name) == (7, 1e-3, "cbn")


@pytest.mark.parametrize("init,stdev", [
    (layers.linear_init(128, 2048), math.sqrt(2 / (128 + 2048))),
    (layers.conv_init(32, 64, 5, 2), math.sqrt(4 / (32 * 25 + 64 * 25 / 4))),
    (layers.deconv_init(128, 64, 5, 2), math.sqrt(4 / (128 * 25 / 4 + 64 * 25))),
])
def test_tflib_initialisers_are_uniform_with_the_stated_stdev(init, stdev):
    w = init((200, 300)).numpy()
    assert np.abs(w).max() <= stdev * math.sqrt(3) + 1e-7
    assert abs(w.std() - stdev) / stdev < 0.02
