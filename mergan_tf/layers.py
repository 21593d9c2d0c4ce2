"""Layers shared by the models: conditional batch normalisation and the release's init.

`ConditionalBatchNorm` follows the release (`tflib/ops/cond_batchnorm.py`, after Dumoulin
et al. 2017): it always normalises with the statistics of the current batch, also when
sampling, and looks up a per-class scale and offset by label.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops

from mergan_tf import distribute


def tflib_uniform(stdev: float) -> keras.initializers.Initializer:
    """Uniform in +-stdev*sqrt(3) (so its standard deviation is `stdev`), as tflib does."""
    limit = stdev * math.sqrt(3.0)
    return keras.initializers.RandomUniform(minval=-limit, maxval=limit)


def linear_init(fan_in: int, fan_out: int) -> keras.initializers.Initializer:
    """tflib Linear: stdev sqrt(2 / (fan_in + fan_out)) (Glorot)."""
    return tflib_uniform(math.sqrt(2.0 / (fan_in + fan_out)))


def conv_init(in_ch: int, out_ch: int, kernel: int, stride: int) -> keras.initializers.Initializer:
    """tflib Conv2D with he_init: fan_in = in*k*k, fan_out = out*k*k/stride^2."""
    fan_in = in_ch * kernel * kernel
    fan_out = out_ch * kernel * kernel / stride ** 2
    return tflib_uniform(math.sqrt(4.0 / (fan_in + fan_out)))


def deconv_init(in_ch: int, out_ch: int, kernel: int, stride: int) -> keras.initializers.Initializer:
    """tflib Deconv2D with he_init: fan_in = in*k*k/stride^2, fan_out = out*k*k."""
    fan_in = in_ch * kernel * kernel / stride ** 2
    fan_out = out_ch * kernel * kernel
    return tflib_uniform(math.sqrt(4.0 / (fan_in + fan_out)))


def batch_normalize(x, num_groups: int, epsilon: float):
    """(x - mean) / sqrt(var + eps) with the batch's statistics over every axis but the
    last; with num_groups = G, each of G equal consecutive groups of the batch on its own
    (which equals G separate calls).

    Inside `strategy.run` with several replicas, the statistics are those of the global
    batch: each replica's shard (of each group) is pooled with the other replicas' shards.
    """
    cross_replica = distribute.num_replicas_in_sync() > 1
    if num_groups == 1 and not cross_replica:
        mean, var = tf.nn.moments(x, axes=list(range(x.shape.rank - 1)), keepdims=True)
        return (x - mean) * tf.math.rsqrt(var + epsilon)
    shape = tf.shape(x)
    grouped = tf.reshape(x, tf.concat([[num_groups, -1], shape[1:]], axis=0))
    axes = list(range(1, x.shape.rank))
    mean, var = (distribute.cross_replica_moments(grouped, axes) if cross_replica
                 else tf.nn.moments(grouped, axes=axes, keepdims=True))
    return tf.reshape((grouped - mean) * tf.math.rsqrt(var + epsilon), shape)


def leaky_relu(x, alpha: float = 0.2):
    """`tf.nn.leaky_relu(x, alpha)` whose gradient reads the output, not the input.

    The values and gradients of every order are those of `tf.nn.leaky_relu` (for
    0 < alpha < 1, `y > 0` exactly where `x > 0`), but the backward pass no longer needs
    `x`. With TF's own op, `LeakyReluGrad` reads the conv's `BiasAdd` output; Grappler's
    remapper then cannot fuse conv + bias + activation, fails on the critic's
    gradient-penalty graph ("fanout ... LeakyReluGrad exist for missing node ... BiasAdd")
    and drops all of its rewrites. Reading the output, the fusion goes through (README,
    Throughput: 10-15% off the outer iteration).

    In a trace, `tf.custom_gradient` registers its gradient function in TensorFlow's global
    gradient registry for good, and that function keeps the trace alive: the trainer drops
    a finished task's registrations (`forget_custom_gradients`).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"leaky_relu: alpha must be in (0, 1), got {alpha}")

    @tf.custom_gradient
    def forward(x):
        y = tf.nn.leaky_relu(x, alpha)

        def grad(dy):
            return _scale_where_not(y > 0, dy, alpha)
        return y, grad
    return forward(x)


