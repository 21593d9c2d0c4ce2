"""resnet64 (the release's LSUN model): parameter counts by hand, shapes, LayerNorm and the
generator's batch-statistics BN against numpy, resampling, init, grouping, checkpoints."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from mergan_tf import layers
from mergan_tf.models.dcgan32 import count_trainable
from mergan_tf.models.resnet64 import Critic, Generator


@pytest.fixture(scope="module")
def release_models():
    keras.utils.set_random_seed(0)
    return Generator(dim=64), Critic(dim=64)


def generator_params_by_hand(D=64):
    """Trainable scalars of the release's GoodGenerator, layer by layer."""
    total = (128 + 10) * 4 * 4 * 8 * D + 4 * 4 * 8 * D  # Linear 138 -> 8192: 1,130,496 + 8,192
    for cin, cout in [(8 * D, 8 * D), (8 * D, 4 * D), (4 * D, 2 * D), (2 * D, D)]:
        total += 2 * cin                  # BN1 scale + offset
        total += 3 * 3 * cin * cout       # UpsampleConv 3x3 in->out, biases=False
        total += 2 * cout                 # BN2 scale + offset
        total += 3 * 3 * cout * cout + cout  # Conv 3x3 out->out + bias
        total += cin * cout + cout        # shortcut UpsampleConv 1x1 + bias
    # Res1 512->512: 1,024 + 2,359,296 + 1,024 + 2,359,808 + 262,656 = 4,983,808
    # Res2 512->256: 1,024 + 1,179,648 +   512 +   590,080 + 131,328 = 1,902,592
    # Res3 256->128:   512 +   294,912 +   256 +   147,584 +  32,896 =   476,160
    # Res4 128->64:    256 +    73,728 +   128 +    36,928 +   8,256 =   119,296
    total += 2 * D                        # OutputN BN: 128
    total += 3 * 3 * D * 3 + 3            # Output conv 3x3 64->3 + bias: 1,731
    return total


def critic_params_by_hand(D=64):
    """Trainable scalars of the release's GoodDiscriminator, layer by layer."""
    total = 3 * 3 * 3 * D + D             # Input conv 3x3 3->64 + bias: 1,792
    for cin, cout in [(D, 2 * D), (2 * D, 4 * D), (4 * D, 8 * D), (8 * D, 8 * D)]:
        total += 2 * cin                  # LayerNorm1 scale + offset (per channel)
        total += 3 * 3 * cin * cin        # Conv 3x3 in->in, biases=False
        total += 2 * cin                  # LayerNorm2
        total += 3 * 3 * cin * cout + cout  # ConvMeanPool 3x3 in->out + bias
        total += cin * cout + cout        # shortcut MeanPoolConv 1x1 + bias
    # Res1 64->128:    128 +    36,864 +   128 +    73,856 +   8,320 =   119,296
    # Res2 128->256:   256 +   147,456 +   256 +   295,168 +  33,024 =   476,160
    # Res3 256->512:   512 +   589,824 +   512 + 1,180,160 + 131,584 = 1,902,592
    # Res4 512->512: 1,024 + 2,359,296 + 1,024 + 2,359,808 + 262,656 = 4,983,808
    total += 4 * 4 * 8 * D + 1            # Output Linear 8192 -> 1: 8,193
    total += 4 * 4 * 8 * D * 10 + 10      # ACGANOutput Linear 8192 -> 10: 81,930
    return total


def test_release_parameter_counts_computed_by_hand(release_models):
    g, d = release_models
    # G: 1,138,688 + 4,983,808 + 1,902,592 + 476,160 + 119,296 + 128 + 1,731
    assert generator_params_by_hand() == 8_622_403
    # D: 1,792 + 119,296 + 476,160 + 1,902,592 + 4,983,808 + 8,193 + 81,930
    assert critic_params_by_hand() == 7_573_771
    assert count_trainable(g) == 8_622_403
    assert count_trainable(d) == 7_573_771
    # Small widths follow the same formulas.
    assert count_trainable(Generator(dim=4)) == generator_params_by_hand(4)
    assert count_trainable(Critic(dim=4)) == critic_params_by_hand(4)


