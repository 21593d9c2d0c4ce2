"""The release's 64x64 conditional WGAN-GP AC-GAN for LSUN (`network/gan64_model.py`), NHWC.

Generator(z, c): [z, one-hot(c)] -> Linear -> 4x4x8D; four residual up blocks
(8D -> 8D -> 4D -> 2D -> D, 4x4 -> 64x64) with plain batch-statistics BN; BN, ReLU,
conv 3x3 D -> 3, tanh.
Critic(x): conv 3x3 3 -> D; four residual down blocks (D -> 2D -> 4D -> 8D -> 8D,
64x64 -> 4x4) with per-sample LayerNorm; a Wasserstein head (1 logit) and an AC head
(10 class logits) on the flattened 4x4x8D features.

Initialisation as tflib: he_init for every 3x3 conv except the critic's input conv, glorot
for the critic's input conv and every 1x1 shortcut, glorot for the linear layers, zero
biases; the first 3x3 conv of each residual block has no bias. With D = 64 the trainable
parameters are G 8,622,403 and D 7,573,771 (tests/test_resnet64.py derives them by hand).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from mergan_tf import layers as L


def _conv(in_ch, out_ch, kernel, he_init=True, use_bias=True, name=None):
    """A stride-1 'same' conv with tflib's initialisation."""
    init = (L.conv_init if he_init else L.conv_init_glorot)(in_ch, out_ch, kernel, 1)
    return keras.layers.Conv2D(out_ch, kernel, padding="same", use_bias=use_bias,
                               kernel_initializer=init, name=name)


class ResidualBlockUp(keras.layers.Layer):
    """Release `ResidualBlock(resample='up', bn=True)`: doubles the resolution.

    out = UpsampleConv1x1(x) + Conv3x3(ReLU(BN(UpsampleConv3x3(ReLU(BN(x)))))).
    """

    def __init__(self, in_ch: int, out_ch: int, **kwargs):
        super().__init__(**kwargs)
        self.in_ch, self.out_ch = int(in_ch), int(out_ch)
        self.shortcut = _conv(in_ch, out_ch, 1, he_init=False, name="shortcut")
        self.bn1 = L.BatchNorm(name="bn1")
        self.conv1 = _conv(in_ch, out_ch, 3, use_bias=False, name="conv1")
        self.bn2 = L.BatchNorm(name="bn2")
        self.conv2 = _conv(out_ch, out_ch, 3, name="conv2")

    def call(self, x, num_groups: int = 1):
        shortcut = self.shortcut(L.upsample_2x(x))
        h = tf.nn.relu(self.bn1(x, num_groups=num_groups))
        h = self.conv1(L.upsample_2x(h))
        h = tf.nn.relu(self.bn2(h, num_groups=num_groups))
        return shortcut + self.conv2(h)

    def get_config(self):
        config = super().get_config()
        config.update({"in_ch": self.in_ch, "out_ch": self.out_ch})
        return config


class ResidualBlockDown(keras.layers.Layer):
    """Release `ResidualBlock(resample='down', bn=True)` of the critic: halves the resolution.

    out = Conv1x1(MeanPool(x)) + MeanPool(Conv3x3(ReLU(LN(Conv3x3(ReLU(LN(x))))))).
    """

    def __init__(self, in_ch: int, out_ch: int, **kwargs):
        super().__init__(**kwargs)
        self.in_ch, self.out_ch = int(in_ch), int(out_ch)
        self.shortcut = _conv(in_ch, out_ch, 1, he_init=False, name="shortcut")
        self.ln1 = L.LayerNorm(name="ln1")
        self.conv1 = _conv(in_ch, in_ch, 3, use_bias=False, name="conv1")
        self.ln2 = L.LayerNorm(name="ln2")
        self.conv2 = _conv(in_ch, out_ch, 3, name="conv2")

    def call(self, x):
        shortcut = self.shortcut(L.mean_pool_2x2(x))
        h = self.conv1(tf.nn.relu(self.ln1(x)))
        h = self.conv2(tf.nn.relu(self.ln2(h)))
        return shortcut + L.mean_pool_2x2(h)

    def get_config(self):
        config = super().get_config()
        config.update({"in_ch": self.in_ch, "out_ch": self.out_ch})
        return config


