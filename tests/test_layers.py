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


# ------------------------------------------------------------ sub-pixel transposed conv


def _scatter_deconv(x, kernel):
    """numpy reference of the release's Deconv2D (golden README): out[n, 2i+ky-1, 2j+kx-1, o]
    += x[n, i, j, c] * kernel[ky, kx, o, c], positions outside [0, 2H) dropped."""
    n, h, w, _ = x.shape
    out = np.zeros((n, 2 * h + 4, 2 * w + 4, kernel.shape[2]))
    for ky in range(5):
        for kx in range(5):
            contrib = np.einsum("nijc,oc->nijo", x, kernel[ky, kx])
            out[:, ky + 1:ky + 1 + 2 * h:2, kx + 1:kx + 1 + 2 * w:2] += contrib
    return out[:, 2:2 + 2 * h, 2:2 + 2 * w]


@pytest.mark.parametrize("h, c, o", [(4, 16, 8), (3, 5, 1), (8, 4, 3)])
def test_subpixel_deconv_equals_conv2d_transpose_and_the_scatter_form(h, c, o):
    rs = np.random.RandomState(h + c + o)
    x = rs.randn(2, h, h, c).astype(np.float32)
    kernel = (0.2 * rs.randn(5, 5, o, c)).astype(np.float32)
    got = layers.subpixel_conv2d_transpose(tf.constant(x), tf.constant(kernel)).numpy()
    ref = tf.nn.conv2d_transpose(x, kernel, [2, 2 * h, 2 * h, o], strides=2, padding="SAME").numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    np.testing.assert_allclose(got, _scatter_deconv(x, kernel), rtol=0, atol=1e-5 * np.abs(ref).max())


def _deconv_gradients(fn, x, kernel, w):
    """First- and second-order gradients of sum(w * fn(x, kernel)) and of the squared norm of
    its input gradient, with respect to x and kernel."""
    with tf.GradientTape(persistent=True) as outer:
        with tf.GradientTape() as inner:
            y = tf.reduce_sum(w * fn(x, kernel))
        gx, gk = inner.gradient(y, [x, kernel])
        penalty = tf.reduce_sum(tf.square(gx))
    return [gx, gk] + outer.gradient(penalty, [x, kernel], unconnected_gradients="zero")


def test_subpixel_deconv_gradients_of_every_order_equal_conv2d_transpose():
    rs = np.random.RandomState(0)
    x = tf.Variable(rs.randn(2, 4, 4, 6).astype(np.float32))
    kernel = tf.Variable((0.2 * rs.randn(5, 5, 3, 6)).astype(np.float32))
    w = tf.constant(rs.randn(2, 8, 8, 3).astype(np.float32))

    def transpose(x, k):
        return tf.nn.conv2d_transpose(x, k, [2, 8, 8, 3], strides=2, padding="SAME")
    for got, ref in zip(_deconv_gradients(layers.subpixel_conv2d_transpose, x, kernel, w),
                        _deconv_gradients(transpose, x, kernel, w)):
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=0,
                                   atol=1e-5 * max(1.0, np.abs(ref.numpy()).max()))


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_subpixel_layer_equals_keras_conv2d_transpose_with_the_same_weights(policy):
    import keras
    rs = np.random.RandomState(1)
    x = tf.constant(rs.randn(4, 8, 8, 16).astype(np.float32))
    ref_layer = keras.layers.Conv2DTranspose(8, 5, strides=2, padding="same", dtype=policy)
    layer = layers.SubPixelConv2DTranspose(8, dtype=policy)
    ref_layer.build(x.shape)
    layer.build(x.shape)
    assert [(v.name, v.shape) for v in layer.weights] == [(v.name, v.shape) for v in ref_layer.weights]
    for v, r in zip(layer.weights, ref_layer.weights):  # the same random kernel and bias
        value = (0.1 * rs.randn(*v.shape)).astype(np.float32)
        v.assign(value)
        r.assign(value)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        got, ref = layer(x), ref_layer(x)
        got_loss = tf.reduce_sum(tf.cast(got, tf.float32) ** 2)
        ref_loss = tf.reduce_sum(tf.cast(ref, tf.float32) ** 2)
    assert got.dtype == ref.dtype
    pairs = [(got, ref), (tape.gradient(got_loss, x), tape.gradient(ref_loss, x))]
    pairs += list(zip(tape.gradient(got_loss, layer.trainable_weights),
                      tape.gradient(ref_loss, ref_layer.trainable_weights)))
    tol = 1e-5 if policy == "float32" else 2e-2  # bf16: relative to each tensor's norm
    for a, b in pairs:
        a, b = np.asarray(tf.cast(a, tf.float32)), np.asarray(tf.cast(b, tf.float32))
        assert np.linalg.norm(a - b) <= tol * np.linalg.norm(b)


