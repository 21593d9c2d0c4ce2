"""The release's pretrained evaluators read from its TF1 checkpoints (`release:PREFIX`).

The tests save classifiers with known random weights under the release's variable names
(`pretrain/{mnist,svhn}_test.py`), load them through the reader and compare with a numpy
forward pass of those weights on the release's test-mode input transform.
"""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import release_reference as ref
from release_checkpoints import file_digests, random_arrays, save_release_checkpoint
from mergan_tf import release_import, snapshots
from mergan_tf.evaluation import classifiers, evaluators, monitor, protocol, release_classifiers

# The release's variables, transcribed from pretrain/mnist_test.py and svhn_test.py.
MNIST_LAYERS = [("fc1", (1024, 1024)), ("fc2", (1024, 512)), ("fc3", (512, 256)),
                ("fc4", (256, 128)), ("fc5", (128, 10))]
SVHN_CONVS = [("svhn_conv1_1", (3, 3, 3, 32)), ("svhn_conv1_2", (3, 3, 32, 32)), "pool",
              ("svhn_conv2_1", (3, 3, 32, 64)), ("svhn_conv2_2", (3, 3, 64, 64)), "pool",
              ("svhn_conv3_1", (3, 3, 64, 128)), ("svhn_conv3_2", (3, 3, 128, 128)),
              ("svhn_conv3_3", (3, 3, 128, 128)), "pool"]
SVHN_FCS = [("svhn_fc5_lsun10", (2048, 512)), ("svhn_fc6_lsun10", (512, 128)),
            ("svhn_fc7_lsun10", (128, 10))]