def _scale_where_not(positive, dy, alpha: float):
    """`tf.where(positive, dy, alpha * dy)`, the activation's gradient. It is linear in dy
    with a diagonal Jacobian, so its own gradient (the gradient penalty's double backward)
    is the same map of the upstream gradient: one select and one multiply, where TF's
    gradient of `tf.where` takes two selects, a multiply and a sum, all with the same values."""
    @tf.custom_gradient
    def scale(dy):
        def grad(g):
            return _scale_where_not(positive, g, alpha)
        return tf.where(positive, dy, tf.cast(alpha, dy.dtype) * dy), grad
    return scale(dy)


# Sub-pixel form of a 5x5 stride-2 SAME transposed convolution. Output row 2u + r gets
# input rows u + m (m = -1, 0, 1) through filter rows _SUBPIXEL_TAPS[r][m + 1] (None: no
# tap): conv2d_transpose pads 1 before (pad_total = 3), so output p = 2i + k - 1 takes
# input i through filter row k. Phase 0 has taps 3, 1; phase 1 taps 4, 2, 0.
_SUBPIXEL_TAPS = ((3, 1, None), (4, 2, 0))


def subpixel_kernel(kernel):
    """The [3, 3, in, 4 * out] stride-1 conv filter whose output, through
    `depth_to_space(2)`, equals the 5x5 stride-2 SAME `conv2d_transpose` with `kernel`
    [5, 5, out, in]. Output channel (2 * ry + rx) * out + o is phase (ry, rx) of channel o.
    Built with gathers and zeros of `kernel`, so gradients reach the original filter."""
    if tuple(kernel.shape[:2]) != (5, 5):
        raise ValueError(f"subpixel_kernel: a 5x5 transposed-conv filter, got {kernel.shape}")
    k = tf.transpose(kernel, [0, 1, 3, 2])  # [5, 5, in, out]
    zero = tf.zeros_like(k[0])  # [5, in, out]
    phases = []
    for ry in range(2):
        rows = tf.stack([k[t] if t is not None else zero for t in _SUBPIXEL_TAPS[ry]])  # [3,5,in,out]
        for rx in range(2):
            cols = [rows[:, t] if t is not None else tf.zeros_like(rows[:, 0]) for t in _SUBPIXEL_TAPS[rx]]
            phases.append(tf.stack(cols, axis=1))  # [3, 3, in, out]
    return tf.concat(phases, axis=-1)


def subpixel_conv2d_transpose(x, kernel):
    """`tf.nn.conv2d_transpose(x, kernel, 2H x 2W, strides=2, padding="SAME")` for a 5x5
    `kernel` [5, 5, out, in], as one 3x3 stride-1 convolution over `x` (all four output
    phases at once) and `tf.nn.depth_to_space(., 2)`: the same function, values and
    gradients of every order (tests/test_layers.py), no transposed convolution."""
    return tf.nn.depth_to_space(
        tf.nn.conv2d(x, subpixel_kernel(kernel), strides=1, padding="SAME"), 2)


