"""Classifier models: the release's evaluator networks, also DGR's solver.

The release scores a generator by classifying its samples with a classifier pretrained on
real data (an MLP for MNIST, a small VGG-like conv net for SVHN, a VGG16 over the ten LSUN
categories for LSUN); DGR's solver has the evaluator's architecture. The builders use
built-in Keras layers only, so a saved model reloads with plain
``keras.models.load_model`` and no project code. Every model takes float32 NHWC images in
[-1, 1] (the generators' tanh range) and outputs class LOGITS; the layer before the logits
is named ``"features"`` (used for FID and t-SNE embeddings). Training, storing and loading
evaluators is `mergan_tf.evaluation.classifiers`.
"""

import keras

FEATURES_LAYER = "features"
LOGITS_LAYER = "logits"
INPUT_RANGE = [-1.0, 1.0]


def default_arch(dataset, channels):
    """The release's evaluator architecture for a dataset.

    Args:
      dataset: dataset name, e.g. "mnist" or "svhn".
      channels: number of image channels.

    Returns:
      "vgg16" for LSUN, else "mlp" for one-channel (MNIST-like) data and "svhn_conv"
      otherwise.
    """
    if dataset == "lsun":
        return "vgg16"
    return "mlp" if channels == 1 else "svhn_conv"


def _mlp(x, dropout):
    """Release MNIST evaluator: 1024-512-256-128 ReLU MLP on raw pixels."""
    # The release fed raw pixels with a zero background; map [-1, 1] back to [0, 1].
    x = keras.layers.Rescaling(0.5, offset=0.5, name="to_unit_range")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate((1024, 512, 256)):
        x = keras.layers.Dense(units, activation="relu", name=f"fc{i + 1}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout{i + 1}")(x)
    return keras.layers.Dense(128, activation="relu", name=FEATURES_LAYER)(x)


def _svhn_conv(x, dropout):
    """Release SVHN evaluator: 3x3 convs 32,32 pool 64,64 pool 128x3 pool, FC 512-128."""
    for block, (filters, repeats) in enumerate(((32, 2), (64, 2), (128, 3))):
        for i in range(repeats):
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                    name=f"conv{block + 1}_{i + 1}")(x)
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"pool{block + 1}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(dropout, name="dropout1")(x)
    x = keras.layers.Dense(512, activation="relu", name="fc1")(x)
    x = keras.layers.Dropout(dropout, name="dropout2")(x)
    return keras.layers.Dense(128, activation="relu", name=FEATURES_LAYER)(x)


def _cnn(x, dropout):
    """A stronger small CNN: conv-BN-ReLU pairs, max-pooling, global average pooling."""
    for block, filters in enumerate((32, 64, 128)):
        for i in range(2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                    name=f"conv{block + 1}_{i + 1}")(x)
            x = keras.layers.BatchNormalization(name=f"bn{block + 1}_{i + 1}")(x)
            x = keras.layers.ReLU(name=f"relu{block + 1}_{i + 1}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{block + 1}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(dropout, name="dropout1")(x)
    return keras.layers.Dense(128, activation="relu", name=FEATURES_LAYER)(x)


# The release's LSUN evaluator (`pretrain/lsun_test.py`) subtracts the ImageNet mean of
# each channel from pixels in [0, 255] (it feeds BGR; the order is immaterial for weights
# learned from scratch).
_VGG_MEAN_RGB = (123.68, 116.779, 103.939)


def _vgg(x, dropout, widths, fc):
    """VGG16's 13 3x3 convs in 5 max-pooled blocks, then two ReLU FC layers."""
    x = keras.layers.Rescaling(127.5, offset=127.5, name="to_pixels")(x)
    x = keras.layers.Normalization(mean=list(_VGG_MEAN_RGB), variance=[1.0] * 3,
                                   name="vgg_mean")(x)
    for block, (filters, repeats) in enumerate(zip(widths, (2, 2, 3, 3, 3))):
        for i in range(repeats):
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                    name=f"conv{block + 1}_{i + 1}")(x)
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"pool{block + 1}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(fc[0], activation="relu", name="fc6")(x)
    x = keras.layers.Dropout(dropout, name="dropout1")(x)
    return keras.layers.Dense(fc[1], activation="relu", name=FEATURES_LAYER)(x)


def _vgg16(x, dropout):
    """Release LSUN evaluator: VGG16 convs (64-128-256-512-512) at 64x64, FC 1024-512."""
    return _vgg(x, dropout, (64, 128, 256, 512, 512), (1024, 512))


def _vgg_small(x, dropout):
    """The same layout at an eighth of the width, for tests and CPU trials."""
    return _vgg(x, dropout, (8, 16, 32, 64, 64), (128, 64))


_BODIES = {"mlp": _mlp, "svhn_conv": _svhn_conv, "cnn": _cnn, "vgg16": _vgg16,
           "vgg_small": _vgg_small}
ARCHITECTURES = tuple(_BODIES)  # ("mlp", "svhn_conv", "cnn", "vgg16", "vgg_small")


def build_classifier(arch, input_shape, num_classes=10, dropout=0.2):
    """Builds an evaluator classifier (uncompiled).

    Args:
      arch: one of ARCHITECTURES.
      input_shape: (height, width, channels) of the float32 [-1, 1] input images.
      num_classes: number of output logits.
      dropout: dropout rate after the hidden layers.

    Returns:
      A functional keras.Model from images to logits, with a layer named "features".

    Raises:
      ValueError: on an unknown architecture.
    """
    if arch not in _BODIES:
        raise ValueError(f"Unknown classifier arch {arch!r}; expected one of {ARCHITECTURES}")
    inputs = keras.Input(shape=tuple(input_shape), dtype="float32", name="images")
    features = _BODIES[arch](inputs, dropout)
    logits = keras.layers.Dense(num_classes, name=LOGITS_LAYER)(features)
    return keras.Model(inputs, logits, name=f"{arch}_classifier")
