"""Runs are sampled in the batch-norm regime they trained in (`mergan_tf.sampling`).

JT trains on batches that mix every class, the sequential methods on one-class batches,
and the generator's batch norm uses batch statistics, so a batch's images depend on the
other labels in it. The stand-in generator below makes that dependence absolute: its
images are recognisable only in the regime it is told it trained in, so a JT run scored
on one-class batches (or a sequential run on mixed ones) scores 0%.
"""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from mergan_tf import configs, export, figures, sampling
from mergan_tf.evaluation import metrics, monitor, protocol
from mergan_tf.run_dir import prepare_run_dir
from mergan_tf.trainer import Trainer

LEARNED = (0, 1, 2)


def regime_of_batch(labels, learned=LEARNED):
    """"class" (one label), "mixed" (every learned class, equal counts) or "other"."""
    counts = np.bincount(np.asarray(labels), minlength=10)
    if np.count_nonzero(counts) == 1:
        return sampling.CLASS
    if all(counts[c] == counts[learned[0]] for c in learned) and counts.sum() == \
            counts[list(learned)].sum():
        return sampling.MIXED
    return "other"


class MixAwareGenerator:
    """sample_fn whose image of label c shows c only in batches of the `trained` regime
    (else it shows c + 1); the evaluator below reads the shown class from pixels 0..9."""

    def __init__(self, trained):
        self.trained, self.batches = trained, []

    def __call__(self, z, labels):
        labels = np.asarray(labels)
        assert len(z) == len(labels)
        regime = regime_of_batch(labels)
        self.batches.append(regime)
        shown = labels if regime == self.trained else (labels + 1) % 10
        images = -np.ones((len(labels), 32, 32, 1), np.float32)
        images[np.arange(len(labels)), 0, shown, 0] = 1.0
        return images


def pixel_evaluator():
    """A Keras classifier whose features and logits are the first ten pixels of the top row."""
    x = keras.Input((32, 32, 1))
    flat = keras.layers.Flatten()(x)
    features = keras.layers.Dense(10, use_bias=False, name="features")(flat)
    logits = keras.layers.Dense(10, use_bias=False, name="logits")(features)
    model = keras.Model(x, logits)
    w = np.zeros((1024, 10), np.float32)
    w[np.arange(10), np.arange(10)] = 1.0
    model.get_layer("features").set_weights([w])
    model.get_layer("logits").set_weights([np.eye(10, dtype=np.float32)])
    return model


def test_sample_same_noise_mixed_batches_hold_every_class_equally():
    calls = []

    def sample_fn(z, labels):
        calls.append(np.asarray(labels))
        return np.asarray(z)[:, :1, None, None] * np.ones((1, 2, 2, 1), np.float32)

    z = np.random.RandomState(0).randn(64, 4).astype(np.float32)
    out = sampling.sample_same_noise(sample_fn, z, LEARNED, sampling.MIXED)
    # 100 // 3 = 33 per class at most: 64 rows in two chunks of 32, each batch 3 x 32.
    assert [len(c) for c in calls] == [96, 96]
    assert all(regime_of_batch(c) == sampling.MIXED for c in calls)
    for c in LEARNED:  # each class got exactly z, in order
        np.testing.assert_array_equal(out[c][:, 0, 0, 0], z[:, 0])
    calls.clear()
    out = sampling.sample_same_noise(sample_fn, z, LEARNED, sampling.CLASS)
    assert [len(c) for c in calls] == [64] * 3 and all(len(set(c)) == 1 for c in calls)
    with pytest.raises(ValueError, match="unknown batch regime"):
        sampling.sample_same_noise(sample_fn, z, LEARNED, "joint")


def test_mixed_batches_follow_the_release_test_batch():
    assert sampling.mixed_per_class(10) == 10  # joint.py: batches of 100, 0..9 ten times
    np.testing.assert_array_equal(sampling.mixed_batch_labels(range(10), 10),
                                  np.array(list(range(10)) * 10))
    assert sampling.mixed_per_class(5) == 20 and sampling.mixed_per_class(300) == 1
    assert sampling.regime_of("jt") == sampling.MIXED
    assert {sampling.regime_of(m) for m in configs.METHODS if m != "jt"} == {sampling.CLASS}


