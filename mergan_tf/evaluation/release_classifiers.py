"""The release's pretrained evaluators (`pretrain/`), read from its TF1 checkpoints.

`evaluate.py --evaluator release:PREFIX` (and `--evaluator_dir release:PREFIX` for the
forgetting monitor) scores samples with the very classifiers behind the paper's tables:

| dataset | release checkpoint | network (`pretrain/<dataset>_test.py`) |
|---|---|---|
| mnist | `pretrain/mnist/mnist.model-10197` (shipped) | MLP 1024-1024-512-256-128-10 on the 32x32 = 1024 raw values |
| svhn | `pretrain/svhn/svhn.model-25654` (shipped) | 3x3 convs 32,32 pool 64,64 pool 128,128,128 pool, FC 512-128-10 |
| lsun | `pretrain/lsun10/lsun10.model-100002` (NOT shipped) | VGG16 convs at 64x64, FC 1024-512-10 |

The release does not ship the LSUN classifier's weights: `pretrain/pretrain_model.py` loads
`pretrain/lsun10/lsun10.model-100002`, which is not in its repository. An LSUN evaluator
has to be trained here (`scripts/train_classifier.py --dataset lsun`).

Variables (`tf.variable_scope(name)` + `get_variable(name + "_weights" | "_filters" |
"_biases")`; Adam slots and beta powers are ignored):

| release variable | shape | here (Keras layer) |
|---|---|---|
| `fc1/fc1_weights`, `fc1/fc1_biases` | [1024, 1024], [1024] | `fc1` |
| `fc2/...`, `fc3/...` | [1024, 512], [512, 256] | `fc2`, `fc3` |
| `fc4/fc4_weights` | [256, 128] | `features` |
| `fc5/fc5_weights` | [128, 10] | `logits` |
| `svhn_conv1_1/svhn_conv1_1_filters`, `_biases` | [3, 3, 3, 32] (HWIO) | `svhn_conv1_1` |
| `svhn_conv1_2`, `svhn_conv2_1`, `svhn_conv2_2` | [3,3,32,32], [3,3,32,64], [3,3,64,64] | same names |
| `svhn_conv3_1`, `svhn_conv3_2`, `svhn_conv3_3` | [3,3,64,128], [3,3,128,128] x 2 | same names |
| `svhn_fc5_lsun10/svhn_fc5_lsun10_weights` | [2048, 512] (rows: NHWC flatten of 4x4x128) | `svhn_fc5_lsun10` |
| `svhn_fc6_lsun10`, `svhn_fc7_lsun10` | [512, 128], [128, 10] | `features`, `logits` |
| `conv{1..5}_{i}/conv{b}_{i}_filters` (LSUN) | VGG16's, [3, 3, in, out] | same names |
| `fc6_lsun10`, `fc7_lsun10`, `fc8_lsun10` (LSUN) | [2048, 1024], [1024, 512], [512, 10] | `fc6_lsun10`, `features`, `logits` |

Feeding, as the release's test mode (`mergan.py --test`): the generator's tanh output x is
turned into `(x * 128 + 128).astype(int)` (0..256, truncated), put in NHWC, and given to
the network as floats; the MLP reads those 1024 values of a 32x32 image directly, the
conv nets (`svhn_test.py`, `lsun_test.py`) split RGB, reorder to BGR and subtract the VGG
means (103.939, 116.779, 123.68). Here the Keras model takes the project's evaluator input
(float NHWC in [-1, 1]) and does exactly that in its first layer (`ReleaseTestInput`), so
every evaluation path (accuracy, the forgetting monitor, FID features) feeds it as the
release did. No real-test accuracy is recorded for these networks (the release does not
store one), so no accuracy floor applies to them.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import keras
import tensorflow as tf

from mergan_tf import release
from mergan_tf.evaluation import classifiers
from mergan_tf.models import classifiers as classifier_models

VGG_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer of a release evaluator: kind "conv" (3x3 same, ReLU), "pool" (2x2 max,
    same) or "dense"; the release scope name, its weight shape, the Keras layer name."""

    kind: str
    name: str = ""
    shape: tuple[int, ...] = ()
    keras_name: str = ""