def test_release_shapes_range_and_attributes(release_models):
    g, d = release_models
    x = g(tf.random.normal([3, 128], seed=1), tf.constant([0, 3, 9]))
    assert x.shape == (3, 64, 64, 3)
    assert float(tf.reduce_max(tf.abs(x))) <= 1.0
    wgan, ac = d(x)
    assert wgan.shape == (3,) and ac.shape == (3, 10)
    assert (g.z_dim, g.channels, g.dim, g.num_classes, g.image_size) == (128, 3, 64, 10, 64)
    assert (d.channels, d.dim, d.num_classes, d.image_size) == (3, 64, 10, 64)


def test_small_dim_shapes_and_saturated_tanh_range():
    g, d = Generator(dim=8), Critic(dim=8, num_classes=4)
    for v in g.weights:  # large weights drive tanh to saturation: still within [-1, 1]
        v.assign(tf.random.normal(v.shape, stddev=3.0, seed=2))
    x = g(tf.random.normal([5, 128], seed=3), tf.constant([0, 1, 2, 3, 4]))
    assert x.shape == (5, 64, 64, 3)
    assert float(tf.reduce_max(tf.abs(x))) <= 1.0
    assert float(tf.reduce_max(tf.abs(x))) > 0.99
    wgan, ac = d(x)
    assert wgan.shape == (5,) and ac.shape == (5, 4)


def test_generator_rejects_bad_labels():
    g = Generator(dim=4)
    with pytest.raises(tf.errors.InvalidArgumentError):
        g(tf.zeros([2, 128]), tf.constant([0, 10]))
    with pytest.raises(ValueError):
        g(tf.zeros([2, 128]), tf.constant([[0], [1]]))


def test_label_enters_through_the_one_hot_input():
    keras.utils.set_random_seed(4)
    g = Generator(dim=4)
    z = tf.random.normal([4, 128], seed=5)
    assert np.abs(g(z, tf.fill([4], 0)).numpy() - g(z, tf.fill([4], 6)).numpy()).max() > 1e-4
    # Only the label rows of the input kernel matter for the label: zero them, no effect.
    kernel = g.fc.kernel.numpy()
    kernel[128:] = 0
    g.fc.kernel.assign(kernel)
    np.testing.assert_allclose(g(z, tf.fill([4], 0)).numpy(), g(z, tf.fill([4], 6)).numpy(), atol=1e-6)


def test_layer_norm_matches_numpy_with_assigned_scale_and_offset():
    rs = np.random.RandomState(0)
    x = rs.normal(1.5, 2.0, (4, 5, 6, 3)).astype(np.float32)
    scale = rs.uniform(0.5, 2.0, 3).astype(np.float32)
    offset = rs.normal(size=3).astype(np.float32)
    ln = layers.LayerNorm()
    ln.build(x.shape)
    ln.scale.assign(scale)
    ln.offset.assign(offset)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=(1, 2, 3), keepdims=True)  # per sample, over H, W and C
    var = x64.var(axis=(1, 2, 3), keepdims=True)
    expected = (x64 - mean) / np.sqrt(var + 1e-5) * scale + offset
    np.testing.assert_allclose(ln(x).numpy(), expected, atol=2e-5)
    assert ln.get_config()["epsilon"] == 1e-5
    # Per sample: a sample's output does not depend on the others.
    np.testing.assert_allclose(ln(x[:1]).numpy(), ln(x).numpy()[:1], atol=1e-6)


def test_batch_norm_uses_batch_statistics_per_group_like_numpy():
    rs = np.random.RandomState(1)
    x = rs.normal(-1.0, 3.0, (6, 4, 4, 2)).astype(np.float32)
    scale, offset = np.array([2.0, 0.5], np.float32), np.array([0.1, -1.0], np.float32)
    bn = layers.BatchNorm()
    bn.build(x.shape)
    bn.scale.assign(scale)
    bn.offset.assign(offset)

    def numpy_bn(a):
        a = a.astype(np.float64)
        m, v = a.mean(axis=(0, 1, 2)), a.var(axis=(0, 1, 2))
        return (a - m) / np.sqrt(v + 1e-5) * scale + offset

    np.testing.assert_allclose(bn(x).numpy(), numpy_bn(x), atol=2e-5)
    grouped = np.concatenate([numpy_bn(x[:3]), numpy_bn(x[3:])])
    np.testing.assert_allclose(bn(x, num_groups=2).numpy(), grouped, atol=2e-5)
    assert layers.BatchNorm.from_config(bn.get_config()).epsilon == 1e-5


