"""Loss functions of MeRGAN as pure functions on tensors.

Equation numbers refer to Wu et al., "Memory Replay GANs", NeurIPS 2018. Where the paper
and the authors' release differ, these functions follow the release (`mergan.py`).
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf


def wasserstein_generator_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Eq. 2: -E[D(G(z, c))]."""
    return -tf.reduce_mean(fake_logits)


def wasserstein_critic_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Eq. 5 without the penalty: E[D(G(z, c))] - E[D(x)]."""
    return tf.reduce_mean(fake_logits) - tf.reduce_mean(real_logits)


def gradient_penalty(critic_fn: Callable[[tf.Tensor], tf.Tensor], real: tf.Tensor,
                     fake: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """Eq. 5's penalty E[(||grad D(x_hat)||_2 - 1)^2], x_hat = real + alpha (fake - real).

    Args:
      critic_fn: maps images [N, ...] to Wasserstein logits [N].
      real, fake: images of the same shape.
      alpha: per-sample interpolation weights, broadcastable to `real` (e.g. [N, 1, 1, 1]).

    Returns:
      The mean squared deviation of the per-sample gradient norm (over all pixels) from 1.
      The weight (release: 10) is applied by the caller.
    """
    x_hat = real + alpha * (fake - real)
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        logits = critic_fn(x_hat)
    grads = tape.gradient(logits, x_hat)
    axes = list(range(1, grads.shape.rank))
    slopes = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=axes))
    return tf.reduce_mean(tf.square(slopes - 1.0))


def critic_real_fake_logits(critic, real: tf.Tensor, fake: tf.Tensor, concat: bool = True):
    """The critic's (real logits, real class logits, fake logits) of a real and a fake batch
    of the same size: one call on [real; fake] when `concat` (the critic has no
    batch-dependent layer, so this equals two calls), else two calls."""
    if not concat:
        real_logits, real_class_logits = critic(real)
        return real_logits, real_class_logits, critic(fake)[0]
    logits, class_logits = critic(tf.concat([real, fake], axis=0))
    real_logits, fake_logits = tf.split(logits, 2)
    return real_logits, class_logits[:tf.shape(real)[0]], fake_logits


def wgan_gp_critic_loss(critic, real: tf.Tensor, fake: tf.Tensor, alpha: tf.Tensor,
                        gp_weight: float, concat: bool = True):
    """Eq. 5, the WGAN-GP critic loss of an AC-GAN critic, as its two terms.

    Args:
      critic: maps images [N, ...] to (Wasserstein logits [N], class logits [N, K]).
      real, fake: images of the same shape (fake without gradient to the generator).
      alpha: per-sample interpolation weights of the penalty (see `gradient_penalty`).
      gp_weight: the penalty's weight (release: 10).
      concat: score real and fake in one critic call (see `critic_real_fake_logits`).

    Returns:
      (Wasserstein term, weighted gradient penalty, the real batch's class logits).
    """
    real_logits, real_class_logits, fake_logits = critic_real_fake_logits(critic, real, fake, concat)
    wasserstein = wasserstein_critic_loss(real_logits, fake_logits)
    penalty = gp_weight * gradient_penalty(lambda x: critic(x)[0], real, fake, alpha)
    return wasserstein, penalty, real_class_logits


def classification_loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Eqs. 3 and 6: mean sparse softmax cross-entropy of the AC head."""
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def l2_loss(x: tf.Tensor) -> tf.Tensor:
    """TF's l2_loss: sum(x**2) / 2 over every element (a sum, not a mean)."""
    return 0.5 * tf.reduce_sum(tf.square(x))


def replay_alignment_loss(old: tf.Tensor, new: tf.Tensor, num_classes: int,
                          ra_factor: float, divide_by_t: bool = True) -> tf.Tensor:
    """Eq. 13, replay alignment, as the release computes it.

    `ra_factor * sum_c l2_loss(Old(z, c) - New(z, c))`, divided by t (= `num_classes`, the
    classes learned before this task) when the replay batch is reduced (MNIST/SVHN). The
    sum over classes of per-class sums is the sum over the whole concatenated batch.

    Args:
      old: replays of the frozen previous generator, [t * n, H, W, C].
      new: the current generator's images for the same z and c.
      num_classes: t, the number of previous classes replayed.
      ra_factor: weight (release: 1e-3 MNIST and LSUN, 1e-2 SVHN).
      divide_by_t: divide by t (release: MNIST/SVHN).
    """
    loss = ra_factor * l2_loss(tf.stop_gradient(old) - new)
    return loss / num_classes if divide_by_t else loss


def _per_class_mean_sum(values: tf.Tensor, num_classes: int) -> tf.Tensor:
    """sum_c mean(values of class c) for a batch of `num_classes` equal consecutive groups."""
    return tf.reduce_sum(tf.reduce_mean(tf.reshape(values, [num_classes, -1]), axis=1))


def jtr_critic_loss(old_logits, new_logits, old_class_logits, labels, num_classes: int,
                    divide_by_t: bool = False) -> tf.Tensor:
    """Eq. 10-11, joint training with replay, critic side (release form).

    Per previous class c: old replays are real and new replays are fake,
    `mean D(New) - mean D(Old)` plus the AC cross-entropy on Old(z, c); summed over
    classes, divided by t only when `divide_by_t` (release: LSUN). No gradient penalty.

    Args:
      old_logits, new_logits: Wasserstein logits [t * n] of Old(z, c) and New(z, c), the
        batch made of t equal consecutive per-class groups.
      old_class_logits: AC logits [t * n, K] of Old(z, c).
      labels: int32 [t * n] the classes c.
      num_classes: t.
    """
    wass = (_per_class_mean_sum(new_logits, num_classes)
            - _per_class_mean_sum(old_logits, num_classes))
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=old_class_logits)
    loss = wass + _per_class_mean_sum(ce, num_classes)
    return loss / num_classes if divide_by_t else loss


def jtr_generator_loss(new_logits, new_class_logits, labels, num_classes: int,
                       divide_by_t: bool = False) -> tf.Tensor:
    """Eq. 12, joint training with replay, generator side (release form).

    Per previous class c: `-mean D(New(z, c))` plus the AC cross-entropy on New(z, c);
    summed over classes, divided by t only when `divide_by_t`.
    """
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=new_class_logits)
    loss = -_per_class_mean_sum(new_logits, num_classes) + _per_class_mean_sum(ce, num_classes)
    return loss / num_classes if divide_by_t else loss


def ewc_penalty(params, anchors, fishers, ewc_lambda: float) -> tf.Tensor:
    """Eq. 9, elastic weight consolidation: `lambda/2 * sum_i F_i (theta_i - anchor_i)^2`.

    Args:
      params: the generator's current variables.
      anchors: their values at the end of the previous task (same structure).
      fishers: diagonal Fisher estimates (same structure, non-negative).
      ewc_lambda: lambda_EWC (paper: 1e9).
    """
    total = tf.add_n([tf.reduce_sum(f * tf.square(p - tf.stop_gradient(a)))
                      for p, a, f in zip(params, anchors, fishers)])
    return 0.5 * ewc_lambda * total


def generator_sample_losses(fake_logits: tf.Tensor, fake_class_logits: tf.Tensor,
                            labels: tf.Tensor) -> tf.Tensor:
    """Per-sample generator loss -D(G(z, c)) + CE(C(G(z, c)), c) (Eqs. 2-3, not averaged)."""
    return -fake_logits + tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=fake_class_logits)