@dataclasses.dataclass(frozen=True)
class ReleaseEvaluator:
    """A release evaluator: where the release keeps it and what it is."""

    dataset: str
    release_file: str
    shipped: bool
    input_shape: tuple[int, int, int]
    bgr_mean: bool
    layers: tuple[Layer, ...]
    arch: str  # the project's architecture of the same layout (for reverse accuracy)
    description: str


def _convs(widths: list[tuple[int, int]], prefix: str, in_ch: int = 3) -> list[Layer]:
    """Blocks of (width, repeats) 3x3 convs, each block followed by a max-pool."""
    layers = []
    for block, (width, repeats) in enumerate(widths):
        for i in range(repeats):
            name = f"{prefix}conv{block + 1}_{i + 1}"
            layers.append(Layer("conv", name, (3, 3, in_ch, width), name))
            in_ch = width
        layers.append(Layer("pool"))
    return layers


def _dense(names: list[str], sizes: list[int]) -> list[Layer]:
    """Dense layers; the last two are named `features` and `logits` here."""
    keras_names = names[:-2] + [classifier_models.FEATURES_LAYER, classifier_models.LOGITS_LAYER]
    return [Layer("dense", n, (sizes[i], sizes[i + 1]), k)
            for i, (n, k) in enumerate(zip(names, keras_names))]


SPECS = {
    "mnist": ReleaseEvaluator(
        "mnist", "pretrain/mnist/mnist.model-10197", True, (32, 32, 1), False,
        tuple(_dense([f"fc{i}" for i in range(1, 6)], [1024, 1024, 512, 256, 128, 10])),
        "mlp", "the release's MNIST MLP 1024-1024-512-256-128-10"),
    "svhn": ReleaseEvaluator(
        "svhn", "pretrain/svhn/svhn.model-25654", True, (32, 32, 3), True,
        tuple(_convs([(32, 2), (64, 2), (128, 3)], "svhn_")
              + _dense([f"svhn_fc{i}_lsun10" for i in (5, 6, 7)], [2048, 512, 128, 10])),
        "svhn_conv", "the release's SVHN conv net (32,32,64,64,128x3; FC 512-128-10)"),
    "lsun": ReleaseEvaluator(
        "lsun", "pretrain/lsun10/lsun10.model-100002", False, (64, 64, 3), True,
        tuple(_convs([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], "")
              + _dense([f"fc{i}_lsun10" for i in (6, 7, 8)], [2048, 1024, 512, 10])),
        "vgg16", "the release's LSUN VGG16 over ten categories (FC 1024-512-10)"),
}

NOT_SHIPPED_NOTE = (
    "The release does not ship the LSUN classifier's weights (its pretrain_model.py loads "
    "pretrain/lsun10/lsun10.model-100002, which is not in the repository); train an LSUN "
    "evaluator here with scripts/train_classifier.py --dataset lsun and pass its directory.")


