"""LSUN end to end on a tiny folder in the release's layout: evaluator, training, Table 2
metrics (accuracy after every task through the evaluator ids, reverse accuracy, FID) and the
Figure 5 / Figure 7 PNGs.

The two categories are church_outdoor and tower, whose evaluator ids [8, 6] differ from the
task labels [0, 1], so a missing or wrong label map cannot pass unnoticed.
"""

import dataclasses
import os
import types

import numpy as np
import pytest
from PIL import Image

from mergan_tf import cli, data, figures, trainer
from mergan_tf.data import lsun
from mergan_tf.run_dir import prepare_run_dir
from mergan_tf.evaluation import classifiers, protocol
from mergan_tf.models import classifiers as classifier_models

CATEGORIES = ["church_outdoor", "tower"]
TRAIN, VAL = 12, 6


def write_release_layout(root, categories=CATEGORIES, seed=0):
    """<root>/<category>/{train,val}/NNN.png: 48x40 noise, one dominant colour channel per
    category (red, blue), easy for a small classifier."""
    rs = np.random.RandomState(seed)
    for k, category in enumerate(categories):
        for split, count in (("train", TRAIN), ("val", VAL)):
            folder = os.path.join(root, category, split)
            os.makedirs(folder)
            for i in range(count):
                img = rs.randint(0, 70, (40, 48, 3)).astype(np.uint8)
                img[..., 2 * k] += 160
                Image.fromarray(img).save(os.path.join(folder, f"{i:03d}.png"))
    return str(root)


@pytest.fixture(scope="module")
def lsun_dir(tmp_path_factory):
    return write_release_layout(tmp_path_factory.mktemp("lsun"))


@pytest.fixture(scope="module")
def evaluator_dir(lsun_dir, tmp_path_factory):
    """A vgg_small evaluator over the ten LSUN ids, trained on the tiny folder."""
    real = lsun.load_evaluator_data(lsun_dir, CATEGORIES, verbose=False)
    model, meta = classifiers.train_classifier(real, "vgg_small", epochs=12, batch_size=8)
    meta["test_accuracy"] = classifiers.evaluate_classifier(model, real.test_images,
                                                            real.test_labels)
    directory = str(tmp_path_factory.mktemp("evaluator"))
    classifiers.save_classifier(model, directory, meta)
    return directory


def test_evaluator_data_carries_the_release_ids(lsun_dir, evaluator_dir):
    real = lsun.load_evaluator_data(lsun_dir, CATEGORIES, verbose=False)
    assert real.num_classes == 10 and real.class_names[8] == "church_outdoor"
    np.testing.assert_array_equal(np.unique(real.train_labels), [6, 8])
    assert np.count_nonzero(real.test_labels == 8) == VAL
    model, meta = classifiers.load_classifier(evaluator_dir, min_accuracy=90.0, dataset="lsun")
    assert meta["arch"] == "vgg_small" and model.output_shape == (None, 10)
    assert classifier_models.default_arch("lsun", 3) == "vgg16"


def real_sampler(images_by_class):
    """A 'generator' that returns real images of the requested class (z only sets n)."""
    def sample(z, labels):
        pool = images_by_class[int(np.asarray(labels)[0])]
        return classifiers.to_classifier_input(pool[np.arange(len(z)) % len(pool)])
    return sample


def test_accuracy_compares_task_labels_through_the_evaluator_ids(lsun_dir, evaluator_dir):
    task_data = lsun.load_lsun(lsun_dir, CATEGORIES, verbose=False)   # labels 0, 1
    by_task = {c: task_data.test_images[task_data.test_labels == c] for c in (0, 1)}
    evaluator, _ = classifiers.load_classifier(evaluator_dir, dataset="lsun")
    mapped = protocol.evaluate_snapshot(real_sampler(by_task), [0, 1], evaluator, None,
                                        batches=1, batch_size=VAL,
                                        label_map=lsun.evaluator_ids(CATEGORIES))
    assert mapped["accuracy"]["mean"] >= 90.0
    unmapped = protocol.evaluate_snapshot(real_sampler(by_task), [0, 1], evaluator, None,
                                          batches=1, batch_size=VAL)
    assert unmapped["accuracy"]["mean"] <= 10.0  # ids 0/1 are bedroom/kitchen, never seen


def run_flags(**overrides):
    flags = dict(dataset="lsun", method="jtr", iters=2, tasks=None, classes=None,
                 ra_factor=None, data_dir=None, data_source="auto", out_dir=None, seed=0,
                 sample_every=None, checkpoint_every=None, log_every=None, batch_size=8,
                 model_dim=4, acgan_scale=None, eval_every=None, evaluator_dir=None,
                 min_evaluator_accuracy=None, ewc_lambda=None, ewc_samples=None,
                 ewc_accumulate=None, export=False, categories=CATEGORIES,
                 max_images_per_class=None)
    return types.SimpleNamespace(**{**flags, **overrides})