def test_subpixel_layer_refuses_other_shapes():
    with pytest.raises(ValueError, match="only 5x5, stride 2"):
        layers.SubPixelConv2DTranspose(8, kernel_size=3)


def test_subpixel_generator_equals_the_transpose_generator_and_shares_snapshots(tmp_path):
    from mergan_tf.models.dcgan32 import Generator
    ref = Generator(channels=3, dim=8, kernels="tf")
    sub = Generator(channels=3, dim=8, deconv="subpixel", kernels="tf")
    path = tf.train.Checkpoint(generator=ref).write(str(tmp_path / "ckpt"))
    tf.train.Checkpoint(generator=sub).read(path).assert_existing_objects_matched()
    z = tf.constant(np.random.RandomState(2).randn(6, 128).astype(np.float32))
    labels = tf.constant([0, 0, 1, 1, 2, 2])
    with tf.GradientTape(persistent=True) as tape:
        a, b = sub(z, labels, num_groups=3), ref(z, labels, num_groups=3)
        la, lb = tf.reduce_sum(a * a), tf.reduce_sum(b * b)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-5)
    for v, ga, gb in zip(sub.trainable_variables, tape.gradient(la, sub.trainable_variables),
                         tape.gradient(lb, ref.trainable_variables)):
        ga, gb = tf.convert_to_tensor(ga).numpy(), tf.convert_to_tensor(gb).numpy()  # BN tables: sparse
        # The biases of input, deconv2 and deconv3 feed a batch norm: their true gradient is
        # zero and both are float noise of about 1e-4 (random weights each run): loosely.
        feeds_bn = v.path.endswith(("input/bias", "deconv2/bias", "deconv3/bias"))
        atol = (1e-3 if feeds_bn else 1e-4) * max(1, np.abs(gb).max())
        np.testing.assert_allclose(ga, gb, rtol=0, atol=atol)


# ------------------------------------- the stride-2 convolutions with fast gradients


def _tf_conv(x, kernel):
    return tf.nn.conv2d(x, kernel, strides=2, padding="SAME")


def _tf_conv_transpose(x, kernel, out_hw):
    shape = [x.shape[0], out_hw[0], out_hw[1], kernel.shape[2]]
    return tf.nn.conv2d_transpose(x, kernel, shape, strides=2, padding="SAME")


def _penalty_gradients(fn, x, kernel, w):
    """What the critic update asks of a layer: the values, the input and filter gradients
    of sum(w * sin(fn(x, kernel))), and the gradients of its squared input gradient (the
    gradient penalty's double backward) with respect to x and the kernel."""
    with tf.GradientTape(persistent=True) as outer:
        outer.watch([x, kernel])
        with tf.GradientTape() as inner:
            inner.watch([x, kernel])
            y = fn(x, kernel)
            loss = tf.reduce_sum(w * tf.sin(tf.cast(y, tf.float32)))
        gx, gk = inner.gradient(loss, [x, kernel])
        penalty = tf.reduce_sum(tf.square(tf.cast(gx, tf.float32)))
    return [y, gx, gk] + outer.gradient(penalty, [x, kernel])


def _assert_close(got, ref, tol):
    for a, b in zip(got, ref):
        a, b = np.asarray(tf.cast(a, tf.float32)), np.asarray(tf.cast(b, tf.float32))
        assert a.shape == b.shape
        assert np.linalg.norm(a - b) <= tol * np.linalg.norm(b), (np.abs(a - b).max(), np.abs(b).max())


CONV_SHAPES = [(32, 1, 8), (16, 8, 16), (8, 16, 32), (7, 6, 5), (32, 3, 4)]
PRECISIONS = [(tf.float32, 1e-5), (tf.bfloat16, 3e-2)]  # bf16: relative to each tensor's norm