class ReleaseTestInput(keras.layers.Layer):
    """The release's test-mode input: float [-1, 1] -> floor(x * 128 + 128) (0..256, what
    `astype(int)` gives), then for the conv nets BGR order minus the VGG means.

    Args:
      bgr_mean: reorder RGB to BGR and subtract `VGG_MEAN_BGR` (svhn_test, lsun_test).
    """

    def __init__(self, bgr_mean: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.bgr_mean = bool(bgr_mean)

    def call(self, x):
        x = tf.floor(x * 128.0 + 128.0)
        if self.bgr_mean:
            x = tf.reverse(x, axis=[-1]) - tf.constant(VGG_MEAN_BGR, x.dtype)
        return x

    def get_config(self):
        return {**super().get_config(), "bgr_mean": self.bgr_mean}


def variable_names(layer: Layer) -> tuple[str, str]:
    """(weights, biases) names of a layer in the release's checkpoint."""
    kind = "filters" if layer.kind == "conv" else "weights"
    return f"{layer.name}/{layer.name}_{kind}", f"{layer.name}/{layer.name}_biases"


def expected_variables(spec: ReleaseEvaluator) -> dict[str, tuple[int, ...]]:
    """Release variable name -> shape of every weight of an evaluator."""
    expected = {}
    for layer in spec.layers:
        if layer.kind != "pool":
            weights, biases = variable_names(layer)
            expected[weights], expected[biases] = layer.shape, (layer.shape[-1],)
    return expected


def build_release_classifier(dataset: str) -> keras.Model:
    """The release's evaluator of `dataset` (random weights): float NHWC [-1, 1] -> logits."""
    spec = SPECS[dataset]
    inputs = keras.Input(shape=spec.input_shape, dtype="float32", name="images")
    x = ReleaseTestInput(spec.bgr_mean, name="release_test_input")(inputs)
    last = spec.layers[-1]
    for layer in spec.layers:
        if layer.kind == "conv":
            x = keras.layers.Conv2D(layer.shape[3], 3, padding="same", activation="relu",
                                    name=layer.keras_name)(x)
        elif layer.kind == "pool":
            x = keras.layers.MaxPooling2D(2, padding="same")(x)
        else:
            if len(x.shape) > 2:
                x = keras.layers.Flatten(name="flatten")(x)  # NHWC order, as the release's reshape
            x = keras.layers.Dense(layer.shape[1], activation=None if layer is last else "relu",
                                   name=layer.keras_name)(x)
    return keras.Model(inputs, x, name=f"release_{dataset}_evaluator")


def _guess(found: dict, dataset: str) -> str:
    """What a checkpoint that is not `dataset`'s evaluator looks like."""
    if any(n.startswith(release.NEW + "Generator.") for n in found):
        return ("It is a GAN checkpoint of the release: import it with scripts/import_release.py; "
                "the evaluators are the checkpoints in the release's pretrain/ folder.")
    for other, spec in SPECS.items():
        if other != dataset and all(tuple(found.get(n, ())) == s
                                    for n, s in expected_variables(spec).items()):
            return f"It is the release's {other} evaluator, for {other} runs."
    return ""


def _checked_prefix(path: str, spec: ReleaseEvaluator) -> str:
    try:
        return release.resolve_prefix(path)
    except release.ReleaseCheckpointError as e:
        note = "" if spec.shipped else " " + NOT_SHIPPED_NOTE
        raise classifiers.EvaluatorError(
            f"release evaluator for {spec.dataset}: {e} The release keeps it as "
            f"{spec.release_file}.{note}") from e


def load_release_classifier(path: str, dataset: Optional[str]):
    """The release's pretrained evaluator of `dataset` from its checkpoint `path`.

    Returns:
      (keras.Model taking float NHWC images in [-1, 1] and returning logits, metadata).

    Raises:
      classifiers.EvaluatorError: unknown dataset, missing files, another network's
        variables (expected and found names and shapes are listed).
    """
    if dataset not in SPECS:
        raise classifiers.EvaluatorError(
            f"the release has pretrained evaluators for mnist and svhn (lsun: not shipped), "
            f"not for {dataset!r}; pass --classifier_dir with an evaluator trained here")
    spec = SPECS[dataset]
    prefix = _checked_prefix(path, spec)
    expected = expected_variables(spec)
    try:
        found = release.read_shapes(prefix)
        release.check_variables(prefix, found, expected,
                                f"the release's {dataset} evaluator ({spec.release_file})",
                                hint=_guess(found, dataset))
        values = release.read_values(prefix, expected)
    except release.ReleaseCheckpointError as e:
        raise classifiers.EvaluatorError(str(e)) from e
    model = build_release_classifier(dataset)
    for layer in spec.layers:
        if layer.kind != "pool":
            weights, biases = variable_names(layer)
            model.get_layer(layer.keras_name).set_weights([values[weights], values[biases]])
    return model, _metadata(spec, prefix)


def _metadata(spec: ReleaseEvaluator, prefix: str) -> dict:
    return {"kind": "release", "arch": spec.arch, "dataset": spec.dataset,
            "description": spec.description, "release_file": spec.release_file,
            "checkpoint": os.path.abspath(prefix), "test_accuracy": None,
            "input_range": classifier_models.INPUT_RANGE, "output": "logits",
            "input_transform": "release test mode: (x * 128 + 128) truncated to integers"
                               + (", BGR minus the VGG means" if spec.bgr_mean else ", raw values")}
