"""EWC: the penalty by hand, its gradient, the Fisher estimator, and a tiny run."""

import csv
import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from mergan_tf import configs, losses, snapshots
from mergan_tf.methods import ewc
from mergan_tf.models.dcgan32 import Critic, Generator
from mergan_tf.run_dir import prepare_run_dir
from mergan_tf.trainer import Trainer


def test_penalty_is_zero_at_the_anchor_and_matches_hand_computation():
    params = [tf.Variable([1.0, 2.0]), tf.Variable([[3.0]])]
    anchors = [tf.constant([1.0, 2.0]), tf.constant([[3.0]])]
    fishers = [tf.constant([0.5, 2.0]), tf.constant([[4.0]])]
    assert losses.ewc_penalty(params, anchors, fishers, 1e9).numpy() == 0.0
    moved = [tf.constant([0.0, 0.0]), tf.constant([[1.0]])]
    # lambda/2 * (0.5*1 + 2*4 + 4*4) = 1/2 * 24.5 with lambda = 1
    assert losses.ewc_penalty(params, moved, fishers, 1.0).numpy() == pytest.approx(12.25)


def test_penalty_gradient_moves_parameters_toward_the_anchor():
    theta = tf.Variable([2.0, -1.0, 0.5])
    anchor = tf.constant([0.0, 0.0, 0.0])
    fisher = tf.constant([1.0, 3.0, 0.0])
    with tf.GradientTape() as tape:
        loss = losses.ewc_penalty([theta], [anchor], [fisher], 2.0)
    grad = tape.gradient(loss, theta).numpy()
    np.testing.assert_allclose(grad, [2 * 1 * 2.0, 2 * 3 * -1.0, 0.0])  # lambda * F * (theta - a)
    after = theta.numpy() - 0.1 * grad
    assert np.all(np.abs(after[:2]) < np.abs(theta.numpy()[:2]))
    assert after[2] == theta.numpy()[2]  # zero Fisher: free


def test_fisher_is_the_mean_squared_per_sample_gradient():
    g, d = Generator(1, dim=4), Critic(1, dim=4)
    rng = tf.random.Generator.from_seed(0)
    fisher = ewc.estimate_fisher(g, d, [2, 5], num_samples=8, rng=rng, batch_size=4)
    params = g.trainable_variables
    assert len(fisher) == len(params)
    assert all(f.shape == p.shape for f, p in zip(fisher, params))
    assert all(float(tf.reduce_min(f)) >= 0 for f in fisher)
    assert sum(float(tf.reduce_sum(f)) for f in fisher) > 0
    # The same by hand: one gradient per sample (its batch kept as batch-norm context).
    rng = tf.random.Generator.from_seed(0)
    manual = [np.zeros(p.shape) for p in params]
    for c in (2, 5):
        z = rng.normal([4, g.z_dim])
        labels = tf.fill([4], c)
        for i in range(4):
            with tf.GradientTape() as tape:
                logits, class_logits = d(g(z, labels))
                loss = losses.generator_sample_losses(logits, class_logits, labels)[i]
            for m, grad in zip(manual, tape.gradient(loss, params)):
                m += tf.convert_to_tensor(grad).numpy() ** 2
    for f, m in zip(fisher, manual):
        np.testing.assert_allclose(f.numpy(), m / 8, rtol=1e-3, atol=1e-9)


def test_ewc_tiny_run(mnist_data, tmp_path):
    cfg = configs.preset_config("mnist", "ewc")
    assert cfg.method.ewc_lambda == 2e3  # the sweep's choice (results/ewc_sweep)
    cfg = configs.validate(cfg.replace(
        classes=(0, 1), out_dir=str(tmp_path),
        model=dataclasses.replace(cfg.model, dim=8),
        method=dataclasses.replace(cfg.method, ewc_samples=32),
        train=dataclasses.replace(cfg.train, iters=3),
        output=dataclasses.replace(cfg.output, log_every=1)))
    prepare_run_dir(cfg)
    trainer = Trainer(cfg, mnist_data)
    trainer.train()
    with open(os.path.join(tmp_path, "scalars.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["key"] == "loss/gen/ewc"]
    task1 = [float(r["value"]) for r in rows if r["task"] == "1"]
    task2 = {int(r["iteration"]): float(r["value"]) for r in rows if r["task"] == "2"}
    assert task1 and all(v == 0.0 for v in task1)
    assert task2[1] == 0.0 < task2[2]  # at the anchor on the first update, pulled back after
    # The Fisher and anchor live in the snapshot, and restore exactly.
    info = snapshots.read_snapshot_info(str(tmp_path), 2)
    other = cfg.replace(out_dir=str(tmp_path / "other"))
    prepare_run_dir(other)
    fresh = Trainer(other, mnist_data)
    snapshots.restore_into(str(tmp_path), 2, **fresh.method.checkpoint_objects())
    for a, b in zip(trainer.method.fisher + trainer.method.anchor,
                    fresh.method.fisher + fresh.method.anchor):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert info["method"] == "ewc"