class Generator(keras.Model):
    """Conditional generator G(z, c) -> 64x64 images in [-1, 1], NHWC.

    Args:
      channels: output image channels (release 3).
      dim: width multiplier D (release 64).
      z_dim: noise size (release 128).
      num_classes: size of the one-hot label appended to z (release 10).
    """

    def __init__(self, channels: int = 3, dim: int = 64, z_dim: int = 128,
                 num_classes: int = 10, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.dim, self.z_dim, self.num_classes = channels, dim, z_dim, num_classes
        self.image_size = 64
        in_dim, units = z_dim + num_classes, 4 * 4 * 8 * dim
        self.fc = keras.layers.Dense(units, kernel_initializer=L.linear_init(in_dim, units),
                                     name="input")
        widths = [8 * dim, 8 * dim, 4 * dim, 2 * dim, dim]
        # One attribute per block (not a list): tf.train.Checkpoint tracks Keras 3 layers
        # through attributes, and a list attribute would silently drop out of snapshots.
        for i in range(4):
            setattr(self, f"res{i + 1}", ResidualBlockUp(widths[i], widths[i + 1], name=f"res{i + 1}"))
        self.bn_out = L.BatchNorm(name="bn_out")
        self.conv_out = _conv(dim, channels, 3, name="output")
        self(tf.zeros([2, z_dim]), tf.zeros([2], tf.int32))

    @property
    def blocks(self):
        return [self.res1, self.res2, self.res3, self.res4]

    def call(self, z, labels, num_groups: int = 1):
        """Generates images.

        Args:
          z: float32 [N, z_dim].
          labels: int [N] class labels in [0, num_classes).
          num_groups: split the batch into this many equal consecutive groups, each
            normalised with its own batch statistics (identical to one call per group).

        Returns:
          float32 [N, 64, 64, channels] in [-1, 1].

        Raises:
          ValueError: labels of the wrong rank or dtype.
        """
        labels = tf.convert_to_tensor(labels)
        if labels.shape.rank != 1 or not labels.dtype.is_integer:
            raise ValueError(f"Generator expects integer labels of rank 1, got {labels.dtype} "
                             f"{labels.shape}")
        # tf.one_hot maps an out-of-range label to zeros silently; fail loudly instead.
        tf.debugging.assert_less(labels, tf.cast(self.num_classes, labels.dtype),
                                 message=f"label >= num_classes ({self.num_classes})")
        tf.debugging.assert_non_negative(labels, message="negative label")
        x = tf.concat([z, tf.one_hot(labels, self.num_classes, dtype=z.dtype)], axis=1)
        x = tf.reshape(self.fc(x), [-1, 4, 4, 8 * self.dim])
        for block in self.blocks:
            x = block(x, num_groups=num_groups)
        x = tf.nn.relu(self.bn_out(x, num_groups=num_groups))
        return tf.cast(tf.tanh(self.conv_out(x)), tf.float32)  # float32 also in bf16

    def get_config(self):
        return {"channels": self.channels, "dim": self.dim, "z_dim": self.z_dim,
                "num_classes": self.num_classes, "name": self.name}


class Critic(keras.Model):
    """Critic D(x) -> (Wasserstein logit [N], AC class logits [N, num_classes]).

    LayerNorm is per sample, so calling it on a concatenation of batches equals calling it
    on each batch.

    Args:
      channels: input image channels (release 3).
      dim: width multiplier D (release 64).
      num_classes: AC head size (release 10).
    """

    def __init__(self, channels: int = 3, dim: int = 64, num_classes: int = 10, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.dim, self.num_classes = channels, dim, num_classes
        self.image_size = 64
        self.conv_in = _conv(channels, dim, 3, he_init=False, name="input")
        widths = [dim, 2 * dim, 4 * dim, 8 * dim, 8 * dim]
        for i in range(4):  # attributes, not a list: see Generator
            setattr(self, f"res{i + 1}", ResidualBlockDown(widths[i], widths[i + 1], name=f"res{i + 1}"))
        feat = 4 * 4 * 8 * dim
        self.wgan_head = keras.layers.Dense(1, kernel_initializer=L.linear_init(feat, 1), name="output")
        self.ac_head = keras.layers.Dense(num_classes, kernel_initializer=L.linear_init(feat, num_classes),
                                          name="acgan_output")
        self(tf.zeros([2, 64, 64, channels]))

    @property
    def blocks(self):
        return [self.res1, self.res2, self.res3, self.res4]

    def call(self, x):
        x = self.conv_in(x)
        for block in self.blocks:
            x = block(x)
        x = tf.reshape(x, [-1, 4 * 4 * 8 * self.dim])
        return (tf.cast(tf.reshape(self.wgan_head(x), [-1]), tf.float32),  # float32 also in bf16
                tf.cast(self.ac_head(x), tf.float32))

    def get_config(self):
        return {"channels": self.channels, "dim": self.dim, "num_classes": self.num_classes,
                "name": self.name}