@pytest.mark.parametrize("h, c, o", CONV_SHAPES)
@pytest.mark.parametrize("dtype, tol", PRECISIONS)
def test_conv2d_s2_values_and_gradients_of_every_order_equal_tf_conv2d(h, c, o, dtype, tol):
    rs = np.random.RandomState(h * c + o)
    x = tf.constant(rs.randn(3, h, h, c), dtype)
    kernel = tf.constant(0.2 * rs.randn(5, 5, c, o), dtype)
    w = tf.constant(rs.randn(3, (h + 1) // 2, (h + 1) // 2, o).astype(np.float32))
    _assert_close(_penalty_gradients(layers.conv2d_s2, x, kernel, w),
                  _penalty_gradients(_tf_conv, x, kernel, w), tol)


@pytest.mark.parametrize("h, c, o", [(16, 8, 1), (8, 16, 8), (4, 16, 3), (4, 8, 32)])
@pytest.mark.parametrize("dtype, tol", PRECISIONS)
def test_conv2d_transpose_s2_values_and_gradients_of_every_order_equal_tf(h, c, o, dtype, tol):
    # o <= layers.FEW_CHANNELS takes the sub-pixel form, the others conv2d_transpose.
    rs = np.random.RandomState(h * c + o)
    x = tf.constant(rs.randn(3, h, h, c), dtype)
    kernel = tf.constant(0.2 * rs.randn(5, 5, o, c), dtype)
    w = tf.constant(rs.randn(3, 2 * h, 2 * h, o).astype(np.float32))
    _assert_close(_penalty_gradients(layers.conv2d_transpose_s2, x, kernel, w),
                  _penalty_gradients(lambda a, k: _tf_conv_transpose(a, k, (2 * h, 2 * h)),
                                     x, kernel, w), tol)


def test_conv2d_transpose_s2_to_an_odd_size_equals_tf():
    # The input gradient of a convolution over 7 pixels: a transposed convolution from 4
    # to 7, never in the sub-pixel form.
    rs = np.random.RandomState(7)
    x = tf.constant(rs.randn(2, 4, 4, 5).astype(np.float32))
    kernel = tf.constant((0.2 * rs.randn(5, 5, 2, 5)).astype(np.float32))
    w = tf.constant(rs.randn(2, 7, 7, 2).astype(np.float32))
    _assert_close(_penalty_gradients(lambda a, k: layers.conv2d_transpose_s2(a, k, (7, 7)), x, kernel, w),
                  _penalty_gradients(lambda a, k: _tf_conv_transpose(a, k, (7, 7)), x, kernel, w), 1e-5)


@pytest.mark.parametrize("h, c, o", CONV_SHAPES)
def test_conv2d_filter_gradient_equals_tf_backprop_filter(h, c, o):
    rs = np.random.RandomState(c + o)
    x = tf.constant(rs.randn(4, h, h, c).astype(np.float32))
    dy = tf.constant(rs.randn(4, (h + 1) // 2, (h + 1) // 2, o).astype(np.float32))
    ref = tf.compat.v1.nn.conv2d_backprop_filter(x, [5, 5, c, o], dy, [1, 2, 2, 1], "SAME")
    got = layers.conv2d_filter_gradient(x, dy)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=0, atol=1e-5 * np.abs(ref.numpy()).max())


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("kind", ["conv", "transpose"])
def test_fast_layers_equal_the_keras_layers_with_the_same_weights(policy, kind):
    # Same weights, outputs and gradients as the Keras layer; in bf16, as near the float32
    # Keras layer's figures as the bf16 Keras layer is.
    import keras
    rs = np.random.RandomState(3)
    if kind == "conv":
        x = tf.constant(rs.randn(4, 16, 16, 8).astype(np.float32))
        make_ref = lambda dtype: keras.layers.Conv2D(16, 5, strides=2, padding="same", dtype=dtype)  # noqa: E731
        layer = layers.FastConv2D(16, dtype=policy)
    else:
        x = tf.constant(rs.randn(4, 8, 8, 16).astype(np.float32))
        make_ref = lambda dtype: keras.layers.Conv2DTranspose(8, 5, strides=2, padding="same", dtype=dtype)  # noqa: E731
        layer = layers.FastConv2DTranspose(8, dtype=policy)
    ref_layer, exact_layer = make_ref(policy), make_ref("float32")
    for each in (layer, ref_layer, exact_layer):
        each.build(x.shape)
    assert [(v.name, v.shape) for v in layer.weights] == [(v.name, v.shape) for v in ref_layer.weights]
    values = [(0.1 * rs.randn(*v.shape)).astype(np.float32) for v in layer.weights]
    for each in (layer, ref_layer, exact_layer):
        for v, value in zip(each.weights, values):
            v.assign(value)

    def outputs(each):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = each(x)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
        grads = tape.gradient(loss, [x] + each.trainable_weights)
        return y.dtype, [np.asarray(tf.cast(t, tf.float32)) for t in [y] + grads]
    (dtype, got), (ref_dtype, ref), (_, exact) = outputs(layer), outputs(ref_layer), outputs(exact_layer)
    assert dtype == ref_dtype
    for a, b, t in zip(got, ref, exact):
        if policy == "float32":
            assert np.linalg.norm(a - b) <= 1e-5 * np.linalg.norm(b)
        else:
            scale = np.linalg.norm(t)
            assert np.linalg.norm(a - t) / scale <= 1.5 * np.linalg.norm(b - t) / scale + 1e-2


def test_fast_layers_refuse_other_shapes():
    with pytest.raises(ValueError, match="only 5x5, stride 2"):
        layers.FastConv2D(8, kernel_size=3)
    with pytest.raises(ValueError, match="only 5x5, stride 2"):
        layers.FastConv2DTranspose(8, strides=1)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("channels", [1, 3])
def test_fast_kernels_models_equal_tf_kernels_models_through_the_critic_loss(policy, channels, tmp_path):
    # The generator and critic with --kernels fast restore a --kernels tf snapshot and give
    # the same images, critic loss terms (with the gradient penalty) and gradients of every
    # weight of both models. In bf16 both differ from float32 by rounding, summed in a
    # different order: the fast models must then be as near the float32 figures as TF's
    # (measured: the same relative error to four digits for every tensor bf16 resolves).
    import keras
    from mergan_tf import losses
    from mergan_tf.models.dcgan32 import Critic, Generator

    def models(kernels, precision):
        keras.mixed_precision.set_dtype_policy(precision)
        try:
            return Generator(channels, 8, kernels=kernels), Critic(channels, 8, kernels=kernels)
        finally:
            keras.mixed_precision.set_dtype_policy("float32")
    exact = models("tf", "float32")
    path = tf.train.Checkpoint(generator=exact[0], critic=exact[1]).write(str(tmp_path / "ckpt"))
    tf_models, fast_models = models("tf", policy), models("fast", policy)
    for g, d in (tf_models, fast_models):
        tf.train.Checkpoint(generator=g, critic=d).read(path).assert_existing_objects_matched()
    rs = np.random.RandomState(channels)
    z = tf.constant(rs.randn(6, 128).astype(np.float32))
    labels = tf.constant([0, 1, 2, 0, 1, 2])
    real = tf.constant(rs.uniform(-1, 1, (6, 32, 32, channels)).astype(np.float32))
    alpha = tf.constant(rs.uniform(size=(6, 1, 1, 1)).astype(np.float32))

    def terms(gen, critic):
        with tf.GradientTape(persistent=True) as tape:
            fake = gen(z, labels, num_groups=2)
            wasserstein, penalty, class_logits = losses.wgan_gp_critic_loss(critic, real, fake, alpha, 10.0)
            total = wasserstein + penalty + losses.classification_loss(class_logits, labels)
        grads = tape.gradient(total, critic.trainable_variables + gen.trainable_variables)
        return [np.asarray(v) for v in [fake, wasserstein, penalty] + [tf.convert_to_tensor(v) for v in grads]]
    fast, ref, truth = terms(*fast_models), terms(*tf_models), terms(*exact)
    g, d = fast_models
    names = ["fake", "wasserstein", "penalty"] + [v.path for v in d.trainable_variables + g.trainable_variables]
    for name, a, b, t in zip(names, fast, ref, truth):
        # The biases that feed a batch norm have a true gradient of zero: float noise in
        # every model, compared absolutely.
        feeds_bn = name.endswith(("input/bias", "deconv2/bias", "deconv3/bias"))
        scale = max(np.linalg.norm(t), 1.0 if feeds_bn else 0)
        if policy == "float32":
            assert np.linalg.norm(a - b) <= 1e-4 * scale, name
            continue
        # bf16 against float32: 10-20% relative for most gradients, the same for both
        # models. Where TF's own bf16 is off by more than 30% (the output bias: a sum over
        # every pixel that nearly cancels), bf16 resolves nothing to compare.
        if scale == 0:  # an exactly zero gradient stays exactly zero
            assert not a.any() and not b.any(), name
            continue
        tf_error = np.linalg.norm(b - t) / scale
        if not feeds_bn and tf_error < 0.3:
            assert np.linalg.norm(a - t) / scale <= 1.5 * tf_error + 1e-2, name
