"""The release's 32x32 conditional WGAN-GP AC-GAN (`network/gan32_model.py`), in NHWC.

Generator(z, c): Linear 128 -> 4x4x4D, conditional BN, ReLU, three 5x5 stride-2 deconvs
(4D -> 2D -> D -> channels) with conditional BN + ReLU between them, tanh.
Critic(x): three 5x5 stride-2 convs (channels -> D -> 2D -> 4D) with LeakyReLU(0.2), no
normalisation, then a Wasserstein head (1 logit) and an AC head (10 class logits).
With D = 32 the trainable parameters are G 525,569 / D 279,563 for one channel and
G 527,171 / D 281,163 for three, as in the release.
"""

from __future__ import annotations

import functools

import keras
import tensorflow as tf

from mergan_tf import layers as L


class Generator(keras.Model):
    """Conditional generator G(z, c) -> images in [-1, 1], NHWC.

    Args:
      channels: output image channels.
      dim: width multiplier (release 32).
      z_dim: noise size (release 128).
      num_classes: rows of the conditional-BN tables (release 10).
      deconv: "transpose" (keras Conv2DTranspose) or "subpixel" (the same layers computed
        as a 3x3 convolution and depth_to_space; same weights).
      kernels: "fast" (`layers.FastConv2DTranspose`: the same function with faster
        gradients, and the output layer in the sub-pixel form) or "tf" (TensorFlow's ops
        and gradients). Same weights either way.
    """

    def __init__(self, channels: int = 1, dim: int = 32, z_dim: int = 128,
                 num_classes: int = 10, deconv: str = "transpose", kernels: str = "fast",
                 **kwargs):
        super().__init__(**kwargs)
        self.channels, self.dim, self.z_dim, self.num_classes = channels, dim, z_dim, num_classes
        self.deconv, self.kernels = deconv, kernels
        deconv_layer = _deconv_layer(deconv, kernels)
        self.image_size = 32
        self.fc = keras.layers.Dense(4 * 4 * 4 * dim, kernel_initializer=L.linear_init(z_dim, 4 * 4 * 4 * dim),
                                     name="input")
        widths = [4 * dim, 2 * dim, dim, channels]
        # One attribute per layer (not a list): tf.train.Checkpoint tracks Keras 3 layers
        # through attributes, and a list attribute would silently drop out of snapshots.
        for i in range(3):
            setattr(self, f"bn{i + 1}", L.ConditionalBatchNorm(num_classes, name=f"bn{i + 1}"))
            setattr(self, f"deconv{i + 2}", deconv_layer(
                widths[i + 1], 5, strides=2, padding="same",
                kernel_initializer=L.deconv_init(widths[i], widths[i + 1], 5, 2),
                name=f"deconv{i + 2}"))
        self.build_for_batch()

    @property
    def bns(self):
        return [self.bn1, self.bn2, self.bn3]

    @property
    def deconvs(self):
        return [self.deconv2, self.deconv3, self.deconv4]

    def build_for_batch(self):
        """Creates the weights by running a tiny batch."""
        self(tf.zeros([2, self.z_dim]), tf.zeros([2], tf.int32))

    def call(self, z, labels, num_groups: int = 1):
        """Generates images.

        Args:
          z: float32 [N, z_dim].
          labels: int32 [N] class labels.
          num_groups: split the batch into this many equal consecutive groups, each
            normalised with its own batch statistics (identical to one call per group).

        Returns:
          float32 [N, 32, 32, channels] in [-1, 1].
        """
        x = self.fc(z)
        x = tf.reshape(x, [-1, 4, 4, 4 * self.dim])
        for bn, deconv in zip(self.bns, self.deconvs):
            x = tf.nn.relu(bn(x, labels, num_groups=num_groups))
            x = deconv(x)
        return tf.cast(tf.tanh(x), tf.float32)  # float32 also when the layers run in bf16

    def get_config(self):
        return {"channels": self.channels, "dim": self.dim, "z_dim": self.z_dim,
                "num_classes": self.num_classes, "deconv": self.deconv,
                "kernels": self.kernels, "name": self.name}


def _deconv_layer(deconv: str, kernels: str):
    """The generator's transposed-convolution layer class for --deconv and --kernels."""
    if kernels == "fast":
        return functools.partial(L.FastConv2DTranspose,
                                 subpixel=True if deconv == "subpixel" else None)
    return {"transpose": keras.layers.Conv2DTranspose,
            "subpixel": L.SubPixelConv2DTranspose}[deconv]


class Critic(keras.Model):
    """Critic D(x) -> (Wasserstein logit [N], AC class logits [N, num_classes]).

    Has no batch-dependent layer, so calling it on a concatenation of batches equals
    calling it on each batch. `kernels`: "fast" (`layers.FastConv2D`, the same function
    with faster gradients) or "tf" (keras Conv2D); same weights either way.
    """

    def __init__(self, channels: int = 1, dim: int = 32, num_classes: int = 10,
                 kernels: str = "fast", **kwargs):
        super().__init__(**kwargs)
        self.channels, self.dim, self.num_classes = channels, dim, num_classes
        self.kernels = kernels
        conv_layer = L.FastConv2D if kernels == "fast" else keras.layers.Conv2D
        widths = [channels, dim, 2 * dim, 4 * dim]
        for i in range(3):  # attributes, not a list: see Generator
            setattr(self, f"conv{i + 1}", conv_layer(
                widths[i + 1], 5, strides=2, padding="same",
                kernel_initializer=L.conv_init(widths[i], widths[i + 1], 5, 2),
                name=f"conv{i + 1}"))
        feat = 4 * 4 * 4 * dim
        self.wgan_head = keras.layers.Dense(1, kernel_initializer=L.linear_init(feat, 1), name="output")
        self.ac_head = keras.layers.Dense(num_classes, kernel_initializer=L.linear_init(feat, num_classes),
                                          name="acgan_output")
        self(tf.zeros([2, 32, 32, channels]))

    @property
    def convs(self):
        return [self.conv1, self.conv2, self.conv3]

    def call(self, x):
        for conv in self.convs:
            x = L.leaky_relu(conv(x), 0.2)  # tf.nn.leaky_relu; its gradient reads y
        x = tf.reshape(x, [-1, 4 * 4 * 4 * self.dim])
        # float32 logits also when the layers run in bf16 (--mixed_precision)
        return (tf.cast(tf.reshape(self.wgan_head(x), [-1]), tf.float32),
                tf.cast(self.ac_head(x), tf.float32))

    def get_config(self):
        return {"channels": self.channels, "dim": self.dim, "num_classes": self.num_classes,
                "kernels": self.kernels, "name": self.name}


def count_trainable(model: keras.Model) -> int:
    """Number of trainable scalars of a model."""
    return int(sum(int(tf.size(v)) for v in model.trainable_variables))