@pytest.mark.parametrize("trained", [sampling.CLASS, sampling.MIXED])
def test_class_accuracy_scores_in_the_given_regime(trained):
    evaluator = pixel_evaluator()
    for regime in sampling.REGIMES:
        gen = MixAwareGenerator(trained)
        acc = metrics.class_accuracy(gen, evaluator, LEARNED, batches=3, batch_size=64,
                                     regime=regime)
        assert set(gen.batches) == {regime}
        assert acc["n_per_class"] == 192 and acc["regime"] == regime
        expected = 100.0 if regime == trained else 0.0
        assert acc["per_class"] == {c: expected for c in LEARNED}
    # Mixed: 192 per class in batches of 33 per class -> 6 calls of 99 images.
    assert len(gen.batches) == 6


def _run_dir(tmp_path, method):
    cfg = configs.preset_config("mnist", method)
    cfg = cfg.replace(classes=LEARNED, out_dir=str(tmp_path / method))
    os.makedirs(cfg.out_dir)
    with open(os.path.join(cfg.out_dir, "config.json"), "w") as f:
        f.write(cfg.to_json())
    return cfg.out_dir


@pytest.mark.parametrize("method, trained", [("jt", sampling.MIXED), ("ra", sampling.CLASS),
                                             ("sft", sampling.CLASS)])
def test_evaluate_run_scores_jt_on_mixed_and_sequential_on_one_class_batches(
        tmp_path, monkeypatch, method, trained):
    run_dir = _run_dir(tmp_path, method)
    gen = MixAwareGenerator(trained)
    evaluator = pixel_evaluator()
    monkeypatch.setattr(protocol, "choose_after_tasks", lambda *a, **k: [3])
    monkeypatch.setattr(protocol, "load_evaluator", lambda *a, **k: (
        evaluator, {"arch": "mlp", "test_accuracy": 100.0}))
    monkeypatch.setattr(protocol, "load_sampler", lambda run_dir, task: (
        gen, {"classes": list(LEARNED)}, None))
    real = _tiny_real_data()
    result = protocol.evaluate_run(run_dir, batches=2, reverse_per_class=40, reverse_epochs=1,
                                   fid_per_class_n=40, real=real)
    assert set(gen.batches) == {trained}  # accuracy, reverse accuracy and FID samples
    assert result["protocol"]["batch_regime"] == trained
    assert result["tasks"]["3"]["accuracy"]["mean"] == 100.0
    with open(os.path.join(run_dir, "eval.md")) as f:
        report = f.read()
    assert sampling.describe(trained, len(LEARNED)) in report
    assert ("mixed batches" in report) == (method == "jt")
    with open(os.path.join(run_dir, "eval.json")) as f:
        assert json.load(f)["protocol"]["batch_regime"] == trained


def _tiny_real_data():
    from mergan_tf.data import ImageData
    rs = np.random.RandomState(0)
    labels = np.repeat(np.arange(3), 40)
    images = rs.randint(0, 256, (120, 32, 32, 1)).astype(np.uint8)
    return ImageData(name="mnist", source="test", train_images=images, train_labels=labels,
                     test_images=images, test_labels=labels, num_classes=10,
                     class_names=tuple(str(i) for i in range(10)))


@pytest.mark.parametrize("trained", [sampling.CLASS, sampling.MIXED])
def test_forgetting_monitor_measures_in_the_run_regime(tmp_path, trained):
    gen = MixAwareGenerator(trained)
    mon = monitor.ForgettingMonitor(pixel_evaluator(), str(tmp_path), samples_per_class=64,
                                    z_dim=8, regime=trained)
    assert mon(gen, LEARNED, step=1, task=3, iteration=0) == {c: 100.0 for c in LEARNED}
    assert set(gen.batches) == {trained}


def test_forgetting_monitor_of_a_jt_config_is_mixed(tmp_path, monkeypatch):
    from mergan_tf.evaluation import classifiers
    monkeypatch.setattr(classifiers, "load_classifier", lambda *a, **k: (
        pixel_evaluator(), {"test_accuracy": 100.0}))
    for method, regime in (("jt", sampling.MIXED), ("jtr", sampling.CLASS)):
        cfg = configs.preset_config("mnist", method)
        cfg = cfg.replace(out_dir=str(tmp_path), output=dataclasses.replace(cfg.output, eval_every=5))
        assert monitor.forgetting_monitor(cfg).regime == regime