class SubPixelConv2DTranspose(keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose(filters, 5, strides=2, padding="same")` computed in
    the sub-pixel form (`subpixel_conv2d_transpose`). Same weights, names and shapes, so
    snapshots and exports of either layer load into the other."""

    def __init__(self, filters, kernel_size=5, strides=2, padding="same", **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, **kwargs)
        _require_5x5_stride_2(self, "SubPixelConv2DTranspose")

    def call(self, inputs):
        kernel = tf.cast(self.kernel, inputs.dtype)
        y = subpixel_conv2d_transpose(inputs, kernel)
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.cast(self.bias, y.dtype))
        return self.activation(y) if self.activation is not None else y


# The stride-2 5x5 SAME convolutions of dcgan32 with faster gradients (`--kernels fast`).
# TensorFlow's registered gradients run the slow oneDNN paths on this CPU: a filter
# gradient (Conv2DBackpropFilter) at a third to half of the forward convolution's rate, and
# a transposed convolution to one or three channels (the critic's input gradient, the
# generator's output layer) at about 15 GFLOP/s (docs/performance.md). The functions below
# compute the same values and gradients of every order with other ops: the filter gradient
# as a dilated stride-1 convolution over the batch, a transposed convolution to few
# channels in the sub-pixel form. Each one's gradient is written with the others, so the
# critic's gradient-penalty double backward stays on the fast paths too.

# At or below this many channels a transposed convolution's output is computed in the
# sub-pixel form, and a filter gradient over that few input channels with TF's own op.
FEW_CHANNELS = 4


def _same_pads(size: int) -> tuple[int, int]:
    """Padding before and after of a 5x5 stride-2 SAME convolution over `size` pixels."""
    total = max((-(-size // 2) - 1) * 2 + 5 - size, 0)
    return total // 2, total - total // 2


def conv2d_filter_gradient(x, dy):
    """The gradient with respect to W [5, 5, in, out] of `tf.nn.conv2d(x, W, 2, "SAME")`
    whose output has gradient `dy`: sum over images and positions of x[2i + k - p] dy[i].

    That is a convolution of the padded `x` with `dy` as the filter, the batch as its input
    channels and dilation 2: one stride-1 convolution, twice as fast as
    Conv2DBackpropFilter on the critic's wider layers here. Over few input channels TF's
    own op is faster and is used."""
    if x.shape[-1] <= FEW_CHANNELS:
        return tf.compat.v1.nn.conv2d_backprop_filter(
            x, [5, 5, x.shape[-1], dy.shape[-1]], dy, [1, 2, 2, 1], "SAME")
    (top, bottom), (left, right) = _same_pads(x.shape[1]), _same_pads(x.shape[2])
    padded = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
    grad = tf.nn.conv2d(tf.transpose(padded, [3, 1, 2, 0]), tf.transpose(dy, [1, 2, 0, 3]),
                        strides=1, padding="VALID", dilations=2)  # [in, 5, 5, out]
    return tf.transpose(grad, [1, 2, 0, 3])


def conv2d_s2(x, kernel):
    """`tf.nn.conv2d(x, kernel, 2, "SAME")` for a 5x5 `kernel` [5, 5, in, out], with the
    fast gradients: the input gradient is `conv2d_transpose_s2`, the filter gradient
    `conv2d_filter_gradient`. Same values and gradients of every order (to float rounding;
    tests/test_layers.py)."""
    in_hw = (x.shape[1], x.shape[2])

    @tf.custom_gradient
    def conv(x, kernel):
        def grad(dy):
            return conv2d_transpose_s2(dy, kernel, in_hw), conv2d_filter_gradient(x, dy)
        return tf.nn.conv2d(x, kernel, strides=2, padding="SAME"), grad
    return conv(x, kernel)


def conv2d_transpose_s2(x, kernel, out_hw=None, subpixel: bool | None = None):
    """`tf.nn.conv2d_transpose(x, kernel, [N, *out_hw, out], 2, "SAME")` for a 5x5 `kernel`
    [5, 5, out, in] (out_hw defaults to twice x's size), with the fast gradients: the input
    gradient is `conv2d_s2`, the filter gradient `conv2d_filter_gradient` with the roles of
    input and output swapped. Computed in the sub-pixel form when `subpixel` (default: when
    out <= FEW_CHANNELS and out_hw is twice the input's size)."""
    out_hw = tuple(out_hw or (2 * x.shape[1], 2 * x.shape[2]))
    if subpixel is None:
        subpixel = kernel.shape[2] <= FEW_CHANNELS
    subpixel = subpixel and out_hw == (2 * x.shape[1], 2 * x.shape[2])

    @tf.custom_gradient
    def conv_transpose(x, kernel):
        if subpixel:
            y = subpixel_conv2d_transpose(x, kernel)
        else:
            y = tf.nn.conv2d_transpose(
                x, kernel, tf.stack([tf.shape(x)[0], out_hw[0], out_hw[1], kernel.shape[2]]),
                strides=2, padding="SAME")

        def grad(dy):
            return conv2d_s2(dy, kernel), conv2d_filter_gradient(dy, x)
        return y, grad
    return conv_transpose(x, kernel)


def bias_add(x, bias):
    """`x + bias` over the last axis, whose bias gradient is summed in float32.

    A bias gradient is a sum over every image and position that nearly cancels; summed in
    bf16 it loses its digits. With the fast kernels' layers adding the bias as Keras's
    layer does, RA's critic conv2/conv3 biases ended 16 plain bf16 updates 40% (of how far
    they moved) off the float32 run's when TensorFlow saw two logical CPU devices (as
    --strategy mirrored makes), where TF's kernels stayed within 1% (tests/test_distribute.py).
    Summing a float32 copy of the upstream gradient keeps every weight within 8%.
    """
    bias = tf.cast(bias, x.dtype)

    @tf.custom_gradient
    def add(x, bias):
        def grad(dy):
            axes = list(range(dy.shape.rank - 1))
            return dy, tf.cast(tf.reduce_sum(tf.cast(dy, tf.float32), axes), bias.dtype)
        return x + bias, grad
    return add(x, bias)


class FastConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D(filters, 5, strides=2, padding="same")` computed with
    `conv2d_s2`. Same weights, names and shapes as the Keras layer."""

    def __init__(self, filters, kernel_size=5, strides=2, padding="same", **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, **kwargs)
        _require_5x5_stride_2(self, "FastConv2D")

    def call(self, inputs):
        y = conv2d_s2(inputs, tf.cast(self.kernel, inputs.dtype))
        if self.use_bias:
            y = bias_add(y, self.bias)
        return self.activation(y) if self.activation is not None else y


class FastConv2DTranspose(keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose(filters, 5, strides=2, padding="same")` computed with
    `conv2d_transpose_s2` (`subpixel`: its sub-pixel choice; None picks it for few output
    channels). Same weights, names and shapes as the Keras layer."""

    def __init__(self, filters, kernel_size=5, strides=2, padding="same", subpixel=None,
                 **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, **kwargs)
        _require_5x5_stride_2(self, "FastConv2DTranspose")
        self.subpixel = subpixel

    def call(self, inputs):
        y = conv2d_transpose_s2(inputs, tf.cast(self.kernel, inputs.dtype),
                                subpixel=self.subpixel)
        if self.use_bias:
            y = bias_add(y, self.bias)
        return self.activation(y) if self.activation is not None else y


def _require_5x5_stride_2(layer, name: str) -> None:
    if tuple(layer.kernel_size) != (5, 5) or tuple(layer.strides) != (2, 2) or \
            layer.padding != "same" or layer.data_format != "channels_last" or \
            tuple(layer.dilation_rate) != (1, 1) or getattr(layer, "groups", 1) != 1:
        raise ValueError(f"{name}: only 5x5, stride 2, 'same', channels_last, undilated")


def _gradient_registry() -> dict | None:
    """TensorFlow's global name -> gradient function table (private; None if it moved)."""
    return getattr(getattr(tf_ops, "_gradient_registry", None), "_registry", None)


def custom_gradient_names() -> frozenset[str]:
    """The names under which traced `tf.custom_gradient` calls registered their gradients."""
    registry = _gradient_registry()
    return frozenset(k for k in (registry or {}) if k.startswith("CustomGradient-"))


def forget_custom_gradients(names) -> None:
    """Drops these registrations, and with them the traces their gradient functions hold.

    Only for traces that are gone: the registry serves symbolic gradients of a graph
    (`tf.gradients`), which a dead trace never asks for again; tapes keep their own copy.
    """
    registry = _gradient_registry()
    for name in names if registry is not None else ():
        registry.pop(name, None)


class ConditionalBatchNorm(keras.layers.Layer):
    """Batch normalisation with a per-class scale and offset (NHWC).

    Normalises over (N, H, W) (over N for 2-D inputs) with the current batch's statistics,
    then applies `gamma[label]` and `beta[label]`. With `num_groups=G` the batch is split
    into G equal consecutive groups, each normalised with its own statistics: this equals G
    separate calls (the release generates every class as its own batch) in one kernel.

    Args:
      num_classes: rows of the scale/offset tables (release: 10).
      epsilon: variance epsilon (release: 1e-5).
    """

    def __init__(self, num_classes: int = 10, epsilon: float = 1e-5, **kwargs):
        # Statistics in float32 also in a bf16 model: a bfloat16 input is cast up.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.gamma = self.add_weight(name="gamma", shape=(self.num_classes, channels),
                                     initializer="ones", trainable=True)
        self.beta = self.add_weight(name="beta", shape=(self.num_classes, channels),
                                    initializer="zeros", trainable=True)

    def call(self, x, labels, num_groups: int = 1):
        labels = tf.convert_to_tensor(labels)
        if labels.shape.rank != 1:
            raise ValueError(
                f"ConditionalBatchNorm expects labels of rank 1 (one per image), got shape "
                f"{labels.shape}")
        if not labels.dtype.is_integer:
            raise ValueError(f"ConditionalBatchNorm labels must be integers, got {labels.dtype}")
        tf.debugging.assert_less(labels, tf.cast(self.num_classes, labels.dtype),
                                 message=f"label >= num_classes ({self.num_classes})")
        tf.debugging.assert_non_negative(labels, message="negative label")
        normalized = batch_normalize(x, num_groups, self.epsilon)
        gamma = tf.gather(self.gamma, labels)
        beta = tf.gather(self.beta, labels)
        extra = [1] * (x.shape.rank - 2)
        gamma = tf.reshape(gamma, [-1] + extra + [gamma.shape[-1]])
        beta = tf.reshape(beta, [-1] + extra + [beta.shape[-1]])
        return normalized * gamma + beta

    def compute_output_shape(self, input_shape, labels_shape=None):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "epsilon": self.epsilon})
        return config


