"""Losses against hand-computed values (see STYLE.md)."""

import numpy as np
import pytest
import tensorflow as tf

from mergan_tf import losses

REAL = tf.constant([-5.0, 1.4, 12.5, 2.7])
FAKE = tf.constant([10.0, 4.4, -5.5, 3.6])


def test_wasserstein_terms_on_fixed_logits():
    assert losses.wasserstein_generator_loss(FAKE).numpy() == pytest.approx(-3.125)
    assert losses.wasserstein_critic_loss(REAL, FAKE).numpy() == pytest.approx(0.225)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_penalty_of_linear_critic_is_nine_for_any_alpha(seed):
    rs = np.random.RandomState(seed)
    real = tf.constant(rs.normal(size=(5, 4)), tf.float32)
    fake = tf.constant(rs.normal(size=(5, 4)), tf.float32)
    alpha = tf.constant(rs.uniform(size=(5, 1)), tf.float32)
    critic = lambda x: tf.reduce_sum(2.0 * x, axis=1)  # noqa: E731  gradient (2,2,2,2), norm 4
    assert losses.gradient_penalty(critic, real, fake, alpha).numpy() == pytest.approx(9.0)


def test_gradient_penalty_uses_per_sample_norm_over_all_pixels():
    # D(x) = sum(w * x) over a [2, 2, 1] image; gradient norm = ||w|| = 3 -> penalty 4.
    w = tf.constant([[[1.0], [2.0]], [[2.0], [0.0]]])
    critic = lambda x: tf.reduce_sum(w * x, axis=[1, 2, 3])  # noqa: E731
    x = tf.zeros([3, 2, 2, 1])
    assert losses.gradient_penalty(critic, x, x + 1, tf.fill([3, 1, 1, 1], 0.5)).numpy() == pytest.approx(4.0)


def test_classification_loss_is_mean_cross_entropy():
    logits = tf.constant([[0.0, 0.0], [np.log(3.0), 0.0]])
    expected = (np.log(2.0) + np.log(4.0 / 3.0)) / 2
    assert losses.classification_loss(logits, tf.constant([1, 0])).numpy() == pytest.approx(expected)


def test_replay_alignment_is_a_sum_divided_by_t():
    old = tf.ones([4, 2, 2, 1]) * 3.0  # t = 2 classes of 2 replays
    new = tf.zeros([4, 2, 2, 1])
    # l2_loss = sum(9) / 2 over 16 pixels = 72; * 1e-3 / 2 classes = 0.036
    got = losses.replay_alignment_loss(old, new, num_classes=2, ra_factor=1e-3)
    assert got.numpy() == pytest.approx(0.036)
    undivided = losses.replay_alignment_loss(old, new, 2, 1e-3, divide_by_t=False)
    assert undivided.numpy() == pytest.approx(0.072)
    assert losses.replay_alignment_loss(old, old, 2, 1e-3).numpy() == 0.0


def test_replay_alignment_gradient_reaches_new_only():
    old = tf.Variable(tf.ones([2, 1]))
    new = tf.Variable(tf.zeros([2, 1]))
    with tf.GradientTape() as tape:
        loss = losses.replay_alignment_loss(old, new, 1, 1.0)
    g_old, g_new = tape.gradient(loss, [old, new])
    assert g_old is None
    np.testing.assert_allclose(g_new.numpy(), -np.ones([2, 1]))  # d/dnew 0.5 (old-new)^2


def test_jtr_terms_by_hand():
    # t = 2 classes, 2 replays each. Per-class means of D(new): 1, 3; of D(old): 2, 6.
    new_logits = tf.constant([0.0, 2.0, 2.0, 4.0])
    old_logits = tf.constant([1.0, 3.0, 5.0, 7.0])
    labels = tf.constant([0, 0, 1, 1])
    uniform = tf.zeros([4, 10])  # cross-entropy log(10) for every sample
    ce = np.log(10.0)
    critic = losses.jtr_critic_loss(old_logits, new_logits, uniform, labels, 2)
    assert critic.numpy() == pytest.approx((1 + 3) - (2 + 6) + 2 * ce, rel=1e-6)
    gen = losses.jtr_generator_loss(new_logits, uniform, labels, 2)
    assert gen.numpy() == pytest.approx(-(1 + 3) + 2 * ce, rel=1e-6)
    divided = losses.jtr_generator_loss(new_logits, uniform, labels, 2, divide_by_t=True)
    assert divided.numpy() == pytest.approx((-(1 + 3) + 2 * ce) / 2, rel=1e-6)


def test_jtr_per_class_means_differ_from_a_global_mean_with_unequal_groups():
    """Summing per-class means is t times the global mean only with equal groups."""
    logits = tf.constant([1.0, 1.0, 1.0, 5.0, 5.0, 5.0])
    got = losses.jtr_generator_loss(logits, tf.zeros([6, 10]), tf.constant([0, 0, 0, 1, 1, 1]), 2)
    assert got.numpy() == pytest.approx(-(1 + 5) + 2 * np.log(10.0), rel=1e-6)