@pytest.fixture(scope="module")
def jt_run(tmp_path_factory, mnist_data):
    """A tiny JT run over classes 0-2 (DIM 8, 2 iterations) whose sampler records the
    label mix of every call, for grids and the export."""
    cfg = configs.preset_config("mnist", "jt")
    out = tmp_path_factory.mktemp("jt")
    cfg = configs.validate(cfg.replace(
        classes=LEARNED, out_dir=str(out), model=dataclasses.replace(cfg.model, dim=8),
        train=dataclasses.replace(cfg.train, iters=2)))
    prepare_run_dir(cfg)
    trainer = Trainer(cfg, mnist_data)
    batches = []
    real_sample = trainer.sample

    def recording(z, labels):
        batches.append(regime_of_batch(labels))
        return real_sample(z, labels)
    trainer.sample = recording
    trainer.train()
    return trainer, batches, str(out)


def test_jt_training_grids_use_mixed_batches(jt_run):
    trainer, batches, run_dir = jt_run
    assert batches and set(batches) == {sampling.MIXED}
    # A grid row equals the images of the fixed noise generated in mixed batches.
    noise = np.load(os.path.join(run_dir, "fixed_noise.npy"))
    images = figures.class_images(trainer.generator, noise, LEARNED, sampling.MIXED)
    grid = figures.figure3_grid(run_dir, num_z=10, pad=2)
    h = images[0].shape[1]
    np.testing.assert_array_equal(grid[:h, :h], images[0][0])
    np.testing.assert_array_equal(grid[2 * (h + 2):2 * (h + 2) + h, :h], images[2][0])


def test_jt_export_samples_a_class_in_mixed_batches(jt_run):
    trainer, _, run_dir = jt_run
    path = os.path.join(run_dir, "export", "task_03")
    meta = export.read_export_metadata(path)
    assert meta["batch_regime"] == sampling.MIXED and meta["learned_classes"] == list(LEARNED)
    loaded = tf.saved_model.load(path)
    z = loaded.noise(8, 5)
    got = loaded.sample_class(8, 1, 5).numpy()
    np.testing.assert_array_equal(got, loaded.sample_mixed(z, tf.fill([8], 1)).numpy())
    # sample_mixed = one generator batch holding 8 of each learned class, request first.
    extra = tf.random.stateless_normal([16, trainer.cfg.model.z_dim], seed=tf.constant([0, 1], tf.int64))
    labels = tf.constant([1] * 8 + [0] * 8 + [2] * 8, tf.int32)
    full = trainer.generator(tf.concat([z, extra], 0), labels)
    np.testing.assert_array_equal(got, export.uint8_images(full[:8]).numpy())
    one_class = loaded.sample(z, tf.fill([8], 1)).numpy()
    assert np.abs(one_class.astype(int) - got.astype(int)).max() > 0  # the regime matters


def test_jt_serving_default_samples_in_mixed_batches(jt_run):
    _, _, run_dir = jt_run
    loaded = tf.saved_model.load(os.path.join(run_dir, "export", "task_03"))
    z = loaded.noise(8, 5)
    labels = tf.constant([1] * 5 + [2] * 3, tf.int32)
    got = loaded.signatures["serving_default"](z=z, labels=labels)["images"].numpy()
    np.testing.assert_array_equal(got, loaded.sample_mixed(z, labels).numpy())
    per_class = loaded.sample_per_class(z, labels).numpy()
    assert np.abs(per_class.astype(int) - got.astype(int)).max() > 0  # the regime matters


def test_sequential_export_samples_one_class_per_batch(tmp_path, mnist_data):
    from tiny_run import train_two_tasks
    trainer, _ = train_two_tasks("sft", mnist_data, tmp_path / "sft")
    loaded = tf.saved_model.load(str(tmp_path / "sft" / "export" / "task_02"))
    assert json.loads(loaded.metadata_json.numpy())["batch_regime"] == sampling.CLASS
    z = loaded.noise(8, 5)
    np.testing.assert_array_equal(loaded.sample_class(8, 1, 5).numpy(),
                                  loaded.sample(z, tf.fill([8], 1)).numpy())