def test_tiny_lsun_run_through_table2_and_mosaics(lsun_dir, evaluator_dir, tmp_path,
                                                  monkeypatch):
    run_dir = str(tmp_path / "run")
    cfg = cli.config_from_flags(run_flags(data_dir=lsun_dir, out_dir=run_dir))
    assert (cfg.model.arch, cfg.method.reduce_batch, cfg.method.jtr_divide_by_t) == (
        "resnet64", False, True)
    # One compiled function per update (fewer, smaller traces than the fused iteration:
    # the same maths, tests/test_fast_paths.py) and 16 grid images keep this test short.
    cfg = cfg.replace(train=dataclasses.replace(cfg.train, fused_iteration=False),
                      output=dataclasses.replace(cfg.output, num_fixed_noise=16))
    real = data.load_for_config(cfg, verbose=False)
    prepare_run_dir(cfg)
    trainer.Trainer(cfg, real).train()
    assert os.path.exists(os.path.join(run_dir, "samples", "Task_2_Iter_1_0.png"))

    # Table 2: every task by default, accuracy through the ids, reverse accuracy, FID.
    results = protocol.evaluate_run(run_dir, classifier_dir=evaluator_dir, min_accuracy=0,
                                    batches=1, batch_size=8, reverse_per_class=8,
                                    reverse_epochs=1, fid_per_class_n=VAL)
    assert results["label_map"] == [8, 6] and results["categories"] == CATEGORIES
    assert list(results["tasks"]) == ["1", "2"]
    last = results["tasks"]["2"]
    assert last["classes"] == [0, 1]
    assert set(last["accuracy"]["per_class"]) == {0, 1}
    assert all(0.0 <= a <= 100.0 for a in last["accuracy"]["per_class"].values())
    assert 0.0 <= last["reverse_accuracy"] <= 100.0
    fid_key = "fid_inception" if "fid_inception" in last else "fid_evaluator_features"
    assert set(last[fid_key]["per_class"]) == {0, 1}
    assert all(np.isfinite(v) and v > 0 for v in last[fid_key]["per_class"].values())
    report = open(os.path.join(run_dir, "eval.md")).read()
    assert "0 church_outdoor | 1 tower" in report and "Reverse accuracy" in report
    assert ("InceptionV3 features" if fid_key == "fid_inception" else
            "FID (evaluator features, vgg_small)") in report

    # evaluate_run applies the ids: a generator that returns real images scores ~100%.
    task_data = data.load_for_config(cfg, verbose=False)
    by_task = {c: task_data.test_images[task_data.test_labels == c] for c in (0, 1)}
    monkeypatch.setattr(protocol, "load_sampler", lambda run, task: (
        real_sampler(by_task), {"classes": [0, 1][:task]}, None))
    perfect = protocol.evaluate_run(run_dir, classifier_dir=evaluator_dir, min_accuracy=0,
                                    batches=1, batch_size=VAL)
    assert perfect["tasks"]["2"]["accuracy"]["mean"] >= 90.0

    # Figure 5 (rows = categories, columns = after each task, same z) and Figure 7.
    written = figures.make_figures([run_dir], str(tmp_path / "figures"), num_z=2,
                                   mosaic_z=(0, 1), evolution_class=0, gif=False)
    mosaic = figures.remembering_mosaic(run_dir, (0, 1))[0]
    assert Image.open(written["mosaic"][0]).size[0] > mosaic.shape[1]  # labelled
    assert figures.mosaic_labels(run_dir, [0, 1], [1, 2])["rows"] == CATEGORIES
    # 2 blocks (z) of 2 rows x 2 columns of 64-pixel tiles, 2-pixel padding, 8-pixel gap.
    assert mosaic.shape == (2 * (2 * 64 + 2) + 8, 2 * 64 + 2, 3)
    assert (mosaic[66:130, :64] == 96).all()      # tower after task 1: not learned yet
    assert mosaic[:64, :64].std() > 0            # church_outdoor after task 1
    evolution = Image.open(written["evolution"][0])
    assert evolution.size[0] > 0 and os.path.exists(written["remembering"][0])
    strip, columns = figures.evolution_strip(run_dir, 0, (0, 1))
    assert columns == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert strip.shape == (2 * 64 + 2, 4 * 64 + 3 * 2, 3)


def test_forgetting_monitor_maps_task_labels_to_the_evaluator_ids(lsun_dir, evaluator_dir,
                                                                   tmp_path):
    from mergan_tf.evaluation.monitor import ForgettingMonitor
    task_data = lsun.load_lsun(lsun_dir, CATEGORIES, verbose=False)
    sample = real_sampler({c: task_data.test_images[task_data.test_labels == c] for c in (0, 1)})
    evaluator, _ = classifiers.load_classifier(evaluator_dir, dataset="lsun")
    mapped = ForgettingMonitor(evaluator, str(tmp_path), VAL, label_map=[8, 6])
    assert min(mapped.measure(sample, [0, 1]).values()) >= 80.0
    assert max(ForgettingMonitor(evaluator, str(tmp_path), VAL).measure(
        sample, [0, 1]).values()) <= 20.0


def test_resnet64_sampler_export_matches_the_generator(tmp_path):
    import tensorflow as tf
    from mergan_tf import export
    from mergan_tf.models.resnet64 import Generator
    g = Generator(dim=4)
    module = export.SamplerModule(g, {"class_names": CATEGORIES})
    tf.saved_model.save(module, str(tmp_path / "sampler"))
    loaded = tf.saved_model.load(str(tmp_path / "sampler"))
    z = tf.random.stateless_normal([6, 128], seed=[1, 2])
    labels = tf.constant([1, 0, 1, 0, 0, 1])
    got = loaded.sample_per_class(z, labels).numpy()
    assert got.shape == (6, 64, 64, 3) and got.dtype == np.uint8
    for c in (0, 1):  # each class its own batch, in the request's order
        rows = np.flatnonzero(labels.numpy() == c)
        want = export.uint8_images(g(tf.gather(z, rows), tf.gather(labels, rows))).numpy()
        assert np.abs(got[rows].astype(int) - want.astype(int)).max() <= 1
