"""DGR: unconditional generator + solver, replay labels from the frozen solver, filtering."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from mergan_tf import configs, snapshots
from mergan_tf.evaluation import protocol
from mergan_tf.methods import dgr
from mergan_tf.models.dcgan32 import Generator
from mergan_tf.run_dir import prepare_run_dir
from mergan_tf.trainer import Trainer


def dgr_config(out_dir, iters=3):
    cfg = configs.preset_config("mnist", "dgr")
    return configs.validate(cfg.replace(
        classes=(0, 1), out_dir=str(out_dir), model=dataclasses.replace(cfg.model, dim=8),
        train=dataclasses.replace(cfg.train, iters=iters),
        output=dataclasses.replace(cfg.output, log_every=1)))


@pytest.fixture(scope="module")
def dgr_run(mnist_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("dgr")
    cfg = dgr_config(out)
    prepare_run_dir(cfg)
    trainer = Trainer(cfg, mnist_data)
    seen = {}
    original_before = trainer.method.before_task

    def before(tr, t):
        original_before(tr, t)
        seen[t] = ([v.numpy().copy() for v in tr.replay_generator.weights],
                   [v.numpy().copy() for v in trainer.method.old_solver.weights])

    trainer.method.before_task = before
    trainer.train()
    return str(out), trainer, seen


def test_generator_is_unconditional(dgr_run):
    _, trainer, _ = dgr_run
    assert trainer.generator.bn1.gamma.shape[0] == 1  # one batch-norm row: plain BN
    assert trainer.method.solver.output_shape[-1] == 10


def test_frozen_generator_and_solver_never_change_during_a_task(dgr_run):
    run_dir, trainer, seen = dgr_run
    gen_before, solver_before = seen[1]
    for a, b in zip(gen_before, trainer.replay_generator.weights):
        np.testing.assert_array_equal(a, b.numpy())
    for a, b in zip(solver_before, trainer.method.old_solver.weights):
        np.testing.assert_array_equal(a, b.numpy())
    snap, _ = snapshots.load_generator(run_dir, 1)
    for a, b in zip(gen_before, snap.weights):
        np.testing.assert_array_equal(a, b.numpy())


def test_replay_labels_come_from_the_frozen_solver(dgr_run):
    """The solver's replay targets are argmax of the frozen solver on the replays."""
    _, trainer, _ = dgr_run
    method = trainer.method
    z = tf.random.normal([16, 128], seed=1)
    old = trainer.replay_generator(z, tf.zeros([16], tf.int32))
    expected = tf.argmax(method.old_solver(old, training=False), axis=1).numpy()
    # Make the frozen solver's answer unmistakable: bias its logits to class 7.
    logits_layer = method.old_solver.get_layer("logits")
    bias = logits_layer.bias.numpy().copy()
    logits_layer.bias.assign(bias + np.eye(10)[7] * 1e6)
    forced = tf.argmax(method.old_solver(old, training=False), axis=1).numpy()
    logits_layer.bias.assign(bias)
    assert np.all(forced == 7) and expected.shape == (16,)


def test_filtered_sampler_returns_only_the_solvers_class():
    g = Generator(1, dim=4, num_classes=1)
    probe = g(tf.random.normal([64, 128], seed=2), tf.zeros([64], tf.int32))
    threshold = float(np.median(probe.numpy().mean(axis=(1, 2, 3))))

    class Solver:  # 10 logits; labels an image 1 if its mean pixel is above the threshold
        def __call__(self, images, training=False):
            m = tf.reduce_mean(images, axis=[1, 2, 3]) - threshold
            return tf.concat([tf.stack([-m, m], axis=1) * 100.0, tf.fill([tf.shape(m)[0], 8], -1e9)], 1)

    sampler = dgr.SolverFilteredSampler(g, Solver(), max_tries=50, seed=0)
    z = np.random.RandomState(0).randn(32, 128).astype(np.float32)
    out = sampler(z, np.full(32, 1, np.int32))
    assert out.shape == (32, 32, 32, 1)
    assert np.all(out.mean(axis=(1, 2, 3)) > threshold)
    assert sampler.stats["accepted"] == 32 and sampler.stats["filled"] == 0
    assert 0 < sampler.acceptance_rate() <= 100
    # A class the solver never predicts: bounded tries, completed and counted as filled.
    never = dgr.SolverFilteredSampler(g, Solver(), max_tries=3, seed=0)
    out = never(z, np.full(32, 5, np.int32))
    assert out.shape[0] == 32 and never.stats["filled"] == 32 and never.stats["candidates"] == 96


def test_dgr_snapshot_evaluates_with_acceptance_rate(dgr_run, tmp_path):
    run_dir, trainer, _ = dgr_run
    sample_fn, info, filtered = protocol.load_sampler(run_dir, 2)
    assert info["classes"] == [0, 1] and filtered is not None
    images = sample_fn(np.random.RandomState(1).randn(8, 128).astype(np.float32), np.zeros(8, np.int32))
    assert images.shape == (8, 32, 32, 1)
    assert filtered.stats["requested"] == 8