# ----------------------------------------------------------- the 64x64 (LSUN) model's layers


def conv_init_glorot(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> keras.initializers.Initializer:
    """tflib Conv2D with he_init=False: stdev sqrt(2 / (fan_in + fan_out)), same fans."""
    fan_in = in_ch * kernel * kernel
    fan_out = out_ch * kernel * kernel / stride ** 2
    return tflib_uniform(math.sqrt(2.0 / (fan_in + fan_out)))


def mean_pool_2x2(x):
    """Average of each 2x2 block (NHWC), as the release's MeanPoolConv/ConvMeanPool."""
    return tf.nn.avg_pool2d(x, ksize=2, strides=2, padding="VALID")


def upsample_2x(x):
    """Nearest-neighbour 2x upsampling (NHWC), written as the release's UpsampleConv does
    it: the input repeated 4 times on channels, then depth-to-space with block 2."""
    return tf.nn.depth_to_space(tf.concat([x, x, x, x], axis=-1), 2)


class _ScaleOffsetNorm(keras.layers.Layer):
    """A normalisation with a per-channel scale (init 1) and offset (init 0)."""

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        kwargs.setdefault("dtype", "float32")  # statistics in float32, as ConditionalBatchNorm
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.scale = self.add_weight(name="scale", shape=(channels,), initializer="ones",
                                     trainable=True)
        self.offset = self.add_weight(name="offset", shape=(channels,), initializer="zeros",
                                      trainable=True)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config


class LayerNorm(_ScaleOffsetNorm):
    """Per-sample normalisation over all non-batch axes with a per-channel scale and offset.

    The release's `tflib.ops.layernorm.Layernorm(name, [1, 2, 3], x)` on NCHW data: mean and
    variance of each sample over (C, H, W), epsilon 1e-5, then `scale[c]` (init 1) and
    `offset[c]` (init 0). Here in NHWC the channel is the last axis. It does not mix
    samples, so a critic built with it can be called on concatenated batches.

    Args:
      epsilon: variance epsilon (release: 1e-5).
    """

    def call(self, x):
        mean, var = tf.nn.moments(x, axes=list(range(1, x.shape.rank)), keepdims=True)
        return (x - mean) * tf.math.rsqrt(var + self.epsilon) * self.scale + self.offset


class BatchNorm(_ScaleOffsetNorm):
    """Plain batch normalisation that ALWAYS uses the current batch's statistics (NHWC).

    The release's generator BN of the 64x64 model (`tflib.ops.batchnorm`, fused, no
    `is_training`): mean and biased variance over (N, H, W), epsilon 1e-5, per-channel
    scale (init 1) and offset (init 0); its moving averages are never used, so none are
    kept here. `num_groups=G` normalises G equal consecutive groups of the batch
    separately, which equals G separate calls.

    Args:
      epsilon: variance epsilon (release: 1e-5).
    """

    def call(self, x, num_groups: int = 1):
        return batch_normalize(x, num_groups, self.epsilon) * self.scale + self.offset