def release_weights(layers, seed):
    """name -> array for `<scope>/<scope>_weights|filters` and `_biases`, He-scaled."""
    rs = np.random.RandomState(seed)
    arrays = {}
    for layer in layers:
        if layer == "pool":
            continue
        name, shape = layer
        kind = "filters" if len(shape) == 4 else "weights"
        fan_in = int(np.prod(shape[:-1]))
        arrays[f"{name}/{name}_{kind}"] = (rs.randn(*shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        arrays[f"{name}/{name}_biases"] = (0.1 * rs.randn(shape[-1])).astype(np.float32)
    return arrays


def synthetic_digits(labels, rs):
    """[-1, 1] images [N, 32, 32, 1]: class c is a bright 6x6 block at its own place."""
    images = np.full((len(labels), 32, 32, 1), -1.0)
    for i, c in enumerate(labels):
        row, col = 4 + 12 * (c // 5), 1 + 6 * (c % 5)
        images[i, row:row + 6, col:col + 6] = 1.0
    return np.clip(images + 0.3 * rs.randn(*images.shape), -1, 1).astype(np.float32)


def trained_mlp_weights(steps=60):
    """The release's MNIST MLP trained here for a few steps on `synthetic_digits`, fed as
    the release feeds it (0..256 values), as release name -> array."""
    rs = np.random.RandomState(0)
    labels = rs.randint(0, 10, 64 * steps)
    x = release_input(synthetic_digits(labels, rs)).reshape(len(labels), 1024).astype(np.float32)
    keras.utils.set_random_seed(0)
    layers = [keras.layers.Dense(shape[1], activation="relu" if name != "fc5" else None, name=name)
              for name, shape in MNIST_LAYERS]
    model = keras.Sequential([keras.Input((1024,))] + layers)
    model.compile(keras.optimizers.Adam(1e-4),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, labels, batch_size=64, epochs=1, verbose=0)
    arrays = {}
    for name, _ in MNIST_LAYERS:
        weights, biases = model.get_layer(name).get_weights()
        arrays[f"{name}/{name}_weights"], arrays[f"{name}/{name}_biases"] = weights, biases
    return arrays


def with_adam_slots(arrays):
    """The optimizer state a checkpoint of the release's pretraining holds too."""
    slots = {f"{n}/Adam": np.zeros_like(v) for n, v in list(arrays.items())[:3]}
    return {**arrays, **slots, "beta1_power": np.float32(0.9), "beta2_power": np.float32(0.999)}


def release_input(images):
    """The release's test mode: (samples * 128 + 128).astype(int), NHWC."""
    return (np.asarray(images, np.float32) * 128 + 128).astype(int)


def dense(h, p, name, relu=True):
    out = h @ p[f"{name}/{name}_weights"].astype(np.float64) + p[f"{name}/{name}_biases"]
    return np.maximum(out, 0) if relu else out


def mlp_logits(p, images):
    h = release_input(images).reshape(len(images), 1024).astype(np.float64)
    for name, _ in MNIST_LAYERS[:-1]:
        h = dense(h, p, name)
    return dense(h, p, "fc5", relu=False)


def svhn_logits(p, images):
    rgb = release_input(images).astype(np.float64)
    bgr = np.stack([rgb[..., 2] - 103.939, rgb[..., 1] - 116.779, rgb[..., 0] - 123.68], -1)
    h = bgr.transpose(0, 3, 1, 2)
    for layer in SVHN_CONVS:
        if layer == "pool":
            n, c, hh, ww = h.shape
            h = h.reshape(n, c, hh // 2, 2, ww // 2, 2).max(axis=(3, 5))
        else:
            name = layer[0]
            h = np.maximum(ref.conv2d(h, p[f"{name}/{name}_filters"].astype(np.float64),
                                      p[f"{name}/{name}_biases"]), 0)
    h = h.transpose(0, 2, 3, 1).reshape(len(h), -1)  # the release reshapes NHWC
    for name, _ in SVHN_FCS[:-1]:
        h = dense(h, p, name)
    return dense(h, p, SVHN_FCS[-1][0], relu=False)


def rel_err(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def test_release_input_transform_truncates_like_astype_int():
    k = np.arange(0, 257, dtype=np.float32)
    exact = (k - 128) / 128  # exactly k after * 128 + 128
    below = np.nextafter(exact, np.float32(-2))
    x = np.concatenate([exact, below[1:], np.random.RandomState(0).uniform(-1, 1, 500)])
    x = x.astype(np.float32).reshape(-1, 1, 1, 1)
    out = release_classifiers.ReleaseTestInput()(tf.constant(x)).numpy()
    np.testing.assert_array_equal(out, release_input(x))
    assert out.min() == 0 and out.max() == 256


@pytest.fixture(scope="module")
def mnist_evaluator(tmp_path_factory):
    arrays = trained_mlp_weights()
    prefix = str(tmp_path_factory.mktemp("pretrain") / "mnist" / "mnist.model-10197")
    return save_release_checkpoint(prefix, with_adam_slots(arrays)), arrays


def test_mnist_evaluator_predicts_as_the_numpy_forward_pass(mnist_evaluator):
    prefix, arrays = mnist_evaluator
    before = file_digests(prefix)
    model, meta = evaluators.load_evaluator("release:" + prefix, dataset="mnist")
    assert file_digests(prefix) == before
    assert meta["kind"] == "release" and meta["test_accuracy"] is None and meta["arch"] == "mlp"
    rs = np.random.RandomState(1)
    labels = rs.randint(0, 10, 200)
    images = synthetic_digits(labels, rs)
    expected = mlp_logits(arrays, images)
    assert rel_err(classifiers.predict_logits(model, images), expected) < 1e-4
    predicted = classifiers.predict_labels(model, images)
    np.testing.assert_array_equal(predicted, expected.argmax(1))
    assert np.mean(predicted == labels) > 0.5  # it learned something: predictions differ
    features = classifiers.penultimate_features(model, images[:4])
    assert features.shape == (4, 128)


def test_svhn_evaluator_predicts_as_the_numpy_forward_pass(tmp_path):
    arrays = release_weights(SVHN_CONVS + SVHN_FCS, seed=2)
    prefix = save_release_checkpoint(str(tmp_path / "svhn.model-25654"), with_adam_slots(arrays))
    model, meta = evaluators.load_evaluator("release:" + prefix, dataset="svhn")
    images = np.random.RandomState(3).uniform(-1, 1, (16, 32, 32, 3)).astype(np.float32)
    expected = svhn_logits(arrays, images)
    assert rel_err(classifiers.predict_logits(model, images), expected) < 1e-4
    np.testing.assert_array_equal(classifiers.predict_labels(model, images), expected.argmax(1))
    assert len(set(expected.argmax(1))) > 1
    assert meta["arch"] == "svhn_conv" and "BGR" in meta["input_transform"]


def test_lsun_layout_and_the_missing_release_weights(tmp_path):
    spec = release_classifiers.SPECS["lsun"]
    expected = release_classifiers.expected_variables(spec)
    assert expected["fc6_lsun10/fc6_lsun10_weights"] == (2048, 1024)
    assert expected["conv5_3/conv5_3_filters"] == (3, 3, 512, 512) and len(expected) == 32
    with pytest.raises(classifiers.EvaluatorError, match="does not ship the LSUN classifier"):
        evaluators.load_evaluator("release:" + str(tmp_path / "lsun10.model-100002"), dataset="lsun")


def test_wrong_checkpoints_and_options_are_refused(tmp_path, mnist_evaluator):
    prefix, _ = mnist_evaluator
    with pytest.raises(classifiers.EvaluatorError, match="pretrain/mnist/mnist.model-10197") as e:
        evaluators.load_evaluator("release:" + str(tmp_path / "none"), dataset="mnist")
    assert "none.index does not exist" in str(e.value)
    with pytest.raises(classifiers.EvaluatorError) as e:
        evaluators.load_evaluator("release:" + prefix, dataset="svhn")
    assert "svhn_conv1_1/svhn_conv1_1_filters [3, 3, 3, 32]" in str(e.value)  # expected
    assert "fc1/fc1_weights [1024, 1024]" in str(e.value)  # found
    assert "It is the release's mnist evaluator" in str(e.value)
    gan = save_release_checkpoint(str(tmp_path / "WGAN_GP.model0-4000"),
                                  random_arrays(ref.gan32_shapes(4, 1, old=False)))
    with pytest.raises(classifiers.EvaluatorError, match="import_release.py"):
        evaluators.load_evaluator("release:" + gan, dataset="mnist")
    with pytest.raises(classifiers.EvaluatorError, match="no recorded real-test accuracy"):
        evaluators.load_evaluator("release:" + prefix, min_accuracy=97.5, dataset="mnist")
    with pytest.raises(classifiers.EvaluatorError, match="not for 'cifar10'"):
        evaluators.load_evaluator("release:" + prefix, dataset="cifar10")


@pytest.fixture(scope="module")
def imported_run(tmp_path_factory):
    """A DIM-4 MNIST release GAN checkpoint of task 2, imported (no export)."""
    root = tmp_path_factory.mktemp("gan")
    prefix = save_release_checkpoint(str(root / "model" / "WGAN_GP.model1-4000"),
                                     random_arrays(ref.gan32_shapes(4, 1), seed=4, scale=0.5))
    out = str(root / "run")
    release_import.import_release([prefix], "mnist", out, method="jtr", export_samplers=False)
    return out


def test_evaluate_run_with_the_release_evaluator(imported_run, mnist_evaluator):
    prefix, arrays = mnist_evaluator
    results = protocol.evaluate_run(imported_run, classifier_dir="release:" + prefix, batches=2)
    assert set(results["tasks"]) == {"2"}
    accuracy = results["tasks"]["2"]["accuracy"]
    assert set(accuracy["per_class"]) == {0, 1} and 0 <= accuracy["mean"] <= 100
    with open(os.path.join(imported_run, "eval.json")) as f:
        stored = json.load(f)["evaluator"]
    assert stored["kind"] == "release" and stored["checkpoint"] == prefix
    with open(os.path.join(imported_run, "eval.md")) as f:
        md = f.read()
    assert "release evaluator" in md and prefix in md and "pretrain/mnist/mnist.model-10197" in md


def test_forgetting_monitor_uses_the_release_evaluator(imported_run, mnist_evaluator):
    prefix, arrays = mnist_evaluator
    cfg = snapshots.load_run_config(imported_run)
    cfg = cfg.replace(output=dataclasses.replace(cfg.output, eval_every=1, eval_samples_per_class=32,
                                                 evaluator_dir="release:" + prefix))
    watcher = monitor.forgetting_monitor(cfg)
    generator, _ = snapshots.load_generator(imported_run, 2)
    sample_fn = lambda z, labels: generator(z, labels).numpy()  # noqa: E731
    measured = watcher.measure(sample_fn, [0, 1])
    for c in (0, 1):
        images = sample_fn(watcher.z, tf.fill([32], c))
        expected = 100.0 * np.mean(mlp_logits(arrays, images).argmax(1) == c)
        assert measured[c] == pytest.approx(expected)
