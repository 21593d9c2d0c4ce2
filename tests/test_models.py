"""gan32 models: shapes, output range and the release's parameter counts."""

import numpy as np
import pytest
import tensorflow as tf

from mergan_tf.models.dcgan32 import Critic, Generator, count_trainable


@pytest.mark.parametrize("channels,g_count,d_count", [(1, 525_569, 279_563), (3, 527_171, 281_163)])
def test_parameter_counts_equal_the_release(channels, g_count, d_count):
    assert count_trainable(Generator(channels)) == g_count
    assert count_trainable(Critic(channels)) == d_count


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_tanh_range(channels):
    g, d = Generator(channels), Critic(channels)
    x = g(tf.random.normal([6, 128]), tf.constant([0, 1, 2, 3, 4, 9]))
    assert x.shape == (6, 32, 32, channels)
    assert float(tf.reduce_max(tf.abs(x))) <= 1.0
    wgan, ac = d(x)
    assert wgan.shape == (6,) and ac.shape == (6, 10)


def test_generator_grouped_call_equals_one_call_per_class():
    g = Generator(1, dim=8)
    z = tf.random.normal([9, 128], seed=1)
    labels = tf.constant([0, 0, 0, 4, 4, 4, 7, 7, 7])
    grouped = g(z, labels, num_groups=3).numpy()
    separate = np.concatenate([g(z[i:i + 3], labels[i:i + 3]).numpy() for i in (0, 3, 6)])
    np.testing.assert_allclose(grouped, separate, atol=1e-5)


def test_label_changes_the_image_through_conditional_bn():
    g = Generator(1, dim=8)
    for bn in g.bns:
        bn.beta.assign(tf.random.normal(bn.beta.shape, seed=2))
    z = tf.random.normal([4, 128], seed=3)
    a = g(z, tf.fill([4], 0)).numpy()
    b = g(z, tf.fill([4], 5)).numpy()
    assert np.abs(a - b).max() > 1e-3


def test_critic_is_batch_independent():
    d = Critic(1, dim=8)
    x = tf.random.normal([6, 32, 32, 1], seed=4)
    whole = d(x)[0].numpy()
    parts = np.concatenate([d(x[:2])[0].numpy(), d(x[2:])[0].numpy()])
    np.testing.assert_allclose(whole, parts, atol=1e-5)


@pytest.mark.parametrize("make", [lambda: Generator(1, dim=8), lambda: Critic(1, dim=8)])
def test_tf_checkpoint_saves_and_restores_every_variable(make, tmp_path):
    src, dst = make(), make()
    for v in src.weights:
        v.assign(tf.random.normal(v.shape, seed=5))
    prefix = tf.train.Checkpoint(model=src).write(str(tmp_path / "ckpt"))
    saved = [n for n, _ in tf.train.list_variables(prefix) if n.startswith("model/")]
    assert len(saved) == len(src.weights)
    tf.train.Checkpoint(model=dst).read(prefix).assert_existing_objects_matched()
    for a, b in zip(src.weights, dst.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_the_factory_and_the_configs_name_the_same_archs_and_precisions():
    # configs (a leaf module) spells the command line's choices; the factory maps them.
    from mergan_tf import configs
    from mergan_tf.models import factory
    assert sorted(factory.MODEL_MODULES) == sorted(configs.ARCHS)
    assert sorted(factory.DTYPE_POLICIES) == sorted(configs.PRECISIONS)