def test_resampling_helpers():
    x = np.arange(2 * 4 * 6 * 3, dtype=np.float32).reshape(2, 4, 6, 3)
    up = layers.upsample_2x(x).numpy()
    np.testing.assert_array_equal(up, x.repeat(2, axis=1).repeat(2, axis=2))
    pooled = layers.mean_pool_2x2(x).numpy()
    np.testing.assert_allclose(pooled, x.reshape(2, 2, 2, 3, 2, 3).mean(axis=(2, 4)))


def _conv(x, conv):
    y = tf.nn.conv2d(x, conv.kernel, 1, "SAME")
    return y if conv.bias is None else y + conv.bias


def _randomise(block, seed):
    for i, v in enumerate(block.weights):
        v.assign(tf.random.normal(v.shape, mean=1.0 if "scale" in v.path else 0.0, stddev=0.5,
                                  seed=seed + i))


def test_up_block_follows_the_release_wiring():
    """BN, ReLU, upsample + conv3x3, BN, ReLU, conv3x3; shortcut upsample + conv1x1."""
    from mergan_tf.models.resnet64 import ResidualBlockUp
    block = ResidualBlockUp(6, 4)
    x = tf.random.normal([5, 4, 4, 6], seed=11)
    block(x)
    _randomise(block, 12)

    def bn(h, layer):
        mean, var = tf.nn.moments(h, [0, 1, 2])
        return (h - mean) / tf.sqrt(var + 1e-5) * layer.scale + layer.offset

    up = lambda h: tf.repeat(tf.repeat(h, 2, axis=1), 2, axis=2)
    h = _conv(up(tf.nn.relu(bn(x, block.bn1))), block.conv1)
    h = _conv(tf.nn.relu(bn(h, block.bn2)), block.conv2)
    expected = _conv(up(x), block.shortcut) + h
    np.testing.assert_allclose(block(x).numpy(), expected.numpy(), atol=1e-4)
    assert block(x).shape == (5, 8, 8, 4)


def test_down_block_follows_the_release_wiring():
    """LN, ReLU, conv3x3 in->in, LN, ReLU, conv3x3 in->out, mean-pool; shortcut
    mean-pool + conv1x1."""
    from mergan_tf.models.resnet64 import ResidualBlockDown
    block = ResidualBlockDown(3, 5)
    x = tf.random.normal([2, 8, 8, 3], seed=13)
    block(x)
    _randomise(block, 14)

    def ln(h, layer):
        mean, var = tf.nn.moments(h, [1, 2, 3], keepdims=True)
        return (h - mean) / tf.sqrt(var + 1e-5) * layer.scale + layer.offset

    pool = lambda h: tf.reshape(h, [2, h.shape[1] // 2, 2, h.shape[2] // 2, 2, -1]).numpy().mean(axis=(2, 4))
    h = _conv(tf.nn.relu(ln(x, block.ln1)), block.conv1)
    h = _conv(tf.nn.relu(ln(h, block.ln2)), block.conv2)
    expected = _conv(pool(x), block.shortcut) + pool(h)
    np.testing.assert_allclose(block(x).numpy(), expected.numpy(), atol=1e-4)
    assert block(x).shape == (2, 4, 4, 5)


def _assert_tflib_uniform(kernel, stdev):
    limit = stdev * math.sqrt(3.0)
    top = float(np.abs(kernel).max())
    assert 0.9 * limit < top <= limit, (top, limit)


def test_release_initialisation_he_and_glorot():
    keras.utils.set_random_seed(6)
    g, d = Generator(dim=8), Critic(dim=8)
    he = lambda fi, fo: math.sqrt(4.0 / (fi + fo))
    glorot = lambda fi, fo: math.sqrt(2.0 / (fi + fo))
    _assert_tflib_uniform(d.conv_in.kernel.numpy(), glorot(3 * 9, 8 * 9))           # he_init=False
    _assert_tflib_uniform(d.res2.shortcut.kernel.numpy(), glorot(16, 32))           # 1x1, he_init=False
    _assert_tflib_uniform(d.res2.conv1.kernel.numpy(), he(16 * 9, 16 * 9))
    _assert_tflib_uniform(d.res2.conv2.kernel.numpy(), he(16 * 9, 32 * 9))         # conv then pool: stride 1
    _assert_tflib_uniform(g.res3.conv1.kernel.numpy(), he(32 * 9, 16 * 9))         # upsample then conv
    _assert_tflib_uniform(g.res3.shortcut.kernel.numpy(), glorot(32, 16))
    _assert_tflib_uniform(g.conv_out.kernel.numpy(), he(8 * 9, 3 * 9))
    _assert_tflib_uniform(g.fc.kernel.numpy(), glorot(138, 4 * 4 * 64))
    _assert_tflib_uniform(d.ac_head.kernel.numpy(), glorot(4 * 4 * 64, 10))
    for block in g.blocks + d.blocks:  # the release's Conv1 has biases=False
        assert block.conv1.bias is None and block.conv2.bias is not None
        assert block.shortcut.bias is not None


def test_generator_grouped_call_equals_one_call_per_class():
    keras.utils.set_random_seed(7)
    g = Generator(dim=4)
    z = tf.random.normal([9, 128], seed=8)
    labels = tf.constant([0, 0, 0, 4, 4, 4, 7, 7, 7])
    grouped = g(z, labels, num_groups=3).numpy()
    separate = np.concatenate([g(z[i:i + 3], labels[i:i + 3]).numpy() for i in (0, 3, 6)])
    np.testing.assert_allclose(grouped, separate, atol=1e-5)
    # ... and batch statistics really are per group: one call over all 9 differs.
    assert np.abs(g(z, labels).numpy() - separate).max() > 1e-4


def test_critic_is_batch_independent_and_has_a_gradient_penalty_gradient():
    d = Critic(dim=4)
    x = tf.random.normal([4, 64, 64, 3], seed=9)
    whole = d(x)[0].numpy()
    parts = np.concatenate([d(x[:1])[0].numpy(), d(x[1:])[0].numpy()])
    np.testing.assert_allclose(whole, parts, atol=1e-5)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            logits = d(x)[0]
        slopes = tf.norm(tf.reshape(inner.gradient(logits, x), [4, -1]), axis=1)
        penalty = tf.reduce_mean((slopes - 1.0) ** 2)
    grads = outer.gradient(penalty, d.trainable_variables)
    # Second-order gradients reach every kernel and LayerNorm scale of the Wasserstein path
    # (biases added after the last nonlinearity do not change dD/dx, so they get none).
    reached = {v.path for v, g in zip(d.trainable_variables, grads) if g is not None}
    wanted = {v.path for v in d.trainable_variables
              if v.path.endswith(("kernel", "scale")) and "acgan_output" not in v.path}
    assert wanted <= reached and len(wanted) == 2 + 4 * 5


@pytest.mark.parametrize("make", [lambda: Generator(dim=4), lambda: Critic(dim=4)])
def test_tf_checkpoint_saves_and_restores_every_variable(make, tmp_path):
    src, dst = make(), make()
    for v in src.weights:
        v.assign(tf.random.normal(v.shape, seed=10))
    prefix = tf.train.Checkpoint(model=src).write(str(tmp_path / "ckpt"))
    saved = [n for n, _ in tf.train.list_variables(prefix) if n.startswith("model/")]
    # 42 = G: linear 2 + 4 blocks x 8 + BN 2 + conv 2; D: conv 2 + 4 blocks x 8 + heads 4.
    assert len(saved) == len(src.weights) == 42
    tf.train.Checkpoint(model=dst).read(prefix).assert_existing_objects_matched()
    for a, b in zip(src.weights, dst.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
